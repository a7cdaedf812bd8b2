"""Board synthesis of the accelerator (or the bare engine) and the search for the largest array.

Two designs (``design=``):

* ``"accel"`` (default; recorded as ``"accel+uart"``): the real board design,
  :class:`binaccel.hw.linked.LinkedAccelerator` (the whole-network
  :class:`~binaccel.hw.top.Accelerator` behind the frame link) inside
  :class:`~binaccel.hw.boards.BoardTop` (PLL, reset synchroniser, UART pins, LEDs). Parameters:
  :class:`~binaccel.hw.seq.AccelParams` (array, engine widths, buffer depths), defaults per board
  in :data:`ACCEL_BASE`.
* ``"engine-link"`` (recorded as ``"engine+uart"``): the board design for a device the
  accelerator does not fit (the iCE40UP5K): :class:`binaccel.hw.linked.LinkedEngine` (the layer
  engine behind the frame link; the host does im2col, pooling and the maps between layers,
  :mod:`binaccel.sw.enginehost`) inside a ``BoardTop``. Parameters:
  :class:`~binaccel.hw.params.EngineParams`, defaults :data:`BOARD_BASE`.
* ``"engine"``: the layer engine alone (:class:`~binaccel.hw.engine.Engine` behind
  :class:`FlatPorts`) in the flow's ``PortHarness`` in a ``BoardTop``: the earlier figures,
  kept reproducible. Parameters: :class:`~binaccel.hw.params.EngineParams`, defaults
  :data:`BOARD_BASE`.

Public API::

    MNIST_PARAMS                      EngineParams fields (besides rows/cols/word) the MNIST models need
    ACCEL_BASE                        per board: AccelParams fields of the board build (besides the array)
    params_for_models(models)         the smallest engine fields covering a list of IntModels
    FlatPorts(core)                   a core's ports as plain unsigned signals (for PortHarness)
    accel_design(**params)            LinkedAccelerator (the flow puts it in a BoardTop)
    engine_design(**params)           Engine behind FlatPorts (the flow adds PortHarness + BoardTop)
    synth_point(board, params, design=...)  one synthesis -> (report, summary)
    synth_engine(board, params, ...)  the same for the engine design
    largest_array(board, design=...)  few-point search: grow rows=cols, then word; records every point
    closure_clock(board, fmax_mhz)    the fastest clock the board makes that a build with this fmax meets
    close_timing(board, params, report)  rebuild a point below its target at such a clock: a bitstream that
                                      meets timing (``binaccel synth --close-timing``)
    board_summary(report)             the bench's view of one report (fmax, LUTs, FFs, BRAMs, array, design)
    write_boards_json(results, path)  build/bench/boards.json (atomic)
    TARGET_MHZ                        the clock targets (iCE40UP5K 48 MHz, ECP5-85F 150 MHz)

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

Timing closure (:func:`close_timing`): every search point is built for the board's target clock
(the PLL makes the target), so a point whose fmax is below it gives a bitstream that would run its
clock too fast on a board. ``close_timing`` places and routes the point again with the PLL at the
fastest frequency the board makes at or below ``margin * fmax`` (:func:`closure_clock`), and
once more lower if that build misses its own clock (placement changes with the constraint); the
bitstream of the build that meets its clock is the one to program. It is recorded with the point
(``closure`` in its board summary), in its own folder (``..._f<MHz>``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from pathlib import Path

from amaranth.hdl import Module, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

from binaccel.sw.atomic import write_json_atomic, write_text_atomic

__all__ = [
    "MNIST_PARAMS", "MNIST_PLAIN_PARAMS", "PE_STAGES", "BOARD_BASE", "ACCEL_BASE", "TARGET_MHZ", "DEFAULT_START",
    "ACCEL_START", "DESIGNS", "DESIGN_KIND", "FlatPorts", "engine_design", "accel_design", "params_for_models",
    "synth_point", "synth_engine", "largest_array", "board_summary", "write_boards_json", "load_boards_json",
    "full_params", "base_params", "update_boards_json", "inputs_hash", "design_kind", "BOARDS_JSON", "SYNTH_ROOT",
    "SECTIONS", "section_of", "linked_engine_design", "DESIGN_OF_KIND", "start_point",
    "closure_clock", "close_timing", "CLOSURE_MARGIN", "bitstream_clock_mhz", "closure_cell", "same_params",
]

ROOT = Path(__file__).resolve().parents[2]
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

#: PE stages per board. iCE40UP5K: 2 (the popcount's adder tree and the partial's adder in separate
#: cycles: the engine-only 2x4x16 reached 26.7 MHz against 19.5 MHz with one stage, with fewer LCs).
#: ECP5-85F: 1 (with 2, yosys/abc mapped the 5x6x32 accelerator to 58,962 LUT4s against 50,390, too
#: full to route). docs/synthesis.md, the fourth and fifth sessions of 2026-11-30.
PE_STAGES = {"icebreaker": 2, "ulx3s": 1}

#: Base parameters of the search per board.
BOARD_BASE = {"icebreaker": {**MNIST_PLAIN_PARAMS, "pe_stages": PE_STAGES["icebreaker"]},
              "ulx3s": {**MNIST_PARAMS, "pe_stages": PE_STAGES["ulx3s"]}}

#: Starting points of the engine search per board: (rows=cols, word).
DEFAULT_START = {"icebreaker": (1, 16), "ulx3s": (4, 32)}

#: The designs :func:`synth_point` builds, and how reports and boards.json name them.
DESIGNS = ("accel", "engine-link", "engine")
DESIGN_KIND = {"accel": "accel+uart", "engine-link": "engine+uart", "engine": "engine"}
DESIGN_OF_KIND = {kind: design for design, kind in DESIGN_KIND.items()}
DESIGN_DESCRIPTION = {
    "accel": "accelerator + UART link + PLL: LinkedAccelerator (whole-network Accelerator behind the frame "
             "link) in BoardTop (PLL, reset synchroniser, UART 115200 baud, receive FIFO, LEDs)",
    "engine-link": "engine + UART link + PLL: LinkedEngine (the layer Engine behind the frame link; the host "
                   "does im2col, pooling and the maps between layers) in BoardTop (PLL, reset synchroniser, UART "
                   "115200 baud, receive FIFO, LEDs)",
    "engine": "engine only: layer Engine (FlatPorts) in PortHarness in BoardTop (PLL, reset, UART); "
              "no fetch/write-back/buffers/sequencer/link",
}

#: Accelerator board builds (AccelParams besides rows/cols/word). Buffers are what block RAM allows:
#: every feature-map bank has cols + 1 read ports (2*cols + 1 with ``pair_reads``) and yosys makes one
#: block-RAM copy per read port. iCE40UP5K (30 EBR of 256x16): plain MNIST widths, no tap pairs, banks
#: of 1024 words (MNIST's input map is 784 words), weight buffer 256 entries (the MNIST models stream
#: their weights through it), tables 256 (MNIST needs 115 at one row), 4 descriptors; ECP5-85F (208
#: DP16KD): the MNIST widths with MCN, banks of 1024 words, weights 512 entries (siman needs 284 at
#: 4x4x32), tables 128, 8 descriptors.
ACCEL_BASE = {
    "icebreaker": {**BOARD_BASE["icebreaker"], "fm_depth": 1024, "w_depth": 256, "t_depth": 256, "max_layers": 4,
                   "max_dim": 28, "pair_reads": 0},
    "ulx3s": {**BOARD_BASE["ulx3s"], "fm_depth": 1024, "w_depth": 512, "t_depth": 128, "max_layers": 8,
              "max_dim": 28},
}

#: Starting points of the accelerator search per board: (rows=cols, word).
ACCEL_START = {"icebreaker": (1, 16), "ulx3s": (4, 32)}

#: Seconds allowed per tool run for the accelerator design (a point that takes longer counts as not fitting).
ACCEL_TIMEOUT_S = {"icebreaker": 900, "ulx3s": 1800}


#: hw/ modules that do not decide what is synthesised (parameters and tool options are compared on
#: their own when a report is reused)
_NOT_GATEWARE = frozenset({"sweep.py", "cli.py", "perf.py", "testing.py"})


def inputs_hash() -> str:
    """SHA-256 over the gateware and flow sources (``hw/*.py`` but the search, command line, cycle
    model and test helpers) and the versions of amaranth, amaranth-boards and the YoWASP tools: what,
    besides the parameters, decides a synthesis result (recorded in each report as
    ``inputs_sha256``; a report made from other inputs is not reused)."""
    import hashlib

    from .synth import tool_packages

    h = hashlib.sha256()
    for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
        if f.name in _NOT_GATEWARE:
            continue
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update("".join(tool_packages()).encode())
    return h.hexdigest()


_PLAN_CACHE: dict = {}


def plan_hash(board, params, *, design="accel", freq_mhz=None) -> str:
    """:func:`plan_digest` of the build plan this checkout makes for one point (``params``: the
    design's fields, defaults filled in; ``freq_mhz``: the clock it is built for, default the
    board's target). Elaborates the design (seconds for the largest ULX3S builds); cached per point."""
    from .synth import build_plan, plan_digest

    _check_design(design)
    full = full_params(params, design)
    freq = TARGET_MHZ[board] if freq_mhz is None else float(freq_mhz)
    key = (board, design, json.dumps(full, sort_keys=True), freq, inputs_hash())
    if key not in _PLAN_CACHE:
        _PLAN_CACHE[key] = plan_digest(build_plan(_FACTORIES[design](**full), board=board, freq_mhz=freq).files)
    return _PLAN_CACHE[key]


def gateware_current(record: dict) -> bool:
    """Whether a synthesis report or board summary describes what this checkout builds: made from
    the same gateware sources and tools (``inputs_sha256``), or, failing that, from the same build
    plan (``plan_sha256``: the same RTLIL, scripts and constraints, so an edit of ``hw/*.py`` that
    does not change this point's netlist keeps its record). A record of a design the flow cannot
    rebuild by name (a test's stand-in factory) is current only by its sources."""
    if not isinstance(record, dict):
        return False
    if record.get("inputs_sha256") and record["inputs_sha256"] == inputs_hash():
        return True
    plan, board, params = record.get("plan_sha256"), record.get("board"), record.get("params")
    design = _record_design(record)
    if not plan or board not in TARGET_MHZ or not isinstance(params, dict) or design is None:
        return False
    try:
        return plan == plan_hash(board, params, design=design, freq_mhz=_record_freq(record))
    except (TypeError, ValueError):
        return False


def _record_design(record):
    """The design (a key of :data:`DESIGN_KIND`) of a report or summary the flow's own factories
    made, else None."""
    factory = record.get("factory")
    if factory is not None:
        return {f.__name__: d for d, f in _FACTORIES.items()}.get(factory)
    kind = record.get("design") if record.get("design") in DESIGN_KIND.values() else record.get("design_kind")
    return DESIGN_OF_KIND.get(kind)


def _record_freq(record):
    """The clock (MHz) a report (``target_mhz``: the request it was built with) or a board summary
    (``freq_mhz``) was built for; None: the board's target."""
    if "freq_mhz" in record:
        return record["freq_mhz"]
    return record.get("target_mhz") if "utilization" in record else None


def base_params(board, design="accel") -> dict:
    """Default parameters (besides rows/cols/word) of ``design`` for ``board``."""
    _check_design(design)
    return dict((ACCEL_BASE if design == "accel" else BOARD_BASE)[board])


def start_point(board, design="accel"):
    """``(n, word)`` where the search of ``design`` starts on ``board`` (:data:`ACCEL_START` for
    the accelerator, :data:`DEFAULT_START` for the engine designs)."""
    _check_design(design)
    return (ACCEL_START if design == "accel" else DEFAULT_START)[board]


def _check_design(design):
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")


def full_params(params, design="accel") -> dict:
    """Every build parameter of ``design`` (defaults filled in, each checked): AccelParams or EngineParams."""
    _check_design(design)
    if design == "accel":
        from .seq import AccelParams
        return AccelParams(**params).as_dict()
    from .params import EngineParams
    return EngineParams(**params).as_dict()


def same_params(a, b, design="accel") -> bool:
    """Whether two parameter dicts (of reports or summaries) describe the same build of ``design``:
    equal once defaults are filled in, so a record made before a parameter existed (it lacks the key)
    equals one with that parameter at its default. Unreadable parameters compare as given."""
    if a == b:
        return True
    try:
        return full_params(dict(a or {}), design) == full_params(dict(b or {}), design)
    except (TypeError, ValueError):
        return False


def _tag(full, design):
    if design == "accel":
        from .seq import AccelParams
        return AccelParams(**full).tag
    from .params import EngineParams
    return EngineParams(**full).tag


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


def linked_engine_design(**params):
    """Engine board design factory: :class:`binaccel.hw.linked.LinkedEngine` (the layer engine behind
    the frame link; a byte-stream component), which :func:`binaccel.hw.synth.synthesize` puts in a
    :class:`~binaccel.hw.boards.BoardTop`."""
    from .linked import LinkedEngine

    return LinkedEngine(**params)


def accel_design(**params):
    """Accelerator design factory: :class:`binaccel.hw.linked.LinkedAccelerator` (the whole-network
    accelerator behind the frame link; a byte-stream component), which
    :func:`binaccel.hw.synth.synthesize` puts in a :class:`~binaccel.hw.boards.BoardTop`."""
    from .linked import LinkedAccelerator

    return LinkedAccelerator(**params)


_FACTORIES = {"accel": accel_design, "engine-link": linked_engine_design, "engine": engine_design}


def _off_target(board, freq_mhz) -> bool:
    """A clock request other than the board's target (the PLL makes it within 1 %)."""
    return freq_mhz is not None and abs(float(freq_mhz) - TARGET_MHZ[board]) > 0.01 * TARGET_MHZ[board]


def _point_dir(board, params, seed, root=None, design="engine", freq_mhz=None):
    """Folder of one point; a build for a clock other than the board's target gets its own
    (``..._f<MHz>``), so that it does not replace the target build."""
    suffix = f"_f{float(freq_mhz):.4g}" if _off_target(board, freq_mhz) else ""
    return Path(root or SYNTH_ROOT / board / design) / f"{_tag(params, design)}_s{seed}{suffix}"


def design_kind(report: dict) -> str:
    """``"accel+uart"``, ``"engine+uart"`` or ``"engine"`` for a synthesis report (older reports: from
    the wrapping)."""
    if report.get("design_kind"):
        return report["design_kind"]
    if report.get("factory") == "engine_design" or report.get("wrapping") == "core in PortHarness":
        return "engine"
    return "accel+uart"


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
    clock = report.get("clk_hz")

    def used(key):
        return util[key]["used"] if key in util else None

    return {
        "board": report["board"], "device": report.get("device"), "fits": bool(report["fits"]),
        "status": report["status"],
        "fmax_mhz": accel.get("fmax_mhz"), "target_mhz": TARGET_MHZ.get(report["board"]),
        "met": (bool(report["fits"]) and accel.get("fmax_mhz") is not None
                and accel["fmax_mhz"] >= TARGET_MHZ.get(report["board"], 0.0)),
        # the clock this build was placed and routed for (its PLL output) and whether it meets it
        "clock_mhz": None if clock is None else round(clock / 1e6, 4),
        "timing_met": bool(report["fits"] and accel.get("met")),
        "luts": used("LUT"), "luts_total": util["LUT"]["total"] if "LUT" in util else None,
        "ffs": used("FF"), "brams": used("BRAM"), "dsps": used("DSP"),
        "dsps_total": util["DSP"]["total"] if "DSP" in util else None,
        "array": {k: int(params[k]) for k in ("rows", "cols", "word")},
        "macs_per_cycle": int(params["rows"]) * int(params["cols"]) * int(params["word"]),
        "inputs_sha256": report.get("inputs_sha256"), "plan_sha256": report.get("plan_sha256"),
        "factory": report.get("factory"), "freq_mhz": report.get("target_mhz"),
        "params": dict(params), "seed": report.get("seed"), "design": design_kind(report),
        "design_class": report.get("design"), "description": report.get("description"),
        "error": report.get("error"),
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


def synth_point(board, params, *, design="accel", seed=1, freq_mhz=None, design_factory=None, out_dir=None,
                timeout=None, reuse=False, log=print):
    """Synthesise one point of ``design`` (``"accel"``: LinkedAccelerator in BoardTop; ``"engine"``: the
    bare engine in PortHarness in BoardTop) for ``board`` with ``check=False``; returns ``(report,
    summary)``. ``params``: AccelParams / EngineParams fields (defaults filled in). ``freq_mhz``
    defaults to the board's target (:data:`TARGET_MHZ`), used as nextpnr's constraint and PLL
    frequency. ``design_factory`` replaces the design's factory (same parameters). ``reuse=True``
    returns an existing ``report.json`` of the same point (same params, seed, target, design and
    nextpnr options, made from the same sources and tools or the same build plan,
    :func:`gateware_current`) instead of running the tools again. A run that exceeds ``timeout``
    (per tool) is recorded with status ``timeout``; a run nextpnr cannot fit has status
    ``no_fit``; other failures raise :class:`~binaccel.hw.synth.SynthesisError`."""
    from .synth import SynthesisError, synthesize

    _check_design(design)
    full = full_params(params, design)
    tag = _tag(full, design)
    factory = design_factory or _FACTORIES[design]
    freq = TARGET_MHZ[board] if freq_mhz is None else float(freq_mhz)
    out = Path(out_dir) if out_dir is not None else _point_dir(board, full, seed, design=design, freq_mhz=freq)
    design_name = getattr(factory, "__name__", type(factory).__name__)
    opts = tuple(PNR_OPTS.get(board, ()))
    if reuse and (out / "report.json").exists():
        old = json.loads((out / "report.json").read_text())
        target = (old.get("accel_clock") or {}).get("target_mhz") or old.get("target_mhz")
        same = (same_params(old.get("params"), full, design) and old.get("seed") == seed
                and old.get("pnr_extra_opts", []) == list(opts)
                and (target is None or abs(target - freq) <= 0.01 * freq)  # PLL: within 1 %
                and old.get("status") in ("ok", "no_fit", "timeout", "error") and old.get("factory") == design_name)
        if same and not gateware_current(old):
            log(f"[synth] {board} {DESIGN_KIND[design]} {tag}: the gateware or tools changed since "
                f"{out / 'report.json'}; running again")
            same = False
        if same:
            log(f"[synth] {board} {DESIGN_KIND[design]} {tag}: reusing {out / 'report.json'} ({old['status']})")
            if old["status"] == "error":
                raise SynthesisError(f"synthesis of {tag} ({DESIGN_KIND[design]}) for {board} failed "
                                     f"(earlier run, --force re-runs it): {old.get('error')}", old)
            return old, board_summary(old)
    t = time.monotonic()
    digest = inputs_hash()  # before elaboration: the sources the run starts from
    log(f"[synth] {board} {DESIGN_KIND[design]} {tag} seed {seed} target {freq:g} MHz ...")
    with _pnr_options(board, opts, out):
        report = synthesize(factory(**full), board=board, out_dir=out, seed=seed, freq_mhz=freq,
                            check=False, timeout=timeout, params=full,
                            description=DESIGN_DESCRIPTION[design] if design_factory is None else None)
    report["factory"] = design_name
    report["design_kind"] = DESIGN_KIND[design]
    report["inputs_sha256"] = digest
    report["pnr_extra_opts"] = list(opts)
    report["target_mhz"] = freq
    report["timeout_s"] = timeout
    if report["status"] == "error" and "timed out" in (report.get("error") or ""):
        # a tool that runs out of time (a nearly full device that nextpnr cannot route in time) is
        # recorded as not fitting in the time allowed, and the search goes on; the utilisation and
        # fmax are then nextpnr's estimates before routing (from its log)
        report["status"] = "timeout"
    write_json_atomic(out / "report.json", report)
    from .synth import report_markdown
    write_text_atomic(out / "report.md", report_markdown(report))
    s = board_summary(report)
    log(f"[synth]   {report['status']}: LUT {s['luts']}/{s['luts_total']} FF {s['ffs']} BRAM {s['brams']} "
        f"DSP {s['dsps']} fmax {s['fmax_mhz']} MHz ({time.monotonic() - t:.0f} s)"
        + (f" -- {report['error'][:300]}" if report.get("error") else ""))
    if report["status"] == "error":
        raise SynthesisError(f"synthesis of {tag} ({DESIGN_KIND[design]}) for {board} failed: {report['error']}",
                             report)
    return report, s


def synth_engine(board, params, *, seed=1, freq_mhz=None, design_factory=engine_design, out_dir=None,
                 timeout=None, reuse=False, log=print):
    """:func:`synth_point` of the engine design (``params``: EngineParams fields); ``design_factory``
    defaults to :func:`engine_design`."""
    return synth_point(board, params, design="engine", seed=seed, freq_mhz=freq_mhz,
                       design_factory=None if design_factory is engine_design else design_factory,
                       out_dir=out_dir, timeout=timeout, reuse=reuse, log=log)


#: Headroom below nextpnr's fmax estimate for the clock of a timing-closure build (:func:`close_timing`).
CLOSURE_MARGIN = 0.97


def closure_clock(board, fmax_mhz, *, margin=CLOSURE_MARGIN) -> float:
    """The fastest clock (MHz) ``board`` makes, by its PLL or straight from its oscillator, at or below
    ``margin * fmax_mhz``: the clock to rebuild a point with that fmax at. Raises ValueError (naming
    the board and the fmax) if even the slowest clock is faster."""
    from .boards import _board, ecp5_pll_params, ice40_pll_params

    if isinstance(fmax_mhz, bool) or not isinstance(fmax_mhz, (int, float)) or not fmax_mhz > 0:
        raise ValueError(f"closure_clock: fmax_mhz must be a positive number (MHz), got {fmax_mhz!r}")
    if not 0 < margin <= 1:
        raise ValueError(f"closure_clock: margin must be in (0, 1], got {margin!r}")
    b = _board(board)
    limit = margin * fmax_mhz
    pll = ice40_pll_params if b.family == "ice40" else ecp5_pll_params
    # requests from the limit down in 0.25 % steps: the first PLL output at or below the limit and
    # within 1 % of its request (what BoardTop accepts) is the PLL's fastest; the oscillator itself
    # (no PLL) is the other candidate
    found = []
    for k in range(400):
        want = limit * (1 - 0.0025 * k)
        try:
            fout = pll(b.osc_hz, want * 1e6)["fout_hz"] / 1e6
        except ValueError:   # below the PLL's output range
            break
        if fout <= limit and abs(fout - want) <= 0.01 * want:
            found.append(round(fout, 4))
            break
    if b.osc_hz / 1e6 <= limit:
        found.append(b.osc_hz / 1e6)
    if found:
        return max(found)
    raise ValueError(f"{board}: no clock at or below {limit:.3f} MHz ({margin:g} x fmax {fmax_mhz:g} MHz): "
                     f"the PLL's slowest output and the {b.osc_hz / 1e6:g} MHz oscillator are faster")


def close_timing(board, params, report, *, design="accel", seed=1, margin=CLOSURE_MARGIN, tries=2,
                 timeout=None, reuse=True, log=print) -> dict:
    """A bitstream of ``params`` that meets its clock: ``report`` is the point's build (from
    :func:`synth_point`); if it missed its clock, the point is placed and routed again at
    :func:`closure_clock` of its fmax, and, while a rebuild misses its own clock, again below that
    build's fmax, ``tries`` rebuilds at most. A rebuild that runs out of time (status ``timeout``:
    the router did not converge at that clock) counts as a miss at its clock: the next one is built
    below that clock.

    Returns the closure record: ``clock_mhz`` (the clock of the last build), ``fmax_mhz``, ``met``
    (that build meets its clock), ``report`` (its report.json), ``bitstream`` (its bitstream, when
    met), ``margin``, and ``attempts`` (one entry per build, the given one first). Raises ValueError
    if ``report`` did not fit or has no fmax."""
    full = full_params(params, design)

    def entry(summary):
        return {"clock_mhz": summary["clock_mhz"], "fmax_mhz": summary["fmax_mhz"], "met": summary["timing_met"],
                "status": summary["status"], "report": summary["report"]}

    where = report.get("out_dir") or "the report"
    if not report.get("fits"):
        raise ValueError(f"{where}: field 'fits': the point does not fit {board}; there is no timing to close")
    if (report.get("accel_clock") or {}).get("fmax_mhz") is None:
        raise ValueError(f"{where}: field 'accel_clock.fmax_mhz' missing; cannot choose a clock")
    attempts = [entry(board_summary(report))]
    rep = report
    while not attempts[-1]["met"] and len(attempts) <= tries:
        # the slowest fmax reached, or the clock of a build that did not finish routing
        bound = min([a["fmax_mhz"] for a in attempts if a["fmax_mhz"] is not None and a["status"] != "timeout"]
                    + [a["clock_mhz"] for a in attempts if a["status"] == "timeout"])
        clock = closure_clock(board, bound, margin=margin)
        last = attempts[-1]
        why = (f"did not finish routing at {last['clock_mhz']} MHz" if last["status"] == "timeout" else
               f"fmax {last['fmax_mhz']} MHz misses the {last['clock_mhz']} MHz clock")
        log(f"[synth] {board} {_tag(full, design)}: {why}; building again at {clock:g} MHz")
        rep, summary = synth_point(board, params, design=design, seed=seed, freq_mhz=clock, timeout=timeout,
                                   reuse=reuse, log=log)
        attempts.append(entry(summary))
        if summary["status"] == "timeout" and summary["clock_mhz"] is not None:
            continue
        if not rep.get("fits") or attempts[-1]["fmax_mhz"] is None:
            break
    last = attempts[-1]
    return {**{k: last[k] for k in ("clock_mhz", "fmax_mhz", "met", "report")},
            "bitstream": (rep.get("files") or {}).get("bitstream") if last["met"] else None,
            "margin": margin, "attempts": attempts}


def largest_array(board, *, design="accel", base=None, start=None, max_n=64, max_word=256, seed=1,
                  freq_mhz=None, design_factory=None, reuse=True, max_points=8, timeout=None, on_point=None,
                  log=print) -> dict:
    """Search the largest fitting ``rows = cols = n`` x ``word`` array of ``design`` for ``board``
    (module docstring); ``base``: the other parameters (default :func:`base_params`); ``start``:
    ``(n, word)`` (default :data:`ACCEL_START` / :data:`DEFAULT_START`). At most ``max_points``
    syntheses. A point whose parameters are invalid (e.g. ``word`` below 8 with 8-bit inputs) is
    not synthesized and ends that direction of the search; so does a point whose synthesis fails
    (status ``error``, e.g. a tool crash), which is recorded with its error. ``on_point(result)`` is called after
    every point with the result so far (to save progress).

    Returns ``{"board", "design", "best": summary or None, "points": [summary...], "target_mhz",
    "met", "base_params", "seed"}``.
    """
    from .synth import SynthesisError

    _check_design(design)
    base = base_params(board, design) if base is None else dict(base)
    n, word = start_point(board, design) if start is None else start
    if timeout is None:
        timeout = (ACCEL_TIMEOUT_S if design == "accel" else DEFAULT_TIMEOUT_S).get(board)
    points = []
    tried = {}

    def run(rows, cols, w):
        key = (rows, cols, w)
        if key in tried:
            return tried[key]
        if len(points) >= max_points:
            return None
        params = {**base, "rows": rows, "cols": cols, "word": w}
        try:
            full_params(params, design)
        except (TypeError, ValueError) as exc:
            log(f"[synth] {board} {rows}x{cols}x{w}: not a valid build ({exc}); not synthesized")
            tried[key] = None
            return None
        try:
            _, s = synth_point(board, params, design=design, seed=seed, freq_mhz=freq_mhz,
                               design_factory=design_factory, reuse=reuse, log=log, timeout=timeout)
        except SynthesisError as exc:
            # a tool that fails on a point (e.g. yosys' WebAssembly build aborting on a large design)
            # ends that direction of the search like a point that does not fit; recorded with its error
            log(f"[synth]   recorded as not synthesizable: {str(exc)[:300]}")
            s = board_summary(exc.report)
        points.append(s)
        tried[key] = s["fits"]
        if on_point is not None:
            on_point(_result())
        return s["fits"]

    def _result():
        fitting = [p for p in points if p["fits"]]
        best = max(fitting, key=lambda p: (p["macs_per_cycle"], p["fmax_mhz"] or 0.0)) if fitting else None
        return {"board": board, "design": DESIGN_KIND[design], "description": DESIGN_DESCRIPTION[design],
                "target_mhz": TARGET_MHZ[board], "base_params": base, "seed": seed,
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


def _point_kind(point) -> str:
    """Design of one board summary ("engine", "engine+uart" or "accel+uart"; older summaries name the
    design class, e.g. "Engine", and say it by their wrapping)."""
    if point.get("design") in DESIGN_KIND.values():
        return point["design"]
    return "engine" if point.get("wrapping") == "core in PortHarness" else "accel+uart"


def _result_kind(res) -> str:
    """Design of one board result (results written before the accelerator design existed: the engine)."""
    if res.get("design"):
        return res["design"]
    for p in res.get("points") or []:
        return _point_kind(p)
    return "accel+uart"


def _n(v):
    return "-" if v is None else v


def bitstream_clock_mhz(point: dict):
    """Clock (MHz) of a board point's bitstream that meets timing: its timing closure's, or its own
    when the build meets its clock; None when no such bitstream is recorded."""
    c = point.get("closure")
    if c and c.get("met"):
        return c["clock_mhz"]
    if point.get("timing_met"):
        return point.get("clock_mhz")
    return None


def closure_cell(point: dict) -> str:
    """Table cell (boards.md, the bench's board table) for a board point's timing-met bitstream: its
    clock and fmax (``closure``), the build itself when it meets its clock, or how to build one."""
    c = point.get("closure")
    if c and c.get("met"):
        return f"{c['clock_mhz']:g} MHz (fmax {c['fmax_mhz']})"
    if c:
        return "none met (" + ", ".join(f"{a['clock_mhz']:g}" for a in c.get("attempts", [])) + " MHz tried)"
    if point.get("timing_met"):
        clock = point.get("clock_mhz")
        return "the build itself" if clock is None else f"{clock:g} MHz (the build itself)"
    return "not built (`binaccel synth ... --close-timing`)"


#: boards.json section of each design kind: ``boards`` the whole-network accelerator (what the bench
#: reads first), ``engine_link_boards`` the engine behind the link (the board design where the
#: accelerator does not fit), ``engine_boards`` the bare engine (figures kept reproducible).
SECTIONS = {"accel+uart": "boards", "engine+uart": "engine_link_boards", "engine": "engine_boards"}


def section_of(result) -> str:
    """The boards.json section of a board result (or summary): that of its design kind."""
    return SECTIONS.get(_result_kind(result), "boards")


_SECTION_TITLES = {
    "boards": "Accelerator + UART link + PLL (the board design; `binaccel synth --design accel`)",
    "engine_link_boards": "Engine + UART link + PLL (the board design where the accelerator does not fit; "
                          "`binaccel synth --design engine-link`)",
    "engine_boards": "Engine only, in a PortHarness (`binaccel synth --design engine`)",
}


def boards_markdown(results: dict, engine_results: dict | None = None, link_results: dict | None = None) -> str:
    lines = ["# Synthesis per board", ""]
    sections = [(_SECTION_TITLES["boards"], results), (_SECTION_TITLES["engine_link_boards"], link_results or {}),
                (_SECTION_TITLES["engine_boards"], engine_results or {})]
    for title, res_map in sections:
        if not res_map:
            continue
        lines += [f"## {title}", "",
                  "| board | design | array (rows x cols x word) | MACs/cycle | fits | LUT | FF | BRAM | DSP | fmax MHz | "
                  "target MHz | met | timing-met bitstream |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for board, res in res_map.items():
            if not res.get("points"):
                lines.append(f"| {board} | {_result_kind(res)} | - | | no point synthesized | | | | | | | | |")
            for p in res["points"]:
                a = p["array"]
                best = " **(largest)**" if res.get("best") is p or (res.get("best") and res["best"]["report"] == p["report"]) else ""
                fmax = "-" if p["fmax_mhz"] is None else (f"{p['fmax_mhz']:.1f}" if p["fits"]
                                                           else f"({p['fmax_mhz']:.1f} before routing)")
                fits = "yes" if p["fits"] else f"no ({p['status']})"
                if not p["fits"] and p.get("error"):
                    why = p["error"]
                    if "Caused by:" in why:  # a WebAssembly trap: the tool's step and the trap's cause
                        why = why.split(":")[0] + ": " + why.split("Caused by:")[-1].strip(" |")
                    why = why.replace("|", "/")
                    fits += f": {why[:90]}{'...' if len(why) > 90 else ''}"
                kind = p.get("design") if p.get("design") in DESIGN_KIND.values() else _result_kind(res)
                lines.append(f"| {board} | {kind} | {a['rows']}x{a['cols']}x{a['word']}{best} | "
                             f"{p['macs_per_cycle']} | {fits} | {_n(p['luts'])}/{_n(p['luts_total'])} | {_n(p['ffs'])} | "
                             f"{_n(p['brams'])} | {_n(p['dsps'])}/{_n(p['dsps_total'])} | {fmax} | {p['target_mhz']:g} | "
                             f"{'yes' if p['met'] else 'no'} | {closure_cell(p)} |")
            if res.get("points") and not res.get("best"):
                lines.append(f"| {board} | {_result_kind(res)} | **no array fits** | | | | | | | | | | |")
        lines.append("")
    return "\n".join(lines)


def write_boards_json(results: dict, path=None, *, engine_results: dict | None = None,
                      link_results: dict | None = None) -> Path:
    """Write ``{"boards": {board: result of largest_array}, "engine_link_boards": {...},
    "engine_boards": {...}}`` atomically as JSON (and ``.md``). ``boards`` holds the accelerator
    board design (accelerator + UART, what the bench reads first), ``engine_link_boards`` the engine
    behind the link (the bench's board design for a board the accelerator does not fit),
    ``engine_boards`` the engine-only results (the bench's last fallback). A result in ``results``
    goes to the section of its design (:data:`SECTIONS`). ``path``: default :data:`BOARDS_JSON`
    (looked up at the call)."""
    path = Path(BOARDS_JSON if path is None else path)
    doc = {"format": "binaccel-boards", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "boards": {}, "engine_link_boards": dict(link_results or {}), "engine_boards": dict(engine_results or {})}
    for board, res in results.items():
        doc[section_of(res)][board] = res
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    write_text_atomic(path.with_suffix(".md"), boards_markdown(doc["boards"], doc["engine_boards"],
                                                               doc["engine_link_boards"]))
    return path


def update_boards_json(board, result, path=None) -> Path:
    """Put one board's ``result`` (of :func:`largest_array` or a single point) into the boards file,
    in the section of its design (:data:`SECTIONS`), keeping everything else (an unreadable or
    missing file starts empty; earlier results found in another design's section move to their
    own, unless that already has one for the board)."""
    path = BOARDS_JSON if path is None else path
    try:
        doc = load_boards_json(path)
    except (FileNotFoundError, ValueError):
        doc = {}
    sections = {name: {} for name in SECTIONS.values()}
    for name in SECTIONS.values():
        for b, res in (doc.get(name) or {}).items():
            if section_of(res) == name:
                sections[name][b] = res
    for name in SECTIONS.values():     # misplaced results (older files: engine results under boards)
        for b, res in (doc.get(name) or {}).items():
            sections[section_of(res)].setdefault(b, res)
    sections[section_of(result)][board] = result
    return write_boards_json(sections["boards"], path, engine_results=sections["engine_boards"],
                             link_results=sections["engine_link_boards"])


def load_boards_json(path=None) -> dict:
    """Read a boards file written by :func:`write_boards_json` (default :data:`BOARDS_JSON`);
    ValueError naming file and field."""
    path = Path(BOARDS_JSON if path is None else path)
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
    for section in ("engine_link_boards", "engine_boards"):
        doc.setdefault(section, {})
        if not isinstance(doc[section], dict):
            raise ValueError(f"{path}: field '{section}': expected an object")
    for section in SECTIONS.values():
        for name, res in doc[section].items():
            best = res.get("best") if isinstance(res, dict) else None
            if best is None:
                continue
            for key in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "array"):
                if key not in best:
                    raise ValueError(f"{path}: field '{section}.{name}.best.{key}' missing")
            for key in ("rows", "cols", "word"):
                if not isinstance(best["array"].get(key), int):
                    raise ValueError(f"{path}: field '{section}.{name}.best.array.{key}': expected an int")
    return doc
