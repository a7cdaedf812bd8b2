"""The bench's CPU side: the bit-packed numpy path and the timings of the CPU baselines.

Measured in the same run on this machine (median of repetitions after warm-up): a float PyTorch
model of the same shapes (:func:`binaccel.sw.netzoo.torch_model`), the same float model exported
with ``torch.onnx.export`` and run by onnxruntime (one intra-op thread, and all of the machine's
threads), the Brevitas model (the trained checkpoint for MNIST; Brevitas binary layers of the same
shapes for the paper-scale networks), and :class:`PackedNet`, a bit-packed XNOR/AND-popcount numpy
path (64-bit words, ``np.bitwise_count``) checked bit-exact against :mod:`binaccel.sw.intref`.

The fastest of the deployable runtimes (:data:`DEPLOYABLE`: torch float, onnxruntime with one and
with all threads, the packed path; Brevitas is a training framework) is each batch's ``best``.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch

from binaccel.sw import intref, netzoo
from binaccel.sw.atomic import write_bytes_atomic
from binaccel.sw.intmodel import IntModel, Layer

__all__ = ["PackedNet", "time_call", "cpu_timings", "check_packed", "export_onnx", "ort_session",
           "check_onnx", "DEPLOYABLE", "ONNX_RTOL", "runtime_name"]

#: The timings (keys of a :func:`cpu_timings` batch entry) a user would deploy on a CPU: the
#: candidates for the batch's ``best``.
DEPLOYABLE = ("torch_float", "onnxruntime_t1", "onnxruntime_tall", "packed")

#: Tolerance of the onnxruntime output against torch's float output (relative to the largest
#: torch logit): a check of the export, not a bit-exactness claim.
ONNX_RTOL = 1e-4


def runtime_name(key: str, entry: dict) -> str:
    """The runtime a timing key names in reports: ``torch``, ``packed``, ``brevitas``,
    ``onnxruntime-t1``, ``onnxruntime-t<N>`` (N = the timing's threads)."""
    if key.startswith("onnxruntime_"):
        return f"onnxruntime-t{entry[key]['threads']}"
    return {"torch_float": "torch"}.get(key, key)


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


def export_onnx(float_net, example: torch.Tensor, path) -> str:
    """Export the float torch model to ONNX at ``path`` (written atomically) with a dynamic batch
    axis (input ``x``, output ``y``; ``example``: an input batch of at least 2 images). Returns the path."""
    if example.shape[0] < 2:
        raise ValueError(f"example: expected a batch of at least 2 images (a dynamic batch axis), "
                         f"got {example.shape[0]}")
    float_net.eval()
    with warnings.catch_warnings():   # torch.export's own deprecation notices, not about this model
        warnings.simplefilter("ignore", FutureWarning)
        prog = torch.onnx.export(float_net, (example,), dynamo=True, input_names=["x"], output_names=["y"],
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    write_bytes_atomic(path, prog.model_proto.SerializeToString())
    return str(path)


def ort_session(path, threads: int):
    """An onnxruntime CPU session of the model at ``path`` with ``threads`` intra-op threads
    (sequential execution, one inter-op thread, all graph optimisations)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a positive int, got {threads!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def check_onnx(session, float_net, x: torch.Tensor) -> dict:
    """onnxruntime's output against torch's float output on ``x``: ``{"max_abs_diff", "max_abs",
    "rtol", "ok"}`` (ok: every difference at most :data:`ONNX_RTOL` times the largest torch output)."""
    with torch.no_grad():
        want = float_net(x).numpy()
    got = session.run(None, {"x": np.ascontiguousarray(x.numpy())})[0]
    diff = float(np.abs(got.astype(np.float64) - want).max()) if got.shape == want.shape else float("inf")
    scale = float(np.abs(want).max())
    return {"max_abs_diff": diff, "max_abs": scale, "rtol": ONNX_RTOL,
            "ok": bool(diff <= ONNX_RTOL * max(scale, 1e-6))}


def cpu_timings(model: IntModel, *, brevitas_model=None, images, batches, warmup, reps, log, onnx_path=None,
                ort_threads=None):
    """Per batch size ``n`` of ``batches``: the median time per image of the float torch model, the
    Brevitas model, :class:`PackedNet` and, with ``onnx_path`` (where the float model's ONNX export
    goes), onnxruntime with 1 and with ``ort_threads`` intra-op threads (default ``os.cpu_count()``),
    on the first ``n`` of ``images`` (repeated when fewer). Each batch entry has ``best``: the
    fastest of :data:`DEPLOYABLE` (``{"key", "runtime", "s_per_image"}``). With ``onnx_path`` the
    result's ``"onnx"`` holds the export's path and :func:`check_onnx` of the largest batch
    (AssertionError when it fails)."""
    out = {}
    c = model.input_shape[0] * model.input_repeat
    float_net = netzoo.torch_model(model, kind="float")
    float_net.eval()
    brev_net = brevitas_model if brevitas_model is not None else netzoo.torch_model(model, kind="brevitas")
    packed = PackedNet(model)
    all_threads = int(ort_threads if ort_threads is not None else (os.cpu_count() or 1))
    inputs = {}
    for n in batches:
        imgs = images[:n]
        if len(imgs) < n:
            imgs = np.resize(images, (n, *images.shape[1:]))
        xf = torch.as_tensor(imgs, dtype=torch.float32) / 255.0
        if xf.dim() == 3:
            xf = xf[:, None]
        x_rep = xf.repeat_interleave(model.input_repeat, dim=1) if model.input_repeat > 1 else xf
        assert x_rep.shape[1] == c
        inputs[n] = (imgs, x_rep)
    sessions = {}
    if onnx_path is not None:
        example = inputs[max(batches)][1]
        if example.shape[0] < 2:
            example = example.repeat(2, *([1] * (example.dim() - 1)))
        export_onnx(float_net, example, onnx_path)
        sessions["onnxruntime_t1"] = (1, ort_session(onnx_path, 1))
        sessions["onnxruntime_tall"] = ((all_threads, ort_session(onnx_path, all_threads)) if all_threads > 1
                                        else sessions["onnxruntime_t1"])
        check = check_onnx(sessions["onnxruntime_t1"][1], float_net, example)
        out["onnx"] = {"path": str(onnx_path), "check": check}
        if not check["ok"]:
            raise AssertionError(f"{onnx_path}: onnxruntime output differs from torch's float output by "
                                 f"{check['max_abs_diff']:.3g} (largest output {check['max_abs']:.3g}, "
                                 f"tolerance {ONNX_RTOL:g} of it)")
    for n in batches:
        imgs, x_rep = inputs[n]
        if brevitas_model is not None and hasattr(brevitas_model, "prepare_input"):
            xb = brevitas_model.prepare_input(torch.as_tensor(imgs))
        else:
            xb = x_rep
        x_np = np.ascontiguousarray(x_rep.numpy())

        def run_float():
            with torch.no_grad():
                float_net(x_rep)

        def run_brev():
            with torch.no_grad():
                brev_net(xb)

        runs = [("torch_float", run_float), ("brevitas", run_brev), ("packed", lambda: packed.predict(imgs))]
        for key, (threads, sess) in sessions.items():
            runs.append((key, lambda sess=sess: sess.run(None, {"x": x_np})))
        entry = {}
        for key, fn in runs:
            t = time_call(fn, warmup=warmup, reps=reps)
            entry[key] = {**t, "s_per_image": t["median_s"] / n}
            if key in sessions:
                entry[key]["threads"] = sessions[key][0]
        best = min((k for k in DEPLOYABLE if k in entry), key=lambda k: entry[k]["s_per_image"])
        entry["best"] = {"key": best, "runtime": runtime_name(best, entry), "s_per_image": entry[best]["s_per_image"]}
        out[str(n)] = entry
        ort_text = "".join(f", {runtime_name(k, entry)} {entry[k]['s_per_image'] * 1e3:8.3f} ms/img"
                           for k in sessions)
        log(f"[bench]   CPU batch {n:3d}: torch float {entry['torch_float']['s_per_image'] * 1e3:8.3f} ms/img, "
            f"brevitas {entry['brevitas']['s_per_image'] * 1e3:8.3f} ms/img, "
            f"packed numpy {entry['packed']['s_per_image'] * 1e3:8.3f} ms/img{ort_text}; "
            f"fastest: {entry['best']['runtime']}")
    return out


def check_packed(model, images):
    """PackedNet against intref on a few images: every layer's whole tensor."""
    ref = intref.run_model(model, images)
    got = PackedNet(model).run(images)
    return all(np.array_equal(a, b) for a, b in zip(ref, got))
