"""Compile an :class:`~binaccel.sw.intmodel.IntModel` into the accelerator's command words.

:func:`compile_model` checks that the network fits a build (:class:`~binaccel.sw.hwif.AccelParams`)
and returns a :class:`Program`:

* ``setup_words``: WRITE commands loading the layer descriptors, the weight buffer and the table
  buffer (M-Filter columns and output parameters); sent once.
* :meth:`Program.image_words` / :meth:`Program.images_words`: one RUN command per image (header,
  layer count, the image's feature-map words). The input channel replication of MCN models
  (``input_repeat``) is done here, on the host, while laying out the image.
* :meth:`Program.decode`: the output words of N images -> logits ``(N, classes)`` (int64, as
  :func:`binaccel.sw.intref.predict`), the dumped layer outputs (as :func:`intref.run_model`) and
  the per-layer cycle counters.

A network that does not fit raises :class:`FitError` naming the layer, the buffer and the sizes.
The formats are documented in ``docs/accelerator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .intmodel import IntModel, Layer
from .intref import model_input
from .hwif import IO_WIDTH, OUT_KIND, AccelParams, FieldRangeError, Op, Target
from .link import FrameKind
from .pack import check_layer, mfilter_columns, plan_layer

__all__ = ["FitError", "LayerInfo", "Program", "compile_model", "check_fit", "accel_params",
           "map_words", "encode_map", "decode_map"]

IO = IO_WIDTH


class FitError(ValueError):
    """The network does not fit the accelerator build (names the layer, the buffer and the sizes)."""


def accel_params(params=None):
    """:class:`~binaccel.sw.hwif.AccelParams` from None (defaults), a dict or an AccelParams."""
    if params is None:
        return AccelParams()
    if isinstance(params, AccelParams):
        return params
    if isinstance(params, dict):
        return AccelParams(**params)
    raise TypeError(f"params must be an AccelParams, a dict of its fields or None, got {type(params).__name__}")


# ---- feature-map layout ---------------------------------------------------------------------------

def _chunk(p, multibit: bool) -> int:
    return p.mb_chunk if multibit else p.word


def map_words(p, channels: int, multibit: bool) -> int:
    """Feature-map words per pixel of a map with ``channels`` channels."""
    return -(-channels // _chunk(p, multibit))


def encode_map(p, x: np.ndarray, multibit: bool) -> list:
    """A map ``(C, H, W)`` -> its feature-map words (ints of ``word`` bits), pixel-major: pixel
    ``(y, x)`` in words ``(y*W + x)*nch ..``; channel ``c`` is bit ``c`` (binary) or byte ``c`` (multi-bit)
    of the pixel's words."""
    x = np.asarray(x, dtype=np.int64)
    c, h, w = x.shape
    chunk = _chunk(p, multibit)
    nch = map_words(p, c, multibit)
    pix = np.zeros((h * w, nch * chunk), dtype=np.int64)
    pix[:, :c] = x.reshape(c, h * w).T
    pix = pix.reshape(h * w * nch, chunk)
    if multibit:
        if p.word % 32 == 0 and chunk * 8 == p.word:
            return [int(v) for v in _bytes_to_ints(pix.astype(np.uint8), p.word)]
        return [sum(int(v) << (8 * i) for i, v in enumerate(row)) for row in pix]
    bits = np.packbits(pix.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in bits]


def _bytes_to_ints(rows: np.ndarray, width: int) -> np.ndarray:
    return [int.from_bytes(r.tobytes(), "little") for r in rows]


def decode_map(p, words, shape, multibit: bool) -> np.ndarray:
    """Inverse of :func:`encode_map`: feature-map words -> ``(C, H, W)`` int64."""
    c, h, w = shape
    chunk = _chunk(p, multibit)
    nch = map_words(p, c, multibit)
    words = list(words)
    if len(words) != h * w * nch:
        raise ValueError(f"expected {h * w * nch} feature-map words for a {c}x{h}x{w} map, got {len(words)}")
    nbytes = -(-p.word // 8)
    raw = np.frombuffer(b"".join(int(v).to_bytes(nbytes, "little") for v in words), dtype=np.uint8)
    raw = raw.reshape(h * w, nch, nbytes)
    if multibit:
        vals = raw[:, :, :chunk].reshape(h * w, nch * chunk).astype(np.int64)
    else:
        vals = np.unpackbits(raw, axis=2, bitorder="little")[:, :, :chunk].reshape(h * w, nch * chunk)
        vals = vals.astype(np.int64)
    return vals[:, :c].T.reshape(c, h, w)


def _io_split(value: int, width: int) -> list:
    n = -(-width // IO)
    return [(value >> (IO * i)) & 0xFFFFFFFF for i in range(n)]


# ---- struct packing -------------------------------------------------------------------------------

def _pack_struct(layout, values: dict, where: str) -> int:
    """Values (nested dicts for nested structs) -> int of the descriptor layout; every field must be
    given and fit (raises FitError naming the field)."""
    try:
        return layout.pack(values, where=where, what="descriptor field")
    except FieldRangeError as err:
        raise FitError(str(err)) from None


# ---- compiled program -----------------------------------------------------------------------------

@dataclass
class LayerInfo:
    """Where one layer lives on chip and what it costs."""

    name: str
    layer: Layer
    plan: object               # binaccel.sw.pack.LayerPlan (one image)
    in_shape: tuple
    in_multibit: bool
    out_shape: tuple
    out_multibit: bool
    in_bank: int
    out_bank: int
    in_words: int
    out_words: int
    w_base: int
    w_entries: int
    t_base: int
    t_entries: int
    dump: bool
    desc: dict = field(repr=False, default_factory=dict)
    streamed: bool = False
    weights: list = field(repr=False, default_factory=list)   # weight buffer entries (ints)


@dataclass
class Program:
    """A model compiled for one accelerator build (see module docstring)."""

    params: object
    model: IntModel
    layers: list
    setup_words: list
    stats: bool
    usage: dict
    stream_words: list = field(default_factory=list)   # streamed weights, sent after every image
    ring: tuple = (0, 0)                               # (base, size) of the weight ring
    setup_sections: list = field(default_factory=list)  # [(FrameKind, words)] making up setup_words

    def transfers(self, n_images: int) -> list:
        """How ``setup_words + images_words(...)`` of ``n_images`` split into link transfers:
        ``[(FrameKind, words)]`` (PROGRAM, WEIGHTS, TABLES, then per image an IMAGE transfer, and a
        WEIGHTS transfer for the streamed weights)."""
        out = list(self.setup_sections)
        # the RUN command of one image (its length does not depend on the pixel values)
        run = len(self.image_words(np.zeros(self.model.input_shape, dtype=np.uint8))) - len(self.stream_words)
        for _ in range(n_images):
            out.append((FrameKind.IMAGE, run))
            if self.stream_words:
                out.append((FrameKind.WEIGHTS, len(self.stream_words)))
        return out

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def image_entries(self) -> int:
        return self.layers[0].in_words

    @property
    def logits_per_image(self) -> int:
        last = self.layers[-1]
        return last.layer.out_ch * last.layer.conv_h * last.layer.conv_w

    @property
    def out_words_per_image(self) -> int:
        p = self.params
        fm_io = -(-p.word // IO)
        n = sum(li.out_words * fm_io for li in self.layers if li.dump)
        n += self.logits_per_image * p.logit_words
        if self.stats:
            n += self.n_layers + 1
        return n

    def image_words(self, image: np.ndarray) -> list:
        """The RUN command of one uint8 image ``(C, H, W)`` (or ``(H, W)`` when C = 1)."""
        return self.images_words(np.asarray(image)[None])

    def images_words(self, images: np.ndarray) -> list:
        """RUN commands of a batch of uint8 images ``(N, C, H, W)`` (or ``(N, H, W)``), concatenated."""
        x = model_input(self.model, images)   # validates shape/range, applies input_repeat
        p = self.params
        header = Op.RUN | (int(self.stats) << 4) | (self.image_entries << 8)
        fm_io = -(-p.word // IO)
        n_stream = len(self.stream_words) // -(-(p.rows * p.word) // IO)
        out = []
        for img in x:
            words = encode_map(p, img, True)
            out += [header, self.n_layers, n_stream, self.ring[0], self.ring[1]]
            if fm_io == 1:
                out += words
            else:
                for w in words:
                    out += _io_split(w, p.word)
            out += self.stream_words
        return out

    def decode(self, words, n: int) -> dict:
        """Output words of ``n`` images -> ``{"logits": (n, classes) int64, "outputs": {layer index:
        (n, C, H, W) int64} for dumped layers, "cycles": (n, layers) int64 (per layer),
        "image_cycles": (n,) int64}`` (the cycle entries only with ``stats``)."""
        p = self.params
        words = [int(w) for w in words]
        per = self.out_words_per_image
        if len(words) != n * per:
            raise ValueError(f"expected {n} x {per} = {n * per} output words, got {len(words)}")
        fm_io = -(-p.word // IO)
        lw = p.logit_words
        last = self.layers[-1]
        L = last.layer
        logits = np.zeros((n, L.out_ch, L.conv_h, L.conv_w), dtype=np.int64)
        outputs = {i: np.zeros((n,) + li.out_shape, dtype=np.int64) for i, li in enumerate(self.layers) if li.dump}
        cycles = np.zeros((n, self.n_layers), dtype=np.int64)
        image_cycles = np.zeros(n, dtype=np.int64)
        gt_ch = p.rows * last.plan.planes
        order = []   # (channel, y, x) of each logit value in stream order
        for gt in range(last.plan.n_gt):
            lo = gt * gt_ch
            hi = min(lo + gt_ch, L.out_ch)
            for pos in range(L.conv_h * L.conv_w):
                y, xx = divmod(pos, L.conv_w)
                order += [(ch, y, xx) for ch in range(lo, hi)]
        order = np.array(order, dtype=np.int64).reshape(-1, 3)
        for i in range(n):
            k = i * per
            for li_idx, li in enumerate(self.layers):
                if li.dump:
                    cnt = li.out_words * fm_io
                    chunk = words[k:k + cnt]
                    fw = [sum(chunk[j * fm_io + t] << (IO * t) for t in range(fm_io)) for j in range(li.out_words)]
                    outputs[li_idx][i] = decode_map(p, fw, li.out_shape, li.out_multibit)
                    k += cnt
            vals = []
            for j in range(self.logits_per_image):
                v = 0
                for t in range(lw):
                    v |= words[k + j * lw + t] << (IO * t)
                if v >> (lw * IO - 1):
                    v -= 1 << (lw * IO)
                vals.append(v)
            k += self.logits_per_image * lw
            logits[i, order[:, 0], order[:, 1], order[:, 2]] = np.array(vals, dtype=np.int64)
            if self.stats:
                cycles[i] = words[k:k + self.n_layers]
                image_cycles[i] = words[k + self.n_layers]
        res = {"logits": logits.reshape(n, -1), "outputs": outputs}
        if self.stats:
            res["cycles"], res["image_cycles"] = cycles, image_cycles
        return res


# ---- compiler -------------------------------------------------------------------------------------

def _layer_names(model):
    return [layer.name for layer in model.layers]


def check_fit(model: IntModel, params=None) -> None:
    """Raise :class:`FitError` (or ModelFormatError for an invalid model) unless ``model`` fits."""
    compile_model(model, params)


def _bits_of(layer: Layer) -> int:
    return 1 if layer.in_bits == 1 else 8


def compile_layer(p, layer: Layer, li: int, in_shape: tuple, in_mb: bool, *, w_base: int = 0, t_base: int = 0,
                  dump: bool = False, pair: bool = True):
    """One layer: ``(LayerInfo, descriptor int, weight entries, table entries)``. ``li`` is the layer's
    index (its input bank is ``li % 2``), ``in_shape``/``in_mb`` its input map, ``w_base``/``t_base``
    where its weight and table entries will be written. ``pair``: let the fetch unit read two taps
    per cycle where a pixel is one word holding at most half a word of channels (only on a build
    with ``pair_reads``)."""
    e = p.engine
    W, R, C = p.word, p.rows, p.cols
    aw_mod = 1 << p.fm_aw
    fm_bits = p.fm_depth * W
    where = f"layer {layer.name}"
    try:
        check_layer(layer, e)
        plan = plan_layer(layer, 1, e)
    except ValueError as err:
        raise FitError(f"{where}: the engine cannot run it: {err}") from err
    if (layer.in_ch, layer.in_h, layer.in_w) != in_shape:
        raise FitError(f"{where}: input shape {(layer.in_ch, layer.in_h, layer.in_w)} != {in_shape}")
    fc = layer.kind == "fc"
    kh, kw = (layer.in_h, layer.in_w) if fc else (layer.kernel, layer.kernel)
    s, pad = (1, 0) if fc else (layer.stride, layer.padding)
    conv_h, conv_w = layer.conv_h, layer.conv_w
    for what, v in (("input height", layer.in_h), ("input width", layer.in_w),
                    ("kernel" if not fc else "FC kernel (the whole input map)", max(kh, kw)),
                    ("output height", conv_h), ("output width", conv_w)):
        if v > p.max_dim:
            raise FitError(f"{where}: {what} {v} exceeds the build's max_dim={p.max_dim}")
    logits = layer.out_kind == "logits"
    out_mb = layer.out_kind == "requant"
    out_shape = (layer.out_ch, layer.out_h, layer.out_w)
    nch = map_words(p, layer.in_ch, in_mb)
    in_words = layer.in_h * layer.in_w * nch
    nch_out = map_words(p, layer.out_ch, out_mb)
    out_words = 0 if logits else layer.out_h * layer.out_w * nch_out
    for what, shape, mb, words, per in (("input", in_shape, in_mb, in_words, nch),
                                        ("output", out_shape, out_mb, out_words, nch_out)):
        if words > p.fm_depth:
            vb = 8 if mb else 1
            raw = shape[0] * shape[1] * shape[2] * vb
            raise FitError(
                f"{where}: {what} feature map {shape[0]}x{shape[1]}x{shape[2]} x{vb} bit = {raw} bits "
                f"({per} word(s) of {W} bits per pixel: {words} words = {words * W} bits) exceeds the "
                f"{fm_bits}-bit feature-map buffer ({p.fm_depth} words of {W} bits per bank)")
    # weights: entries (gt, word of the tile), rows packed
    nwords = plan.n_seg * plan.seg_words
    wbits = (np.asarray(layer.weights) > 0).astype(np.uint8)
    if fc:
        wbits = wbits.reshape(layer.out_ch, layer.in_ch, layer.in_h, layer.in_w).transpose(0, 2, 3, 1)
        wbits = wbits.reshape(layer.out_ch, -1)
    else:
        wbits = wbits.transpose(0, 2, 3, 1)   # (G, ky, kx, c)
        if layer.mode == "mcn":
            cpad = plan.seg_words * W - layer.in_ch
            wbits = np.pad(wbits, ((0, 0), (0, 0), (0, 0), (0, cpad)))
        wbits = wbits.reshape(wbits.shape[0], -1)
    wbits = np.pad(wbits, ((0, plan.n_gt * R - wbits.shape[0]), (0, nwords * W - wbits.shape[1])))
    wb = wbits.reshape(plan.n_gt, R, nwords, W).transpose(0, 2, 1, 3).reshape(plan.n_gt * nwords, R * W)
    w_entries = [int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little") for row in wb]
    # tables: M-Filter columns, then per group tile `rows` output parameter entries
    t_entries = []
    K = plan.planes
    mcol = mfilter_columns(layer, plan, e.max_planes)
    for t in range(plan.n_seg):
        t_entries.append(sum(int(mcol[t, j]) << (j * e.m_bits) for j in range(e.max_planes)))
    lane = e.param_lane_layout
    pw, qw = lane["p"].width, lane["q"].width
    po, qo = lane["p"].offset, lane["q"].offset
    lsize = lane.size
    if layer.out_kind == "sign":
        bound = e.acc_bound + 1
        pv = np.clip(np.asarray(layer.thresh, dtype=np.int64), -bound, bound)
        qv = np.asarray(layer.flip, dtype=np.int64)
    else:
        pv = np.asarray(layer.mul, dtype=np.int64)
        qv = np.asarray(layer.add, dtype=np.int64)
        for nm, v, bits in (("mul", pv, e.mul_bits), ("add", qv, e.add_bits)):
            if v.size and (v.min() < -(1 << (bits - 1)) or v.max() >= (1 << (bits - 1))):
                raise FitError(f"{where}: {nm} does not fit the build's {bits}-bit {nm}_bits")
    n_ch = plan.n_gt * R * K
    pa = np.zeros(n_ch, dtype=np.int64)
    qa = np.zeros(n_ch, dtype=np.int64)
    pa[:layer.out_ch], qa[:layer.out_ch] = pv, qv
    for g in range(plan.n_gt * R):
        ent = 0
        for j in range(K):
            o = g * K + j
            ent |= (((int(pa[o]) & ((1 << pw) - 1)) << po) | ((int(qa[o]) & ((1 << qw) - 1)) << qo)) << (j * lsize)
        t_entries.append(ent)
    # descriptor
    def mod(v):
        return int(v) % aw_mod

    def stepc(P):
        q, r = divmod(P, conv_w)
        return dict(r=r, q=q, dix=r * s, diy=q * s, da=mod(r * s * nch + q * s * layer.in_w * nch))

    s1, sc = stepc(1), stepc(C)
    gt_ch = R * K
    vb_out = 8 if out_mb else 1
    d_word, d_bit = divmod(gt_ch * vb_out, W)
    eng = dict(in_bits=plan.in_bits, seg_words=plan.seg_words, n_seg=plan.n_seg, n_pt=plan.n_pt,
               n_gt=plan.n_gt, out_kind=OUT_KIND[layer.out_kind],
               shift=layer.shift if layer.out_kind != "sign" else 0, out_bits=layer.out_bits)
    in_chunk = _chunk(p, in_mb)
    desc = dict(
        eng=eng, w_base=w_base, w_stream=0, nwords=nwords, m_base=t_base, p_base=t_base + plan.n_seg,
        gt_opers=plan.n_pt * nwords * plan.in_bits,
        in_bank=li % 2, in_base=0, mb_in=int(in_mb), nch=nch, last_n=layer.in_ch - (nch - 1) * in_chunk,
        kh=kh, kw=kw, in_h=layer.in_h, in_w=layer.in_w, seg_tap=int(layer.mode == "mcn" and not fc),
        pair=int(pair and p.pair_reads and nch == 1 and 2 * layer.in_ch <= W and kh * kw > 1 and not (layer.mode == "mcn" and not fc)),
        conv_h=conv_h, conv_w=conv_w, c_init=-pad, a_init=mod((-pad * layer.in_w - pad) * nch),
        da_ky=mod((layer.in_w - kw + 1) * nch),
        r1=s1["r"], q1=s1["q"], dix1=s1["dix"], diy1=s1["diy"], da1=s1["da"],
        rc=sc["r"], qc=sc["q"], dixc=sc["dix"], diyc=sc["diy"], dac=sc["da"],
        dixw=conv_w * s, diyw=s, daw=mod(s * layer.in_w * nch - conv_w * s * nch),
        out_bank=(li + 1) % 2, out_base=0, mb_out=int(out_mb), logits=int(logits), dump=int(dump),
        pool=int(layer.pool == 2), out_ch=layer.out_ch, planes=K, gt_ch=gt_ch,
        nch_out=nch_out if not logits else 0, out_h=layer.out_h, out_w=layer.out_w,
        d_word=mod(d_word), d_bit=d_bit, dump_words=out_words,
    )
    info = LayerInfo(weights=w_entries, name=layer.name, layer=layer, plan=plan, in_shape=in_shape, in_multibit=in_mb,
                           out_shape=out_shape, out_multibit=out_mb, in_bank=li % 2, out_bank=(li + 1) % 2,
                           in_words=in_words, out_words=out_words, w_base=w_base,
                           w_entries=len(w_entries), t_base=t_base,
                           t_entries=len(t_entries), dump=dump, desc=desc)
    return info, _pack_struct(p.desc_layout, desc, where), w_entries, t_entries


def _weights_fit(infos, streamed, depth) -> bool:
    resident = sum(li.w_entries for i, li in enumerate(infos) if i not in streamed)
    block = max((infos[i].desc["nwords"] for i in streamed), default=0)
    return resident + block <= depth


def compile_model(model: IntModel, params=None, *, dump=(), stats: bool = True, stream="auto") -> Program:
    """Compile ``model`` for the build ``params`` (AccelParams, dict or None for the defaults).

    ``dump``: indices (or names) of layers whose output maps are streamed out after the layer (for
    checking intermediate results), or ``True`` for every layer but the last. ``stats``: append the
    per-layer and per-image cycle counters to each image's output. ``stream``: which layers' weights
    are streamed with every image instead of held in the weight buffer: ``"auto"`` (the biggest
    layers, only when the weights do not fit), ``True`` (all), ``False`` (none), or indices/names.
    """
    p = accel_params(params)
    model.validate()
    n_layers = len(model.layers)
    if n_layers > p.max_layers:
        raise FitError(f"model {model.name}: {n_layers} layers exceed the build's program buffer of "
                       f"max_layers={p.max_layers} descriptors")
    names = _layer_names(model)
    if dump is True:
        dump_set = set(range(n_layers - 1))
    else:
        dump_set = set()
        for d in dump or ():
            if isinstance(d, str):
                if d not in names:
                    raise ValueError(f"dump: no layer named {d!r} (layers: {', '.join(names)})")
                d = names.index(d)
            if not 0 <= int(d) < n_layers - 1:
                raise ValueError(f"dump: layer index {d} is not a non-final layer (0..{n_layers - 2})")
            dump_set.add(int(d))

    W, R = p.word, p.rows
    t_entries, infos = [], []
    c0, h0, w0 = model.input_shape
    in_shape = (c0 * model.input_repeat, h0, w0)
    in_mb = True
    for li, layer in enumerate(model.layers):
        info, _, _, t_new = compile_layer(p, layer, li, in_shape, in_mb, t_base=len(t_entries), dump=li in dump_set)
        t_entries += t_new
        infos.append(info)
        if len(t_entries) > p.t_depth:
            raise FitError(f"layer {layer.name}: M-Filter and output parameters need {len(t_entries)} table "
                           f"entries in total up to this layer, the table buffer holds {p.t_depth}")
        in_shape, in_mb = info.out_shape, info.out_multibit

    # weights: resident in the weight buffer, or streamed with every image through a ring
    sizes = [li.w_entries for li in infos]
    if stream is True:
        streamed = set(range(n_layers))
    elif stream is False or stream is None:
        streamed = set()
    elif stream == "auto":
        streamed = set()
        # stream the biggest layers until the rest plus a ring for the streamed ones fits
        for i in sorted(range(n_layers), key=lambda i: -sizes[i]):
            if _weights_fit(infos, streamed, p.w_depth):
                break
            streamed.add(i)
    else:
        streamed = set()
        for d in stream:
            if isinstance(d, str):
                if d not in names:
                    raise ValueError(f"stream: no layer named {d!r} (layers: {', '.join(names)})")
                d = names.index(d)
            if not 0 <= int(d) < n_layers:
                raise ValueError(f"stream: layer index {d} out of range 0..{n_layers - 1}")
            streamed.add(int(d))
    resident = sum(sizes[i] for i in range(n_layers) if i not in streamed)
    if resident > p.w_depth:
        big = max((i for i in range(n_layers) if i not in streamed), key=lambda i: sizes[i])
        raise FitError(f"layer {infos[big].name}: resident weights need {resident} entries of {R}x{W} bits "
                       f"({resident * R * W} bits), the weight buffer holds {p.w_depth} ({p.w_depth * R * W} bits); "
                       f"stream some layers (stream='auto')")
    ring_base, ring_size = (resident if streamed else 0), 0
    if streamed:
        block = max(infos[i].desc["nwords"] for i in streamed)
        room = p.w_depth - resident
        if block > room:
            i = max(streamed, key=lambda i: infos[i].desc["nwords"])
            raise FitError(f"layer {infos[i].name}: one group tile of streamed weights needs {block} entries of "
                           f"{R}x{W} bits, the weight buffer has {room} of {p.w_depth} left after "
                           f"{resident} resident entries")
        ring_size = min(room, 2 * block, sum(sizes[i] for i in streamed))
    w_entries, stream_entries, descs = [], [], []
    for i, li in enumerate(infos):
        if i in streamed:
            li.desc.update(w_base=0, w_stream=1)
            stream_entries += li.weights
        else:
            li.desc.update(w_base=len(w_entries), w_stream=0)
            w_entries += li.weights
        li.w_base, li.streamed = li.desc["w_base"], i in streamed
        descs.append(_pack_struct(p.desc_layout, li.desc, f"layer {li.name}"))

    setup, sections = [], []
    for tgt, entries in ((Target.DESC, descs), (Target.WEIGHT, w_entries), (Target.TABLE, t_entries)):
        if not entries:
            continue
        width = {Target.DESC: p.desc_layout.size, Target.WEIGHT: R * W, Target.TABLE: p.table_width}[tgt]
        n0 = len(setup)
        setup += [Op.WRITE | (tgt << 4) | (len(entries) << 8), 0]
        for v in entries:
            setup += _io_split(v, width)
        sections.append(({Target.DESC: FrameKind.PROGRAM, Target.WEIGHT: FrameKind.WEIGHTS, Target.TABLE: FrameKind.TABLES}[tgt],
                         len(setup) - n0))
    stream_words = []
    for v in stream_entries:
        stream_words += _io_split(v, R * W)
    usage = {
        "feature_map_words": max(max(li.in_words, li.out_words) for li in infos), "fm_depth": p.fm_depth,
        "weight_entries": len(w_entries), "w_depth": p.w_depth,
        "streamed_layers": [infos[i].name for i in sorted(streamed)], "streamed_entries": len(stream_entries),
        "ring_base": ring_base, "ring_size": ring_size,
        "table_entries": len(t_entries), "t_depth": p.t_depth,
        "layers": n_layers, "max_layers": p.max_layers,
    }
    return Program(params=p, model=model, layers=infos, setup_words=setup, stats=bool(stats), usage=usage,
                   stream_words=stream_words, ring=(ring_base, ring_size), setup_sections=sections)
