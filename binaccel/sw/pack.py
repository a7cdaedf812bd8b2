"""Host side of the engine: fold -> pack -> (execute) -> unpack -> unfold (FINN vocabulary).

* **fold** (:func:`fold_layer`): im2col of a layer input into one fan-in vector per output position,
  ordered tap-major (``(ky, kx, c)``; an FC layer's input flattened in ``C, H, W`` order), with the
  valid-tap mask (zero padding, as PyTorch). ``mcn`` layers pad each tap's channels to whole words
  so that every word belongs to one tap (one segment per tap); ``plain``/``mcn1``/FC layers use one
  dense segment.
* **pack** (:func:`pack_layer`): turn a :class:`~binaccel.sw.intmodel.Layer` and an input tensor into
  the engine's input beats (descriptor, M-Filter columns, per-row output parameters, operand steps),
  each an ``int`` of :attr:`~binaccel.sw.hwif.EngineParams.in_layout`.
* **unpack** (:func:`unpack_outputs`): output beats (``int`` of ``out_layout``) -> the layer's values
  ``(N, out_ch, conv_h, conv_w)`` before pooling.
* **unfold** (:func:`unfold_outputs`): 2x2 max-pool on the host when ``layer.pool == 2`` -> the
  layer output ``(N, out_ch, out_h, out_w)``, equal to :func:`binaccel.sw.intref.run_layer`.

:func:`check_layer` refuses, with a ValueError naming the layer and the field, any layer the given
engine build cannot run (``w_bits != 1``, fan-in, widths, planes, taps, factors out of range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hwif import OUT_KIND, BeatKind, EngineParams
from .intmodel import Layer
from .intref import im2col, maxpool2

__all__ = [
    "mfilter_columns",
    "LayerPlan", "PackedLayer", "check_layer", "plan_layer", "fold_layer", "pack_layer",
    "unpack_outputs", "unfold_outputs", "beats_to_ints", "ints_to_bits", "field_offset",
]

def _params(params):
    if isinstance(params, EngineParams):
        return params
    if isinstance(params, dict):
        return EngineParams(**params)
    raise TypeError(f"params must be an EngineParams or a dict of its fields, got {type(params).__name__}")


def _err(layer, field, msg):
    return ValueError(f"layer {layer.name!r}: field '{field}': {msg}")


def check_layer(layer: Layer, params) -> None:
    """Raise ValueError (naming the layer and the field) unless the engine build ``params`` can run
    ``layer`` exactly; also runs ``layer.validate()``."""
    p = _params(params)
    layer.validate()
    if layer.w_bits != 1:
        raise _err(layer, "w_bits", f"the engine runs binary-weight layers only (w_bits=1), got {layer.w_bits}")
    if layer.fan_in > p.max_fan_in:
        raise _err(layer, "fan_in", f"fan-in {layer.fan_in} exceeds the build's max_fan_in={p.max_fan_in}")
    if layer.in_bits > p.max_in_bits:
        raise _err(layer, "in_bits", f"{layer.in_bits} exceeds the build's max_in_bits={p.max_in_bits}")
    if layer.mode != "plain":
        if layer.planes > p.max_planes:
            raise _err(layer, "planes", f"{layer.planes} exceeds the build's max_planes={p.max_planes}")
        if layer.m_bits > p.m_bits:
            raise _err(layer, "m_bits", f"{layer.m_bits} exceeds the build's m_bits={p.m_bits}")
    if layer.mode == "mcn" and layer.kernel ** 2 > p.max_taps:
        raise _err(layer, "kernel", f"an mcn layer needs kernel*kernel={layer.kernel ** 2} segments, "
                                    f"the build has max_taps={p.max_taps}")
    if layer.out_kind != "sign":
        for name, bits in (("mul", p.mul_bits), ("add", p.add_bits)):
            v = np.asarray(getattr(layer, name), dtype=np.int64)
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            if v.size and (v.min() < lo or v.max() > hi):
                raise _err(layer, name, f"values must fit {bits}-bit signed [{lo}, {hi}] (the build's "
                                        f"{name}_bits), got [{v.min()}, {v.max()}]")
        if layer.shift > 63:
            raise _err(layer, "shift", f"expected 0..63, got {layer.shift}")
        if layer.out_kind == "requant" and layer.out_bits > 15:
            raise _err(layer, "out_bits", f"expected at most 15, got {layer.out_bits}")


@dataclass(frozen=True)
class LayerPlan:
    """How one layer run maps onto the engine (the descriptor's fields and the tiling)."""

    n: int            # images
    positions: int    # output positions L = n * conv_h * conv_w (FC: n)
    groups: int       # weight groups G (rows of work)
    planes: int       # output channels per group (K; 1 for plain)
    n_seg: int        # segments per tile (taps for mcn, else 1)
    seg_words: int    # words per segment
    in_bits: int
    n_pt: int         # position tiles
    n_gt: int         # group tiles

    @property
    def steps_per_tile(self) -> int:
        return self.n_seg * self.seg_words * self.in_bits


def plan_layer(layer: Layer, n: int, params) -> LayerPlan:
    p = _params(params)
    check_layer(layer, p)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"layer {layer.name!r}: expected at least one input image, got n={n!r}")
    n = int(n)
    positions = n * layer.conv_h * layer.conv_w
    k2 = layer.kernel ** 2
    if layer.kind == "conv" and layer.mode == "mcn":
        n_seg, seg_words = k2, -(-layer.in_ch // p.word)
    else:
        n_seg, seg_words = 1, -(-layer.fan_in // p.word)
    planes = 1 if layer.mode == "plain" else layer.planes
    pl = LayerPlan(n=n, positions=positions, groups=layer.groups, planes=planes, n_seg=n_seg,
                   seg_words=seg_words, in_bits=layer.in_bits, n_pt=-(-positions // p.cols),
                   n_gt=-(-layer.groups // p.rows))
    limit = (1 << p.count_bits) - 1
    for name in ("n_pt", "n_gt"):
        if getattr(pl, name) > limit:
            raise _err(layer, "in_h" if name == "n_pt" else "out_ch",
                       f"{name}={getattr(pl, name)} tiles exceed the build's count_bits={p.count_bits} "
                       f"(at most {limit}); run fewer images at a time")
    return pl


def fold_layer(layer: Layer, x: np.ndarray, word: int):
    """im2col: ``(values, valid)`` of shape ``(L, n_seg * seg_words * word)`` (int64, uint8) and the
    weights' bits ``(G, same)`` (uint8, 1 = +1), fan-in tap-major, zero in every padding bit."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[0]
    if x.shape[1:] != (layer.in_ch, layer.in_h, layer.in_w):
        raise ValueError(f"layer {layer.name!r}: expected input (N, {layer.in_ch}, {layer.in_h}, {layer.in_w}), "
                         f"got {tuple(x.shape)}")
    hi = 1 if layer.in_bits == 1 else (1 << layer.in_bits) - 1
    if x.size and (x.min() < 0 or x.max() > hi):
        raise ValueError(f"layer {layer.name!r}: input values must be in 0..{hi} for in_bits={layer.in_bits}")
    w = (np.asarray(layer.weights) > 0).astype(np.uint8)
    if layer.kind == "fc":
        vals = x.reshape(n, -1)
        valid = np.ones_like(vals, dtype=np.uint8)
        wb = w.reshape(layer.out_ch, -1)
        segs = 1
    else:
        k = layer.kernel
        cols = im2col(x, k, layer.stride, layer.padding)  # (n, C, k, k, Ho, Wo)
        ones = im2col(np.ones((1,) + x.shape[1:], dtype=np.int64), k, layer.stride, layer.padding)
        vals = cols.transpose(0, 4, 5, 2, 3, 1).reshape(-1, k * k, layer.in_ch)
        valid = np.broadcast_to(ones.transpose(0, 4, 5, 2, 3, 1).reshape(1, -1, k * k, layer.in_ch),
                                (n, layer.conv_h * layer.conv_w, k * k, layer.in_ch))
        valid = valid.reshape(-1, k * k, layer.in_ch).astype(np.uint8)
        wb = w.transpose(0, 2, 3, 1).reshape(layer.groups, k * k, layer.in_ch)
        segs = k * k if layer.mode == "mcn" else 1
        if segs == 1:
            vals, valid, wb = (a.reshape(a.shape[0], -1) for a in (vals, valid, wb))
    if segs > 1:  # pad each tap to whole words
        cw = -(-layer.in_ch // word) * word
        pad = ((0, 0), (0, 0), (0, cw - layer.in_ch))
        vals, valid, wb = (np.pad(a, pad).reshape(a.shape[0], -1) for a in (vals, valid, wb))
    total = -(-vals.shape[1] // word) * word
    pad = ((0, 0), (0, total - vals.shape[1]))
    return np.pad(vals, pad), np.pad(valid, pad), np.pad(wb, pad)


def field_offset(layout, *path):
    """Bit offset of a nested field of a :mod:`~binaccel.sw.hwif` layout (``path`` of names/indices)."""
    return layout.offset(*path)


def beats_to_ints(bits: np.ndarray) -> list:
    """Rows of a ``(beats, width)`` 0/1 array -> ints (bit ``i`` of a beat = column ``i``)."""
    if bits.shape[0] == 0:
        return []
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def ints_to_bits(values, width: int) -> np.ndarray:
    """ints -> ``(len, width)`` 0/1 uint8 array (inverse of :func:`beats_to_ints`)."""
    nbytes = -(-width // 8)
    buf = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(len(values), nbytes)
    return np.unpackbits(arr, axis=1, bitorder="little")[:, :width]


def _to_bits(values, width):
    """Non-negative or two's complement integers -> (…, width) bits, little-endian."""
    v = np.asarray(values, dtype=np.int64)
    v = v & ((1 << width) - 1) if width < 64 else v
    return ((v[..., None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)


@dataclass
class PackedLayer:
    """The input beats of one layer run and what is needed to read its output."""

    layer: Layer
    plan: LayerPlan
    params: object
    beat_bytes: np.ndarray  # (beats, ceil(in_layout.size / 8)) uint8, little-endian, in stream order
    n_oper: int             # operand beats among them

    @property
    def beats(self) -> list:
        """The input beats as ints of ``params.in_layout`` (stream order)."""
        return [int.from_bytes(row.tobytes(), "little") for row in self.beat_bytes]

    @property
    def out_beats(self) -> int:
        return self.plan.n_gt * self.plan.n_pt * self.params.cols


def mfilter_columns(layer: Layer, plan: LayerPlan, max_planes: int) -> np.ndarray:
    """The M-Filter column of each segment, ``(n_seg, max_planes)``: an ``mcn`` layer's factors
    ``M[j, t]`` per tap ``t`` (one segment a tap), an ``mcn1`` layer's one factor per plane (one
    segment), 1 in plane 0 for a plain layer; unused planes 0."""
    K = plan.planes
    mcol = np.zeros((plan.n_seg, max_planes), dtype=np.int64)
    if layer.mode == "mcn":
        mcol[:, :K] = np.asarray(layer.mfilter, dtype=np.int64).reshape(K, -1).T
    elif layer.mode == "mcn1":
        mcol[0, :K] = np.asarray(layer.mfilter, dtype=np.int64)
    else:
        mcol[0, 0] = 1
    return mcol


def _header_beats(layer: Layer, pl: LayerPlan, p) -> list:
    lay = p.in_layout
    data_off = field_offset(lay, "data")

    def beat(kind, fields):
        bits = np.zeros(lay.size, dtype=np.uint8)
        bits[0:2] = _to_bits(kind, 2)
        for off, width, value in fields:
            bits[data_off + off:data_off + off + width] = _to_bits(value, width)
        return bits

    dl = p.desc_layout
    desc = dict(in_bits=pl.in_bits, seg_words=pl.seg_words, n_seg=pl.n_seg, n_pt=pl.n_pt, n_gt=pl.n_gt,
                out_kind=OUT_KIND[layer.out_kind], shift=layer.shift if layer.out_kind != "sign" else 0,
                out_bits=layer.out_bits)
    rows = [beat(BeatKind.DESC, [(dl[k].offset, dl[k].width, v) for k, v in desc.items()])]
    mcol = mfilter_columns(layer, pl, p.max_planes)
    for t in range(pl.n_seg):
        rows.append(beat(BeatKind.MFILT, [(j * p.m_bits, p.m_bits, mcol[t, j]) for j in range(p.max_planes)]))
    return rows


def _param_bits(layer: Layer, pl: LayerPlan, p) -> np.ndarray:
    """PARAM beats ``(n_gt, rows, width)`` as bits."""
    lane = p.param_lane_layout
    pw, qw = lane["p"].width, lane["q"].width
    K, R = pl.planes, p.rows
    n_ch = pl.n_gt * R * K
    if layer.out_kind == "sign":
        bound = p.acc_bound + 1
        pv = np.clip(np.asarray(layer.thresh, dtype=np.int64), -bound, bound)
        qv = np.asarray(layer.flip, dtype=np.int64)
    else:
        pv = np.asarray(layer.mul, dtype=np.int64)
        qv = np.asarray(layer.add, dtype=np.int64)
    pa = np.zeros(n_ch, dtype=np.int64)
    qa = np.zeros(n_ch, dtype=np.int64)
    # channel o = g*K + j sits in group tile g // R, row g % R, lane j: the same flat order
    pa[:layer.out_ch], qa[:layer.out_ch] = pv, qv
    lanes = np.concatenate([_to_bits(pa, pw), _to_bits(qa, qw)], axis=-1)  # (n_ch, pw+qw)
    lanes = lanes.reshape(pl.n_gt, R, K, pw + qw)
    out = np.zeros((pl.n_gt, R, p.max_planes, pw + qw), dtype=np.uint8)
    out[:, :, :K] = lanes
    return out.reshape(pl.n_gt, R, -1)


def pack_layer(layer: Layer, x: np.ndarray, params) -> PackedLayer:
    """All input beats of one run of ``layer`` on input ``x`` ``(N, C, H, W)`` (see module doc)."""
    p = _params(params)
    x = np.asarray(x)
    pl = plan_layer(layer, x.shape[0] if x.ndim == 4 else 0, p)
    vals, valid, wbits = fold_layer(layer, x, p.word)
    R, C, W = p.rows, p.cols, p.word
    nwords = pl.n_seg * pl.seg_words
    assert vals.shape[1] == nwords * W, (vals.shape, nwords, W)
    Lp, Gp = pl.n_pt * C, pl.n_gt * R
    # activation / mask bit planes (in_bits, Lp, nwords, W)
    if layer.in_bits == 1:
        a = vals.astype(np.uint8)[None]
        mk = valid[None]
    else:
        a = np.stack([((vals >> b) & 1).astype(np.uint8) for b in range(layer.in_bits)])
        mk = a
    pad_l = ((0, 0), (0, Lp - pl.positions), (0, 0))
    a = np.pad(a, pad_l).reshape(pl.in_bits, pl.n_pt, C, nwords, W)
    mk = np.pad(mk, pad_l).reshape(pl.in_bits, pl.n_pt, C, nwords, W)
    wb = np.pad(wbits, ((0, Gp - pl.groups), (0, 0))).reshape(pl.n_gt, R, nwords, W)

    lay = p.in_layout
    data_off = field_offset(lay, "data")
    ow = field_offset(lay, "data", "oper", "w")
    oa = field_offset(lay, "data", "oper", "a")
    om = field_offset(lay, "data", "oper", "m")
    S = pl.steps_per_tile
    # operand steps of one group tile: (n_pt, nwords, in_bits, ...)
    a_steps = a.transpose(1, 3, 0, 2, 4).reshape(pl.n_pt, S, C * W)
    m_steps = mk.transpose(1, 3, 0, 2, 4).reshape(pl.n_pt, S, C * W)
    header = np.stack(_header_beats(layer, pl, p))
    prm = _param_bits(layer, pl, p)
    nbytes = -(-lay.size // 8)
    n_beats = len(header) + pl.n_gt * (R + pl.n_pt * S)
    out = np.empty((n_beats, nbytes), dtype=np.uint8)
    pk = lambda bits: np.packbits(bits, axis=-1, bitorder="little")  # noqa: E731
    k = len(header)
    out[:k] = pk(header)
    chunk = max(1, (1 << 22) // (S * lay.size))  # position tiles per chunk (bounds the bit buffer)
    for g in range(pl.n_gt):
        pb = np.zeros((R, lay.size), dtype=np.uint8)
        pb[:, 0:2] = _to_bits(BeatKind.PARAM, 2)
        pb[:, data_off:data_off + prm.shape[2]] = prm[g]
        out[k:k + R] = pk(pb)
        k += R
        w_steps = np.repeat(wb[g].transpose(1, 0, 2).reshape(nwords, 1, R * W), pl.in_bits, axis=1)
        w_steps = w_steps.reshape(S, R * W)
        for t0 in range(0, pl.n_pt, chunk):
            t1 = min(pl.n_pt, t0 + chunk)
            ob = np.zeros((t1 - t0, S, lay.size), dtype=np.uint8)
            ob[:, :, 0:2] = _to_bits(BeatKind.OPER, 2)
            ob[:, :, ow:ow + R * W] = w_steps[None]
            ob[:, :, oa:oa + C * W] = a_steps[t0:t1]
            ob[:, :, om:om + C * W] = m_steps[t0:t1]
            n = (t1 - t0) * S
            out[k:k + n] = pk(ob.reshape(n, lay.size))
            k += n
    assert k == n_beats
    return PackedLayer(layer=layer, plan=pl, params=p, beat_bytes=out, n_oper=pl.n_gt * pl.n_pt * S)


def unpack_outputs(packed: PackedLayer, out_beats) -> np.ndarray:
    """Output beats of a run -> the layer's values ``(N, out_ch, conv_h, conv_w)`` (int64, no pooling)."""
    p, pl, layer = packed.params, packed.plan, packed.layer
    out_beats = list(out_beats)
    if len(out_beats) != packed.out_beats:
        raise ValueError(f"layer {layer.name!r}: expected {packed.out_beats} output beats, got {len(out_beats)}")
    yw, R, C, Km = p.y_width, p.rows, p.cols, p.max_planes
    bits = ints_to_bits(out_beats, p.out_layout.size).reshape(-1, p.lanes, yw).astype(np.int64)
    if yw <= 62:
        vals = (bits << np.arange(yw, dtype=np.int64)).sum(axis=-1)
        vals -= bits[..., -1] << yw
    else:  # pragma: no cover - only for very wide builds
        vals = np.array([[sum(int(b) << i for i, b in enumerate(lane)) - (int(lane[-1]) << yw) for lane in beat]
                         for beat in bits], dtype=object)
    K = pl.planes
    vals = vals.reshape(pl.n_gt, pl.n_pt, C, R, Km)[..., :K]            # (gt, pt, c, r, j)
    vals = vals.transpose(0, 3, 4, 1, 2).reshape(pl.n_gt * R * K, pl.n_pt * C)  # (channel, position)
    vals = vals[:layer.out_ch, :pl.positions]
    out = vals.reshape(layer.out_ch, pl.n, layer.conv_h, layer.conv_w).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out).astype(np.int64)


def unfold_outputs(layer: Layer, y: np.ndarray) -> np.ndarray:
    """Host-side tail of a layer: the 2x2 max-pool when ``layer.pool == 2``."""
    return maxpool2(y) if layer.pool == 2 else y
