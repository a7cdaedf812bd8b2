"""``binaccel train``, ``export``, ``check`` and ``info``: one model from training to its integer file."""

from __future__ import annotations

import json
import os

from binaccel.sw import modelfile, pipeline
from binaccel.sw.data import load
from binaccel.sw.fold import fold
from binaccel.sw.qonnx_export import QonnxExportError, save_qonnx
from binaccel.sw.paths import build_dir
from binaccel.sw.train import load_checkpoint
from binaccel.sw.zoo import MODELS
from binaccel.commands.argtypes import nonneg_int, positive_float, positive_int

__all__ = ["register", "add_data_arguments", "load_data"]


def load_data(args, prog="binaccel"):
    """The data set ``--data`` / ``--data-dir`` name."""
    if args.data == "cifar10":
        if not args.data_dir:
            raise SystemExit(f"{prog}: --data cifar10 needs --data-dir (the extracted cifar-10-batches-py folder)")
        return load("cifar10", root=args.data_dir)
    if args.data_dir:
        raise ValueError(f"--data-dir {args.data_dir}: only --data cifar10 reads a folder; --data {args.data} is "
                         f"embedded")
    return load(args.data)


def add_data_arguments(p, what):
    p.add_argument("--data", default="mnist", choices=["mnist", "digits", "cifar10"], help=f"{what} (default: mnist)")
    p.add_argument("--data-dir", default=None, help="folder of the CIFAR-10 python batch files")


def _cmd_train(args):
    out = args.out or str(build_dir("models"))
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(13, "the output folder is not writable", out)
    data = load_data(args)
    r = pipeline.train_named(args.model, data, out_dir=out, epochs=args.epochs, seed=args.seed,
                             progress=not args.no_progress, optimizer=args.optimizer, lr=args.lr,
                             threads=args.threads)
    print(f"{args.model}: test accuracy {r['test_accuracy']:.4f}, checkpoint {r['checkpoint']}")


_SUFFIX = {"bnm": ".bnm", "qonnx": ".onnx"}


def _cmd_export(args):
    src = args.checkpoint or args.model_file
    out = args.out or os.path.splitext(src)[0] + _SUFFIX[args.format]
    if args.model_file and args.format != "qonnx":
        raise ValueError(f"{src}: a model file is already the bnm format; expected --format qonnx")
    if os.path.abspath(out) == os.path.abspath(src):
        raise ValueError(f"{out}: the output would overwrite the input")
    if args.model_file:
        im = modelfile.load(src)
    else:
        model = load_checkpoint(src)
        calib = load_data(args).x_train[:500] if model.cfg.arch == "fp" else None
        name = args.name or os.path.splitext(os.path.basename(src))[0]
        if args.format == "bnm":
            im = pipeline.export_model(model, out, name=name, calib=calib, m_bits=args.m_bits)
        else:
            im = fold(model, name=name, calib=calib, m_bits=args.m_bits)
    if args.format == "qonnx":
        try:
            save_qonnx(im, out, batch=args.batch)
        except QonnxExportError as exc:
            raise QonnxExportError(f"{src}: {exc}") from None
    print(f"wrote {out} ({args.format}): {len(im.layers)} layers, {os.path.getsize(out)} bytes")


def _cmd_check(args):
    model = load_checkpoint(args.checkpoint)
    data = load_data(args)
    n = len(data.x_test) if args.images is None else min(args.images, len(data.x_test))
    r = pipeline.check_export(model, args.model_file, data.x_test[:n], data.y_test[:n])
    print(json.dumps(r, indent=2))
    if r["matched"] != r["checked"]:
        raise SystemExit(1)


def _cmd_info(args):
    m = modelfile.load(args.model_file)
    print(f"{args.model_file}: model {m.name!r}, input {m.input_shape} x{m.input_repeat}, {m.classes} classes")
    for l in m.layers:
        print(f"  {l.name:8s} {l.kind:4s} {l.mode:5s} in {l.in_ch}x{l.in_h}x{l.in_w} ({l.in_bits}b) "
              f"-> {l.out_ch}x{l.out_h}x{l.out_w} k{l.kernel} s{l.stride} p{l.padding} pool{l.pool} "
              f"w{l.w_bits}b {l.out_kind}")


def register(sub) -> None:
    """Add ``train``, ``export``, ``check`` and ``info`` to an argparse ``subparsers`` object."""
    t = sub.add_parser("train", help="train one named model")
    t.add_argument("--model", required=True, choices=list(MODELS))
    add_data_arguments(t, "training data")
    t.add_argument("--epochs", type=positive_int, default=None)
    t.add_argument("--seed", type=nonneg_int, default=0)
    t.add_argument("--optimizer", choices=["adam", "sgd"], default=None, help="default: adam")
    t.add_argument("--threads", type=nonneg_int, default=None, help="torch threads (default 1; 0: torch default)")
    t.add_argument("--lr", type=positive_float, default=None, help="initial learning rate (default: 0.002 for adam)")
    t.add_argument("--out", default=None, help="checkpoint folder (default: models in the build folder)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("export", help="fold a checkpoint and write the integer model file, or its QONNX graph")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a training checkpoint (.pt)")
    src.add_argument("--model-file", help="a model file (.bnm), for --format qonnx")
    e.add_argument("--format", choices=sorted(_SUFFIX), default="bnm",
                   help="bnm: the binaccel model file (default); qonnx: an ONNX graph with qonnx's quantizers "
                        "that computes exactly what the integer reference computes")
    e.add_argument("--batch", type=positive_int, default=1, help="images per inference fixed in the QONNX graph (default 1)")
    e.add_argument("--out", default=None, help="output file (default: the input's name with .bnm or .onnx)")
    e.add_argument("--name", default=None)
    e.add_argument("--m-bits", type=positive_int, default=8, help="fixed-point width of MCN M-Filters")
    add_data_arguments(e, "calibration images of the full-precision model")
    e.set_defaults(func=_cmd_export)

    c = sub.add_parser("check", help="numpy reference vs Brevitas model on the MNIST test split, every layer")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--model-file", required=True)
    c.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="the first N test images (default: all of the split)")
    add_data_arguments(c, "the test split to check on")
    c.set_defaults(func=_cmd_check)

    i = sub.add_parser("info", help="print the layer table of a model file")
    i.add_argument("model_file")
    i.set_defaults(func=_cmd_info)
