"""The bench's FPGA side: cycles per image of a network on a board's build.

Four sources, named in the bench's JSON per network and board (``cycles_source``):

* the pipelined accelerator simulation (:func:`dp_cycles`: ``binaccel.sim.dp``, Verilator fast
  path, one RUN per image, the hardware's own cycle counters), for a board whose design is the
  pipelined accelerator;
* the whole-network accelerator simulation (:func:`accel_cycles`: ``binaccel.sim.top``, Verilator
  fast transport, the hardware's own cycle counters), for a board that runs the accelerator;
* the simulation of the board's engine build on each batch (:func:`engine_sim_cycles`:
  ``binaccel.sim.layer`` fast backend), for a board whose design is the engine behind the link;
* the engine's exact cycle model (:func:`network_cycles`: :func:`binaccel.hw.perf.layer_perf`, equal
  to the Verilator simulation without input idle or output backpressure) summed over the layers.

Time per image = cycles / fmax. Utilisation = ideal cycles (binary MACs x input bits /
(rows*cols*word)) / cycles. Layer runs are per batch (``n`` images per run), so batch 1 and batch 64
differ.
"""

from __future__ import annotations

import time

import numpy as np

from binaccel.hw.perf import ideal_cycles, layer_perf
from binaccel.hw.sweep import params_for_models
from binaccel.sim import dp as simdp   # the module: run_model looked up there (tests replace it)
from binaccel.sim import top
from binaccel.sim.layer import run_layers
from binaccel.sw import intref, program
from binaccel.sw.hwif import AccelParams, EngineParams
from binaccel.sw.hwif.dp import DpParams
from binaccel.sw.intmodel import IntModel

__all__ = ["MODEL_SOURCE", "ACCEL_SOURCE", "ENGINE_SIM_SOURCE", "DP_SOURCE", "SOURCE_LABEL", "accel_params_for",
           "pe_stages_of", "accel_cycles", "engine_sim_cycles", "dp_cycles", "network_cycles"]

MODEL_SOURCE = "engine cycle model (binaccel.hw.perf.layer_cycles, exact vs the Verilator engine simulation)"
ACCEL_SOURCE = "accelerator simulation (binaccel.sim.top.run_model, Verilator fast transport, hardware cycle counters)"
ENGINE_SIM_SOURCE = ("engine simulation (binaccel.sim.layer fast backend: the board's engine build, every layer run "
                     "on the batch, outputs checked against intref)")
DP_SOURCE = ("pipelined accelerator simulation (binaccel.sim.dp.run_model, Verilator fast path, the accelerator's "
             "own cycle counters; one RUN per image, the image load included; logits checked against intref)")
#: Short names of the cycle sources in the tables.
SOURCE_LABEL = {ACCEL_SOURCE: "sim", ENGINE_SIM_SOURCE: "engine sim", MODEL_SOURCE: "model", DP_SOURCE: "dp sim"}


def accel_params_for(models, array: dict, *, images: int = 64, skip_errors: bool = False, pe_stages: int = 1):
    """AccelParams of a build with the engine ``array`` that runs every model of ``models``: engine
    widths of the default build, widened to :func:`binaccel.hw.sweep.params_for_models` where a model
    needs more; buffers (feature maps, weights, tables,
    program, dimensions) exactly as large as the largest model needs; ``pe_stages`` as the
    synthesized build's (it changes the cycles, not what fits). ``skip_errors``: leave out
    models that no build of this array can run instead of raising."""
    # widths: the default build's, widened where a model needs more (stable across network sets, so
    # the simulation build is reused between runs)
    need = params_for_models(models, images=images)
    default = EngineParams().as_dict()
    eng = {k: max(v, default[k]) for k, v in need.items()}
    eng.update({k: int(array[k]) for k in ("rows", "cols", "word")}, pe_stages=int(pe_stages))
    big = AccelParams(**eng, fm_depth=1 << 20, w_depth=1 << 20, t_depth=1 << 20, max_layers=256, max_dim=4096)
    need = {"fm_depth": 2, "w_depth": 2, "t_depth": 2, "max_layers": 1, "max_dim": 1}
    for model in models:
        try:
            u = program.compile_model(model, big, stats=True).usage
        except (program.FitError, ValueError):
            if skip_errors:
                continue  # run_bench records the model's own error when it simulates it
            raise
        need["fm_depth"] = max(need["fm_depth"], u["feature_map_words"])
        need["w_depth"] = max(need["w_depth"], u["weight_entries"])
        need["t_depth"] = max(need["t_depth"], u["table_entries"])
        need["max_layers"] = max(need["max_layers"], u["layers"])
        c, h, w = model.input_shape
        need["max_dim"] = max([need["max_dim"], h, w] + [max(l.in_h, l.in_w, l.kernel) for l in model.layers])
    return AccelParams(**eng, **need)


def pe_stages_of(board: dict) -> int:
    """PE stages of a board's synthesized build (``params.pe_stages``; 1 in records made before the
    parameter existed)."""
    return int((board.get("params") or {}).get("pe_stages", 1))


def accel_cycles(model: IntModel, images: np.ndarray, params) -> dict:
    """Cycles per image and per layer of ``model`` on the simulated accelerator build ``params``
    (Verilator fast transport, no idle / backpressure), read from the hardware's own cycle counters;
    the logits are checked against intref (AssertionError on any difference). Returns
    ``{"cycles_per_image", "throughput_cycles_per_image", "layers", "images", "sim_wall_s", "params"}``.

    Runs ``binaccel.sim.top.run_words`` with a cycle limit from the engine cycle model (4x the
    modelled cycles plus 10^6): ``run_model``'s default limit stops large networks on small arrays."""
    images = np.asarray(images)
    n = len(images)
    pr = program.compile_model(model, params, stats=True)
    words = pr.setup_words + pr.images_words(images)
    n_out = n * pr.out_words_per_image
    e = params.engine
    modelled = network_cycles(model, {"rows": e.rows, "cols": e.cols, "word": e.word}, n=1,
                              params={k: v for k, v in e.as_dict().items() if k not in ("rows", "cols", "word")})
    max_cycles = int(4 * n * modelled["cycles"] + 4 * len(words) + 1_000_000)
    out, stamps, total, wall, _ = top.run_words(words, n_out, params=params, transport="fast",
                                                max_cycles=max_cycles)
    dec = pr.decode(out, n)
    ref = intref.predict(model, images)
    if not np.array_equal(dec["logits"], ref):
        bad = int(np.sum(np.any(dec["logits"] != ref, axis=1)))
        raise AssertionError(f"{model.name}: accelerator logits of {bad} of {n} images differ from intref")
    per_layer = dec["cycles"].mean(axis=0)
    layers = []
    for layer, c in zip(model.layers, per_layer):
        ic = ideal_cycles(layer, e.rows, e.cols, e.word, n=1)
        layers.append({"layer": layer.name, "cycles": float(c), "ideal_cycles": ic,
                       "utilisation": float(ic / c) if c else 0.0})
    per_image_stamp = [stamps[(i + 1) * pr.out_words_per_image - 1] for i in range(n)]
    thr = (per_image_stamp[-1] - per_image_stamp[0]) / (n - 1) if n > 1 else None
    return {"cycles_per_image": float(dec["image_cycles"].mean()), "throughput_cycles_per_image": thr,
            "layers": layers, "images": int(n), "sim_wall_s": float(wall), "params": params.as_dict(),
            "total_cycles": int(total), "logits_exact": True}


def dp_cycles(model: IntModel, images: np.ndarray, params) -> dict:
    """Cycles per image of ``model`` on the simulated pipelined accelerator build ``params`` (a
    DpParams or its dict; :func:`binaccel.sim.dp.run_model`: one RUN per image on the Verilator
    fast path, the hardware's own cycle counters), every image's logits compared with intref as
    whole vectors: AssertionError naming the model when any differs. Returns the run's record
    (``exact``, ``cycles_per_image``, ``utilisation``, ``utilisation_binary_conv``, ``layers``,
    ...) with ``ideal_cycles_per_image`` and ``sim_wall_s``. The network must compile for the
    build (:class:`binaccel.sw.dpprog.DpFitError` otherwise)."""
    p = params if isinstance(params, DpParams) else DpParams(**params)
    images = np.asarray(images, dtype=np.uint8)
    t0 = time.perf_counter()
    run = simdp.run_model(model, images, params=p)
    wall = time.perf_counter() - t0
    rec = dict(run.record)
    exact = rec["exact"]
    if exact["checked"] != len(images):
        raise AssertionError(f"{model.name}: the pipelined accelerator simulation checked {exact['checked']} of "
                             f"{len(images)} images")
    if exact["matched"] != exact["checked"]:
        raise AssertionError(f"{model.name}: pipelined accelerator logits of {exact['checked'] - exact['matched']} "
                             f"of {exact['checked']} images differ from intref")
    rec["ideal_cycles_per_image"] = float(sum(x["ideal_cycles"] for x in rec["layers"]))
    rec["sim_wall_s"] = float(wall)
    return rec


def engine_sim_cycles(model: IntModel, images: np.ndarray, params) -> dict:
    """Cycles of one run of every layer of ``model`` on the batch ``images`` on the simulated engine
    build ``params`` (an EngineParams: what the engine + UART board design runs; Verilator fast
    backend of :mod:`binaccel.sim.layer`, no idle / backpressure), each layer's input the previous
    layer's simulated output, every output checked against intref
    (:class:`~binaccel.sim.layer.EngineMismatch` on any difference). Returns the fields of
    :func:`network_cycles` plus ``sim_wall_s`` and ``model_cycles`` (the cycle model's total)."""
    images = np.asarray(images)
    n = len(images)
    t0 = time.perf_counter()
    run = run_layers(model.layers, [intref.model_input(model, images)], chain=True, rows=params.rows,
                     cols=params.cols, word=params.word, params=params, idle=0.0, backpressure=0.0, backend="fast")
    wall = time.perf_counter() - t0
    layers = [{"layer": r["layer"], "cycles": int(r["cycles"]), "ideal_cycles": r["ideal_cycles"],
               "utilisation": r["utilisation"]} for r in run.record["layers"]]
    return {**_network_totals(layers, n), "sim_wall_s": wall, "outputs_exact": True, "params": params.as_dict(),
            "model_cycles": int(sum(r["model_cycles"] for r in run.record["layers"]))}


def _network_totals(layers: list, n: int) -> dict:
    """A network's figures from its layers' (``cycles``, ``ideal_cycles``) for runs on ``n`` images."""
    total = sum(x["cycles"] for x in layers)
    ideal = sum(x["ideal_cycles"] for x in layers)
    return {"layers": layers, "cycles": total, "ideal_cycles": ideal, "cycles_per_image": total / n,
            "utilisation": ideal / total if total else 0.0, "images": n}


def network_cycles(model: IntModel, array: dict, *, n: int = 1, params=None) -> dict:
    """Cycles of one run of every layer of ``model`` on ``n`` images on the engine ``array``
    (``{"rows", "cols", "word"}``; further build fields from ``params``, default: what the model
    needs). Returns ``{"layers": [{"layer", "cycles", "ideal_cycles", "utilisation"}...],
    "cycles", "ideal_cycles", "cycles_per_image", "utilisation", "params"}``."""
    rows, cols, word = int(array["rows"]), int(array["cols"]), int(array["word"])
    if params is None:
        params = params_for_models([model], images=n)
    if isinstance(params, EngineParams):
        params = {k: v for k, v in params.as_dict().items() if k not in ("rows", "cols", "word")}
    layers = [layer_perf(layer, rows, cols, word, n=n, params=params).as_dict() for layer in model.layers]
    return {**_network_totals(layers, n), "params": dict(params)}
