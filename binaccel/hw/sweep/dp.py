"""The pipelined accelerator as a board design: its board points, the ``dp_boards`` section of the
boards file, and whether a point is this checkout's gateware.

The builds are :func:`binaccel.hw.dp.synth.synth_dp`'s (the board design
:class:`~binaccel.hw.dp.board.LinkedDpAccelerator` in the board top, one build folder
``synth/<board>/dp-<cols>c-<MHz>`` per clock). A *point* is the board summary of one build
(:func:`dp_summary`), in the layout of :func:`binaccel.hw.sweep.board_summary`'s with
``datapath`` "pipelined":

* ``target_mhz`` is the board's target (:data:`~binaccel.hw.sweep.TARGET_MHZ`) and ``met`` whether
  the fmax reaches it, as for the other designs; ``freq_mhz`` is the clock the build was made
  for and ``timing_met`` whether its fmax meets that clock;
* ``clock_mhz`` is the clock of the point's timing-met bitstream: its own clock when it meets it,
  else None (:func:`binaccel.hw.sweep.bitstream_clock_mhz` reads it);
* ``params`` are :class:`~binaccel.sw.hwif.dp.DpParams` fields (defaults filled in), ``array``
  ``{rows, cols, word}`` (16 rows of 32-bit PEs).

A board's result (:func:`dp_result`) keeps every build as a point; its ``best`` is a timing-met
point if there is one, the one at the largest clock (:func:`best_dp_point`).
"""

from __future__ import annotations

import json
from pathlib import Path

from binaccel.hw.dp import synth as dpsynth   # the module: synth_dp and plan_sha256_dp looked up there
from binaccel.sw.hwif.dp import DpParams

from ..synth import synth_root
from .presets import TARGET_MHZ
from .records import PIPELINED

__all__ = ["DP_DESCRIPTION", "dp_params", "dp_point_dir", "dp_summary", "current_dp_report", "current_dp_closure",
           "checkout_plan_dp", "dp_gateware_current", "same_dp_point", "best_dp_point", "dp_result",
           "closure_points", "dp_command", "params_beyond_command"]

#: What the dp board design is (boards.json results and the synth summary).
DP_DESCRIPTION = ("pipelined accelerator + UART link + PLL: LinkedDpAccelerator (the pipelined DpAccelerator behind "
                  "the frame link) in the board top (PLL, reset synchroniser, UART 3 Mbaud)")

#: Report statuses a build folder's report may be reused with (a build that ran to the end).
_REUSABLE = ("ok", "no_fit")


def dp_params(cols: int | None = None) -> dict:
    """Every :class:`~binaccel.sw.hwif.dp.DpParams` field of the board build
    (:data:`binaccel.hw.dp.synth.ULX3S_BUILD`), with ``cols`` columns when given; raises
    TypeError / ValueError naming the parameter when it is out of range."""
    return DpParams(**{**dpsynth.ULX3S_BUILD, **({} if cols is None else {"cols": cols})}).as_dict()


def dp_point_dir(board: str, freq_mhz: float, params: dict) -> Path:
    """The build folder :func:`~binaccel.hw.dp.synth.synth_dp` writes for ``params`` at ``freq_mhz``."""
    return synth_root(board, f"dp-{DpParams(**params).cols}c-{float(freq_mhz):g}")


def _where(report) -> str:
    return f"synthesis report {report['out_dir']}" if isinstance(report, dict) and report.get("out_dir") \
        else "synthesis report"


def dp_summary(report: dict) -> dict:
    """The board point of one dp synthesis report (module docstring). Raises ValueError naming the
    report and the field when it lacks one or its parameters are not DpParams."""
    if not isinstance(report, dict):
        raise ValueError(f"synthesis report: expected a dict, got {type(report).__name__}")
    for key in ("board", "status", "fits", "params"):
        if key not in report:
            raise ValueError(f"{_where(report)}: field '{key}' missing")
    try:
        p = DpParams(**(report["params"] or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{_where(report)}: field 'params': not a pipelined accelerator build ({exc})") from None
    util = report.get("utilization") or {}
    clk = report.get("accel_clock") or {}
    fits = bool(report["fits"])
    fmax = clk.get("fmax_mhz")
    freq = None if report.get("clk_hz") is None else round(report["clk_hz"] / 1e6, 4)
    timing_met = bool(fits and clk.get("met"))
    target = TARGET_MHZ.get(report["board"])

    def used(key, field="used"):
        return (util.get(key) or {}).get(field)

    return {
        "board": report["board"], "device": report.get("device"), "design": "accel+uart", "datapath": PIPELINED,
        "description": report.get("description"), "params": p.as_dict(),
        "array": {"rows": p.rows, "cols": p.cols, "word": p.word}, "macs_per_cycle": p.rows * p.cols * p.word,
        "fits": fits, "status": report["status"], "error": report.get("error"),
        "fmax_mhz": fmax, "target_mhz": target,
        "met": bool(fits and fmax is not None and target is not None and fmax >= target),
        "freq_mhz": freq, "timing_met": timing_met, "clock_mhz": freq if timing_met else None,
        "luts": used("LUT"), "luts_total": used("LUT", "total"), "ffs": used("FF"), "brams": used("BRAM"),
        "dsps": used("DSP"), "dsps_total": used("DSP", "total"),
        "seed": report.get("seed"), "plan_sha256": report.get("plan_sha256"), "tools": report.get("tools"),
        "report": str(Path(report["out_dir"]) / "report.json") if report.get("out_dir") else None,
    }


def _read(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def current_dp_report(board: str, freq_mhz: float, params: dict, *, seed: int = 1) -> tuple:
    """The report in the build folder of ``params`` at ``freq_mhz`` (:func:`dp_point_dir`) when it
    is one this checkout would make again: the same parameters and seed, a build that ran to the
    end, and its ``plan_sha256`` equal to :func:`~binaccel.hw.dp.synth.plan_sha256_dp` of this
    checkout (elaborates the design). Returns ``(report or None, sentence saying why)``."""
    out = dp_point_dir(board, freq_mhz, params)
    path = out / "report.json"
    if not path.exists():
        return None, f"no report in {out}"
    rep = _read(path)
    if not isinstance(rep, dict):
        return None, f"{path} is not readable JSON"
    want = DpParams(**params).as_dict()
    try:
        got = DpParams(**(rep.get("params") or {})).as_dict()
    except (TypeError, ValueError) as exc:
        return None, f"{path}: field 'params': not a pipelined accelerator build ({exc})"
    if got != want:
        diff = ", ".join(f"{k} {got[k]} (this build {want[k]})" for k in want if got[k] != want[k])
        return None, f"{path} is of other build parameters: {diff}"
    if rep.get("seed") != seed:
        return None, f"{path} is of seed {rep.get('seed')}, not {seed}"
    if rep.get("status") not in _REUSABLE:
        return None, f"{path} has status {rep.get('status')!r}"
    plan = dpsynth.plan_sha256_dp(board, freq_mhz, params)
    if rep.get("plan_sha256") != plan:
        return None, (f"{path} was made from another build plan (plan_sha256 {str(rep.get('plan_sha256'))[:12]}, "
                      f"this checkout {plan[:12]})")
    rep["out_dir"] = str(out)
    return rep, f"reusing {path}: its build plan (plan_sha256 {plan[:12]}) is this checkout's"


def current_dp_closure(report: dict, board: str, params: dict, *, seed: int = 1):
    """The timing closure recorded next to ``report`` (``closure.json`` of
    :func:`~binaccel.hw.dp.synth.close_timing_dp`) when it met its clock and its last build is
    :func:`current_dp_report` at that clock; else None."""
    if not report.get("out_dir"):
        return None
    closure = _read(Path(report["out_dir"]) / "closure.json")
    if not isinstance(closure, dict) or not closure.get("met") or not closure.get("attempts"):
        return None
    if closure["attempts"][0].get("plan_sha256") != report.get("plan_sha256"):
        return None
    if len(closure["attempts"]) == 1:
        return closure
    last, _ = current_dp_report(board, closure["clock_mhz"], params, seed=seed)
    return closure if last is not None else None


def closure_points(closure: dict) -> list:
    """The points of a timing closure's rebuilds (its attempts after the first, read from their
    reports; an unreadable one is left out); the build that meets its clock carries ``closure``."""
    points = []
    attempts = closure.get("attempts") or []
    for i, a in enumerate(attempts[1:], start=1):
        rep = _read(a["report"]) if a.get("report") else None
        if not isinstance(rep, dict):
            continue
        rep.setdefault("out_dir", str(Path(a["report"]).parent))
        s = dp_summary(rep)
        if i == len(attempts) - 1 and closure.get("met") and s["timing_met"]:
            s["closure"] = closure
        points.append(s)
    return points


def checkout_plan_dp(point: dict):
    """The build-plan digest this checkout makes for a dp point (its board, clock and parameters;
    elaborates the design), or None when the point does not name them."""
    board, params, freq = point.get("board"), point.get("params"), point.get("freq_mhz")
    if board not in TARGET_MHZ or not isinstance(params, dict) or not freq:
        return None
    try:
        return dpsynth.plan_sha256_dp(board, freq, params)
    except (TypeError, ValueError):
        return None


def dp_gateware_current(point: dict) -> bool:
    """Whether a dp point describes what this checkout builds: its ``plan_sha256`` is
    :func:`checkout_plan_dp`'s."""
    plan = point.get("plan_sha256")
    return bool(plan) and plan == checkout_plan_dp(point)


def _same_clock(a, b) -> bool:
    return a == b or (a is not None and b is not None and abs(a - b) <= 1e-4 * max(a, b))


def same_dp_point(a: dict, b: dict) -> bool:
    """Two dp points of the same build: board, parameters (defaults filled in), seed and clock."""
    try:
        same_params = DpParams(**(a.get("params") or {})) == DpParams(**(b.get("params") or {}))
    except (TypeError, ValueError):
        same_params = a.get("params") == b.get("params")
    return (a.get("board") == b.get("board") and same_params and a.get("seed") == b.get("seed")
            and _same_clock(a.get("freq_mhz"), b.get("freq_mhz")))


def best_dp_point(points):
    """The board's point: among the fitting ones, a timing-met one if any, then the largest clock,
    then the largest fmax; None if none fits."""
    fitting = [p for p in points if p.get("fits")]
    if not fitting:
        return None
    return max(fitting, key=lambda p: (bool(p.get("timing_met")), p.get("freq_mhz") or 0.0, p.get("fmax_mhz") or 0.0))


def dp_result(board: str, points) -> dict:
    """A ``dp_boards`` result of ``board``: every point, the best (:func:`best_dp_point`), and
    ``met`` (the best reaches the board's target, as for the other designs)."""
    points = list(points)
    best = best_dp_point(points)
    return {"board": board, "design": "accel+uart", "datapath": PIPELINED, "description": DP_DESCRIPTION,
            "target_mhz": TARGET_MHZ.get(board), "best": best, "met": bool(best and best.get("met")),
            "points": points}


def params_beyond_command(point: dict) -> dict:
    """The parameters of a dp point that :func:`dp_command` cannot give (``{name: recorded value}``):
    where the point differs from this checkout's board build (:func:`dp_params` of its columns),
    e.g. a build made before :data:`~binaccel.hw.dp.synth.ULX3S_BUILD` changed."""
    try:
        recorded = DpParams(**(point.get("params") or {})).as_dict()
    except (TypeError, ValueError):
        return dict(point.get("params") or {})
    now = dp_params(recorded["cols"])
    return {k: v for k, v in recorded.items() if now.get(k) != v}


def dp_command(point: dict) -> str:
    """The ``binaccel synth`` command that builds a dp point again (its clock, columns and seed; its
    other parameters are this checkout's board build, :func:`params_beyond_command`)."""
    args = ["binaccel", "synth", "--board", point["board"], "--design", "dp"]
    if point.get("freq_mhz") is not None:
        args += ["--freq", f"{point['freq_mhz']:g}"]
    cols = (point.get("params") or {}).get("cols")
    if cols is not None and cols != dpsynth.ULX3S_BUILD["cols"]:
        args += ["--cols", str(cols)]
    if point.get("seed") not in (None, 1):
        args += ["--seed", str(point["seed"])]
    return " ".join(args)
