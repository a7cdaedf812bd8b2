"""``binaccel import --qonnx F.onnx [--out F.bnm]``: compile a QONNX graph to the integer model file."""

from __future__ import annotations

import argparse
import os
from fractions import Fraction

from binaccel.sw import modelfile
from binaccel.sw.outputs import check_output_file
from binaccel.sw.qonnx_import import import_qonnx

from .models import add_force_argument

__all__ = ["register"]


def _scale(text: str) -> float:
    """``--input-scale``: a positive number or fraction (``1``, ``1/255``)."""
    try:
        v = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 1 or 1/255, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _cmd_import(args):
    src = args.qonnx
    out = args.out or os.path.splitext(src)[0] + ".bnm"
    check_output_file(out, inputs=[src], own=modelfile.is_model_file, what="binaccel model file", force=args.force)
    im = import_qonnx(src, input_scale=args.input_scale)  # QonnxImportError: one line naming the file
    if args.name:
        im.name = args.name
    modelfile.save(im, out)
    print(f"wrote {out} (bnm): {len(im.layers)} layers "
          f"({', '.join(f'{l.name} {l.kind} {l.out_kind}' for l in im.layers)}), {os.path.getsize(out)} bytes")


def register(sub) -> None:
    """Add ``import`` to an argparse ``subparsers`` object."""
    p = sub.add_parser("import", help="compile a QONNX graph (binarized, e.g. Brevitas bnn_pynq) to a model file")
    p.add_argument("--qonnx", required=True, metavar="F.onnx", help="the QONNX graph")
    p.add_argument("--out", default=None, metavar="F.bnm", help="model file to write (default: F.bnm next to F.onnx)")
    add_force_argument(p, "--out")
    p.add_argument("--input-scale", type=_scale, default=None, metavar="S",
                   help="the graph input is pixels * S for uint8 pixels (default: 1 for binaccel's own graphs, "
                        "else 1/255)")
    p.add_argument("--name", default=None, help="model name (default: the file name)")
    p.set_defaults(func=_cmd_import)
