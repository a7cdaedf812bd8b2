"""Compiler of an :class:`~binaccel.sw.intmodel.IntModel` for the pipelined accelerator
(:class:`binaccel.hw.dp.accel.DpAccelerator`), and a numpy execution of the compiled program.

Feature maps
    A map of ``C`` channels, ``H x W`` pixels and ``B`` bit planes is stored in 16-bit slots:
    channel ``c`` of pixel ``(y, x)`` in plane ``b`` is bit ``c % 16`` of the slot at
    ``base + b*H*W*K + (y*W + x)*K + c // 16``, ``K = ceil(C / 16)``. Layer ``i`` reads bank
    ``i % 2`` and writes bank ``(i + 1) % 2``, each map at slot 0.

The image
    The first layer runs on the first-layer unit: the image is zero-padded (``padding`` rows and
    columns on every side, then to even sizes) and sent as tile words, four pixels each, tile row
    major, then channel, then tile column: word ``(ty, c, tx)`` holds pixels
    ``(2ty + dy, 2tx + dx)`` of channel ``c`` in byte ``2*dy + dx`` (:func:`image_words`).

Layers
    The first-layer unit runs a first layer of 8-bit pixels (binary weights, 3x3, stride 1). The
    array runs binary-weight convolutions (kernel 1 or 3, stride 1 or 2, padding 0 or 1, binary or
    multi-bit inputs) and FC layers; a pooled layer runs in 2x2 quads (a 4-column build). Each
    layer's output channels go in group tiles of 16, one lane each; a lane turns a value into a
    sign bit, a requantized value or a logit.

:func:`compile_model` returns a :class:`DpProgram`: the setup words (WRITE commands), the RUN
words of an image, and the expected reply length. :func:`execute` runs the program with the unit
references of :mod:`binaccel.sw.dpref`, the check of the compiler against :mod:`binaccel.sw.intref`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import dpref
from .hwif import IO_WIDTH, Op
from .hwif import dp as dpif
from .hwif.dp import SLOT, DpParams, DpTarget, LaneKind, WinMode
from .intmodel import IntModel, Layer

__all__ = ["DpFitError", "MapLayout", "LayerCode", "DpProgram", "compile_model", "plain_equivalent", "tile_grid", "tile_words",
           "image_words", "execute"]

ROWS = 16


class DpFitError(ValueError):
    """The network does not fit the pipelined accelerator build (names the layer and the limit)."""


def _err(layer: Layer, what: str) -> DpFitError:
    return DpFitError(f"layer {layer.name!r}: {what}")


@dataclass(frozen=True)
class MapLayout:
    """Where a feature map lies in its bank (see the module docstring)."""

    h: int
    w: int
    channels: int
    planes: int
    base: int = 0

    @property
    def chunks(self) -> int:
        return -(-self.channels // SLOT)

    @property
    def plane_size(self) -> int:
        return self.h * self.w * self.chunks

    @property
    def slots(self) -> int:
        return self.planes * self.plane_size

    def slot(self, b: int, y: int, x: int, chunk: int) -> int:
        return self.base + b * self.plane_size + (y * self.w + x) * self.chunks + chunk

    def pack(self, values: np.ndarray) -> dict:
        """``(C, H, W)`` values -> ``{slot address: 16-bit word}``."""
        v = np.asarray(values, dtype=np.int64)
        out = {}
        for b in range(self.planes):
            bits = (v >> b) & 1
            for k in range(self.chunks):
                part = bits[16 * k:16 * (k + 1)]
                words = (part * (1 << np.arange(part.shape[0]))[:, None, None]).sum(axis=0)
                for y in range(self.h):
                    for x in range(self.w):
                        out[self.slot(b, y, x, k)] = int(words[y, x])
        return out

    def unpack(self, fm) -> np.ndarray:
        """The ``(C, H, W)`` values of the map from a slot memory ``fm`` (indexable by address)."""
        out = np.zeros((self.channels, self.h, self.w), dtype=np.int64)
        for b in range(self.planes):
            for k in range(self.chunks):
                for y in range(self.h):
                    for x in range(self.w):
                        word = int(fm[self.slot(b, y, x, k)])
                        for j in range(min(16, self.channels - 16 * k)):
                            out[16 * k + j, y, x] |= ((word >> j) & 1) << b
        return out


@dataclass
class LayerCode:
    """One compiled layer: its descriptor values and its buffer contents."""

    layer: Layer
    unit: str                   # "first" or "array"
    desc: dict
    in_map: MapLayout | None
    out_map: MapLayout | None   # None for logits
    weights: list = field(default_factory=list)   # entries (ints of rows*32 bits) from w_base
    table: list = field(default_factory=list)     # offset-table entries from tbl_base
    params: list = field(default_factory=list)    # lane parameter dicts from prm_base
    w_base: int = 0
    tbl_base: int = 0
    prm_base: int = 0
    ideal_cycles: float = 0.0


@dataclass
class DpProgram:
    """A model compiled for one build."""

    params: DpParams
    model: IntModel
    layers: list
    setup: list                 # the WRITE commands (32-bit words)
    pad: int                    # image padding of the first layer
    usage: dict

    @property
    def logit_words(self) -> int:
        return -(-self.params.y_width // IO_WIDTH)

    def run_words(self, image: np.ndarray, *, stats: bool = True) -> list:
        """The RUN command of one ``uint8`` image ``(C, H, W)``."""
        words = image_words(self.model, image, pad=self.pad)
        head = Op.RUN | (int(stats) << 4) | (len(words) << 8)
        return [head, len(self.layers)] + words

    def reply_words(self, *, stats: bool = True) -> int:
        """Words the RUN of one image sends back: the dumped maps, the logits, then (``stats``)
        the cycles of each layer and of the image."""
        dumps = sum(c.desc["dump_words"] for c in self.layers if c.desc["dump"])
        n = self.model.layers[-1].out_ch * self.logit_words
        return dumps + n + (len(self.layers) + 1 if stats else 0)

    def parse_reply(self, words) -> dict:
        """A RUN's reply words -> ``{"maps": {layer index: (C, H, W) values of each dumped map},
        "logits": (classes,), "layer_cycles": [...], "cycles": image cycles or None}``."""
        words = [int(w) & 0xFFFFFFFF for w in words]
        at, maps = 0, {}
        for i, c in enumerate(self.layers):
            if c.desc["dump"]:
                k = c.desc["dump_words"]
                slots = []
                for w in words[at:at + k]:
                    slots += [w & 0xFFFF, w >> 16]
                maps[i] = c.out_map.unpack(slots)
                at += k
        lw = self.logit_words
        n = self.model.layers[-1].out_ch
        logits = []
        for i in range(n):
            v = 0
            for j in range(lw):
                v |= words[at + i * lw + j] << (32 * j)
            if v >> (32 * lw - 1):
                v -= 1 << (32 * lw)
            logits.append(v)
        rest = words[at + n * lw:]
        return {"maps": maps, "logits": np.asarray(logits, dtype=np.int64), "layer_cycles": rest[:-1],
                "cycles": rest[-1] if rest else None}


def _write(target: int, addr: int, entries, width: int) -> list:
    n = -(-width // 32)
    words = [Op.WRITE | (target << 4) | (len(entries) << 8), addr]
    for e in entries:
        e = int(e)
        words += [(e >> (32 * j)) & 0xFFFFFFFF for j in range(n)]
    return words


def tile_grid(h: int, w: int, pad: int) -> tuple:
    """(tile rows, tile columns) of an ``h x w`` image zero-padded by ``pad`` on every side, then
    to even sizes."""
    hp, wp = h + 2 * pad, w + 2 * pad
    return (hp + hp % 2) // 2, (wp + wp % 2) // 2


def tile_words(x: np.ndarray, pad: int) -> np.ndarray:
    """``(C, H, W)`` pixels -> the tile words ``(C, tile rows, tile columns)`` of the padded image:
    word ``(c, ty, tx)`` holds pixels ``(2ty + dy, 2tx + dx)`` in byte ``2*dy + dx``."""
    c, h, w = x.shape
    th, tw = tile_grid(h, w, pad)
    p = np.zeros((c, 2 * th, 2 * tw), dtype=np.int64)
    p[:, pad:pad + h, pad:pad + w] = x
    t = p.reshape(c, th, 2, tw, 2)
    return t[:, :, 0, :, 0] | (t[:, :, 0, :, 1] << 8) | (t[:, :, 1, :, 0] << 16) | (t[:, :, 1, :, 1] << 24)


def image_words(model: IntModel, image: np.ndarray, *, pad: int) -> list:
    """The tile words of one ``uint8`` image (module docstring)."""
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[None]
    if tuple(x.shape) != tuple(model.input_shape):
        raise ValueError(f"model {model.name}: expected an image of shape {tuple(model.input_shape)}, "
                         f"got {tuple(x.shape)}")
    # tile row major, then channel: the rows of every channel arrive together
    return [int(v) for v in tile_words(x, pad).transpose(1, 0, 2).reshape(-1)]


def _clamp(v: int, width: int) -> int:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return max(lo, min(hi, int(v)))


def _lane_params(layer: Layer, p: DpParams, off: np.ndarray, groups: int) -> list:
    """Per (group, row): the lane parameters (``z = (v - off) * mul + add``; a sign layer's
    threshold as ``mul = +-1``); rows past the layer's channels put out 0."""
    out = []
    lo = -(1 << (p.add_bits - 1))
    for g in range(groups):
        for r in range(ROWS):
            o = g * ROWS + r
            if o >= layer.out_ch:
                out.append({"noff": 0, "mul": 0, "add": lo if layer.out_kind == "sign" else 0})
                continue
            prm = {"noff": -int(off[o])}
            if layer.out_kind == "sign":
                t = _clamp(layer.thresh[o], p.add_bits - 1)
                prm.update({"mul": -1, "add": t} if layer.flip[o] else {"mul": 1, "add": -t})
            else:
                prm.update({"mul": int(layer.mul[o]), "add": int(layer.add[o])})
            out.append(prm)
    return out


def _out_map(layer: Layer, planes_next: int) -> MapLayout:
    h, w = (layer.out_h, layer.out_w)
    return MapLayout(h=h, w=w, channels=layer.out_ch, planes=planes_next)


def _wb(layer: Layer, p: DpParams, out: MapLayout | None, *, tiles, outs, dx, dy, out_off, linear, last_cols):
    groups = -(-layer.out_ch // ROWS)
    last_tx, last_ty = tiles
    return {
        "logits": int(out is None), "planes_last": (out.planes - 1) if out else 0,
        "plane_size": out.plane_size if out else 0, "last_out": outs - 1,
        "out_off": list(out_off) + [0] * (p.cols - len(out_off)), "linear": int(linear), "last_cols": last_cols,
        "last_tx": last_tx, "last_ty": last_ty, "last_gt": groups - 1,
        "base": out.base if out else 0, "dx": dx, "dy": dy,
        "rows_last": (layer.out_ch - 1) % ROWS,
    }


def _zero_win(p: DpParams) -> dict:
    return {"mode": 0, "binary": 0, "planes_last": 0, "plane_size": 0, "addr0": 0, "iy0": 0, "ix0": 0, "hin": 0,
            "win": 0, "dx_addr": 0, "dy_addr": 0, "dx_pix": 0, "dy_pix": 0, "last_tx": 0, "last_ty": 0,
            "last_gt": 0, "last_cols": 0, "last_step": 0, "spacing": 0, "tbl_base": 0, "w_base": 0,
            "w_stride": 0, "col_off": [0] * p.cols, "col_dy": [0] * p.cols, "col_dx": [0] * p.cols,
            "col_lim": [0] * p.cols}


def _zero_flu() -> dict:
    return {"pool": 0, "spacing": 0, "last_qx": 0, "last_qy": 0, "last_ch": 0, "last_gt": 0, "img_base": 0,
            "tile_row": 0, "ch_size": 0, "w_base": 0, "w_stride": 0, "need_off": 0}


def _lane_cfg(layer: Layer, p: DpParams, *, alpha: int, sum_cols: int, pool: int) -> dict:
    kind = {"sign": LaneKind.SIGN, "requant": LaneKind.REQUANT, "logits": LaneKind.LOGITS}[layer.out_kind]
    shift = int(layer.shift) if layer.out_kind != "sign" else 0
    out_bits = int(layer.out_bits) if layer.out_kind == "requant" else 1
    return {"kind": int(kind), "alpha": alpha, "sum_cols": sum_cols, "pool": pool, "shift": shift,
            "out_bits": out_bits, **dpif.lane_masks(shift=shift, out_bits=out_bits, z_width=p.z_width)}


def _first_layer(layer: Layer, p: DpParams, out: MapLayout | None, model: IntModel) -> LayerCode:
    if layer.mode != "plain":
        raise _err(layer, f"mode {layer.mode!r}: the pipelined accelerator runs plain layers only (MCN modulation "
                          "is not in this build)")
    if layer.kind != "conv" or layer.w_bits != 1:
        raise _err(layer, "the first-layer unit runs binary-weight convolutions")
    if layer.kernel != 3 or layer.stride != 1 or layer.padding not in (0, 1) or layer.in_bits != 8:
        raise _err(layer, f"the first-layer unit needs kernel 3, stride 1, padding 0 or 1 and 8-bit pixels; got "
                          f"kernel {layer.kernel}, stride {layer.stride}, padding {layer.padding}, "
                          f"{layer.in_bits}-bit inputs")
    rep_k = model.input_repeat
    if rep_k != 1 and layer.in_ch != rep_k:
        raise _err(layer, f"{layer.in_ch // rep_k} image channels each repeated {rep_k} times: the first-layer "
                          "unit repeats the channel of a one-channel image only")
    if layer.in_ch > p.flu_max_ch:
        raise _err(layer, f"{layer.in_ch} input channels: the first-layer unit of this build takes at most "
                          f"{p.flu_max_ch} (flu_max_ch)")
    pool = layer.pool == 2
    if not pool and (layer.conv_h % 2 or layer.conv_w % 2):
        raise _err(layer, f"an unpooled first layer needs an even output size, got {layer.conv_h}x{layer.conv_w}")
    groups = -(-layer.out_ch // ROWS)
    qh, qw = layer.conv_h // 2, layer.conv_w // 2
    _, tr = tile_grid(layer.in_h, layer.in_w, layer.padding)   # tile words per tile row and channel
    # (a repeated image channel is read once per repeat: no stride between the repeats)
    img_ch = layer.in_ch // rep_k
    ch_size, tile_row = (tr if rep_k == 1 else 0), img_ch * tr
    wts = np.asarray(layer.weights) > 0              # (O, C, 3, 3)
    entries = []
    for g in range(groups):
        for c in range(layer.in_ch):
            e = 0
            for r in range(ROWS):
                o = g * ROWS + r
                if o < layer.out_ch:
                    e |= int(wts[o, c].reshape(-1) @ (1 << np.arange(9))) << (9 * r)
                    if c == 0:
                        down = layer.flip[o] if layer.out_kind == "sign" else (
                            layer.mul[o] < 0 if layer.out_kind == "requant" else 0)
                        e |= int(bool(down)) << (9 * ROWS + r)
            entries.append(e)
    off = 255 * (~wts).reshape(layer.out_ch, -1).sum(axis=1)
    params = _lane_params(layer, p, off, groups)
    n_out = 1 if pool else 4
    planes = out.planes if out else 1
    K = out.chunks if out else 1
    if pool:
        wb = _wb(layer, p, out, tiles=(qw - 1, qh - 1), outs=1, dx=K, dy=(out.w * K if out else 0), out_off=[0],
                 linear=0, last_cols=p.cols)
    else:
        wb = _wb(layer, p, out, tiles=(qw - 1, qh - 1), outs=4, dx=2 * K, dy=2 * out.w * K,
                 out_off=[0, K, out.w * K, out.w * K + K], linear=0, last_cols=p.cols)
    if not pool and p.cols < 4:
        raise _err(layer, f"an unpooled first layer needs a build with 4 or more columns, this one has {p.cols}")
    flu = {"pool": int(pool), "spacing": max(1 if pool else 4, n_out * planes), "last_qx": qw - 1,
           "last_qy": qh - 1, "last_ch": layer.in_ch - 1, "last_gt": groups - 1, "img_base": 0,
           "tile_row": tile_row, "ch_size": ch_size, "w_base": 0, "w_stride": layer.in_ch,
           "need_off": (img_ch - 1) * ch_size + tile_row + 1}
    desc = {"first": 1, "win": _zero_win(p), "flu": flu, "lane": _lane_cfg(layer, p, alpha=0, sum_cols=0, pool=0),
            "wb": wb}
    code = LayerCode(layer=layer, unit="first", desc=desc, in_map=None, out_map=out, weights=entries, params=params)
    # the unit's peak: 16 rows x flu_positions positions x 9 taps of 8-bit products per cycle
    code.ideal_cycles = layer.binary_macs / (ROWS * p.flu_positions * 9)
    return code


def _array_layer(layer: Layer, p: DpParams, inp: MapLayout, out: MapLayout | None) -> LayerCode:
    if layer.mode != "plain":
        raise _err(layer, f"mode {layer.mode!r}: the pipelined accelerator runs plain layers only (MCN modulation "
                          "is not in this build)")
    if layer.w_bits != 1:
        raise _err(layer, f"w_bits {layer.w_bits}: the array needs binary weights")
    C, K = p.cols, inp.chunks
    B = layer.in_bits
    if inp.planes != B or inp.channels != layer.in_ch:
        raise _err(layer, f"input map of {inp.channels} channels x {inp.planes} planes, the layer expects "
                          f"{layer.in_ch} x {B}")
    groups = -(-layer.out_ch // ROWS)
    wbits = np.asarray(layer.weights) > 0
    planes = out.planes if out else 1
    if layer.kind == "fc":
        S = inp.h * inp.w * K
        steps = -(-S // 2)
        slots = []
        for i in range(2 * steps):
            if i < S:
                k = i % K
                slots.append({"off": i, "ky": 0, "kx": 0, "nbits": min(16, inp.channels - 16 * k), "used": 1})
            else:
                slots.append({"off": 0, "ky": 0, "kx": 0, "nbits": 0, "used": 0})
        table = [[slots[2 * j], slots[2 * j + 1]] for j in range(steps)]
        # slot i = (y*W + x)*K + k holds channels 16k..16k+15 of pixel (y, x); FC index c*H*W + y*W + x
        hw = inp.h * inp.w
        fanin_of = []
        for i in range(2 * steps):
            idx = []
            if i < S:
                pix, k = divmod(i, K)
                for j in range(16):
                    c = 16 * k + j
                    idx.append(c * hw + pix if c < inp.channels else -1)
            else:
                idx = [-1] * 16
            fanin_of.append(idx)
        wmat = wbits.reshape(layer.out_ch, -1)
        win = {**_zero_win(p), "mode": int(WinMode.FC), "binary": int(B == 1), "planes_last": B - 1,
               "plane_size": inp.plane_size, "addr0": inp.base + (B - 1) * inp.plane_size, "hin": 1, "win": 1,
               "last_gt": groups - 1, "last_cols": C, "last_step": steps - 1,
               "spacing": max(C, planes, ROWS if out is None else 1), "w_stride": steps,
               "col_lim": [min(S, 2 * steps)] + [0] * (C - 1)}
        lane = _lane_cfg(layer, p, alpha=int(B == 1), sum_cols=1, pool=0)
        wb = _wb(layer, p, out, tiles=(0, 0), outs=1, dx=0, dy=0, out_off=[0], linear=0, last_cols=C)

        def weight_bit(o, i, j):
            f = fanin_of[i][j]
            return 1 if f < 0 else int(wmat[o, f])
        n_total = inp.channels * hw
        ideal = layer.binary_macs * B / (ROWS * C * p.word)
    else:
        k, s, pad = layer.kernel, layer.stride, layer.padding
        if k not in (1, 3) or s not in (1, 2) or pad not in (0, 1):
            raise _err(layer, f"the array runs kernels 1 and 3, strides 1 and 2, padding 0 and 1; got kernel {k}, "
                              f"stride {s}, padding {pad}")
        order = [(ky, kx, ch) for ky in range(k) for kx in range(k) for ch in range(K)]
        steps = -(-len(order) // 2)
        slots = []
        for i in range(2 * steps):
            if i < len(order):
                ky, kx, ch = order[i]
                slots.append({"off": (ky * inp.w + kx) * K + ch, "ky": ky, "kx": kx,
                              "nbits": min(16, inp.channels - 16 * ch), "used": 1})
            else:
                slots.append({"off": 0, "ky": 0, "kx": 0, "nbits": 0, "used": 0})
        table = [[slots[2 * j], slots[2 * j + 1]] for j in range(steps)]
        pool = layer.pool == 2
        addr0 = (inp.base + (B - 1) * inp.plane_size + (-pad * inp.w - pad) * K) % p.fm_depth
        win = {**_zero_win(p), "binary": int(B == 1), "planes_last": B - 1, "plane_size": inp.plane_size,
               "addr0": addr0, "iy0": -pad, "ix0": -pad, "hin": inp.h, "win": inp.w,
               "last_gt": groups - 1, "last_step": steps - 1, "w_stride": steps, "col_lim": [2 * steps] * C}
        Ko = out.chunks if out else 1
        if out is None:
            raise _err(layer, "a convolution cannot produce logits on this build (logits come from an FC layer)")
        if pool:
            if C != 4:
                raise _err(layer, f"a pooled layer runs in 2x2 quads on a 4-column build, this one has {C}")
            qh, qw = layer.conv_h // 2, layer.conv_w // 2
            col = [(c // 2, c % 2) for c in range(C)]
            win.update({"mode": int(WinMode.QUAD), "dx_pix": 2 * s, "dy_pix": 2 * s, "dx_addr": 2 * s * K,
                        "dy_addr": 2 * s * inp.w * K, "last_tx": qw - 1, "last_ty": qh - 1, "last_cols": C,
                        "spacing": max(C, planes)})
            wb = _wb(layer, p, out, tiles=(qw - 1, qh - 1), outs=1, dx=Ko, dy=out.w * Ko, out_off=[0], linear=0,
                     last_cols=C)
        else:
            tw = -(-layer.conv_w // C)
            col = [(0, c) for c in range(C)]
            last_cols = layer.conv_w - C * (tw - 1)
            win.update({"mode": int(WinMode.LINEAR), "dx_pix": C * s, "dy_pix": s, "dx_addr": C * s * K,
                        "dy_addr": s * inp.w * K, "last_tx": tw - 1, "last_ty": layer.conv_h - 1,
                        "last_cols": last_cols, "spacing": max(C, C * planes)})
            wb = _wb(layer, p, out, tiles=(tw - 1, layer.conv_h - 1), outs=C, dx=C * Ko, dy=out.w * Ko,
                     out_off=[c * Ko for c in range(C)], linear=1, last_cols=last_cols)
        win["col_off"] = [((dy * s) * inp.w + dx * s) * K for dy, dx in col]
        win["col_dy"] = [dy * s for dy, _ in col]
        win["col_dx"] = [dx * s for _, dx in col]
        lane = _lane_cfg(layer, p, alpha=int(B == 1), sum_cols=0, pool=int(pool))

        def weight_bit(o, i, j):
            if i >= len(order):
                return 1
            ky, kx, ch = order[i]
            c = 16 * ch + j
            return 1 if c >= inp.channels else int(wbits[o, c, ky, kx])
        n_total = inp.channels * k * k
        ideal = layer.binary_macs * B / (ROWS * C * p.word)
    if steps > p.max_steps:
        raise _err(layer, f"{steps} steps per bit plane, the build's max_steps is {p.max_steps}")
    entries = []
    for g in range(groups):
        for j in range(steps):
            e = 0
            for r in range(ROWS):
                o = g * ROWS + r
                word = 0
                for s_ in range(2):
                    for jj in range(16):
                        bit = weight_bit(o, 2 * j + s_, jj) if o < layer.out_ch else 0
                        word |= bit << (16 * s_ + jj)
                e |= word << (32 * r)
            entries.append(e)
    if B == 1:
        off = np.zeros(layer.out_ch, dtype=np.int64)
    else:
        wpop = wbits.reshape(layer.out_ch, -1).sum(axis=1)
        off = ((1 << B) - 1) * (n_total - wpop)
    params = _lane_params(layer, p, off, groups)
    desc = {"first": 0, "win": win, "flu": _zero_flu(), "lane": lane, "wb": wb}
    code = LayerCode(layer=layer, unit="array", desc=desc, in_map=inp, out_map=out, weights=entries, table=table,
                     params=params)
    code.ideal_cycles = ideal
    bound = ((1 << B) - 1 if B > 1 else 1) * 2 * steps * SLOT
    if bound >= 1 << p.acc_width:
        raise _err(layer, f"partials up to {bound} need more than the build's acc_width {p.acc_width} bits")
    return code


def _mcn1_as_plain(layer: Layer) -> Layer:
    """The plain layer equal to an MCNs-1 layer: output channel ``g*K + j`` is ``M[j]`` times the
    plain accumulator of weight group ``g``, so it is that group's filter with ``M[j]`` folded into
    its output function (a sign threshold divided by ``M[j]``, rounded towards the side that keeps
    the comparison; ``mul`` times ``M[j]``; for ``M[j] = 0`` a threshold beyond every accumulator,
    giving the constant)."""
    K = layer.planes
    M = np.asarray(layer.mfilter, dtype=np.int64)
    j = np.arange(layer.out_ch) % K
    m_o = M[j]
    weights = np.repeat(np.asarray(layer.weights), K, axis=0)
    new = Layer(name=layer.name, kind=layer.kind, mode="plain", in_ch=layer.in_ch, in_h=layer.in_h,
                in_w=layer.in_w, out_ch=layer.out_ch, kernel=layer.kernel, stride=layer.stride,
                padding=layer.padding, in_bits=layer.in_bits, w_bits=layer.w_bits, weights=weights,
                out_kind=layer.out_kind, shift=layer.shift, out_bits=layer.out_bits, pool=layer.pool)
    if layer.out_kind == "sign":
        t = np.asarray(layer.thresh, dtype=np.int64)
        flip = np.asarray(layer.flip, dtype=np.int64)
        big = new.acc_bound() + 1
        safe = np.maximum(m_o, 1)
        up = -((-t) // safe)            # acc >= ceil(t / M)  <=>  M * acc >= t
        down = t // safe                # acc <= floor(t / M) <=>  M * acc <= t
        const = np.where(flip == 0, 0 >= t, 0 <= t)     # M = 0: the bit is a constant
        always = np.where(flip == 0, -big, big)
        never = np.where(flip == 0, big, -big)
        new.thresh = np.where(m_o > 0, np.where(flip == 0, up, down), np.where(const, always, never))
        new.flip = flip.copy()
    else:
        new.mul = np.asarray(layer.mul, dtype=np.int64) * m_o
        new.add = np.asarray(layer.add, dtype=np.int64).copy()
    new.validate()
    return new


def plain_equivalent(model: IntModel) -> IntModel:
    """``model`` with each MCNs-1 layer replaced by its plain equivalent (:func:`_mcn1_as_plain`;
    the same outputs for every input); ``model`` itself when it has none. Full M-Filter (``mcn``)
    layers are left as they are."""
    if not any(l.mode == "mcn1" for l in model.layers):
        return model
    layers = [(_mcn1_as_plain(l) if l.mode == "mcn1" else l) for l in model.layers]
    return IntModel(name=model.name, input_shape=model.input_shape, layers=layers, classes=model.classes,
                    input_repeat=model.input_repeat, meta=model.meta)


def compile_model(model: IntModel, params: DpParams | dict | None = None, *, dump: bool = False) -> DpProgram:
    """Compile ``model`` for a build (:class:`DpParams`, a dict of them, or the defaults).
    ``dump``: every hidden layer's output map comes back with each RUN. Raises
    :class:`DpFitError` for a network the build cannot run."""
    p = params if isinstance(params, DpParams) else DpParams(**(params or {}))
    model.validate()
    given = model
    model = plain_equivalent(model)
    if len(model.layers) > p.max_layers:
        raise DpFitError(f"model {model.name!r}: {len(model.layers)} layers, the build's max_layers is {p.max_layers}")
    if model.layers[-1].out_kind != "logits" or model.layers[-1].kind != "fc":
        raise DpFitError(f"model {model.name!r}: the last layer must be an FC layer producing logits")
    codes, inp = [], None
    for i, layer in enumerate(model.layers):
        nxt = model.layers[i + 1] if i + 1 < len(model.layers) else None
        if max(layer.in_h, layer.in_w, layer.out_h, layer.out_w) > p.max_dim:
            raise _err(layer, f"maps of {max(layer.in_h, layer.in_w)} pixels, the build's max_dim is {p.max_dim}")
        out = None if layer.out_kind == "logits" else _out_map(layer, nxt.in_bits if nxt else 1)
        if out is not None and out.slots > p.fm_depth:
            raise _err(layer, f"output map of {out.slots} slots, the build's fm_depth is {p.fm_depth}")
        if i == 0:
            code = _first_layer(layer, p, out, model)
            pad = layer.padding
            th, tw = tile_grid(layer.in_h, layer.in_w, pad)
            img = (layer.in_ch // model.input_repeat) * th * tw
            if 2 * img > p.fm_depth:
                raise _err(layer, f"image of {2 * img} slots, the build's fm_depth is {p.fm_depth}")
        else:
            code = _array_layer(layer, p, inp, out)
        # (an MCNs-1 layer runs as its plain equivalent: its ideal counts the layer's own MACs)
        code.ideal_cycles *= given.layers[i].binary_macs / layer.binary_macs
        code.desc.update({"in_bank": i % 2, "out_bank": (i + 1) % 2})
        code.desc["dump"] = int(dump and out is not None)
        code.desc["dump_base"] = 0
        code.desc["dump_words"] = -(-out.slots // 2) if (dump and out is not None) else 0
        codes.append(code)
        inp = out
    # buffer placement
    w_at = t_at = p_at = 0
    for code in codes:
        code.w_base, code.tbl_base, code.prm_base = w_at, t_at, p_at
        w_at, t_at, p_at = w_at + len(code.weights), t_at + len(code.table), p_at + len(code.params) // 2
        if code.unit == "first":
            code.desc["flu"]["w_base"] = code.w_base
        else:
            code.desc["win"]["w_base"], code.desc["win"]["tbl_base"] = code.w_base, code.tbl_base
        code.desc["prm_base"] = code.prm_base
    for used, depth, what in ((w_at, p.w_depth, "w_depth"), (t_at, p.t_depth, "t_depth"),
                              (p_at, p.p_depth, "p_depth")):
        if used > depth:
            raise DpFitError(f"model {model.name!r}: needs {used} entries of the build's {what} = {depth}")
    setup = []
    dl = p.desc_layout
    desc_words = []
    for code in codes:
        v = dl.pack(code.desc, where=f"layer {code.layer.name!r}", what="descriptor field")
        desc_words += [(v >> (32 * j)) & 0xFFFFFFFF for j in range(p.desc_words)]
    # (the address and count in words: desc_words per layer)
    setup += [Op.WRITE | (DpTarget.DESC << 4) | (len(desc_words) << 8), 0] + desc_words
    wall = [e for c in codes for e in c.weights]
    setup += _write(DpTarget.WEIGHT, 0, wall, ROWS * p.word)
    tl = p.table_entry_layout
    tall = [tl.pack(e, where="offset table") for c in codes for e in c.table]
    if tall:
        setup += _write(DpTarget.TABLE, 0, tall, tl.size)
    pel = p.param_entry_layout
    pall = [pel.pack(c.params[i:i + 2], where=f"layer {c.layer.name!r} lane parameters")
            for c in codes for i in range(0, len(c.params), 2)]
    setup += _write(DpTarget.PARAM, 0, pall, pel.size)
    usage = {"w_depth": w_at, "t_depth": t_at, "p_depth": p_at, "layers": len(codes),
             "fm_depth": max([c.out_map.slots for c in codes if c.out_map] + [2 * img])}
    return DpProgram(params=p, model=model, layers=codes, setup=setup, pad=model.layers[0].padding, usage=usage)


def execute(prog: DpProgram, image: np.ndarray) -> tuple:
    """Run the compiled program on one image with the unit references: (logits, layer outputs).

    Each layer goes through :func:`~binaccel.sw.dpref.first_layer` or
    :func:`~binaccel.sw.dpref.window` and :func:`~binaccel.sw.dpref.xnor_array`, then
    :func:`~binaccel.sw.dpref.lane` per row and :func:`~binaccel.sw.dpref.writeback`, on the
    program's own buffer contents; the outputs are read back from the simulated banks."""
    p = prog.params
    C = p.cols
    depth = p.fm_depth
    banks = [np.zeros(depth, dtype=np.int64), np.zeros(depth, dtype=np.int64)]
    img = image_words(prog.model, image, pad=prog.pad)
    for i, wv in enumerate(img):
        banks[0][2 * i], banks[0][2 * i + 1] = wv & 0xFFFF, wv >> 16
    outs, logits = [], None
    for code in prog.layers:
        d = code.desc
        fm_in = banks[d["in_bank"]]
        if code.unit == "first":
            words = [int(fm_in[2 * a]) | (int(fm_in[2 * a + 1]) << 16) for a in range(depth // 2)]
            wmem = {code.w_base + j: e for j, e in enumerate(code.weights)}
            res = dpref.first_layer(d["flu"], img=words, weights=wmem, rows=ROWS)
            per_tile = 1
        else:
            table = {code.tbl_base + j: e for j, e in enumerate(code.table)}
            weights = {code.w_base + j: [(e >> (32 * r)) & 0xFFFFFFFF for r in range(ROWS)]
                       for j, e in enumerate(code.weights)}
            steps = dpref.window(d["win"], fm=fm_in, table=table, weights=weights, cols=C, aw=p.aw)
            rows = dpref.xnor_array(steps, rows=ROWS, cols=C, word=p.word, slot=SLOT)
            res = [[(a % (1 << p.acc_width), n, t) for a, n, t in row] for row in rows]
            per_tile = None
        lanes = []
        for r in range(ROWS):
            items = res[r] if per_tile is None else [(a, 0, t) for a, t in res[r]]
            lanes.append(_lane_by_group(code, items, r, C))
        n = len(lanes[0])
        outputs = [[lanes[r][k] for r in range(ROWS)] for k in range(n)]
        writes, lg = dpref.writeback(d["wb"], outputs, cols=C)
        fm_out = banks[d["out_bank"]]
        for a, wv in writes:
            fm_out[a % depth] = wv
        if code.out_map is None:
            logits = np.asarray(lg, dtype=np.int64)
            outs.append(logits.reshape(-1, 1, 1))
        else:
            outs.append(code.out_map.unpack(fm_out))
    return logits, outs


def _lane_by_group(code: LayerCode, items, r: int, cols: int) -> list:
    """Lane ``r``'s outputs with each group tile's own parameters (what the bank switching does)."""
    d = code.desc
    groups = d["wb"]["last_gt"] + 1
    per_group = len(items) // groups
    out = []
    for g in range(groups):
        prm = code.params[g * ROWS + r]
        cfg = {"kind": {int(LaneKind.SIGN): "sign", int(LaneKind.REQUANT): "requant",
                        int(LaneKind.LOGITS): "logits"}[d["lane"]["kind"]], **{k: d["lane"][k] for k in
                                                                              ("alpha", "sum_cols", "pool", "shift",
                                                                               "out_bits")}}
        chunk = [(a, n, 0) for a, n, _ in items[g * per_group:(g + 1) * per_group]]
        out += dpref.lane(chunk, cfg=cfg, banks=[prm, prm], cols=cols)
    return out
