"""Run whole models on the simulated accelerator (``binaccel.hw.top.Accelerator``).

Public API::

    accel_build(params=None, *, transport="cocotb") -> BuildInfo | FastSim   # cached per process (any transport)
    run_model(model, images, *, transport="cocotb" | "fast", params=None, idle=0.0, backpressure=0.0,
              seed=0, dump=(), reset_after=None, record=None, check=False) -> Result
    Result(logits, cycles_per_image, cycles_per_layer, wall_s, sim_cycles_per_s, ...)

:func:`run_model` compiles the model with :mod:`binaccel.sw.program` (refusing, with a
:class:`~binaccel.sw.program.FitError`, a network that does not fit the build), streams the set-up
words and one RUN command per image into the accelerator and decodes the output words: the logits
``(N, classes)`` (int64, as :func:`binaccel.sw.intref.predict`), the dumped layer outputs, and the
hardware's cycle counters (cycles of each layer and of each image, from the RUN command to the
last layer's end, image load included).

Transports (:mod:`binaccel.sim.transport`, one interface): ``"cocotb"`` (the cocotb testbench
``sim/tb_top.py`` on a Verilator build, cycle by cycle from Python; slow, for tests), ``"fast"``
(:class:`binaccel.sim.fastpath.FastSim`: one run of a compiled Verilator model for the whole data
set) and ``"uart"`` (the board's design behind its UART, driven over the simulated serial line by
the host's :class:`binaccel.sw.hostlink.HostLink`). The first two apply random idle cycles on the
input (``idle``) and backpressure on the output (``backpressure``), seeded by ``seed``.

A JSON record (cycles per layer and image, ideal cycles, utilisation, simulation speed) is written
to ``record`` (default ``build/sim/accel-runs/<model>-<transport>-n<N>.json``).

``python -m binaccel.sim.top --model-file build/models/siman.bnm --mnist 1000`` runs the MNIST test
split through the fast path and prints the figures.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from binaccel.hw.perf import ideal_cycles
from binaccel.hw.top import Accelerator
from binaccel.sim.builds import accel_verilog
from binaccel.sim.lint import LINT_WAIVERS, lint_component
from binaccel.sim.runner import sim_build_dir
from binaccel.sim.transport import get_transport
from binaccel.sw import data, intref, modelfile
from binaccel.sw import program as prog
from binaccel.sw.atomic import write_json_atomic
from binaccel.sw.randmodel import random_model

__all__ = ["Result", "accel_build", "accel_verilog", "run_model", "run_words", "lint"]



@dataclass
class Result:
    """Outcome of :func:`run_model`.

    ``logits`` ``(N, classes)`` int64; ``cycles_per_image``: mean of the hardware's per-image
    counter (RUN command accepted .. last layer done); ``cycles_per_layer``: mean cycles of each
    layer (descriptor read .. last output written); ``wall_s``: wall time of the simulation run
    (for the fast path: the simulator process, including file I/O); ``sim_cycles_per_s``:
    simulated cycles per wall second; ``outputs``: ``{layer index: (N, C, H, W)}`` of the dumped
    layers; ``image_cycles`` ``(N,)`` and ``layer_cycles`` ``(N, layers)``: the raw counters;
    ``total_cycles``: the whole run (set-up and all images); ``record``: the JSON record.
    """

    logits: np.ndarray
    cycles_per_image: float
    cycles_per_layer: list
    wall_s: float
    sim_cycles_per_s: float
    outputs: dict = field(default_factory=dict)
    image_cycles: np.ndarray | None = None
    layer_cycles: np.ndarray | None = None
    total_cycles: int = 0
    record: dict = field(default_factory=dict)
    record_path: Path | None = None


def accel_build(params=None, *, transport="cocotb"):
    """The simulation build of the accelerator for ``params`` and a transport of
    :mod:`binaccel.sim.transport` (cached per process and on disk)."""
    return get_transport(transport).build(prog.accel_params(params))


def lint(params=None):
    """Verilator ``--lint-only -Wall`` of the accelerator for ``params`` (raises LintError)."""
    p = prog.accel_params(params)
    return lint_component(Accelerator(**p.as_dict()), name="accel", extra_waivers=LINT_WAIVERS)


def run_words(words, n_out, *, params=None, transport="cocotb", idle=0.0, backpressure=0.0, seed=0,
              reset_after=None, max_cycles=None, allow_error=False, **options):
    """Stream raw command words through the simulated accelerator with a transport of
    :mod:`binaccel.sim.transport`: ``(out_words, stamps, total_cycles, wall_s, extra)`` (``stamps``:
    transfer cycle of each output word, None for ``uart``; ``extra["error"]``: the error flag at the
    end, cocotb only; unless ``allow_error`` a raised flag fails the run). ``reset_after`` and
    ``allow_error`` need the cocotb transport; ``options`` go to the transport."""
    t = get_transport(transport)
    if t.name == "cocotb":
        options.update(reset_after=reset_after, allow_error=allow_error)
    elif reset_after is not None or allow_error:
        raise ValueError("reset_after and allow_error need the cocotb transport")
    r = t.run_words(words, n_out, params=params, seed=seed, max_cycles=max_cycles, idle=idle,
                    backpressure=backpressure, **options)
    return r.out, r.stamps, r.total_cycles, r.wall_s, r.extra


def run_model(model, images, *, transport="cocotb", params=None, idle=0.0, backpressure=0.0, seed=0,
              dump=(), stream="auto", reset_after=None, record=None, check=False, transport_options=None) -> Result:
    """Run ``model`` (an :class:`~binaccel.sw.intmodel.IntModel`) on uint8 ``images`` ``(N, C, H, W)``
    (or ``(N, H, W)``) on the simulated accelerator (see module docstring). ``dump``: layers whose
    outputs come back too (``True`` for all but the last). ``stream``: layers whose weights are
    streamed with every image (see :func:`binaccel.sw.program.compile_model`). ``reset_after`` (cocotb only): reset the
    accelerator after that many input words, then rerun everything. ``check``: raise AssertionError
    unless the logits and dumped outputs equal :func:`binaccel.sw.intref.run_model`."""
    p = prog.accel_params(params)
    pr = prog.compile_model(model, p, dump=dump, stats=True, stream=stream)
    images = np.asarray(images)
    n = len(images)
    if n < 1:
        raise ValueError("expected at least one image")
    img_words = pr.images_words(images)
    words = pr.setup_words + img_words
    n_out = n * pr.out_words_per_image
    options = dict(transport_options or {})
    if transport == "uart":
        options.setdefault("transfers", pr.transfers(n))
    out, stamps, total, wall, extra = run_words(words, n_out, params=p, transport=transport, idle=idle,
                                                backpressure=backpressure, seed=seed, reset_after=reset_after,
                                                **options)
    dec = pr.decode(out, n)
    if check:
        refs = intref.run_model(model, images)
        ref_logits = refs[-1].reshape(n, -1)
        if not np.array_equal(dec["logits"], ref_logits):
            bad = int(np.sum(np.any(dec["logits"] != ref_logits, axis=1)))
            raise AssertionError(f"{model.name}: logits of {bad} of {n} images differ from intref")
        for i, y in dec["outputs"].items():
            if not np.array_equal(y, refs[i]):
                raise AssertionError(f"{model.name}: layer {model.layers[i].name}: {int(np.sum(y != refs[i]))} "
                                     f"values differ from intref")
    e = p.engine
    per_layer = dec["cycles"].mean(axis=0)
    ideal = [ideal_cycles(li.layer, e.rows, e.cols, e.word, n=1) for li in pr.layers]
    cpi = float(dec["image_cycles"].mean())
    per_image_stamp = [stamps[(i + 1) * pr.out_words_per_image - 1] for i in range(n)] if stamps else None
    rec = {
        "model": model.name, "transport": transport, "images": n, "params": p.as_dict(), "config": p.tag,
        "idle": idle, "backpressure": backpressure, "seed": seed,
        "cycles_per_image": cpi, "total_cycles": int(total), "setup_words": len(pr.setup_words),
        "image_words": len(img_words) // n, "streamed_layers": pr.usage["streamed_layers"],
        "streamed_words_per_image": len(pr.stream_words),
        "throughput_cycles_per_image": ((per_image_stamp[-1] - per_image_stamp[0]) / (n - 1)
                                        if n > 1 and per_image_stamp else None),
        "layers": [{"layer": li.name, "kind": li.layer.kind, "mode": li.layer.mode, "in_bits": li.layer.in_bits,
                    "cycles": float(c), "ideal_cycles": float(ic), "utilisation": float(ic / c) if c else 0.0}
                   for li, c, ic in zip(pr.layers, per_layer, ideal)],
        "ideal_cycles_per_image": float(sum(ideal)),
        "utilisation": float(sum(ideal) / cpi) if cpi else 0.0,
        "wall_s": wall, "sim_cycles_per_s": total / wall if wall else 0.0,
        "images_per_s": n / wall if wall else 0.0, "usage": pr.usage,
    }
    rec.update(extra)
    if record is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in model.name)[:40]
        record = sim_build_dir("accel-runs", f"{safe}-{transport}-n{n}-s{seed}.json")
    record = Path(record)
    write_json_atomic(record, rec, indent=1)
    return Result(logits=dec["logits"], cycles_per_image=cpi, cycles_per_layer=[float(c) for c in per_layer],
                  wall_s=wall, sim_cycles_per_s=rec["sim_cycles_per_s"], outputs=dec["outputs"],
                  image_cycles=dec["image_cycles"], layer_cycles=dec["cycles"], total_cycles=int(total),
                  record=rec, record_path=record)


def main(argv=None) -> int:
    """``python -m binaccel.sim.top``: run a model on the simulated accelerator, print the figures."""
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.top", description=main.__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-file", help="a binaccel model file (binaccel.sw.modelfile)")
    src.add_argument("--random", choices=["plain", "mcn", "mcn1"], help="binaccel.sw.randmodel.random_model")
    ap.add_argument("--mnist", type=int, default=0, metavar="N",
                    help="the first N images of the MNIST test split (default: N random images)")
    ap.add_argument("--images", type=int, default=4, help="random images when --mnist is not given")
    ap.add_argument("--transport", choices=["fast", "cocotb", "uart"], default="fast")
    ap.add_argument("--stream", default="auto", help="auto | all | none | comma-separated layer names")
    ap.add_argument("--idle", type=float, default=0.0)
    ap.add_argument("--backpressure", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", help="JSON record path (default build/sim/accel-runs/...)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.model_file:
        model = modelfile.load(args.model_file)
    else:
        model = random_model(rng, mode=args.random, planes=1 if args.random == "plain" else 2)
    labels = None
    if args.mnist:
        split = data.load_mnist()
        images, labels = split.x_test[:args.mnist], split.y_test[:args.mnist]
    else:
        images = rng.integers(0, 256, size=(args.images, *model.input_shape)).astype(np.uint8)
    stream = {"auto": "auto", "all": True, "none": False}.get(args.stream, None)
    if stream is None:
        stream = [s for s in args.stream.split(",") if s]
    t0 = time.perf_counter()
    res = run_model(model, images, transport=args.transport, idle=args.idle, backpressure=args.backpressure,
                    seed=args.seed, stream=stream, record=args.record)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    ref = intref.predict(model, images)
    t_ref = time.perf_counter() - t1
    exact = bool(np.array_equal(res.logits, ref))
    r = res.record
    print(f"model {model.name}, {len(images)} image(s), transport {args.transport}, build {r['config']}, "
          f"streamed layers {r['streamed_layers'] or 'none'}")
    print(f"{'layer':10s} {'mode':5s} {'in_bits':>7s} {'cycles':>9s} {'ideal':>9s} {'util':>6s}")
    for lay in r["layers"]:
        print(f"{lay['layer']:10s} {lay['mode']:5s} {lay['in_bits']:7d} {lay['cycles']:9.1f} {lay['ideal_cycles']:9.1f} "
              f"{lay['utilisation']:6.3f}")
    print(f"cycles per image {res.cycles_per_image:.1f} (ideal {r['ideal_cycles_per_image']:.1f}, utilisation "
          f"{r['utilisation']:.3f}); whole run {res.total_cycles} cycles")
    print(f"simulation {res.wall_s:.2f} s = {res.sim_cycles_per_s / 1e3:.0f} k cycles/s; end to end {total:.2f} s = "
          f"{len(images) / total:.1f} images/s (numpy reference {t_ref:.2f} s)")
    print(f"logits bit-exact with intref: {exact}" + (f"; accuracy {float(np.mean(res.logits.argmax(1) == labels)):.4f}"
                                                    if labels is not None else ""))
    print(f"record: {res.record_path}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
