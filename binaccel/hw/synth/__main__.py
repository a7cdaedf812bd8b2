"""``python -m binaccel.hw.synth DESIGN --board BOARD``: synthesise a small design and print the
report."""

import argparse
import sys

from ..boards import BOARDS
from ..uart import UARTEcho
from .flow import SynthesisError, synthesize
from .reports import report_markdown


def _designs():
    return {"echo": UARTEcho}


def main(argv=None):
    """``python -m binaccel.hw.synth DESIGN --board BOARD``: synthesise and print the report."""
    designs = _designs()
    parser = argparse.ArgumentParser(prog="python -m binaccel.hw.synth",
                                     description="Synthesise a design for a board "
                                                 "(yosys + nextpnr, YoWASP builds).")
    parser.add_argument("design", choices=sorted(designs))
    parser.add_argument("--board", required=True, choices=sorted(BOARDS))
    parser.add_argument("--freq", type=float, default=None, metavar="MHZ",
                        help="accelerator clock (PLL and nextpnr target); default: the board's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output directory "
                                                    "(default synth/<board>/<design> of the build folder)")
    args = parser.parse_args(argv)
    try:
        report = synthesize(designs[args.design](), board=args.board, freq_mhz=args.freq,
                            seed=args.seed, out_dir=args.out)
    except SynthesisError as e:
        print(report_markdown(e.report), end="")
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
