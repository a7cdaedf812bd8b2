"""Benchmark: FPGA cycles and time per image against CPU runtime, per network and board.

For each network (the trained MNIST models, and the paper-scale CIFAR shapes of
:mod:`binaccel.sw.netzoo`) and each board (the largest array of the board design -- accelerator +
UART link + PLL -- that fits it and its fmax; where no accelerator build fits, the engine + UART
link design, the host doing im2col and pooling, or else the engine-only figures; from
``build/bench/boards.json`` written by :mod:`binaccel.hw.sweep`; see :func:`load_boards`):

* **FPGA**: cycles per image from the whole-network accelerator simulation when
  ``binaccel.sim.top`` exists and the board runs the accelerator, else from the engine's exact
  cycle model
  (:func:`binaccel.hw.perf.layer_cycles`, equal to the Verilator simulation without input idle or
  output backpressure) summed over the layers; the JSON says which (``cycles_source``). Time per
  image = cycles / fmax. Utilisation = ideal cycles (binary MACs x input bits / (rows*cols*word))
  / cycles. Layer runs are per batch (``n`` images per run), so batch 1 and batch 64 differ.
* **CPU**, measured in the same run on this machine (median of repetitions after warm-up):
  a float PyTorch model of the same shapes (:func:`binaccel.sw.netzoo.torch_model`), the
  Brevitas model (the trained checkpoint for MNIST; Brevitas binary layers of the same shapes for
  the paper-scale networks), and :class:`PackedNet`, a bit-packed XNOR/AND-popcount numpy path
  (64-bit words, ``np.bitwise_count``) checked bit-exact against :mod:`binaccel.sw.intref`.

Public API: :class:`PackedNet`, :func:`time_call`, :func:`network_cycles`, :func:`mnist_models`,
:func:`run_bench`, :func:`load_boards`, :func:`render_markdown`, :data:`BENCH_DIR`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from . import intref
from .atomic import write_text_atomic
from .intmodel import IntModel, Layer

__all__ = ["PackedNet", "time_call", "network_cycles", "mnist_models", "run_bench", "load_boards",
           "render_markdown", "BENCH_DIR", "BATCHES", "engine_cycles_source", "accel_available",
           "accel_params_for", "accel_cycles", "engine_sim_cycles", "MODEL_SOURCE", "ACCEL_SOURCE",
           "ENGINE_SIM_SOURCE", "SOURCE_LABEL"]

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "build" / "bench"
BATCHES = (1, 64)
MNIST_BENCH_MODELS = ("siman", "sign", "mcn", "mcn1", "mcn_a8")


# --- bit-packed CPU reference -----------------------------------------------------------------

def _pack_words(bits: np.ndarray) -> np.ndarray:
    """{0,1} array ``(..., F)`` -> ``(..., ceil(F/64))`` uint64 words (bit i of word j = element
    64*j + i; missing bits 0)."""
    b = np.packbits(np.ascontiguousarray(bits, dtype=np.uint8), axis=-1, bitorder="little")
    pad = (-b.shape[-1]) % 8
    if pad:
        b = np.concatenate([b, np.zeros((*b.shape[:-1], pad), dtype=np.uint8)], axis=-1)
    return np.ascontiguousarray(b).view("<u8")


class _PackedLayer:
    def __init__(self, layer: Layer):
        if layer.w_bits != 1:
            raise ValueError(f"layer {layer.name!r}: field 'w_bits': the packed path needs binary weights, "
                             f"got {layer.w_bits}")
        self.layer = layer
        w = np.asarray(layer.weights) > 0
        if layer.kind == "fc":
            self.w = _pack_words(w)  # (O, Fw)
        else:
            self.w = _pack_words(w.transpose(2, 3, 0, 1))  # (k, k, G, Cw)
            k, s, p = layer.kernel, layer.stride, layer.padding
            ho, wo = layer.conv_h, layer.conv_w
            ys = np.arange(ho) * s - p
            xs = np.arange(wo) * s - p
            # valid[ky, kx, y, x]: the tap lies inside the (unpadded) input
            vy = (ys[None, :] + np.arange(k)[:, None] >= 0) & (ys[None, :] + np.arange(k)[:, None] < layer.in_h)
            vx = (xs[None, :] + np.arange(k)[:, None] >= 0) & (xs[None, :] + np.arange(k)[:, None] < layer.in_w)
            self.valid = (vy[:, None, :, None] & vx[None, :, None, :]).astype(np.int64)
            if layer.mode != "plain":
                m = np.asarray(layer.mfilter, dtype=np.int64)
                self.m = m.reshape(layer.planes, k * k) if layer.mode == "mcn" else m
            if layer.mode != "mcn":
                # dense path: the whole fan-in (ky, kx, c) packed per output position
                c = layer.in_ch
                self.wd = _pack_words(w.transpose(0, 2, 3, 1).reshape(layer.groups, k * k * c))  # (G, Fw)
                valid = self.valid.transpose(2, 3, 0, 1).reshape(ho * wo, k * k)  # (HW, taps)
                vm = _pack_words(np.repeat(valid, c, axis=1))  # (HW, Fw): valid fan-in bits
                self.nvalid = valid.sum(axis=1) * c  # (HW,)
                inside = np.bitwise_count(self.wd[None] & vm[:, None]).sum(axis=-1, dtype=np.int64)
                self.corr = np.bitwise_count(self.wd).sum(axis=-1, dtype=np.int64)[None] - inside  # (HW, G)

    def _planes(self, x):
        """(weight, bit plane) pairs of the input."""
        layer = self.layer
        if layer.in_bits == 1:
            return [(0, x)]
        return [(b, (x >> b) & 1) for b in range(layer.in_bits)]

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        layer = self.layer
        n = x.shape[0]
        if layer.kind == "fc":
            flat = x.reshape(n, -1)
            acc = np.zeros((n, layer.out_ch), dtype=np.int64)
            for b, plane in self._planes(flat):
                a = _pack_words(plane)  # (N, Fw)
                if layer.in_bits == 1:
                    pc = np.bitwise_count(a[:, None, :] ^ self.w[None]).sum(axis=-1, dtype=np.int64)
                    acc += layer.fan_in - 2 * pc
                else:
                    both = np.bitwise_count(a[:, None, :] & self.w[None]).sum(axis=-1, dtype=np.int64)
                    ones = np.bitwise_count(a).sum(axis=-1, dtype=np.int64)[:, None]
                    acc += (2 * both - ones) << b
            return acc.reshape(n, layer.out_ch, 1, 1)
        if layer.mode != "mcn":
            return self._accumulate_dense(x)
        k, s, p = layer.kernel, layer.stride, layer.padding
        ho, wo, g, c = layer.conv_h, layer.conv_w, layer.groups, layer.in_ch
        per_tap = layer.mode == "mcn"
        part = np.zeros((k * k if per_tap else 1, n, ho, wo, g), dtype=np.int64)
        for b, plane in self._planes(x):
            a = _pack_words(plane.transpose(0, 2, 3, 1))  # (N, H, W, Cw)
            a = np.pad(a, ((0, 0), (p, p), (p, p), (0, 0)))
            for ky in range(k):
                for kx in range(k):
                    t = a[:, ky:ky + s * ho:s, kx:kx + s * wo:s, :]  # (N, Ho, Wo, Cw)
                    wt = self.w[ky, kx]  # (G, Cw)
                    slot = part[ky * k + kx if per_tap else 0]
                    if layer.in_bits == 1:
                        pc = np.zeros((n, ho, wo, g), dtype=np.int64)
                        for j in range(wt.shape[1]):
                            pc += np.bitwise_count(t[..., j:j + 1] ^ wt[None, None, None, :, j])
                        slot += self.valid[ky, kx][None, :, :, None] * (c - 2 * pc)
                    else:
                        both = np.zeros((n, ho, wo, g), dtype=np.int64)
                        for j in range(wt.shape[1]):
                            both += np.bitwise_count(t[..., j:j + 1] & wt[None, None, None, :, j])
                        ones = np.bitwise_count(t).sum(axis=-1, dtype=np.int64)[..., None]
                        slot += (2 * both - ones) << b
        if layer.mode == "plain":
            acc = part[0]  # (N, Ho, Wo, G)
        elif layer.mode == "mcn":
            acc = np.einsum("jt,tnyxg->nyxgj", self.m, part).reshape(n, ho, wo, layer.out_ch)
        else:
            acc = (part[0][..., None] * self.m).reshape(n, ho, wo, layer.out_ch)
        return acc.transpose(0, 3, 1, 2)

    def _accumulate_dense(self, x):
        """Plain / MCNs-1 conv: im2col of the bits, one packed fan-in vector per output position.
        Binary inputs: ``dot = valid - 2*popcount((a XOR w) & valid)``, where padded taps hold
        ``a = 0`` and their share ``popcount(w & ~valid)`` is subtracted (``corr``)."""
        layer = self.layer
        n = x.shape[0]
        k, s, p = layer.kernel, layer.stride, layer.padding
        ho, wo, g = layer.conv_h, layer.conv_w, layer.groups
        hw = ho * wo
        xp = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (p, p), (p, p), (0, 0)))
        cols = np.stack([xp[:, ky:ky + s * ho:s, kx:kx + s * wo:s, :] for ky in range(k) for kx in range(k)],
                        axis=3).reshape(n * hw, -1)  # (N*HW, k*k*C), tap-major
        fw = self.wd.shape[1]
        chunk = max(1, (1 << 21) // max(1, g * fw))
        acc = np.zeros((n * hw, g), dtype=np.int64)
        pos = np.tile(np.arange(hw), n)
        for b, plane in self._planes(cols):
            a = _pack_words(plane)  # (N*HW, Fw)
            for i in range(0, len(a), chunk):
                blk = a[i:i + chunk]
                if layer.in_bits == 1:
                    pc = np.bitwise_count(blk[:, None, :] ^ self.wd[None]).sum(axis=-1, dtype=np.int64)
                    q = pos[i:i + chunk]
                    acc[i:i + chunk] = self.nvalid[q][:, None] - 2 * (pc - self.corr[q])
                else:
                    both = np.bitwise_count(blk[:, None, :] & self.wd[None]).sum(axis=-1, dtype=np.int64)
                    ones = np.bitwise_count(blk).sum(axis=-1, dtype=np.int64)[:, None]
                    acc[i:i + chunk] += (2 * both - ones) << b
        acc = acc.reshape(n, ho, wo, g)
        if layer.mode == "mcn1":
            acc = (acc[..., None] * self.m).reshape(n, ho, wo, layer.out_ch)
        return acc.transpose(0, 3, 1, 2)

    def __call__(self, x):
        y = intref.postprocess(self.layer, self.accumulate(x))
        return intref.maxpool2(y) if self.layer.pool == 2 else y


class PackedNet:
    """Bit-packed XNOR/AND-popcount CPU execution of an IntModel with binary weights: activations
    packed 64 per ``uint64`` word along the channels (FC: along the flattened input) at each layer,
    ``np.bitwise_count`` of XNOR (binary inputs, counted as XOR) or AND (bit planes of multi-bit
    inputs). Every output integer equals :func:`binaccel.sw.intref.run_model`'s."""

    def __init__(self, model: IntModel):
        self.model = model
        self.layers = [_PackedLayer(layer) for layer in model.layers]

    def run(self, images: np.ndarray) -> list:
        """All layer outputs (int64), like :func:`intref.run_model`."""
        x = intref.model_input(self.model, images)
        outs = []
        for pl in self.layers:
            x = pl(x)
            outs.append(x)
        return outs

    def predict(self, images: np.ndarray) -> np.ndarray:
        x = intref.model_input(self.model, images)
        for pl in self.layers:
            x = pl(x)
        return x.reshape(len(images), -1)


# --- timing -----------------------------------------------------------------------------------

def time_call(fn, *, warmup: int = 2, reps: int = 7, min_time: float = 0.0) -> dict:
    """Median wall time of ``fn()`` over ``reps`` calls after ``warmup`` calls (``perf_counter``).
    Returns ``{"median_s", "min_s", "max_s", "reps"}``."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= 10 * reps:
            break
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "reps": len(times)}


# --- FPGA cycles ------------------------------------------------------------------------------

MODEL_SOURCE = "engine cycle model (binaccel.hw.perf.layer_cycles, exact vs the Verilator engine simulation)"
ACCEL_SOURCE = "accelerator simulation (binaccel.sim.top.run_model, Verilator fast transport, hardware cycle counters)"
ENGINE_SIM_SOURCE = ("engine simulation (binaccel.sim.layer fast backend: the board's engine build, every layer run "
                     "on the batch, outputs checked against intref)")
#: Short names of the cycle sources in the tables.
SOURCE_LABEL = {ACCEL_SOURCE: "sim", ENGINE_SIM_SOURCE: "engine sim", MODEL_SOURCE: "model"}


def accel_available() -> bool:
    """True when the whole-network accelerator simulation (``binaccel.sim.top``) is installed."""
    try:
        import binaccel.sim.top  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def engine_cycles_source() -> str:
    return ACCEL_SOURCE if accel_available() else MODEL_SOURCE


def accel_params_for(models, array: dict, *, images: int = 64, skip_errors: bool = False, pe_stages: int = 1):
    """AccelParams of a build with the engine ``array`` that runs every model of ``models``: engine
    widths of the default build, widened to :func:`binaccel.hw.sweep.params_for_models` where a model
    needs more; buffers (feature maps, weights, tables,
    program, dimensions) exactly as large as the largest model needs; ``pe_stages`` as the
    synthesized build's (it changes the cycles, not what fits). ``skip_errors``: leave out
    models that no build of this array can run instead of raising."""
    from binaccel.hw.seq import AccelParams
    from binaccel.hw.sweep import params_for_models

    from . import program

    from binaccel.hw.params import EngineParams

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
    from binaccel.hw.perf import ideal_cycles
    from binaccel.sim import top

    from . import program

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


def engine_sim_cycles(model: IntModel, images: np.ndarray, params) -> dict:
    """Cycles of one run of every layer of ``model`` on the batch ``images`` on the simulated engine
    build ``params`` (an EngineParams: what the engine + UART board design runs; Verilator fast
    backend of :mod:`binaccel.sim.layer`, no idle / backpressure), each layer's input the previous
    layer's simulated output, every output checked against intref
    (:class:`~binaccel.sim.layer.EngineMismatch` on any difference). Returns the fields of
    :func:`network_cycles` plus ``sim_wall_s`` and ``model_cycles`` (the cycle model's total)."""
    import time as _time

    from binaccel.sim.layer import run_layers

    images = np.asarray(images)
    n = len(images)
    t0 = _time.perf_counter()
    run = run_layers(model.layers, [intref.model_input(model, images)], chain=True, rows=params.rows,
                     cols=params.cols, word=params.word, params=params, idle=0.0, backpressure=0.0, backend="fast")
    wall = _time.perf_counter() - t0
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
    from binaccel.hw.params import EngineParams
    from binaccel.hw.perf import layer_perf
    from binaccel.hw.sweep import params_for_models

    rows, cols, word = int(array["rows"]), int(array["cols"]), int(array["word"])
    if params is None:
        params = params_for_models([model], images=n)
    if isinstance(params, EngineParams):
        params = {k: v for k, v in params.as_dict().items() if k not in ("rows", "cols", "word")}
    layers = [layer_perf(layer, rows, cols, word, n=n, params=params).as_dict() for layer in model.layers]
    return {**_network_totals(layers, n), "params": dict(params)}


# --- networks ---------------------------------------------------------------------------------

def mnist_models(*, dirs=None, names=MNIST_BENCH_MODELS, train_dir=None, train_epochs=1, log=print) -> dict:
    """Trained MNIST models: ``{name: (IntModel, checkpoint path or None, model file)}``.

    Looks for ``<dir>/models/<name>.bnm`` with ``<dir>/checkpoints/<name>.pt`` (``binaccel demo``'s
    layout) or ``<dir>/<name>.bnm`` with ``<dir>/<name>.pt``, in ``dirs`` (default ``build/demo``,
    ``build/bench/models``). If none is found and ``train_dir`` is given, trains ``siman`` and
    ``mcn`` for ``train_epochs`` epoch(s) there and exports them."""
    from . import modelfile

    dirs = [ROOT / "build" / "demo", BENCH_DIR / "models"] if dirs is None else [Path(d) for d in dirs]
    found = {}
    for d in dirs:
        for name in names:
            if name in found:
                continue
            for bnm, pt in ((d / "models" / f"{name}.bnm", d / "checkpoints" / f"{name}.pt"),
                            (d / f"{name}.bnm", d / f"{name}.pt")):
                if bnm.exists():
                    found[name] = (modelfile.load(bnm), pt if pt.exists() else None, bnm)
                    break
    if not found and train_dir is not None:
        from . import pipeline
        from .data import load_mnist

        data = load_mnist()
        out = Path(train_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("siman", "mcn"):
            log(f"[bench] no trained MNIST model found: training {name} for {train_epochs} epoch(s) in {out}")
            r = pipeline.train_named(name, data, out_dir=str(out), epochs=train_epochs, progress=False)
            bnm = out / f"{name}.bnm"
            im = pipeline.export_model(r["model"], str(bnm), name=name, calib=data.x_train[:500])
            found[name] = (im, Path(r["checkpoint"]), bnm)
    return found


def _load_model_files(model_files) -> tuple:
    """``{name: .bnm path}`` -> (MNIST-shaped ``{name: (IntModel, checkpoint or None, path)}``, others)."""
    from . import modelfile

    mnist, other = {}, {}
    for name, path in model_files.items():
        path = Path(path)
        im = modelfile.load(path)
        ckpt = None
        for cand in (path.with_suffix(".pt"), path.parent.parent / "checkpoints" / f"{path.stem}.pt"):
            if cand.exists():
                ckpt = cand
                break
        if tuple(im.input_shape) == (1, 28, 28):
            mnist[name] = (im, ckpt, path)
        else:
            other[name] = (im, None, path)
    return mnist, other


#: The committed record of the last board search (``binaccel synth --search``, copied from
#: ``build/bench/boards.json``): the bench and the demo use it on a checkout that has not run the
#: search (the ULX3S place-and-route takes about 25 minutes), and say so (``source`` of each board).
MEASURED_BOARDS_JSON = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "measured",
                                    "boards.json")


def parse_array(text: str) -> tuple:
    """``"ulx3s=4x4x32"`` -> ``("ulx3s", (4, 4, 32))``; ValueError saying the expected form."""
    board, sep, arr = str(text).partition("=")
    parts = arr.lower().split("x")
    if not sep or not board or len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--array {text!r}: expected BOARD=ROWSxCOLSxWORD, e.g. ulx3s=4x4x32")
    return board, tuple(int(p) for p in parts)


def load_boards(path=None, *, fallback=True, arrays=None) -> dict:
    """``{board: best summary}`` from ``build/bench/boards.json`` (ValueError naming file/field).
    Without ``path`` and without that file, from :data:`MEASURED_BOARDS_JSON` (the committed record
    of the last search). Every board's summary has ``source``: the file it came from.

    Per board, the largest fitting point of the board design (accelerator + UART link + PLL,
    ``design`` "accel+uart"), or the fitting point whose array ``arrays[board]`` names
    (``(rows, cols, word)``; ValueError listing the fitting arrays if there is none). With
    ``fallback`` (default), a board that no accelerator build fits gets its other board design,
    the engine behind the UART link (``design`` "engine+uart", section ``engine_link_boards``), or,
    without one, the engine-only figures (``design`` "engine"), with ``fallback`` saying why; the
    bench tables show the design per board."""
    from binaccel.hw.sweep import BOARDS_JSON, _result_kind, gateware_current, load_boards_json

    source = BOARDS_JSON if path is None else path
    if path is None and not os.path.exists(BOARDS_JSON) and os.path.exists(MEASURED_BOARDS_JSON):
        source = MEASURED_BOARDS_JSON
    doc = load_boards_json(source)
    arrays = dict(arrays or {})
    unknown = sorted(set(arrays) - set(doc["boards"]))
    if unknown:
        raise ValueError(f"{source}: field 'boards.{unknown[0]}': no synthesis results for that board "
                         f"(boards: {', '.join(sorted(doc['boards'])) or 'none'})")
    out = {}
    engine = dict(doc.get("engine_boards") or {})
    linked = dict(doc.get("engine_link_boards") or {})
    for name, res in doc["boards"].items():
        if _result_kind(res) == "engine":
            engine.setdefault(name, res)
            continue
        if _result_kind(res) == "engine+uart":
            linked.setdefault(name, res)
            continue
        if name in arrays:
            want = {"rows": arrays[name][0], "cols": arrays[name][1], "word": arrays[name][2]}
            fitting = [pt for pt in res.get("points") or [] if pt.get("fits")]
            picked = [pt for pt in fitting if pt.get("array") == want]
            if not picked:
                have = ", ".join(sorted({"{rows}x{cols}x{word}".format(**pt["array"]) for pt in fitting})) or "none"
                raise ValueError(f"{source}: field 'boards.{name}.points': no fitting build with array "
                                 f"{want['rows']}x{want['cols']}x{want['word']} (fitting: {have})")
            # several runs of the same array (seeds): the fastest
            out[name] = {**max(picked, key=lambda pt: pt.get("fmax_mhz") or 0), "design": "accel+uart"}
        elif res.get("best"):
            out[name] = {**res["best"], "design": "accel+uart"}
    if fallback:
        for design, section, what in (
                ("engine+uart", linked, "its board design is the layer engine behind the UART link (LinkedEngine; "
                                        "the host does im2col, pooling and the maps between layers), so the FPGA "
                                        "time counts the engine's layer runs only"),
                ("engine", engine, "engine-only figures (engine in a PortHarness, no fetch/write-back/buffers/link), "
                                   "so the FPGA time is optimistic")):
            for name, res in section.items():
                if name in out or not res.get("best"):
                    continue
                acc = doc["boards"].get(name)
                why = ("no accelerator build fits the board"
                       if acc and _result_kind(acc) == "accel+uart" and acc.get("points")
                       else "the accelerator was not synthesized for this board")
                out[name] = {**res["best"], "design": design, "fallback": f"{why}: {what}"}
    rel = os.path.relpath(source, os.path.dirname(os.path.dirname(os.path.dirname(MEASURED_BOARDS_JSON))))
    for v in out.values():
        v["source"] = rel if not rel.startswith("..") else os.fspath(source)
        v["gateware_current"] = gateware_current(v)
    return out


def stale_note(name: str, board: dict):
    """A sentence saying that ``board``'s synthesis figures (from :func:`load_boards`) were made from
    other gateware or tools than this checkout's, with the command that measures it again; None when
    they match."""
    from binaccel.hw.sweep import inputs_hash

    if board.get("gateware_current", True):
        return None
    a = board["array"]
    design = {"engine": "--design engine ", "engine+uart": "--design engine-link "}.get(board.get("design"), "")
    plan = (f"and its build plan differs (plan_sha256 {board['plan_sha256'][:12]})" if board.get("plan_sha256")
            else "and it has no build plan digest (plan_sha256) to compare")
    made = (f"was made from other gateware or tools than this checkout's (inputs_sha256 "
            f"{board['inputs_sha256'][:12]}, this checkout {inputs_hash()[:12]}) {plan}" if board.get("inputs_sha256")
            else "does not say which gateware it was made from (a record older than inputs_sha256)")
    return (f"{name} {a['rows']}x{a['cols']}x{a['word']}: the synthesis record in {board.get('source')} {made}, "
            f"so its fmax and resources may not describe the current design; "
            f"`binaccel synth --board {name} {design}--rows {a['rows']} --cols {a['cols']} --word {a['word']}"
            f"{'' if board.get('design') == 'engine' else ' --update-boards'}` measures it again")


# --- the bench --------------------------------------------------------------------------------

def _cpu_timings(model: IntModel, *, brevitas_model=None, images, batches, warmup, reps, log):
    import torch

    from . import netzoo

    out = {}
    c = model.input_shape[0] * model.input_repeat
    float_net = netzoo.torch_model(model, kind="float")
    brev_net = brevitas_model if brevitas_model is not None else netzoo.torch_model(model, kind="brevitas")
    packed = PackedNet(model)
    for n in batches:
        imgs = images[:n]
        if len(imgs) < n:
            imgs = np.resize(images, (n, *images.shape[1:]))
        xf = torch.as_tensor(imgs, dtype=torch.float32) / 255.0
        if xf.dim() == 3:
            xf = xf[:, None]
        x_rep = xf.repeat_interleave(model.input_repeat, dim=1) if model.input_repeat > 1 else xf
        assert x_rep.shape[1] == c
        if brevitas_model is not None and hasattr(brevitas_model, "prepare_input"):
            xb = brevitas_model.prepare_input(torch.as_tensor(imgs))
        else:
            xb = x_rep

        def run_float():
            with torch.no_grad():
                float_net(x_rep)

        def run_brev():
            with torch.no_grad():
                brev_net(xb)

        entry = {}
        for key, fn in (("torch_float", run_float), ("brevitas", run_brev),
                        ("packed", lambda: packed.predict(imgs))):
            t = time_call(fn, warmup=warmup, reps=reps)
            entry[key] = {**t, "s_per_image": t["median_s"] / n}
        out[str(n)] = entry
        log(f"[bench]   CPU batch {n:3d}: torch float {entry['torch_float']['s_per_image'] * 1e3:8.3f} ms/img, "
            f"brevitas {entry['brevitas']['s_per_image'] * 1e3:8.3f} ms/img, "
            f"packed numpy {entry['packed']['s_per_image'] * 1e3:8.3f} ms/img")
    return out


def _check_packed(model, images):
    """PackedNet against intref on a few images: every layer's whole tensor."""
    ref = intref.run_model(model, images)
    got = PackedNet(model).run(images)
    return all(np.array_equal(a, b) for a, b in zip(ref, got))


def run_bench(*, out_dir=BENCH_DIR, boards=None, networks=None, batches=BATCHES, warmup=2, reps=5,
              mnist_dirs=None, train=True, seed=0, plots=True, extra_models=None, cycles="auto",
              accel_images=4, accel_params=None, threads=1, model_files=None, log=print) -> dict:
    """Run the bench (module docstring) and write ``bench.json``, ``bench.md`` and plots into
    ``out_dir`` (atomically). ``boards``: ``{board: summary}`` (default :func:`load_boards`);
    ``networks``: names to include (MNIST model names and :mod:`netzoo` names; default all);
    ``extra_models``: further ``{name: IntModel}`` (random weights, no checkpoint); ``cycles``:
    ``"accel"`` (accelerator simulation), ``"model"`` (engine cycle model) or ``"auto"`` (the
    simulation when ``binaccel.sim.top`` exists); ``accel_images``: images simulated per network
    (half as many, at least 2, for the paper-scale ones); ``accel_params``: the accelerator build
    to simulate (an AccelParams for every board, or ``{board: AccelParams}``; default: per board,
    :func:`accel_params_for`); ``model_files``: ``{name: path of a .bnm}`` to bench instead of
    searching ``mnist_dirs`` (network ``mnist_<name>`` with the MNIST test digits when the input is
    1x28x28, else ``<name>`` with random images; the Brevitas timing uses ``<name>.pt`` next to the
    file or in ``../checkpoints/`` when present);
    ``threads``: torch intra-op threads for the CPU timings (default 1: on a shared machine a
    single thread gives stable figures; numpy's packed path is single-threaded anyway)."""
    import torch

    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _run_bench(out_dir=out_dir, boards=boards, networks=networks, batches=batches, warmup=warmup,
                          reps=reps, mnist_dirs=mnist_dirs, train=train, seed=seed, plots=plots,
                          extra_models=extra_models, cycles=cycles, accel_images=accel_images,
                          accel_params=accel_params, model_files=model_files, log=log)
    finally:
        torch.set_num_threads(saved_threads)


def _run_bench(*, out_dir, boards, networks, batches, warmup, reps, mnist_dirs, train, seed, plots,
               extra_models, cycles, accel_images, accel_params, model_files, log):
    import torch

    from binaccel.hw.sweep import bitstream_clock_mhz

    from . import netzoo

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    boards = load_boards() if boards is None else boards
    if not boards:
        raise ValueError("no board with a fitting engine array: run `binaccel synth` first")
    rng = np.random.default_rng(seed)
    nets = {}
    want = set(networks) if networks else None
    want_mnist = want is None or any(w.startswith("mnist_") or w in MNIST_BENCH_MODELS for w in want)
    if model_files is not None:
        mnist, extra_files = _load_model_files(model_files)
        for name, (im, ckpt, bnm) in extra_files.items():
            nets[name] = {"model": im, "checkpoint": ckpt, "file": bnm, "family": "extra"}
    else:
        mnist = (mnist_models(dirs=mnist_dirs, train_dir=(BENCH_DIR / "models") if train else None, log=log)
                 if want_mnist else {})
    if want is not None:
        mnist = {k: v for k, v in mnist.items() if f"mnist_{k}" in want or k in want}
    for name, (im, ckpt, bnm) in mnist.items():
        if want is None or f"mnist_{name}" in want or name in want:
            nets[f"mnist_{name}"] = {"model": im, "checkpoint": ckpt, "file": bnm, "family": "mnist"}
    for name in netzoo.names():
        if want is None or name in want:
            nets[name] = {"model": netzoo.build(name, seed=seed), "checkpoint": None, "file": None,
                          "family": "paper"}
    for name, im in (extra_models or {}).items():
        nets[name] = {"model": im, "checkpoint": None, "file": None, "family": "extra"}
    if want:
        missing = want - set(nets) - {n[len("mnist_"):] for n in nets if n.startswith("mnist_")}
        if missing:
            raise ValueError(f"unknown or unavailable network(s): {', '.join(sorted(missing))}")

    if cycles not in ("auto", "model", "accel"):
        raise ValueError(f"cycles: expected 'auto', 'model' or 'accel', got {cycles!r}")
    use_accel = cycles == "accel" or (cycles == "auto" and accel_available())
    source = ACCEL_SOURCE if use_accel else MODEL_SOURCE
    runnable = [v["model"] for v in nets.values() if all(l.w_bits == 1 for l in v["model"].layers)]
    accel_builds = {}

    def accel_build_params(bname, b):
        """One accelerator build per board: its array and PE stages, buffers for the largest runnable
        network."""
        if bname not in accel_builds:
            given = accel_params.get(bname) if isinstance(accel_params, dict) else accel_params
            accel_builds[bname] = (given if given is not None
                                   else accel_params_for(runnable, b["array"], images=max(batches),
                                                         skip_errors=True, pe_stages=pe_stages_of(b)))
        return accel_builds[bname]

    result = {
        "format": "binaccel-bench", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cycles_source": source,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                    "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_start": list(os.getloadavg())},
        "timing": {"warmup": warmup, "reps": reps, "statistic": "median", "batches": list(batches)},
        "boards": {}, "networks": {},
        "notes": [
            "FPGA time = cycles per image / nextpnr fmax of the synthesized build of the board (boards.<b>.design: "
            "accel+uart = the accelerator behind the UART link with PLL, the real board design; engine+uart = "
            "the layer engine behind the same link, the board design where no accelerator build fits (the host "
            "does im2col, pooling and the maps between layers; its cycles are its engine build's, simulated, or "
            "the engine cycle model's); engine = the bare engine only, the last fallback); host link transfers "
            "are not included.",
            "cycles_source per network and board: the accelerator simulation (binaccel.sim.top: whole network "
            "on chip, one RUN per image, image load and on-chip im2col included; batch 64 = throughput over "
            "the simulated images), for a board whose design is the engine + UART link the simulation of its "
            "engine build (layer runs on the batch of n images, host-side im2col/pooling not counted; the "
            "networks that build can run), or the engine cycle model (the same layer runs, exact against the "
            "engine simulation). engine_model always holds the latter.",
            "Paper-scale networks are random-weight IntModels of the papers' shapes cut to what the engine "
            "runs (see cuts); their cycles assume a build of the same array with the widths they need "
            "(params_needed), which may differ from the synthesized build's (build_params).",
        ],
    }
    for bname, b in boards.items():
        result["boards"][bname] = {k: b.get(k) for k in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "dsps",
                                                        "dsps_total", "array", "target_mhz", "met", "params",
                                                        "seed", "report", "design", "fallback",
                                                        "inputs_sha256", "plan_sha256", "gateware_current",
                                                        "closure")}
    images_cache = {}
    for net_name, info in nets.items():
        model = info["model"]
        log(f"[bench] {net_name}: {len(model.layers)} layers, input {tuple(model.input_shape)}")
        shape = tuple(model.input_shape)
        if shape not in images_cache:
            if info["family"] == "mnist":
                from .data import load_mnist
                images_cache[shape] = load_mnist().x_test[:max(batches)].astype(np.uint8)
            else:
                images_cache[shape] = rng.integers(0, 256, size=(max(batches), *shape), dtype=np.int64).astype(np.uint8)
        images = images_cache[shape]
        if images.ndim == 3:
            images = images[:, None]
        entry = {"family": info["family"], "input_shape": list(shape), "input_repeat": model.input_repeat,
                 "layers": [l.name for l in model.layers],
                 "binary_macs_per_image": int(sum(l.binary_macs * l.in_bits for l in model.layers)),
                 "cuts": list(model.meta.get("cuts", [])) if isinstance(model.meta, dict) else [],
                 "paper": model.meta.get("paper") if isinstance(model.meta, dict) else None,
                 "model_file": str(info["file"]) if info["file"] else None,
                 "checkpoint": str(info["checkpoint"]) if info["checkpoint"] else None}
        unsupported = [l.name for l in model.layers if l.w_bits != 1]
        if unsupported:
            entry["skipped"] = f"layers with w_bits != 1 ({', '.join(unsupported)}): not run by the engine"
            result["networks"][net_name] = entry
            log(f"[bench]   skipped: {entry['skipped']}")
            continue
        entry["packed_exact"] = bool(_check_packed(model, images[:2]))
        if not entry["packed_exact"]:
            raise AssertionError(f"{net_name}: PackedNet differs from intref")
        brev = None
        if info["checkpoint"] is not None:
            from .train import load_checkpoint
            brev = load_checkpoint(info["checkpoint"])
            entry["brevitas_model"] = f"trained checkpoint {info['checkpoint']}"
        else:
            entry["brevitas_model"] = "Brevitas binary layers of the same shapes (random weights)"
        from binaccel.hw.sweep import params_for_models
        need = params_for_models([model], images=max(batches))
        entry["params_needed"] = need
        cpu = _cpu_timings(model, brevitas_model=brev, images=images, batches=batches, warmup=warmup,
                           reps=reps, log=log)
        entry["cpu"] = cpu
        for bname, b in boards.items():
            per = {"array": b["array"], "fmax_mhz": b["fmax_mhz"], "batch": {}, "engine_model": {}}
            bp = b.get("params") or {}
            per["build_supports"] = all(need[k] <= bp.get(k, 0) for k in need) if bp else None
            def run_accel():
                ap = accel_build_params(bname, b)
                k = accel_images if info["family"] != "paper" else max(2, accel_images // 2)
                log(f"[bench]   {bname}: accelerator simulation of {k} image(s), build {ap.tag} ...")
                return accel_cycles(model, images[:k], ap)

            def run_engine():
                from binaccel.hw.params import EngineParams

                ep = EngineParams(**{k: v for k, v in bp.items() if k in EngineParams.names()})
                out = {}
                for n in batches:
                    log(f"[bench]   {bname}: engine simulation of a batch of {n}, build {ep.tag} ...")
                    out[n] = engine_sim_cycles(model, images[:n], ep)
                return out

            sim, esim = None, {}
            if use_accel and b.get("design") != "engine+uart":   # (that board runs layers, not networks)
                sim = _simulated(per, "accel_error", f"{bname}: accelerator simulation", run_accel, log)
                if sim is not None:
                    per["accel_sim"] = {kk: sim[kk] for kk in ("cycles_per_image", "throughput_cycles_per_image",
                                                               "images", "sim_wall_s", "params", "total_cycles",
                                                               "logits_exact")}
            if use_accel and b.get("design") == "engine+uart" and per["build_supports"]:
                # the board runs the engine: simulate its build on each batch (the networks it can run)
                esim = _simulated(per, "engine_sim_error", f"{bname}: engine simulation", run_engine, log) or {}
                if esim:
                    per["engine_sim"] = {str(n): {k: v for k, v in r.items() if k != "layers"} for n, r in esim.items()}
            per["cycles_source"] = (ACCEL_SOURCE if sim is not None else ENGINE_SIM_SOURCE if esim else MODEL_SOURCE)
            for n in batches:
                cyc = network_cycles(model, b["array"], n=n, params={**need, "pe_stages": pe_stages_of(b)})
                per["engine_model"][str(n)] = {"cycles_per_image": cyc["cycles_per_image"],
                                               "utilisation": cyc["utilisation"], "layers": cyc["layers"]}
                ideal_img = cyc["ideal_cycles"] / n
                if n in esim:
                    cyc = esim[n]
                    cpi, layers = cyc["cycles_per_image"], cyc["layers"]
                elif sim is not None:
                    cpi = sim["cycles_per_image"]
                    if n > 1 and sim["throughput_cycles_per_image"]:
                        cpi = sim["throughput_cycles_per_image"]
                    layers = sim["layers"]
                else:
                    cpi, layers = cyc["cycles_per_image"], cyc["layers"]
                fpga_s = cpi / (b["fmax_mhz"] * 1e6) if b.get("fmax_mhz") else None
                bit_mhz = bitstream_clock_mhz(b)
                c = cpu[str(n)]
                per["batch"][str(n)] = {
                    "cycles_per_image": cpi, "ideal_cycles_per_image": ideal_img,
                    "utilisation": ideal_img / cpi if cpi else 0.0, "fpga_s_per_image": fpga_s,
                    # at the clock of the bitstream that meets timing (None: none recorded)
                    "fpga_bitstream_s_per_image": cpi / (bit_mhz * 1e6) if bit_mhz else None,
                    "cpu_torch_s_per_image": c["torch_float"]["s_per_image"],
                    "cpu_brevitas_s_per_image": c["brevitas"]["s_per_image"],
                    "cpu_packed_s_per_image": c["packed"]["s_per_image"],
                    "ratio_fpga_over_torch": fpga_s / c["torch_float"]["s_per_image"] if fpga_s else None,
                    "ratio_fpga_over_brevitas": fpga_s / c["brevitas"]["s_per_image"] if fpga_s else None,
                    "ratio_fpga_over_packed": fpga_s / c["packed"]["s_per_image"] if fpga_s else None,
                    "layers": layers,
                }
            head = per["batch"][str(batches[0])]
            for key in ("fpga_s_per_image", "fpga_bitstream_s_per_image", "cpu_torch_s_per_image", "cpu_brevitas_s_per_image",
                        "cpu_packed_s_per_image", "utilisation", "cycles_per_image", "ratio_fpga_over_torch",
                        "ratio_fpga_over_packed", "ratio_fpga_over_brevitas"):
                per[key] = head[key]
            per["headline_batch"] = batches[0]
            entry[bname] = per
            log(f"[bench]   {bname} {b['array']['rows']}x{b['array']['cols']}x{b['array']['word']} @ "
                f"{b['fmax_mhz']} MHz ({SOURCE_LABEL[per['cycles_source']]}): " + ", ".join(
                    f"batch {n}: {per['batch'][str(n)]['cycles_per_image']:.0f} cycles/img, "
                    f"{per['batch'][str(n)]['fpga_s_per_image'] * 1e3:.3f} ms/img, util "
                    f"{100 * per['batch'][str(n)]['utilisation']:.1f}%, FPGA/packed "
                    f"{per['batch'][str(n)]['ratio_fpga_over_packed']:.3g}" for n in batches))
        result["networks"][net_name] = entry
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    write_text_atomic(out_dir / "bench.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out_dir / "bench.md", render_markdown(result))
    if plots:
        result["plots"] = make_plots(result, out_dir)
        write_text_atomic(out_dir / "bench.json", json.dumps(result, indent=2) + "\n")
    return result


def _simulated(per: dict, error_key: str, what: str, run, log):
    """``run()``, or None when that simulation cannot run (the network does not fit the build, the
    build failed): the reason goes into ``per[error_key]`` and the log. A result that differs from
    intref (AssertionError) is raised."""
    try:
        return run()
    except Exception as exc:
        per[error_key] = f"{type(exc).__name__}: {exc}"[:500]
        log(f"[bench]   {what} not used: {per[error_key]}")
        if isinstance(exc, AssertionError):
            raise
        return None


def _fmt_s(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def boards_table(boards: dict) -> list:
    """Markdown lines: one row per board (design, array, fmax vs target, resources), then the
    engine-only fallback notes."""
    from binaccel.hw.sweep import bitstream_clock_mhz, closure_cell

    lines = ["| board | synthesized design | array | fmax MHz (target, met) | timing-met bitstream | LUT | FF | BRAM | DSP |",
             "|---|---|---|---|---|---:|---:|---:|---:|"]
    for name, b in boards.items():
        a = b["array"]
        met = b.get("met", (b.get("fmax_mhz") or 0) >= (b.get("target_mhz") or float("inf")))
        lines.append(f"| {name} | {b.get('design') or '-'} | {a['rows']}x{a['cols']}x{a['word']} | {b['fmax_mhz']} "
                     f"({b.get('target_mhz')}, {'yes' if met else 'no'}) | {closure_cell(b)} | "
                     f"{b['luts']}/{b['luts_total']} | {b['ffs']} | {b['brams']} | {b.get('dsps')}/{b.get('dsps_total')} |")
    for name, b in boards.items():
        if b.get("fallback"):
            lines.append(f"\n*{name}*: {b['fallback']}.")
        clk = bitstream_clock_mhz(b)
        if clk and b.get("fmax_mhz") and clk < b["fmax_mhz"]:
            lines.append(f"\n*{name}*: the times per image below are at the build's fmax, {b['fmax_mhz']} MHz; "
                         f"the bitstream that meets timing runs at {clk:g} MHz, so on the board each takes "
                         f"{b['fmax_mhz'] / clk:.3g}x as long (`fpga_bitstream_s_per_image` in bench.json).")
        note = stale_note(name, b)
        if note:
            lines.append(f"\n*{name}*: {note}.")
    return lines


def render_markdown(result: dict) -> str:
    lines = ["# binaccel bench: FPGA vs CPU", "",
             f"- cycles: {result['cycles_source']} (per row: `sim` = accelerator simulation, `engine sim` = "
             f"simulation of the board's engine build, `model` = engine cycle model)",
             f"- CPU: {result['machine']['processor']}, {result['machine']['cpus']} cores, torch "
             f"{result['machine']['torch']} ({result['machine']['torch_threads']} threads), numpy "
             f"{result['machine']['numpy']}; load average at start {result['machine']['loadavg_start'][0]:.1f}; "
             f"median of {result['timing']['reps']} after {result['timing']['warmup']} warm-up calls", "",
             "## Boards", ""] + boards_table(result["boards"])
    batches = result["timing"]["batches"]
    lines += ["", "## Time per image", "",
              "FPGA/CPU < 1 means the FPGA engine is faster. CPU columns: float PyTorch of the same shapes, "
              "Brevitas, bit-packed numpy XNOR-popcount.", "",
              "| network | board | batch | cycles/img | source | util % | FPGA | CPU torch | CPU Brevitas | CPU packed | "
              "FPGA/torch | FPGA/packed | build has the widths |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for net, e in result["networks"].items():
        if "skipped" in e:
            lines.append(f"| {net} | - | - | skipped: {e['skipped']} | | | | | | | | | |")
            continue
        for bname in result["boards"]:
            if bname not in e:
                continue
            for n in batches:
                r = e[bname]["batch"][str(n)]
                src = SOURCE_LABEL.get(e[bname]["cycles_source"], "model")
                lines.append(
                    f"| {net} | {bname} | {n} | {r['cycles_per_image']:.0f} | {src} | {100 * r['utilisation']:.1f} | "
                    f"{_fmt_s(r['fpga_s_per_image'])} | {_fmt_s(r['cpu_torch_s_per_image'])} | "
                    f"{_fmt_s(r['cpu_brevitas_s_per_image'])} | {_fmt_s(r['cpu_packed_s_per_image'])} | "
                    f"{r['ratio_fpga_over_torch']:.3g} | {r['ratio_fpga_over_packed']:.3g} | "
                    f"{'yes' if e[bname]['build_supports'] else 'no'} |")
    lines += ["", "## Cuts (paper-scale networks)", ""]
    for net, e in result["networks"].items():
        if e.get("cuts"):
            lines.append(f"**{net}** ({e.get('paper')}):")
            lines += [f"- {c}" for c in e["cuts"]]
            lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def make_plots(result: dict, out_dir) -> list:
    """Per-layer cycles vs ideal (one PNG per board, batch 1) and FPGA speedup per network and board."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    files = []
    nets = {k: v for k, v in result["networks"].items() if "skipped" not in v}
    b0 = str(result["timing"]["batches"][0])
    for bname in result["boards"]:
        fig, axes = plt.subplots(len(nets), 1, figsize=(10, 2.6 * len(nets)), squeeze=False)
        for ax, (net, e) in zip(axes[:, 0], nets.items()):
            layers = e[bname]["batch"][b0]["layers"]
            x = np.arange(len(layers))
            ax.bar(x - 0.2, [l["cycles"] for l in layers], 0.4, label="cycles")
            ax.bar(x + 0.2, [l["ideal_cycles"] for l in layers], 0.4, label="ideal")
            ax.set_xticks(x, [l["layer"] for l in layers], rotation=60, fontsize=7)
            ax.set_yscale("log")
            ax.set_title(f"{net} on {bname} (batch {b0}, utilisation {100 * e[bname]['batch'][b0]['utilisation']:.1f}%)",
                         fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"layers_{bname}.png"
        _save_fig(fig, path)
        plt.close(fig)
        files.append(str(path))
    fig, axes = plt.subplots(1, len(result["timing"]["batches"]), figsize=(12, 4.5), squeeze=False)
    for ax, n in zip(axes[0], result["timing"]["batches"]):
        names = list(nets)
        x = np.arange(len(names))
        boards = list(result["boards"])
        width = 0.8 / max(2 * len(boards), 1)
        i = 0
        for bname in boards:
            for key, label in (("ratio_fpga_over_torch", "torch"), ("ratio_fpga_over_packed", "packed")):
                vals = [1.0 / nets[m][bname]["batch"][str(n)][key] for m in names]
                ax.bar(x - 0.4 + (i + 0.5) * width, vals, width, label=f"{bname} vs CPU {label}")
                i += 1
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_ylabel("speedup = CPU time / FPGA time")
        ax.set_title(f"batch {n}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "speedup.png"
    _save_fig(fig, path)
    plt.close(fig)
    files.append(str(path))
    return files


def _save_fig(fig, path):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
