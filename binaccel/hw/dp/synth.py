"""Synthesize the pipelined accelerator's board design: ``python -m binaccel.hw.dp.synth``.

The design is :class:`~binaccel.hw.dp.board.LinkedDpAccelerator` (the accelerator behind the frame
link) in the board top (PLL, reset synchroniser, UART at the board's default baud), through
:func:`binaccel.hw.synth.synthesize` with nextpnr's ``router2``. The report (``report.json``,
``report.md``: LUT, FF, BRAM, DSP, fmax against the target, the build-plan digest) goes to
``synth/<board>/dp-<cols>c-<MHz>`` of the build folder, next to the bitstream.

With ``--close-timing``, a build that misses its clock is placed and routed again at the fastest
clock the board's PLL makes below 0.97 x its fmax (:func:`binaccel.hw.sweep.closure.closure_clock`),
up to two more times, so that the last report is that of a bitstream that meets its clock;
``closure.json`` in the first build's folder lists every attempt.

::

    python -m binaccel.hw.dp.synth --board ulx3s --freq 125
    python -m binaccel.hw.dp.synth --board ulx3s --freq 125 --close-timing
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from binaccel.sw.hwif.dp import DpParams

from ..boards import BoardTop
from binaccel.sw.atomic import write_json_atomic

from ..synth import SynthesisError, build_plan, plan_digest, report_markdown, synth_root, synthesize
from ..sweep.closure import CLOSURE_MARGIN, closure_clock
from .board import LinkedDpAccelerator

__all__ = ["ULX3S_BUILD", "synth_dp", "plan_sha256_dp", "close_timing_dp", "main"]

#: The ULX3S build: 16 x 4 PEs of 32 bits, buffers for the MNIST networks and the ResNet-20 shape
#: on CIFAR-10 images (24 layers, 1,024 weight entries), registered buffer addresses, a first-layer
#: unit of 4 positions per cycle.
ULX3S_BUILD = dict(cols=4, fm_depth=2048, w_depth=1024, t_depth=512, p_depth=512, max_dim=32, max_steps=128,
                   max_layers=24, mem_latency=3, flu_positions=4)


def _top(board, freq_mhz, p):
    return BoardTop(lambda: LinkedDpAccelerator(**p.as_dict()), board=board, clk_mhz=freq_mhz)


def plan_sha256_dp(board: str, freq_mhz: float, params: dict | None = None) -> str:
    """The build-plan digest this checkout makes for the board design of ``params`` at
    ``freq_mhz`` (what a report's ``plan_sha256`` is compared with; elaborates the design)."""
    p = DpParams(**(params or ULX3S_BUILD))
    return plan_digest(build_plan(_top(board, freq_mhz, p), board=board, freq_mhz=freq_mhz).files)


def synth_dp(board: str, freq_mhz: float, params: dict | None = None, *, seed: int = 1, timeout=None) -> dict:
    """Synthesize the board design of ``params`` (default :data:`ULX3S_BUILD`) at ``freq_mhz``;
    returns the report."""
    p = DpParams(**(params or ULX3S_BUILD))
    top = _top(board, freq_mhz, p)
    out = synth_root(board, f"dp-{p.cols}c-{freq_mhz:g}")
    desc = (f"pipelined accelerator 16x{p.cols}x32 ({16 * p.cols * 32} binary MACs/cycle) + frame link + UART + "
            f"PLL at {freq_mhz:g} MHz")
    return synthesize(top, board=board, freq_mhz=freq_mhz, out_dir=out, seed=seed, check=False, timeout=timeout,
                      pnr_opts=("--router", "router2", "--detailed-timing-report"), params=p.as_dict(), description=desc)


def _met(report) -> bool:
    return bool(report.get("fits") and (report.get("accel_clock") or {}).get("met"))


def close_timing_dp(board: str, report: dict, params: dict | None = None, *, seed: int = 1, tries: int = 2,
                    timeout=None, log=print) -> dict:
    """Builds of ``params`` at falling clocks until one meets its clock (``report``: the first
    build's), ``tries`` rebuilds at most. Returns ``{"met", "clock_mhz", "fmax_mhz", "report",
    "bitstream", "attempts"}`` (the last build's) and writes it as ``closure.json`` next to the
    first build."""
    def entry(rep):
        clk = rep.get("accel_clock") or {}
        return {"clock_mhz": round((rep.get("clk_hz") or 0) / 1e6, 4), "fmax_mhz": clk.get("fmax_mhz"),
                "met": _met(rep), "status": rep.get("status"), "plan_sha256": rep.get("plan_sha256"),
                "report": str(Path(rep["out_dir"]) / "report.json") if rep.get("out_dir") else None}
    attempts, rep = [entry(report)], report
    while not attempts[-1]["met"] and len(attempts) <= tries and rep.get("fits"):
        fmax = min(a["fmax_mhz"] for a in attempts if a["fmax_mhz"])
        clock = closure_clock(board, fmax, margin=CLOSURE_MARGIN)
        log(f"binaccel.hw.dp.synth: fmax {attempts[-1]['fmax_mhz']} MHz misses {attempts[-1]['clock_mhz']} MHz; "
            f"building again at {clock:g} MHz")
        rep = synth_dp(board, clock, params, seed=seed, timeout=timeout)
        attempts.append(entry(rep))
    last = attempts[-1]
    out = {**{k: last[k] for k in ("met", "clock_mhz", "fmax_mhz", "report", "plan_sha256")},
           "bitstream": (rep.get("files") or {}).get("bitstream") if last["met"] else None,
           "margin": CLOSURE_MARGIN, "attempts": attempts}
    if report.get("out_dir"):
        write_json_atomic(Path(report["out_dir"]) / "closure.json", out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.hw.dp.synth",
                                 description="Synthesize the pipelined accelerator's board design and report its "
                                             "area and clock.")
    ap.add_argument("--board", default="ulx3s", choices=("ulx3s", "icebreaker"), help="board (default ulx3s)")
    ap.add_argument("--freq", type=float, default=125.0, help="target clock in MHz (default 125)")
    ap.add_argument("--cols", type=int, default=ULX3S_BUILD["cols"], help="array columns (default 4)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed for each tool")
    ap.add_argument("--close-timing", action="store_true",
                    help="rebuild below the fmax until a bitstream meets its clock (up to two more builds)")
    args = ap.parse_args(argv)
    if args.freq <= 0:
        ap.error(f"--freq must be a positive number of MHz, got {args.freq:g}")
    try:
        report = synth_dp(args.board, args.freq, {**ULX3S_BUILD, "cols": args.cols}, seed=args.seed,
                          timeout=args.timeout)
    except (TypeError, ValueError) as exc:
        print(f"binaccel.hw.dp.synth: error: {exc}", file=sys.stderr)
        return 2
    except SynthesisError as exc:
        print(f"binaccel.hw.dp.synth: error: {exc}", file=sys.stderr)
        return 1
    print(report_markdown(report), end="")
    print(json.dumps({k: report.get(k) for k in ("status", "plan_sha256", "accel_clock")}, indent=1))
    if args.close_timing and report.get("fits") and not _met(report):
        try:
            closure = close_timing_dp(args.board, report, {**ULX3S_BUILD, "cols": args.cols}, seed=args.seed,
                                      timeout=args.timeout)
        except (ValueError, SynthesisError) as exc:
            print(f"binaccel.hw.dp.synth: error: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({k: closure[k] for k in ("met", "clock_mhz", "fmax_mhz", "bitstream", "plan_sha256")},
                         indent=1))
        return 0 if closure["met"] else 1
    return 0 if report.get("fits") else 1


if __name__ == "__main__":
    sys.exit(main())
