"""The ``binaccel`` command: the parser and the dispatch to the subcommands of :mod:`binaccel.commands`.

``binaccel [--build-dir DIR] COMMAND ...``: every output goes under the build folder
(:func:`binaccel.sw.paths.build_dir`): ``--build-dir``, else the environment variable
``BINACCEL_BUILD_DIR``, else ``build`` in the working directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from binaccel import __version__

__all__ = ["main", "build_parser", "DEBUG_ENV"]

#: Environment variable that makes the command show tracebacks (as ``--debug``).
DEBUG_ENV = "BINACCEL_DEBUG"


def _debug_env() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _exit_interrupted(signum, frame):
    print("binaccel: interrupted", file=sys.stderr)
    raise SystemExit(130)


@contextlib.contextmanager
def _interrupt_exits():
    """A Ctrl-C inside is an interrupt of the command (status 130, no traceback), not a
    KeyboardInterrupt; for the seconds the commands' libraries (torch, Brevitas, Amaranth) take to
    load, before :func:`main` runs. Nothing changes under ``BINACCEL_DEBUG``, outside the main
    thread, or where another handler is installed."""
    mine = (threading.current_thread() is threading.main_thread() and not _debug_env()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if mine:
        signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        yield
    finally:
        if mine:
            signal.signal(signal.SIGINT, signal.default_int_handler)


with _interrupt_exits():
    from binaccel.commands import bench, demo, models, records, run, synth, verilog
    from binaccel.commands import qonnx as qonnx_import
    from binaccel.sw.paths import ENV_VAR, set_build_dir

#: The subcommand modules, in the order of ``binaccel --help``.
COMMANDS = (demo, models, verilog, synth, bench, run, records, qonnx_import)


_EXAMPLES = """examples:
  binaccel demo                                   # the whole job on the embedded MNIST digits
  binaccel train --model siman                    # checkpoint in build/models/siman.pt
  binaccel export --checkpoint build/models/siman.pt          # -> build/models/siman.bnm
  binaccel export --model-file build/models/siman.bnm --format qonnx   # -> siman.onnx
  binaccel check --checkpoint build/models/siman.pt --model-file build/models/siman.bnm
  binaccel run --model build/models/siman.bnm --images 100   # on the simulated accelerator
  binaccel synth --board icebreaker --design engine-link     # yosys + nextpnr
  binaccel bench                                  # FPGA against CPU

exit status: 0 success, 1 a check or run failed, 2 a usage or input error, 130 interrupted.
Set BINACCEL_DEBUG=1 (or give --debug) for the traceback of an error."""

#: Errors that mean the input (a file, an option, a model that does not fit) is wrong: one line,
#: exit status 2. The library's own classes are ValueErrors that name the file and the field.
_INPUT_ERRORS = (ValueError, TypeError, OSError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="binaccel", epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Binarized CNNs (MCN, SiMaN) from PyTorch to open FPGAs, bit-exactly.")
    p.add_argument("--version", action="version", version=f"binaccel {__version__}")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help=f"folder for every output (default: ${ENV_VAR}, else ./build)")
    p.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also: ${DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def main(argv=None):
    """Run the ``binaccel`` command; returns its exit status. An input error is one line on stderr
    (status 2), an interrupt status 130, any other failure one line naming its kind (status 1);
    ``--debug`` or ``BINACCEL_DEBUG=1`` re-raises instead."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or _debug_env()
    if args.build_dir is not None:
        if os.path.exists(args.build_dir) and not os.path.isdir(args.build_dir):
            parser.error(f"argument --build-dir: {args.build_dir}: is a file, expected a folder")
        set_build_dir(args.build_dir)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("binaccel: interrupted", file=sys.stderr)
        return 130
    except _INPUT_ERRORS as exc:
        if debug:
            raise
        print(f"binaccel: error: {_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            raise
        print(f"binaccel: error: {type(exc).__name__}: {_message(exc)} (--debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
