"""The integer model: what an exported network *is*, independent of any file format.

An :class:`IntModel` is a list of :class:`Layer` objects holding only integers. The numpy reference
(:mod:`binaccel.sw.intref`), the file format (:mod:`binaccel.sw.modelfile`), the Brevitas golden
models (which produce it) and the hardware all agree on the arithmetic defined here:

Values
    * A layer's input is either binary (``in_bits == 1``): bits ``b`` in {0, 1} standing for
      ``2*b - 1`` in {-1, +1}; or unsigned multi-bit (``2 <= in_bits <= 8``): ``x`` in
      ``[0, 2**in_bits - 1]``.
    * Weights are either binary (``w_bits == 1``): stored as {-1, +1} (bit 1 means +1); or signed
      8-bit (``w_bits == 8``) in ``[-128, 127]``.
    * Padding is zero (as in PyTorch): a padded tap adds nothing, for binary inputs too.

Accumulator ``acc`` (int64) of output channel ``o`` at ``(y, x)``
    * ``mode == "plain"`` (SiMaN, sign, int8):
      ``acc[o,y,x] = sum_{c,ky,kx valid} w[o,c,ky,kx] * a[c, y*s+ky-p, x*s+kx-p]``.
    * ``mode == "mcn"``, ``K = planes``, ``G = out_ch // K`` weight groups, ``weights`` of shape
      ``(G, in_ch, k, k)``, unsigned fixed-point M-Filter ``mfilter`` of shape ``(K, k, k)``. Per-tap
      partial sums ``P[g,ky,kx,y,x] = sum_{c valid} w[g,c,ky,kx] * a[c, ...]``; output channel
      ``g*K + j`` (channels interleaved, group-major) is ``sum_{ky,kx} M[j,ky,kx] * P[g,ky,kx,y,x]``.
    * ``mode == "mcn1"`` (MCNs-1): ``mfilter`` of shape ``(K,)``; channel ``g*K + j`` is
      ``M[j] * sum_{ky,kx} P[g,ky,kx,y,x]``.
    * ``kind == "fc"``: the input ``(C, H, W)`` is flattened in C, H, W order; weights
      ``(out_ch, C*H*W)`` (plain) and the output is ``(out_ch, 1, 1)``. FC layers are plain.

Output of a layer (``out_kind``), per output channel ``o``
    * ``"sign"``: bit ``= acc >= thresh[o]`` where ``flip[o] == 0``, ``acc <= thresh[o]`` where
      ``flip[o] == 1`` (folded scale, BatchNorm and sign). Output values are bits (1 = +1).
    * ``"requant"``: ``clamp((acc * mul[o] + add[o]) >> shift, 0, 2**out_bits - 1)`` (arithmetic
      shift, i.e. floor division by ``2**shift``). Output values are unsigned.
    * ``"logits"``: ``acc * mul[o] + add[o]``, a signed fixed-point value with ``shift`` fractional
      bits. Only the last layer may produce logits.
    * then, if ``pool == 2``: 2x2 max-pool, stride 2, floor (on bits: OR, since +1 > -1).

The network input is ``uint8`` images ``(C, H, W)``; if ``input_repeat == K > 1`` (MCN), each
input channel is repeated K times consecutively (channel ``c*K + j`` is input channel ``c``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ModelFormatError", "Layer", "IntModel", "KINDS", "MODES", "OUT_KINDS"]

KINDS = ("conv", "fc")
MODES = ("plain", "mcn", "mcn1")
OUT_KINDS = ("sign", "requant", "logits")


class ModelFormatError(ValueError):
    """A model (in memory or in a file) that breaks the format. Names the file, field and expectation."""

    def __init__(self, field: str, message: str, *, path=None):
        self.path = None if path is None else str(path)
        self.field = field
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}field '{field}': {message}")


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass
class Layer:
    """One layer of an :class:`IntModel` (see the module docstring for the arithmetic)."""

    name: str
    kind: str
    mode: str
    in_ch: int
    in_h: int
    in_w: int
    out_ch: int
    kernel: int
    stride: int
    padding: int
    in_bits: int
    w_bits: int
    weights: np.ndarray
    out_kind: str
    planes: int = 1
    mfilter: np.ndarray | None = None
    m_bits: int = 0
    thresh: np.ndarray | None = None
    flip: np.ndarray | None = None
    mul: np.ndarray | None = None
    add: np.ndarray | None = None
    shift: int = 0
    out_bits: int = 1
    pool: int = 1

    # -- derived shapes ---------------------------------------------------------------------------
    @property
    def conv_h(self) -> int:
        return 1 if self.kind == "fc" else _conv_out(self.in_h, self.kernel, self.stride, self.padding)

    @property
    def conv_w(self) -> int:
        return 1 if self.kind == "fc" else _conv_out(self.in_w, self.kernel, self.stride, self.padding)

    @property
    def out_h(self) -> int:
        return self.conv_h // self.pool

    @property
    def out_w(self) -> int:
        return self.conv_w // self.pool

    @property
    def groups(self) -> int:
        """Number of weight groups: ``out_ch`` for plain layers, ``out_ch // planes`` for MCN."""
        return self.out_ch if self.mode == "plain" else self.out_ch // self.planes

    @property
    def weight_shape(self) -> tuple:
        if self.kind == "fc":
            return (self.out_ch, self.in_ch * self.in_h * self.in_w)
        return (self.groups, self.in_ch, self.kernel, self.kernel)

    @property
    def fan_in(self) -> int:
        """Taps summed per output (before M-Filter modulation)."""
        if self.kind == "fc":
            return self.in_ch * self.in_h * self.in_w
        return self.in_ch * self.kernel * self.kernel

    @property
    def binary_macs(self) -> int:
        """Multiply-accumulates of the layer per image (weight x activation, all positions)."""
        return self.groups * self.fan_in * self.conv_h * self.conv_w

    def acc_bound(self) -> int:
        """Largest possible ``|acc|`` for any input of the declared widths."""
        amax = 1 if self.in_bits == 1 else (1 << self.in_bits) - 1
        wmax = 1 if self.w_bits == 1 else 128
        base = self.fan_in * amax * wmax
        if self.mode == "mcn":
            return base * int(np.max(self.mfilter)) if self.mfilter.size else 0
        if self.mode == "mcn1":
            return base * int(np.max(self.mfilter)) if self.mfilter.size else 0
        return base

    # -- validation -------------------------------------------------------------------------------
    def validate(self, *, path=None) -> None:
        """Raise :class:`ModelFormatError` unless the layer is one the format can express."""
        f = f"layers[{self.name}]"

        def err(field, msg):
            raise ModelFormatError(f"{f}.{field}", msg, path=path)

        if self.kind not in KINDS:
            err("kind", f"expected one of {KINDS}, got {self.kind!r}")
        if self.mode not in MODES:
            err("mode", f"expected one of {MODES}, got {self.mode!r}")
        if self.out_kind not in OUT_KINDS:
            err("out_kind", f"expected one of {OUT_KINDS}, got {self.out_kind!r}")
        for name in ("in_ch", "in_h", "in_w", "out_ch", "kernel", "stride"):
            if int(getattr(self, name)) < 1:
                err(name, f"expected a positive integer, got {getattr(self, name)}")
        if self.padding < 0 or (self.kind == "conv" and self.padding >= self.kernel):
            err("padding", f"expected 0 <= padding < kernel ({self.kernel}), got {self.padding}")
        if not (self.in_bits == 1 or 2 <= self.in_bits <= 8):
            err("in_bits", f"expected 1 (binary) or 2..8 (unsigned), got {self.in_bits}")
        if self.w_bits not in (1, 8):
            err("w_bits", f"expected 1 (binary) or 8 (signed), got {self.w_bits}")
        if self.pool not in (1, 2):
            err("pool", f"expected 1 (none) or 2 (2x2 max-pool), got {self.pool}")
        if self.kind == "fc":
            if self.mode != "plain":
                err("mode", "expected 'plain' for an fc layer")
            if (self.kernel, self.stride, self.padding, self.pool) != (1, 1, 0, 1):
                err("kernel", "an fc layer has kernel=1, stride=1, padding=0, pool=1")
        elif self.conv_h < 1 or self.conv_w < 1:
            err("kernel", f"kernel {self.kernel} does not fit a {self.in_h}x{self.in_w} input with padding {self.padding}")
        if self.pool == 2 and (self.conv_h < 2 or self.conv_w < 2):
            err("pool", f"2x2 pool needs an output of at least 2x2, got {self.conv_h}x{self.conv_w}")
        if self.mode == "plain":
            if self.planes != 1:
                err("planes", f"expected 1 for a plain layer, got {self.planes}")
        else:
            if self.planes < 1 or self.out_ch % self.planes:
                err("planes", f"expected a divisor of out_ch ({self.out_ch}), got {self.planes}")
            if self.w_bits != 1:
                err("w_bits", "MCN layers have binary weights (w_bits=1)")
            mshape = (self.planes, self.kernel, self.kernel) if self.mode == "mcn" else (self.planes,)
            if self.mfilter is None or tuple(np.shape(self.mfilter)) != mshape:
                err("mfilter", f"expected shape {mshape}, got {None if self.mfilter is None else np.shape(self.mfilter)}")
            if not (1 <= self.m_bits <= 16):
                err("m_bits", f"expected 1..16, got {self.m_bits}")
            if np.any(self.mfilter < 0) or np.any(self.mfilter >= (1 << self.m_bits)):
                err("mfilter", f"expected unsigned values below 2**m_bits = {1 << self.m_bits}")
        w = np.asarray(self.weights)
        if tuple(w.shape) != self.weight_shape:
            err("weights", f"expected shape {self.weight_shape}, got {tuple(w.shape)}")
        if self.w_bits == 1 and not np.all((w == 1) | (w == -1)):
            err("weights", "expected values in {-1, +1} for w_bits=1")
        if self.w_bits == 8 and (w.min(initial=0) < -128 or w.max(initial=0) > 127):
            err("weights", "expected values in [-128, 127] for w_bits=8")
        n = self.out_ch
        if self.out_kind == "sign":
            for name in ("thresh", "flip"):
                v = getattr(self, name)
                if v is None or np.shape(v) != (n,):
                    err(name, f"expected shape ({n},), got {None if v is None else np.shape(v)}")
            if not np.all((self.flip == 0) | (self.flip == 1)):
                err("flip", "expected 0 or 1")
            if self.out_bits != 1:
                err("out_bits", "expected 1 for out_kind 'sign'")
        else:
            for name in ("mul", "add"):
                v = getattr(self, name)
                if v is None or np.shape(v) != (n,):
                    err(name, f"expected shape ({n},), got {None if v is None else np.shape(v)}")
            if not (0 <= self.shift <= 62):
                err("shift", f"expected 0..62, got {self.shift}")
            if self.out_kind == "requant" and not (2 <= self.out_bits <= 8):
                err("out_bits", f"expected 2..8 for out_kind 'requant', got {self.out_bits}")
            if self.out_kind == "logits" and self.pool != 1:
                err("pool", "logits are not pooled")


@dataclass
class IntModel:
    """An exported network: integer layers plus how the input enters them."""

    name: str
    input_shape: tuple  # (C, H, W) of the uint8 image
    layers: list
    input_repeat: int = 1
    classes: int = 10
    meta: dict = field(default_factory=dict)

    @property
    def logit_shift(self) -> int:
        return self.layers[-1].shift

    def validate(self, *, path=None) -> None:
        """Check every layer and that each layer's input is the previous layer's output."""
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ModelFormatError("input_shape", f"expected (C, H, W) positive, got {self.input_shape}", path=path)
        if self.input_repeat < 1:
            raise ModelFormatError("input_repeat", f"expected >= 1, got {self.input_repeat}", path=path)
        if not self.layers:
            raise ModelFormatError("layers", "expected at least one layer", path=path)
        c, h, w = self.input_shape
        shape, bits = (c * self.input_repeat, h, w), 8
        for i, layer in enumerate(self.layers):
            layer.validate(path=path)
            got = (layer.in_ch, layer.in_h, layer.in_w)
            if got != shape:
                raise ModelFormatError(f"layers[{layer.name}].in_shape",
                                       f"expected {shape} (output of the previous layer), got {got}", path=path)
            if layer.in_bits != bits:
                raise ModelFormatError(f"layers[{layer.name}].in_bits",
                                       f"expected {bits} (output of the previous layer), got {layer.in_bits}", path=path)
            if layer.out_kind == "logits" and i != len(self.layers) - 1:
                raise ModelFormatError(f"layers[{layer.name}].out_kind", "only the last layer may output logits", path=path)
            shape, bits = (layer.out_ch, layer.out_h, layer.out_w), layer.out_bits
        if self.layers[-1].out_kind != "logits":
            raise ModelFormatError(f"layers[{self.layers[-1].name}].out_kind", "expected 'logits' on the last layer", path=path)
        if self.layers[-1].out_ch != self.classes:
            raise ModelFormatError("classes", f"expected {self.layers[-1].out_ch} (last layer out_ch), got {self.classes}", path=path)
