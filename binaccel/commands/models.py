"""``binaccel train``, ``export``, ``check`` and ``info``: one model from training to its integer file."""

from __future__ import annotations

import json
import os

from binaccel.sw import modelfile, pipeline
from binaccel.sw.data import load
from binaccel.sw.fold import fold
from binaccel.sw.outputs import check_output_dir, check_output_file
from binaccel.sw.qonnx_export import QonnxExportError, is_binaccel_graph, save_qonnx
from binaccel.sw.paths import build_dir
from binaccel.sw.train import is_checkpoint, load_checkpoint
from binaccel.sw.zoo import MODELS
from binaccel.commands.argtypes import existing_dir, int_range, nonneg_int, positive_float, positive_int, threads

__all__ = ["register", "add_data_arguments", "check_data_arguments", "load_data", "select_test_images",
           "add_force_argument"]


def check_data_arguments(args) -> None:
    """``--data`` and ``--data-dir`` agree (a ValueError naming the option otherwise); called before
    any work, also by the commands that read the data only for some models."""
    if args.data == "cifar10" and not args.data_dir:
        raise ValueError("--data cifar10 needs --data-dir (the extracted cifar-10-batches-py folder)")
    if args.data != "cifar10" and args.data_dir:
        raise ValueError(f"--data-dir {args.data_dir}: only --data cifar10 reads a folder; --data {args.data} is "
                         f"embedded")


def load_data(args):
    """The data set ``--data`` / ``--data-dir`` name."""
    check_data_arguments(args)
    if args.data == "cifar10":
        return load("cifar10", root=args.data_dir)
    return load(args.data)


def add_data_arguments(p, what):
    p.add_argument("--data", default="mnist", choices=["mnist", "digits", "cifar10"], help=f"{what} (default: mnist)")
    p.add_argument("--data-dir", default=None, type=existing_dir, metavar="DIR",
                   help="folder of the CIFAR-10 python batch files, for --data cifar10 (default: none)")


def add_force_argument(p, what):
    p.add_argument("--force", action="store_true",
                   help=f"replace {what} even when the file there is not binaccel's own output")


def select_test_images(args, data, shape, source):
    """The first ``--images`` test images and labels of ``data``, after checking that the split has
    that many and that their shape is ``shape``, the input of the model read from ``source``."""
    if tuple(data.x_test.shape[1:]) != tuple(shape):
        raise ValueError(f"{source}: the model takes images of shape {tuple(shape)}; --data {data.name} images are "
                         f"{tuple(data.x_test.shape[1:])}")
    n = len(data.x_test)
    if args.images is not None and args.images > n:
        raise ValueError(f"--images {args.images}: the {data.name} test split has {n} images")
    n = n if args.images is None else args.images
    return data.x_test[:n], data.y_test[:n]


def _cmd_train(args):
    check_data_arguments(args)
    out = args.out or str(build_dir("models"))
    check_output_dir(out, what="checkpoint folder")  # before training; the checkpoint's writer creates it
    path = os.path.join(out, f"{args.model}.pt")
    check_output_file(path, own=is_checkpoint, what="binaccel checkpoint", force=args.force)
    data = load_data(args)
    r = pipeline.train_named(args.model, data, out_dir=out, epochs=args.epochs, seed=args.seed,
                             progress=not args.no_progress, optimizer=args.optimizer, lr=args.lr,
                             threads=args.threads)
    print(f"{args.model}: test accuracy {r['test_accuracy']:.4f}, checkpoint {r['checkpoint']}")


_SUFFIX = {"bnm": ".bnm", "qonnx": ".onnx"}
_OWN = {"bnm": (modelfile.is_model_file, "binaccel model file"),
        "qonnx": (is_binaccel_graph, "QONNX graph written by binaccel")}


def _cmd_export(args):
    src = args.checkpoint or args.model_file
    out = args.out or os.path.splitext(src)[0] + _SUFFIX[args.format]
    if args.model_file and args.format != "qonnx":
        raise ValueError(f"{src}: a model file is already the bnm format; expected --format qonnx")
    check_data_arguments(args)
    own, what = _OWN[args.format]
    check_output_file(out, inputs=[src], own=own, what=what, force=args.force)
    if args.model_file:
        im = modelfile.load(src)
    else:
        model = load_checkpoint(src)
        calib = None
        if model.cfg.arch == "fp":
            calib = load_data(args).x_train[:500]
            if tuple(calib.shape[1:]) != tuple(model.cfg.input_shape):
                raise ValueError(f"{src}: the model takes images of shape {tuple(model.cfg.input_shape)}; "
                                 f"--data {args.data} images (its calibration) are {tuple(calib.shape[1:])}")
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
    check_data_arguments(args)
    model = load_checkpoint(args.checkpoint)
    im = modelfile.load(args.model_file)
    pipeline.check_pair(model, im, checkpoint=args.checkpoint, model_file=args.model_file)
    x, y = select_test_images(args, load_data(args), im.input_shape, args.model_file)
    r = pipeline.check_export(model, args.model_file, x, y, checkpoint=args.checkpoint)
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
    t.add_argument("--model", required=True, choices=list(MODELS), help="the model to train (required)")
    add_data_arguments(t, "training data")
    t.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="epochs (default 15)")
    t.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    t.add_argument("--optimizer", choices=["adam", "sgd"], default=None, help="default: adam")
    t.add_argument("--threads", type=threads, default=None, metavar="N",
                   help="torch threads, at most the usable cores (default 1; 0: torch default)")
    t.add_argument("--lr", type=positive_float, default=None, help="initial learning rate (default: 0.002 for adam)")
    t.add_argument("--out", default=None, metavar="DIR",
                   help="checkpoint folder, <model>.pt in it (default: models in the build folder)")
    add_force_argument(t, "<model>.pt")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("export", help="fold a checkpoint and write the integer model file, or its QONNX graph")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a training checkpoint (.pt)")
    src.add_argument("--model-file", help="a model file (.bnm), for --format qonnx")
    e.add_argument("--format", choices=sorted(_SUFFIX), default="bnm",
                   help="bnm: the binaccel model file (default); qonnx: an ONNX graph with qonnx's quantizers "
                        "that computes exactly what the integer reference computes")
    e.add_argument("--batch", type=positive_int, default=1, help="images per inference fixed in the QONNX graph (default 1)")
    e.add_argument("--out", default=None, help="output file (default: the input's name with .bnm or .onnx); never "
                                              "the input")
    add_force_argument(e, "--out")
    e.add_argument("--name", default=None, help="model name (default: the checkpoint's file name)")
    e.add_argument("--m-bits", type=int_range(1, 16), default=8, metavar="N",
                   help="fixed-point width of MCN M-Filters, 1..16 (default 8)")
    add_data_arguments(e, "calibration images of the full-precision model")
    e.set_defaults(func=_cmd_export)

    c = sub.add_parser("check", help="numpy reference vs Brevitas model on the MNIST test split, every layer")
    c.add_argument("--checkpoint", required=True, help="the training checkpoint (.pt, required)")
    c.add_argument("--model-file", required=True, help="the model file exported from it (.bnm, required)")
    c.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="the first N test images, at most the split's (default: all of the split)")
    add_data_arguments(c, "the test split to check on")
    c.set_defaults(func=_cmd_check)

    i = sub.add_parser("info", help="print the layer table of a model file")
    i.add_argument("model_file", help="a model file (.bnm)")
    i.set_defaults(func=_cmd_info)
