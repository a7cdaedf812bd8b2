"""The bench's CPU side: the bit-packed numpy path and the timings of the three CPU baselines.

Measured in the same run on this machine (median of repetitions after warm-up): a float PyTorch
model of the same shapes (:func:`binaccel.sw.netzoo.torch_model`), the Brevitas model (the trained
checkpoint for MNIST; Brevitas binary layers of the same shapes for the paper-scale networks), and
:class:`PackedNet`, a bit-packed XNOR/AND-popcount numpy path (64-bit words, ``np.bitwise_count``)
checked bit-exact against :mod:`binaccel.sw.intref`.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from binaccel.sw import intref, netzoo
from binaccel.sw.intmodel import IntModel, Layer

__all__ = ["PackedNet", "time_call", "cpu_timings", "check_packed"]


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


def cpu_timings(model: IntModel, *, brevitas_model=None, images, batches, warmup, reps, log):
    """Per batch size ``n`` of ``batches``: the median time per image of the float torch model, the
    Brevitas model and :class:`PackedNet` on the first ``n`` of ``images`` (repeated when fewer)."""
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


def check_packed(model, images):
    """PackedNet against intref on a few images: every layer's whole tensor."""
    ref = intref.run_model(model, images)
    got = PackedNet(model).run(images)
    return all(np.array_equal(a, b) for a, b in zip(ref, got))
