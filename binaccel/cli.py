"""The ``binaccel`` command: the parser and the dispatch to the subcommands of :mod:`binaccel.commands`.

``binaccel [--build-dir DIR] COMMAND ...``: every output goes under the build folder
(:func:`binaccel.sw.paths.build_dir`): ``--build-dir``, else the environment variable
``BINACCEL_BUILD_DIR``, else ``build`` in the working directory.
"""

from __future__ import annotations

import argparse
import sys

from binaccel.commands import bench, demo, models, records, run, synth, verilog
from binaccel.commands import qonnx as qonnx_import
from binaccel.sw.intmodel import ModelFormatError
from binaccel.sw.paths import ENV_VAR, set_build_dir
from binaccel.sw.train import CheckpointError

__all__ = ["main", "build_parser"]

#: The subcommand modules, in the order of ``binaccel --help``.
COMMANDS = (demo, models, verilog, synth, bench, run, records, qonnx_import)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="binaccel",
                                description="Binarized CNNs (MCN, SiMaN) from PyTorch to open FPGAs, bit-exactly.")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help=f"folder for every output (default: ${ENV_VAR}, else ./build)")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.build_dir is not None:
        set_build_dir(args.build_dir)
    try:
        return args.func(args)
    except (ModelFormatError, CheckpointError) as exc:
        print(f"binaccel: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"binaccel: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
