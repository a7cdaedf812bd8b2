"""Engine synthesis per board and the search for the largest array that fits.

Public API::

    MNIST_PARAMS                      EngineParams fields (besides rows/cols/word) the MNIST models need
    params_for_models(models)         the smallest such fields covering a list of IntModels
    FlatPorts(core)                   a core's ports as plain unsigned signals (for PortHarness)
    engine_design(**params)           default design factory: Engine behind FlatPorts
    synth_engine(board, params, ...)  one synthesis -> (report, summary)
    largest_array(board, ...)         few-point search: grow rows=cols, then word; records every point
    board_summary(report)             the bench's view of one report (fmax, LUTs, FFs, BRAMs, array)
    write_boards_json(results, path)  build/bench/boards.json (atomic)
    TARGET_MHZ                        the clock targets (iCE40UP5K 48 MHz, ECP5-85F 150 MHz)

The design factory is a parameter everywhere (``design_factory(**engine_params)`` must return
something :func:`binaccel.hw.synth.synthesize` accepts), so the whole-network accelerator behind
``BoardTop`` and its UART link can replace the bare engine once it exists.

Search (:func:`largest_array`): one place-and-route of a large ECP5 design takes minutes on a
shared 2-core machine, so the search is a few sequential points, each recorded:

1. square arrays ``rows = cols = n`` at the starting ``word``, ``n`` doubling while the design
   fits (nextpnr packs, places and routes it);
2. between the last fitting ``n`` and the first failing one, one midpoint;
3. at the best square, ``cols`` doubling while it fits (``rows`` sets the number of output lanes
   and their multipliers, so a DSP-bound board can still take more columns);
4. then ``word`` doubling while it fits.

The "largest" array is the fitting point with the most binary MACs per cycle
(``rows * cols * word``); its fmax is nextpnr's estimate for that seed, reported with the board's
target and whether it is met.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

__all__ = [
    "MNIST_PARAMS", "MNIST_PLAIN_PARAMS", "BOARD_BASE", "TARGET_MHZ", "DEFAULT_START", "FlatPorts", "engine_design", "params_for_models",
    "synth_engine", "largest_array", "board_summary", "write_boards_json", "load_boards_json",
    "BOARDS_JSON", "SYNTH_ROOT",
]

ROOT = Path(__file__).resolve().parents[1]
SYNTH_ROOT = ROOT / "build" / "synth"
BOARDS_JSON = ROOT / "build" / "bench" / "boards.json"

#: Clock targets of the issue: iCE40UP5K at 48 MHz or more, ECP5-85F at 150 MHz or more.
TARGET_MHZ = {"icebreaker": 48.0, "ulx3s": 150.0}

#: What the trained MNIST models of the zoo need (fan-in: the FC layer 64*4*4; 8-bit first layer;
#: MCN K=4, 3x3 M-Filters of 8 bits; requant/logits factors within 16/32 bits; tile counters:
#: 28*28 positions of 64 images fit 16 bits).
MNIST_PARAMS = {"max_fan_in": 1024, "max_in_bits": 8, "max_planes": 4, "max_taps": 9, "m_bits": 8,
                "mul_bits": 16, "add_bits": 32, "count_bits": 16}

#: The same for the plain (SiMaN / sign) MNIST models only: no MCN planes, taps or M-Filter factors.
#: The iCE40UP5K cannot hold the MCN build (its per-lane scale multipliers alone need 4x the 8 DSPs
#: at 2x2x16), so its search uses this base.
MNIST_PLAIN_PARAMS = {**MNIST_PARAMS, "max_planes": 1, "max_taps": 1, "m_bits": 1}

#: Seconds allowed per tool run in the search (a point that takes longer counts as not fitting).
DEFAULT_TIMEOUT_S = {"icebreaker": 900, "ulx3s": 3600}

#: Extra nextpnr options per board. ECP5: router2 (nextpnr's default router1 did not converge on the
#: 4x4x32 engine: 66k arcs left after 69k iterations and 17 minutes, at 20 % LUT use).
PNR_OPTS = {"icebreaker": (), "ulx3s": ("--router", "router2")}

#: Base parameters of the search per board.
BOARD_BASE = {"icebreaker": MNIST_PLAIN_PARAMS, "ulx3s": MNIST_PARAMS}

#: Starting points of the search per board: (rows=cols, word).
DEFAULT_START = {"icebreaker": (1, 16), "ulx3s": (4, 32)}


def params_for_models(models, *, images=64) -> dict:
    """Smallest EngineParams fields (except rows/cols/word) that run every layer of ``models``
    (IntModels) on batches of up to ``images`` images; raises ValueError for a layer no build can run
    (``w_bits != 1``)."""
    import numpy as np

    need = {"max_fan_in": 1, "max_in_bits": 1, "max_planes": 1, "max_taps": 1, "m_bits": 1,
            "mul_bits": 2, "add_bits": 2, "count_bits": 1}

    def sbits(v):
        v = np.asarray(v, dtype=np.int64)
        if not v.size:
            return 2
        lo, hi = int(v.min()), int(v.max())
        return max(max(-lo - 1, hi, 0).bit_length() + 1, 2)

    for model in models:
        for layer in model.layers:
            if layer.w_bits != 1:
                raise ValueError(f"model {model.name!r}, layer {layer.name!r}: field 'w_bits': the engine "
                                 f"runs binary-weight layers only, got {layer.w_bits}")
            need["max_fan_in"] = max(need["max_fan_in"], layer.fan_in)
            need["max_in_bits"] = max(need["max_in_bits"], layer.in_bits)
            if layer.mode != "plain":
                need["max_planes"] = max(need["max_planes"], layer.planes)
                need["m_bits"] = max(need["m_bits"], layer.m_bits)
            if layer.mode == "mcn":
                need["max_taps"] = max(need["max_taps"], layer.kernel ** 2)
            if layer.out_kind != "sign":
                need["mul_bits"] = max(need["mul_bits"], sbits(layer.mul))
                need["add_bits"] = max(need["add_bits"], sbits(layer.add))
            positions = images * layer.conv_h * layer.conv_w
            need["count_bits"] = max(need["count_bits"], positions.bit_length(), layer.groups.bit_length())
    return need


class FlatPorts(wiring.Component):
    """The ports of a ``sync``-domain core as plain ``unsigned`` signals of the same widths and flows.

    ``PortHarness`` (``binaccel.hw.synth``) sizes its shift register and fold with ``len()`` of each
    port, which structured ports (``data.View`` of a ``StructLayout``, like the engine's stream
    payloads) do not support; behind this adapter every port is a plain signal. Pure wiring, no
    logic: the figures are the core's.
    """

    def __init__(self, core):
        from ._util import checking

        with checking(self):
            if not isinstance(getattr(core, "signature", None), wiring.Signature):
                raise TypeError(f"FlatPorts needs a wiring.Component, not {core!r}")
        self.core = core
        self._ports = []
        members = {}
        for path, member, value in core.signature.flatten(core):
            name = "_".join(str(p) for p in path)
            width = len(Value.cast(value))
            members[name] = (In if member.flow == Flow.In else Out)(unsigned(width))
            self._ports.append((name, member.flow, value))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        for name, flow, value in self._ports:
            port = getattr(self, name)
            if flow == Flow.In:
                m.d.comb += Value.cast(value).eq(port)
            else:
                m.d.comb += port.eq(value)
        return m


def engine_design(**params):
    """Default design factory: the layer engine (``binaccel.hw.engine.Engine(**params)``) with
    flattened ports; :func:`binaccel.hw.synth.synthesize` puts it in a PortHarness in a BoardTop."""
    from .engine import Engine

    return FlatPorts(Engine(**params))


def _point_dir(board, params, seed, root=None):
    from .params import EngineParams

    tag = EngineParams(**params).tag
    return Path(root or SYNTH_ROOT / board / "engine") / f"{tag}_s{seed}"


def board_summary(report: dict) -> dict:
    """The bench's view of one synthesis report: ``fmax_mhz``, ``target_mhz``, ``met``, ``luts``,
    ``luts_total``, ``ffs``, ``brams``, ``dsps``, ``array`` ``{rows, cols, word}``, ``params``,
    ``fits``, ``seed``, ``report``. Raises ValueError naming the field when the report lacks it."""
    if not isinstance(report, dict):
        raise ValueError(f"synthesis report: expected a dict, got {type(report).__name__}")
    for key in ("board", "status", "fits", "utilization", "params"):
        if key not in report:
            raise ValueError(f"synthesis report{' ' + report.get('out_dir', '') if report.get('out_dir') else ''}: "
                             f"field '{key}' missing")
    params = report["params"] or {}
    for key in ("rows", "cols", "word"):
        if key not in params:
            raise ValueError(f"synthesis report: field 'params.{key}' missing (not an engine report?)")
    util = report["utilization"]
    accel = report.get("accel_clock") or {}

    def used(key):
        return util[key]["used"] if key in util else None

    return {
        "board": report["board"], "device": report.get("device"), "fits": bool(report["fits"]),
        "status": report["status"],
        "fmax_mhz": accel.get("fmax_mhz"), "target_mhz": TARGET_MHZ.get(report["board"]),
        "met": (bool(report["fits"]) and accel.get("fmax_mhz") is not None
                and accel["fmax_mhz"] >= TARGET_MHZ.get(report["board"], 0.0)),
        "luts": used("LUT"), "luts_total": util["LUT"]["total"] if "LUT" in util else None,
        "ffs": used("FF"), "brams": used("BRAM"), "dsps": used("DSP"),
        "dsps_total": util["DSP"]["total"] if "DSP" in util else None,
        "array": {k: int(params[k]) for k in ("rows", "cols", "word")},
        "macs_per_cycle": int(params["rows"]) * int(params["cols"]) * int(params["word"]),
        "params": dict(params), "seed": report.get("seed"), "design": report.get("design"),
        "wrapping": report.get("wrapping"), "tools": report.get("tools"),
        "critical_paths": report.get("critical_paths"), "runtime_s": report.get("runtime_s"),
        "report": str(Path(report["out_dir"]) / "report.json") if report.get("out_dir") else None,
    }


@contextlib.contextmanager
def _pnr_options(board, opts, out):
    """Run the flow's nextpnr with extra options: ``binaccel.hw.synth`` takes the nextpnr executable
    from ``$NEXTPNR_ICE40`` / ``$NEXTPNR_ECP5`` when set, so point it at a small wrapper script
    (written next to the build) that adds ``opts``."""
    if not opts:
        yield
        return
    from .boards import BOARDS
    from .synth import tool_path

    family = BOARDS[board].family
    tool = f"nextpnr-{family}"
    var = tool.upper().replace("-", "_")
    real = tool_path(tool)
    out.mkdir(parents=True, exist_ok=True)
    wrapper = out / f"{tool}-wrapper.sh"
    wrapper.write_text("#!/bin/sh\n# nextpnr with binaccel.hw.sweep.PNR_OPTS\n"
                       f"exec {shlex.quote(real)} {' '.join(shlex.quote(o) for o in opts)} \"$@\"\n")
    wrapper.chmod(0o755)
    saved = os.environ.get(var)
    os.environ[var] = str(wrapper)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = saved


def synth_engine(board, params, *, seed=1, freq_mhz=None, design_factory=engine_design, out_dir=None,
                 timeout=None, reuse=False, log=print):
    """Synthesise ``design_factory(**params)`` for ``board`` (``check=False``); returns
    ``(report, summary)``. ``freq_mhz`` defaults to the board's target (:data:`TARGET_MHZ`), used as
    nextpnr's constraint and PLL frequency. ``reuse=True`` returns an existing ``report.json`` of
    the same point (same params, seed, target and design) instead of running the tools again."""
    from .params import EngineParams
    from .synth import synthesize

    full = EngineParams(**params).as_dict()
    freq = TARGET_MHZ[board] if freq_mhz is None else float(freq_mhz)
    out = Path(out_dir) if out_dir is not None else _point_dir(board, full, seed)
    design_name = getattr(design_factory, "__name__", type(design_factory).__name__)
    if reuse and (out / "report.json").exists():
        old = json.loads((out / "report.json").read_text())
        target = (old.get("accel_clock") or {}).get("target_mhz")
        same = (old.get("params") == full and old.get("seed") == seed
                and old.get("pnr_extra_opts", []) == list(PNR_OPTS.get(board, ()))
                and (target is None or abs(target - freq) <= 0.01 * freq)  # PLL: within 1 %
                and old.get("status") in ("ok", "no_fit", "timeout") and old.get("factory") == design_name)
        if same:
            log(f"[synth] {board} {EngineParams(**full).tag}: reusing {out / 'report.json'}")
            return old, board_summary(old)
    t = time.monotonic()
    log(f"[synth] {board} {EngineParams(**full).tag} seed {seed} target {freq:g} MHz ...")
    opts = tuple(PNR_OPTS.get(board, ()))
    with _pnr_options(board, opts, out):
        report = synthesize(design_factory(**full), board=board, out_dir=out, seed=seed, freq_mhz=freq,
                            check=False, timeout=timeout, params=full)
    report["factory"] = design_name
    report["pnr_extra_opts"] = list(opts)
    from .synth import write_json_atomic
    write_json_atomic(report, out / "report.json")
    if report["status"] == "error" and "timed out" in (report.get("error") or ""):
        # a tool that runs out of time (a nearly full device that nextpnr cannot route in time) is
        # recorded as not fitting in the time allowed, and the search goes on; the utilisation and
        # fmax are then nextpnr's estimates before routing (from its log)
        report["status"] = "timeout"
        write_json_atomic(report, out / "report.json")
    s = board_summary(report)
    log(f"[synth]   {report['status']}: LUT {s['luts']}/{s['luts_total']} FF {s['ffs']} BRAM {s['brams']} "
        f"DSP {s['dsps']} fmax {s['fmax_mhz']} MHz ({time.monotonic() - t:.0f} s)"
        + (f" -- {report['error'][:300]}" if report.get("error") else ""))
    if report["status"] == "timeout":
        return report, s
    if report["status"] == "error":
        from .synth import SynthesisError
        raise SynthesisError(f"synthesis of {EngineParams(**full).tag} for {board} failed: {report['error']}",
                             report)
    return report, s


def largest_array(board, *, base=None, start=None, max_n=64, max_word=256, seed=1, freq_mhz=None,
                  design_factory=engine_design, reuse=True, max_points=8, timeout=None, on_point=None,
                  log=print) -> dict:
    """Search the largest fitting ``rows = cols = n`` x ``word`` array for ``board`` (module
    docstring); ``base``: the other EngineParams fields (default :data:`BOARD_BASE`); ``start``:
    ``(n, word)`` (default :data:`DEFAULT_START`). At most ``max_points`` syntheses.
    ``on_point(result)`` is called after every point with the result so far (to save progress).

    Returns ``{"board", "best": summary or None, "points": [summary...], "target_mhz", "met"}``.
    """
    base = dict(BOARD_BASE[board] if base is None else base)
    n, word = DEFAULT_START[board] if start is None else start
    points = []
    tried = {}

    def run(rows, cols, w):
        key = (rows, cols, w)
        if key in tried:
            return tried[key]
        if len(points) >= max_points:
            return None
        _, s = synth_engine(board, {**base, "rows": rows, "cols": cols, "word": w}, seed=seed,
                            freq_mhz=freq_mhz, design_factory=design_factory, reuse=reuse, log=log,
                            timeout=DEFAULT_TIMEOUT_S.get(board) if timeout is None else timeout)
        points.append(s)
        tried[key] = s["fits"]
        if on_point is not None:
            on_point(_result())
        return s["fits"]

    def _result():
        fitting = [p for p in points if p["fits"]]
        best = max(fitting, key=lambda p: (p["macs_per_cycle"], p["fmax_mhz"] or 0.0)) if fitting else None
        return {"board": board, "target_mhz": TARGET_MHZ[board], "base_params": base, "seed": seed,
                "best": best, "met": bool(best and best["met"]), "points": list(points)}

    # 1. grow the square array
    best, fail_n = None, None
    while n <= max_n:
        ok = run(n, n, word)
        if ok is None:
            break
        if not ok:
            fail_n = n
            break
        best = (n, n, word)
        n *= 2
    if best is None:
        # even the starting square did not fit: halve the word
        w = word
        while w > 1 and best is None:
            w //= 2
            ok = run(n, n, w)
            if ok is None:
                break
            if ok:
                best = (n, n, w)
    else:
        # 2. one midpoint between the last fitting square and the first failing one
        if fail_n is not None and fail_n - best[0] > 1:
            mid = (best[0] + fail_n) // 2
            if run(mid, mid, word):
                best = (mid, mid, word)
        # 3. more columns at the same rows (rows set the per-lane multipliers: DSP-bound boards)
        r, c, w = best
        c *= 2
        while c <= max_n:
            if not run(r, c, w):
                break
            best = (r, c, w)
            c *= 2
        # 4. wider words
        r, c, w = best
        w *= 2
        while w <= max_word:
            if not run(r, c, w):
                break
            best = (r, c, w)
            w *= 2
    return _result()


def _write_atomic(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def boards_markdown(results: dict) -> str:
    lines = ["# Engine synthesis per board", "",
             "| board | array (rows x cols x word) | MACs/cycle | fits | LUT | FF | BRAM | DSP | fmax MHz | target MHz | met |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for board, res in results.items():
        for p in res["points"]:
            a = p["array"]
            best = " **(largest)**" if res.get("best") is p or (res.get("best") and res["best"]["report"] == p["report"]) else ""
            fmax = "-" if p["fmax_mhz"] is None else (f"{p['fmax_mhz']:.1f}" if p["fits"]
                                                       else f"({p['fmax_mhz']:.1f} before routing)")
            fits = "yes" if p["fits"] else f"no ({p['status']})"
            lines.append(f"| {board} | {a['rows']}x{a['cols']}x{a['word']}{best} | {p['macs_per_cycle']} | "
                         f"{fits} | {p['luts']}/{p['luts_total']} | {p['ffs']} | "
                         f"{p['brams']} | {p['dsps']}/{p['dsps_total']} | {fmax} | {p['target_mhz']:g} | "
                         f"{'yes' if p['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def write_boards_json(results: dict, path=BOARDS_JSON) -> Path:
    """Write ``{"boards": {board: result of largest_array}}`` atomically as JSON (and ``.md``)."""
    path = Path(path)
    doc = {"format": "binaccel-boards", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "boards": results}
    _write_atomic(path, json.dumps(doc, indent=2) + "\n")
    _write_atomic(path.with_suffix(".md"), boards_markdown(results))
    return path


def load_boards_json(path=BOARDS_JSON) -> dict:
    """Read a boards file written by :func:`write_boards_json`; ValueError naming file and field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != "binaccel-boards":
        raise ValueError(f"{path}: field 'format': expected 'binaccel-boards'")
    if doc.get("version") != 1:
        raise ValueError(f"{path}: field 'version': expected 1, got {doc.get('version')!r}")
    boards = doc.get("boards")
    if not isinstance(boards, dict):
        raise ValueError(f"{path}: field 'boards': expected an object")
    for name, res in boards.items():
        best = res.get("best") if isinstance(res, dict) else None
        if best is None:
            continue
        for key in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "array"):
            if key not in best:
                raise ValueError(f"{path}: field 'boards.{name}.best.{key}' missing")
        for key in ("rows", "cols", "word"):
            if not isinstance(best["array"].get(key), int):
                raise ValueError(f"{path}: field 'boards.{name}.best.array.{key}': expected an int")
    return doc
