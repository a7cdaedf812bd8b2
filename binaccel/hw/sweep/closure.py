"""Timing closure: the fastest clock a board makes below an fmax, the rebuild of a point at such a
clock, and how board records show the bitstream that meets timing."""

from __future__ import annotations

from binaccel.hw import sweep as _sweep  # the package: synth_point looked up there (tests replace it)

from ..boards import _board, ecp5_pll_params, ice40_pll_params
from .point import board_summary
from .presets import _tag, full_params

#: Headroom below nextpnr's fmax estimate for the clock of a timing-closure build (:func:`close_timing`).
CLOSURE_MARGIN = 0.97


def closure_clock(board, fmax_mhz, *, margin=CLOSURE_MARGIN) -> float:
    """The fastest clock (MHz) ``board`` makes, by its PLL or straight from its oscillator, at or below
    ``margin * fmax_mhz``: the clock to rebuild a point with that fmax at. Raises ValueError (naming
    the board and the fmax) if even the slowest clock is faster."""
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
        rep, summary = _sweep.synth_point(board, params, design=design, seed=seed, freq_mhz=clock, timeout=timeout,
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
