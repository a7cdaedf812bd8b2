"""The engine board design (:class:`binaccel.hw.linked.UartEngine`: the layer engine behind the
frame link and the board's UART glue) simulated on Verilator, driven by the host driver
:mod:`binaccel.sw.enginehost` over the simulated serial line (``sim/tb_uart.py``, the same
testbench and host :class:`~binaccel.sw.hostlink.HostLink` as the accelerator's ``uart``
transport). What an iCEBreaker runs.

::

    build(params, divisor=UART_DIVISOR) -> BuildInfo     # build/sim/uart-engine-<config>-d<divisor>/
    run_words(words, n_out, *, params, seed=0, ...) -> WordsRun   # one layer run's exchange
    run_model(model, images, *, params, seed=0) -> ModelRun       # every layer, checked against intref
    python -m binaccel.sim.engine_link [--model-file F.bnm | --zoo NAME] [--images N] [--rows R ...]

Each layer run is one simulation (the device holds nothing between runs), starting with the
host's RESET frame. :func:`run_model` compares every layer's whole output tensor with
:func:`binaccel.sw.intref.run_model` and raises :class:`EngineLinkMismatch` naming the first layer
that differs.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass, field

import numpy as np

from binaccel.hw.linked import UartEngine
from binaccel.hw.params import EngineParams
from binaccel.hw.sweep import BOARD_BASE
from binaccel.sim.builds import linked_build
from binaccel.sim.transport import UART_DIVISOR, UART_RX_TIMEOUT, WordsRun, uart_exchange
from binaccel.sw import enginehost, intref, modelfile, zoo
from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.data import load_mnist
from binaccel.sw.randmodel import random_model

__all__ = ["DEFAULT_ARRAY", "board_params", "build", "run_words", "run_model", "ModelRun", "EngineLinkMismatch",
           "main"]

#: The iCEBreaker's largest engine + UART build, ``(rows, cols, word)`` (docs/synthesis.md).
DEFAULT_ARRAY = (2, 2, 32)


def board_params(rows=DEFAULT_ARRAY[0], cols=DEFAULT_ARRAY[1], word=DEFAULT_ARRAY[2]) -> EngineParams:
    """EngineParams of the iCEBreaker's engine + UART build (its widths, the board preset
    ``BOARD_BASE["icebreaker"]``) at the array ``rows x cols x word`` (each checked)."""
    return EngineParams(**{**BOARD_BASE["icebreaker"], "rows": rows, "cols": cols, "word": word})


class EngineLinkMismatch(AssertionError):
    """A layer's output from the simulated engine board design differs from binaccel.sw.intref."""


@functools.lru_cache(maxsize=None)
def build(params: EngineParams, divisor=UART_DIVISOR, rx_timeout=UART_RX_TIMEOUT):
    """Build (once per parameter set and divisor) the UartEngine simulation."""
    if not isinstance(params, EngineParams):
        raise TypeError(f"params must be an EngineParams, got {type(params).__name__}")
    return linked_build(UartEngine, "uart_engine", params, divisor, rx_timeout)


def run_words(words, n_out, *, params: EngineParams, seed=0, divisor=UART_DIVISOR, window=2, max_cycles=None,
              corrupt=(), corrupt_rx=None) -> WordsRun:
    """One exchange with the simulated board: ``words`` (the link's 32-bit words, one transfer) in,
    ``n_out`` words back. ``corrupt``/``corrupt_rx``: fault injection as the ``uart`` transport's."""
    words = np.asarray(words, dtype=np.uint64)
    if max_cycles is None:
        line_bytes = 4 * (len(words) + n_out) + 16 * (len(words) // 64 + 4)
        max_cycles = 3 * 10 * divisor * line_bytes + 20_000
    res, total, wall, extra = uart_exchange(build(params, divisor), [(enginehost.LAYER_KIND, enginehost.transfer_bytes(words))],
                                            4 * int(n_out), seed=seed, divisor=divisor, window=window,
                                            max_cycles=max_cycles, corrupt=corrupt, corrupt_rx=corrupt_rx)
    out = np.frombuffer(res, dtype="<u4").astype(np.uint64)
    return WordsRun(out=out.tolist(), stamps=None, total_cycles=total, wall_s=wall, extra=extra)


@dataclass
class ModelRun:
    """Every layer's output (int64, as intref.run_model) and each run's record."""

    outputs: list
    runs: list = field(default_factory=list)   # per layer: words in/out, cycles, line bytes, wall seconds


def run_model(model, images, *, params: EngineParams, seed=0, divisor=UART_DIVISOR, progress=None) -> ModelRun:
    """``model`` on uint8 ``images`` through the simulated engine board, layer by layer (module
    docstring); every layer's whole output tensor must equal intref's."""
    runs = []

    def device(words, n_out, i):
        r = run_words(words, n_out, params=params, seed=seed + i, divisor=divisor)
        runs.append({"layer": model.layers[i].name, "words_in": int(len(words)), "words_out": int(n_out),
                     "cycles": r.total_cycles, "line_bytes": r.extra["line_bytes"], "wall_s": r.wall_s,
                     "events": r.extra["events"]})
        return r.out

    outputs = enginehost.run_model(model, images, params, device, progress=progress)
    ref = intref.run_model(model, images)
    for i, (got, want) in enumerate(zip(outputs, ref)):
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = int(np.sum(got != want)) if got.shape == want.shape else f"shape {got.shape} vs {want.shape}:"
            raise EngineLinkMismatch(f"layer {i} ({model.layers[i].name}): {bad} of {want.size} values differ "
                                     f"from intref")
    return ModelRun(outputs=outputs, runs=runs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.engine_link",
                                 description="Run a network on the simulated engine board design (the layer "
                                             "engine behind the UART link, the iCEBreaker's board design; the host "
                                             "packs each layer) and check every layer against the integer "
                                             "reference. The serial line is simulated bit by bit: a 28x28 MNIST "
                                             "network takes minutes per image.")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model-file", default=None, help="a model file (.bnm) to run on MNIST test digits")
    src.add_argument("--zoo", default=None, help="a zoo architecture with untrained weights, on MNIST test digits")
    ap.add_argument("--images", type=int, default=1, help="images (default 1)")
    rows, cols, word = DEFAULT_ARRAY
    ap.add_argument("--rows", type=int, default=rows)
    ap.add_argument("--cols", type=int, default=cols)
    ap.add_argument("--word", type=int, default=word, help=f"array (default {rows}x{cols}x{word}, the iCEBreaker's "
                                                           f"largest)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the record (JSON) here")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images must be at least 1, got {args.images}")
    try:
        params = board_params(args.rows, args.cols, args.word)
        if args.model_file:
            model = modelfile.load(args.model_file)
        elif args.zoo:
            model = zoo.untrained_model(args.zoo)
        else:
            model = random_model(np.random.default_rng(args.seed))
    except (TypeError, ValueError, OSError) as exc:
        print(f"engine_link: error: {exc}", file=sys.stderr)
        return 2
    if tuple(model.input_shape) == (1, 28, 28):
        images = load_mnist().x_test[:args.images].astype(np.uint8).reshape(-1, *model.input_shape)
    else:
        images = np.random.default_rng(args.seed).integers(0, 256, size=(args.images, *model.input_shape)).astype(np.uint8)
    try:
        r = run_model(model, images, params=params, seed=args.seed,
                      progress=lambda i, layer: print(f"[engine_link] layer {i} {layer.name} ...", flush=True))
    except ValueError as exc:
        print(f"engine_link: error: {exc}", file=sys.stderr)
        return 2
    record = {"model": model.name, "params": params.as_dict(), "images": int(len(images)), "bit_exact": True,
              "logits": r.outputs[-1].reshape(len(images), -1).tolist(),
              "runs": [{k: v for k, v in run.items() if k != "events"} for run in r.runs]}
    text = json.dumps(record, indent=1)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
