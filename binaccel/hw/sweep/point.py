"""One point's synthesis: its folder, the nextpnr options, the run (or reuse of an earlier report) and
the bench's summary of its report."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from pathlib import Path

from binaccel.hw import synth
from binaccel.hw import sweep as _sweep  # the package: synth_point looked up there (tests replace it)
from binaccel.sw.atomic import write_json_atomic, write_text_atomic

from ..boards import BOARDS
from ..synth import SynthesisError, report_markdown, synth_root, tool_path
from .designs import _FACTORIES, engine_design
from .plan import gateware_current, inputs_hash
from .presets import (DESIGN_DESCRIPTION, DESIGN_KIND, PNR_OPTS, TARGET_MHZ, _check_design, _tag,
                      full_params, same_params)


def _off_target(board, freq_mhz) -> bool:
    """A clock request other than the board's target (the PLL makes it within 1 %)."""
    return freq_mhz is not None and abs(float(freq_mhz) - TARGET_MHZ[board]) > 0.01 * TARGET_MHZ[board]


def _point_dir(board, params, seed, root=None, design="engine", freq_mhz=None):
    """Folder of one point; a build for a clock other than the board's target gets its own
    (``..._f<MHz>``), so that it does not replace the target build."""
    suffix = f"_f{float(freq_mhz):.4g}" if _off_target(board, freq_mhz) else ""
    return Path(root or synth_root(board, design)) / f"{_tag(params, design)}_s{seed}{suffix}"


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
        report = synth.synthesize(factory(**full), board=board, out_dir=out, seed=seed, freq_mhz=freq,
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
    return _sweep.synth_point(board, params, design="engine", seed=seed, freq_mhz=freq_mhz,
                       design_factory=None if design_factory is engine_design else design_factory,
                       out_dir=out_dir, timeout=timeout, reuse=reuse, log=log)
