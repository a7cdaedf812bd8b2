"""The ``binaccel`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

__all__ = ["main", "build_parser"]


def _cmd_demo(args):
    from .demo import DEFAULT_MODELS, run_demo

    models = args.models.split(",") if args.models else DEFAULT_MODELS
    run_demo(out_dir=args.out, epochs=args.epochs, models=models, progress=not args.no_progress,
             hardware=not args.no_hardware, accel_images=args.accel_images, bench=not args.no_bench,
             synth_budget_s=args.synth_budget)


def _load_data(args):
    from .data import load

    if args.data == "cifar10":
        if not args.data_dir:
            raise SystemExit("binaccel: --data cifar10 needs --data-dir (the extracted cifar-10-batches-py folder)")
        return load("cifar10", root=args.data_dir)
    return load(args.data)


def _cmd_train(args):
    from . import pipeline

    data = _load_data(args)
    os.makedirs(args.out, exist_ok=True)
    r = pipeline.train_named(args.model, data, out_dir=args.out, epochs=args.epochs, seed=args.seed,
                             progress=not args.no_progress, optimizer=args.optimizer, lr=args.lr,
                             threads=args.threads)
    print(f"{args.model}: test accuracy {r['test_accuracy']:.4f}, checkpoint {r['checkpoint']}")


def _cmd_export(args):
    from . import pipeline
    from .train import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    calib = _load_data(args).x_train[:500] if model.cfg.arch == "fp" else None
    name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
    out = args.out or os.path.splitext(args.checkpoint)[0] + ".bnm"
    im = pipeline.export_model(model, out, name=name, calib=calib, m_bits=args.m_bits)
    print(f"wrote {out}: {len(im.layers)} layers, {os.path.getsize(out)} bytes")


def _cmd_check(args):
    from . import pipeline
    from .train import load_checkpoint

    data = _load_data(args)
    model = load_checkpoint(args.checkpoint)
    r = pipeline.check_export(model, args.model_file, data.x_test, data.y_test)
    print(json.dumps(r, indent=2))
    if r["matched"] != r["checked"]:
        raise SystemExit(1)


def _cmd_info(args):
    from . import modelfile

    m = modelfile.load(args.model_file)
    print(f"{args.model_file}: model {m.name!r}, input {m.input_shape} x{m.input_repeat}, {m.classes} classes")
    for l in m.layers:
        print(f"  {l.name:8s} {l.kind:4s} {l.mode:5s} in {l.in_ch}x{l.in_h}x{l.in_w} ({l.in_bits}b) "
              f"-> {l.out_ch}x{l.out_h}x{l.out_w} k{l.kernel} s{l.stride} p{l.padding} pool{l.pool} "
              f"w{l.w_bits}b {l.out_kind}")


def _data_args(p, what):
    p.add_argument("--data", default="mnist", choices=["mnist", "digits", "cifar10"], help=f"{what} (default: mnist)")
    p.add_argument("--data-dir", default=None, help="folder of the CIFAR-10 python batch files")


def build_parser() -> argparse.ArgumentParser:
    from .zoo import MODELS

    p = argparse.ArgumentParser(prog="binaccel", description="Binarized CNNs (MCN, SiMaN) from PyTorch to open FPGAs, bit-exactly.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train, export and check every model; write build/demo/report.md and summary.json")
    d.add_argument("--out", default="build/demo")
    d.add_argument("--epochs", type=int, default=None, help="epochs per model (default: 10)")
    d.add_argument("--models", default=None, help=f"comma-separated subset of: {', '.join(MODELS)}")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--no-hardware", action="store_true", help="skip the simulated-hardware sections")
    d.add_argument("--accel-images", type=int, default=200,
                   help="test images per model run through the whole simulated accelerator (0: skip; 1000: all)")
    d.add_argument("--no-bench", action="store_true", help="skip the small-board synthesis and the FPGA-vs-CPU bench")
    d.add_argument("--synth-budget", type=float, default=300.0, metavar="S",
                   help="seconds the demo may spend on the iCEBreaker synthesis; with less, or unchanged "
                        "gateware, it reuses the last report and says so (default 300)")
    d.set_defaults(func=_cmd_demo)

    t = sub.add_parser("train", help="train one named model")
    t.add_argument("--model", required=True, choices=list(MODELS))
    _data_args(t, "training data")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--optimizer", choices=["adam", "sgd"], default=None, help="default: adam")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default 1; 0: torch default)")
    t.add_argument("--lr", type=float, default=None, help="initial learning rate (default: 0.002 for adam)")
    t.add_argument("--out", default="build/models")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("export", help="fold a checkpoint and write the integer model file")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", default=None, help="model file (default: checkpoint name with .bnm)")
    e.add_argument("--name", default=None)
    e.add_argument("--m-bits", type=int, default=8, help="fixed-point width of MCN M-Filters")
    _data_args(e, "calibration images of the full-precision model")
    e.set_defaults(func=_cmd_export)

    c = sub.add_parser("check", help="numpy reference vs Brevitas model on the MNIST test split, every layer")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--model-file", required=True)
    _data_args(c, "the test split to check on")
    c.set_defaults(func=_cmd_check)

    i = sub.add_parser("info", help="print the layer table of a model file")
    i.add_argument("model_file")
    i.set_defaults(func=_cmd_info)

    # Subcommands contributed by the other parts (hardware, simulation, synthesis, bench).
    for mod in ("binaccel.hw.cli", "binaccel.sim.cli", "binaccel.sw.bench_cli", "binaccel.sw.run_cli"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        m.register(sub)
    return p


def main(argv=None):
    from .intmodel import ModelFormatError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelFormatError as exc:
        print(f"binaccel: error: {exc}", file=sys.stderr)
        return 2
