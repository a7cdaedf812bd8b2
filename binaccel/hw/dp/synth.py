"""Synthesize the pipelined accelerator's board design: ``python -m binaccel.hw.dp.synth``.

The design is :class:`~binaccel.hw.dp.board.LinkedDpAccelerator` (the accelerator behind the frame
link) in the board top (PLL, reset synchroniser, UART at the board's default baud), through
:func:`binaccel.hw.synth.synthesize` with nextpnr's ``router2``. The report (``report.json``,
``report.md``: LUT, FF, BRAM, DSP, fmax against the target, the build-plan digest) goes to
``synth/<board>/dp-<cols>c-<MHz>`` of the build folder, next to the bitstream.

::

    python -m binaccel.hw.dp.synth --board ulx3s --freq 125
"""

from __future__ import annotations

import argparse
import json
import sys

from binaccel.sw.hwif.dp import DpParams

from ..boards import BoardTop
from ..synth import SynthesisError, report_markdown, synth_root, synthesize
from .board import LinkedDpAccelerator

__all__ = ["ULX3S_BUILD", "synth_dp", "main"]

#: The ULX3S build: 16 x 4 PEs of 32 bits, buffers for MNIST networks.
ULX3S_BUILD = dict(cols=4, fm_depth=2048, w_depth=512, t_depth=256, p_depth=256, max_dim=32, max_steps=128,
                   mem_latency=2)


def synth_dp(board: str, freq_mhz: float, params: dict | None = None, *, seed: int = 1, timeout=None) -> dict:
    """Synthesize the board design of ``params`` (default :data:`ULX3S_BUILD`) at ``freq_mhz``;
    returns the report."""
    p = DpParams(**(params or ULX3S_BUILD))
    top = BoardTop(lambda: LinkedDpAccelerator(**p.as_dict()), board=board, clk_mhz=freq_mhz)
    out = synth_root(board, f"dp-{p.cols}c-{freq_mhz:g}")
    desc = (f"pipelined accelerator 16x{p.cols}x32 ({16 * p.cols * 32} binary MACs/cycle) + frame link + UART + "
            f"PLL at {freq_mhz:g} MHz")
    return synthesize(top, board=board, freq_mhz=freq_mhz, out_dir=out, seed=seed, check=False, timeout=timeout,
                      pnr_opts=("--router", "router2"), params=p.as_dict(), description=desc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.hw.dp.synth",
                                 description="Synthesize the pipelined accelerator's board design and report its "
                                             "area and clock.")
    ap.add_argument("--board", default="ulx3s", choices=("ulx3s", "icebreaker"), help="board (default ulx3s)")
    ap.add_argument("--freq", type=float, default=125.0, help="target clock in MHz (default 125)")
    ap.add_argument("--cols", type=int, default=ULX3S_BUILD["cols"], help="array columns (default 4)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed for each tool")
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
    return 0 if report.get("fits") else 1


if __name__ == "__main__":
    sys.exit(main())
