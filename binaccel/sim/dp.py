"""Run networks on the simulated pipelined accelerator (:class:`binaccel.hw.dp.accel.DpAccelerator`).

The build is Verilated once per parameter set (:class:`binaccel.sim.fastpath.FastSim`); a run
streams the program's setup words and one RUN command per image, one word per cycle, and reads
back the logits and the hardware's own cycle counters. Every image's logits are compared with
:func:`binaccel.sw.intref.predict` (whole vectors, every integer).

::

    python -m binaccel.sim.dp --zoo siman --images 200 --out build/dp/siman.json
    python -m binaccel.sim.dp --model-file build/models/siman.bnm --images 1000

The record (JSON): the build parameters, the model, ``images``, ``exact``
(``{"checked", "matched"}``), ``cycles_per_image`` (the hardware's count from a RUN header to
its last reply word, including the image load), the cycles of each layer, and per layer the ideal
cycles (array layers: binary MACs x input bits / MACs per cycle; the first layer: its 8-bit
products / the first-layer unit's 576 per cycle) and the utilisation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from binaccel.hw.dp.accel import DpAccelerator
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.sw import dpprog, intref, modelfile, zoo
from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.data import load_mnist
from binaccel.sw.hwif.dp import DpParams

from .fastpath import FastSim

__all__ = ["ULX3S_PARAMS", "DpRun", "dp_build", "run_model", "main"]

#: The ULX3S build (:data:`binaccel.hw.dp.synth.ULX3S_BUILD`): 16 x 4 PEs of 32 bits (2,048 binary
#: MACs per cycle), buffers for the MNIST networks and the ResNet-20 shape.
ULX3S_PARAMS = dict(ULX3S_BUILD)

_BUILDS: dict = {}


def dp_build(params: DpParams) -> FastSim:
    """The fast-path build of ``params`` (made once per process and parameter set)."""
    key = tuple(sorted(params.as_dict().items()))
    if key not in _BUILDS:
        _BUILDS[key] = FastSim(DpAccelerator(**params.as_dict()), name="dpaccel", params=params.as_dict())
    return _BUILDS[key]


@dataclass
class DpRun:
    logits: np.ndarray          # (N, classes)
    matched: int                # images whose logits equal intref
    layer_cycles: list          # per layer, the last image's
    cycles_per_image: float     # mean over the images (hardware counters)
    record: dict


def run_model(model, images: np.ndarray, *, params: DpParams | dict | None = None, chunk: int = 100) -> DpRun:
    """Run ``images`` (uint8 ``(N, C, H, W)``) through ``model`` on the simulated build."""
    p = params if isinstance(params, DpParams) else DpParams(**(params or ULX3S_PARAMS))
    prog = dpprog.compile_model(model, p)
    sim = dp_build(p)
    images = np.asarray(images, dtype=np.uint8)
    want = intref.predict(model, images)
    n = prog.reply_words()
    logits, cycles, layer_cycles = [], [], []
    for s in range(0, len(images), chunk):
        part = images[s:s + chunk]
        words = list(prog.setup)
        for img in part:
            words += prog.run_words(img)
        out, _ = sim.run(words, n * len(part))
        for k in range(len(part)):
            rep = prog.parse_reply(out[k * n:(k + 1) * n])
            logits.append(rep["logits"])
            cycles.append(rep["cycles"])
            layer_cycles = rep["layer_cycles"]
    logits = np.stack(logits)
    matched = int(sum(np.array_equal(a, b) for a, b in zip(logits, want)))
    macs = p.rows * p.cols * p.word
    layers = []
    for code, c in zip(prog.layers, layer_cycles):
        # the array: binary MACs x input bits over its MACs per cycle; the first-layer unit: its
        # products over its 576 per cycle
        ideal = code.ideal_cycles
        layers.append({"layer": code.layer.name, "unit": code.unit, "cycles": int(c), "ideal_cycles": float(ideal),
                       "utilisation": float(ideal / c) if c else 0.0})
    conv = [x for x, code in zip(layers, prog.layers) if code.unit == "array" and code.layer.kind == "conv"]
    record = {
        "design": "dp", "params": p.as_dict(), "macs_per_cycle": macs, "model": model.name,
        "images": int(len(images)), "exact": {"checked": int(len(images)), "matched": matched},
        "cycles_per_image": float(np.mean(cycles)), "layers": layers,
        "utilisation": float(sum(x["ideal_cycles"] for x in layers) / np.mean(cycles)),
        "utilisation_binary_conv": (float(sum(x["ideal_cycles"] for x in conv) / sum(x["cycles"] for x in conv))
                                    if conv else None),
        "source": "Verilator fast path (binaccel.sim.fastpath), the accelerator's own cycle counters",
    }
    return DpRun(logits=logits, matched=matched, layer_cycles=list(layer_cycles),
                 cycles_per_image=float(np.mean(cycles)), record=record)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.dp",
                                 description="Run a network on the simulated pipelined accelerator (Verilator fast "
                                             "path) and check every image's logits against the integer reference.")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model-file", default=None, help="a model file (.bnm)")
    src.add_argument("--zoo", default="siman", help="a zoo architecture with untrained weights (default siman)")
    ap.add_argument("--images", type=int, default=100, help="MNIST test images (default 100)")
    ap.add_argument("--out", default=None, help="write the record (JSON) here")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images must be at least 1, got {args.images}")
    try:
        model = modelfile.load(args.model_file) if args.model_file else zoo.untrained_model(args.zoo)
        if tuple(model.input_shape) == (1, 28, 28):
            images = load_mnist().x_test[:args.images]
        else:
            images = np.random.default_rng(0).integers(0, 256, (args.images, *model.input_shape)).astype(np.uint8)
        run = run_model(model, images)
    except (TypeError, ValueError, OSError) as exc:
        print(f"binaccel.sim.dp: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(run.record, indent=1)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    print(text)
    return 0 if run.matched == len(images) else 1


if __name__ == "__main__":
    sys.exit(main())
