"""``binaccel verilog``: write the engine's Verilog for a chosen configuration::

    binaccel verilog --rows 4 --cols 4 --word 32 [--max-fan-in 4608 ...] [--lint] [-o FILE]

(default output: ``verilog/engine.v`` in the build folder).
"""

from __future__ import annotations

import argparse
import json
import sys

from binaccel.hw.verilog import write_verilog
from binaccel.sim.lint import lint_engine
from binaccel.sw.hwif import EngineParams
from binaccel.sw.paths import build_dir

__all__ = ["register", "add_engine_arguments", "params_from_args"]

_HELP = {
    "rows": "PE rows (weight groups per tile)",
    "cols": "PE columns (output positions per tile)",
    "word": "bits per PE per cycle",
    "max_fan_in": "largest layer fan-in (C*k*k, or C*H*W of an FC layer)",
    "max_in_bits": "widest activation (1 = binary only, up to 8)",
    "max_planes": "largest MCN plane count K",
    "max_taps": "largest k*k of an mcn layer",
    "m_bits": "M-Filter factor width",
    "mul_bits": "signed width of requant/logits multipliers",
    "add_bits": "signed width of requant/logits offsets",
    "count_bits": "width of the tile counters",
    "pe_stages": "PE pipeline stages: 1, or 2 (popcount and accumulate in separate cycles; one cycle more per layer run)",
}


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--<name>`` option per :class:`EngineParams` field (defaults from EngineParams)."""
    d = EngineParams()
    for name in EngineParams.names():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=getattr(d, name),
                            metavar="N", help=f"{_HELP[name]} (default {getattr(d, name)})")


def params_from_args(args) -> EngineParams:
    return EngineParams(**{name: getattr(args, name) for name in EngineParams.names()})


def _cmd_verilog(args) -> int:
    try:
        params = params_from_args(args)
    except (TypeError, ValueError) as exc:
        print(f"binaccel verilog: error: {exc}", file=sys.stderr)
        return 2
    path = write_verilog(args.output or build_dir("verilog", "engine.v"), name=args.name, **params.as_dict())
    summary = {
        "verilog": str(path), "module": args.name, "config": params.tag, **params.as_dict(),
        "pe_width": params.pe_width, "acc_width": params.acc_width, "y_width": params.y_width,
        "in_stream_bits": params.in_layout.size, "out_stream_bits": params.out_layout.size,
        "latency": params.latency,
    }
    if args.lint:
        lint_engine(path, name=args.name)
        summary["lint"] = "clean (verilator -Wall, documented waivers)"
    print(json.dumps(summary, indent=1))
    return 0


def register(subparsers) -> None:
    """Add the ``verilog`` subcommand to an argparse ``subparsers`` object."""
    v = subparsers.add_parser("verilog", help="write the engine's Verilog for a configuration",
                              description="Write the Verilog of the binaccel engine (amaranth.back.verilog).")
    add_engine_arguments(v)
    v.add_argument("-o", "--output", default=None, help="output file (default: verilog/engine.v in the build folder)")
    v.add_argument("--name", default="engine", help="Verilog module name (default %(default)s)")
    v.add_argument("--lint", action="store_true", help="also lint it with verilator -Wall")
    v.set_defaults(func=_cmd_verilog)

