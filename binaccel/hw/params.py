"""Build-time parameters of the binaccel engine, the widths derived from them and the stream layouts.

One :class:`EngineParams` fixes a hardware build. Every datapath width is *derived* from the
parameters (nothing is a hand-picked constant), so a build is correct for every layer that fits
its limits (:meth:`EngineParams.check_layer` in :mod:`binaccel.sw.pack` says which do):

* ``pe_width``: the per-segment partial ``P`` of one PE; ``|P| <= max_fan_in * amax`` where
  ``amax = 2**max_in_bits - 1`` (1 for a binary-only build).
* ``acc_width``: the modulated accumulator; ``|acc| <= max_fan_in * amax * (2**m_bits - 1)``
  (``sum_t M[j,t] * P_t`` with ``sum_t |P_t| <= max_fan_in * amax``). Plain and MCNs-1 layers use
  the same path with a single segment (M = 1 for plain layers).
* ``thresh_width``: ``acc_width + 1``: thresholds are clamped by the host to ``[-B-1, B+1]``
  (``B`` = :attr:`acc_bound`) which keeps every comparison's result.
* ``y_width``: ``acc * mul + add``; ``|y| <= B * 2**(mul_bits-1) + 2**(add_bits-1)``.

See ``docs/hardware.md`` for the bounds and the stream formats.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

__all__ = [
    "EngineParams", "BeatKind", "OutKind", "ctl_layout", "drain_layout", "signed_width",
    "param_lane_layout",
]


def signed_width(bound: int) -> int:
    """Width of a two's complement signal holding every integer in ``[-bound, bound]``."""
    return max(int(bound), 1).bit_length() + 1


def _uwidth(maximum: int) -> int:
    """Width of an unsigned signal holding ``0 .. maximum``."""
    return max(int(maximum), 1).bit_length()


class BeatKind(enum.IntEnum, shape=2):
    """Kind of an input beat (field ``kind`` of :attr:`EngineParams.in_layout`)."""

    DESC = 0    #: layer descriptor; starts a layer
    MFILT = 1   #: one M-Filter column: the planes' factors of one segment (tap)
    PARAM = 2   #: one row's output-channel parameters (thresh/flip or mul/add) of a group tile
    OPER = 3    #: one operand step: a weight word per row, an activation and a mask word per column


class OutKind(enum.IntEnum, shape=2):
    """Output kind of a layer (descriptor field ``out_kind``), as :attr:`Layer.out_kind`."""

    SIGN = 0
    REQUANT = 1
    LOGITS = 2


def ctl_layout(*, b_width: int, tap_width: int) -> data.StructLayout:
    """Control travelling with an operand step through the array (down the columns)."""
    return data.StructLayout({
        "valid": 1,          # a real step (0: bubble)
        "b": unsigned(b_width),  # bit plane of the activation word (0 for binary layers)
        "seg_last": 1,       # last step of a segment: the PE hands its partial to the drain
        "tile_last": 1,      # last step of the tile (implies seg_last)
        "gt_last": 1,        # last step of the last tile of a group tile
        "t": unsigned(tap_width),  # segment (tap) index inside the tile
    })


def drain_layout(*, p_width: int, tap_width: int) -> data.StructLayout:
    """A partial sum leaving a PE (through the row's drain chain)."""
    return data.StructLayout({
        "valid": 1,
        "p": signed(p_width),
        "t": unsigned(tap_width),
        "tile_last": 1,
        "gt_last": 1,
        "last_col": 1,       # set by the PE of the last column
    })


def param_lane_layout(*, p_width: int, q_width: int) -> data.StructLayout:
    """Per output channel scale parameters: ``p`` = thresh (sign) or mul; ``q`` = flip or add."""
    return data.StructLayout({"p": signed(p_width), "q": signed(q_width)})


@dataclass(frozen=True, kw_only=True)
class EngineParams:
    """Build parameters of the engine (all keyword-only, checked at construction).

    rows, cols
        Systolic array size: ``rows`` weight groups x ``cols`` output positions per tile.
    word
        Bits of the XNOR/AND-popcount slice each PE consumes per cycle.
    max_fan_in
        Largest ``Layer.fan_in`` (``C*k*k`` or an FC's ``C*H*W``) a layer may have.
    max_in_bits
        Largest activation width (1 = binary only; 2..8 adds bit-serial multi-bit layers).
    max_planes
        Largest MCN plane count ``K`` (output lanes per array row).
    max_taps
        Largest ``k*k`` of an ``mcn`` layer (segments per tile, M-Filter columns).
    m_bits
        Width of the unsigned M-Filter factors (``Layer.m_bits`` must not exceed it).
    mul_bits, add_bits
        Signed widths of the requant/logits factors ``mul`` and ``add``.
    count_bits
        Width of the tile counters (position tiles and group tiles per layer run).
    pe_stages
        Pipeline stages of a PE: 1 (the step's popcount is added to the partial in the cycle the PE
        sees the step) or 2 (the step's contribution is registered first and added a cycle later:
        a shorter clock path for small FPGAs, one cycle more per layer run; see
        ``docs/hardware.md``, "Dataflow and timing"). Results are the same.
    """

    rows: int = 4
    cols: int = 4
    word: int = 32
    max_fan_in: int = 4608
    max_in_bits: int = 8
    max_planes: int = 4
    max_taps: int = 9
    m_bits: int = 8
    mul_bits: int = 16
    add_bits: int = 32
    count_bits: int = 20
    pe_stages: int = 1

    _LIMITS = {
        "rows": (1, 64), "cols": (1, 64), "word": (1, 1024), "max_fan_in": (1, 1 << 24),
        "max_in_bits": (1, 8), "max_planes": (1, 64), "max_taps": (1, 64), "m_bits": (1, 16),
        "mul_bits": (2, 32), "add_bits": (2, 64), "count_bits": (1, 32), "pe_stages": (1, 2),
    }

    def __post_init__(self):
        for name, (lo, hi) in self._LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"engine parameter {name} must be an int, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"engine parameter {name} must be in {lo}..{hi}, got {v}")

    @classmethod
    def names(cls) -> tuple:
        return tuple(cls._LIMITS)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.names()}

    @property
    def tag(self) -> str:
        """Short name of the configuration (used for build folders)."""
        d = EngineParams()
        extra = "".join(f"-{k}{getattr(self, k)}" for k in self.names()[3:] if getattr(self, k) != getattr(d, k))
        return f"r{self.rows}c{self.cols}w{self.word}{extra}"

    # -- derived bounds and widths --------------------------------------------------------------
    @property
    def amax(self) -> int:
        return 1 if self.max_in_bits == 1 else (1 << self.max_in_bits) - 1

    @property
    def pe_bound(self) -> int:
        """Largest ``|P|`` of a PE partial."""
        return self.max_fan_in * self.amax

    @property
    def acc_bound(self) -> int:
        """Largest ``|acc|`` after modulation."""
        return self.pe_bound * ((1 << self.m_bits) - 1)

    @property
    def pe_width(self) -> int:
        return signed_width(self.pe_bound)

    @property
    def acc_width(self) -> int:
        return signed_width(self.acc_bound)

    @property
    def thresh_width(self) -> int:
        return signed_width(self.acc_bound + 1)

    @property
    def y_bound(self) -> int:
        return self.acc_bound * (1 << (self.mul_bits - 1)) + (1 << (self.add_bits - 1))

    @property
    def y_width(self) -> int:
        return signed_width(self.y_bound)

    @property
    def pcount_width(self) -> int:
        return _uwidth(self.word)

    @property
    def b_width(self) -> int:
        return _uwidth(self.max_in_bits - 1)

    @property
    def tap_width(self) -> int:
        return _uwidth(self.max_taps - 1)

    @property
    def max_seg_words(self) -> int:
        """Most words of one segment: the whole fan-in of the largest layer."""
        return -(-self.max_fan_in // self.word)

    @property
    def lanes(self) -> int:
        """Output values per output beat: ``rows * max_planes``."""
        return self.rows * self.max_planes

    @property
    def seg_spacing(self) -> int:
        """Minimum cycles between two segment ends (a row's drain chain emits one partial per cycle)."""
        return self.cols

    # -- pipeline latency and buffer depths (see docs/hardware.md, "Timing") -----------------------
    @property
    def latency(self) -> int:
        """Cycles from accepting a tile's last operand step (cycle ``T``) to the transfer of the
        tile's last output beat (cycle ``T + latency``) without backpressure: array input register
        and PE ``(r, c)`` at ``T + 1 + r + c`` (its partial ``pe_stages - 1`` cycles later), row
        commit and drain chain (partial of column ``c`` of row ``r`` at ``T + pe_stages + r + cols +
        c``), modulation 2, row alignment to row ``rows-1``, scale 2, output FIFO 2: the beat of
        column ``c`` leaves at ``T + rows + cols + 5 + pe_stages + c``."""
        return self.rows + 2 * self.cols + 4 + self.pe_stages

    @property
    def tiles_in_flight(self) -> int:
        """Tiles whose outputs can be pending at once without backpressure."""
        return self.latency // self.seg_spacing + 2

    @property
    def out_fifo_depth(self) -> int:
        return self.cols * self.tiles_in_flight

    @property
    def param_fifo_depth(self) -> int:
        return self.tiles_in_flight + 1

    # -- layouts ----------------------------------------------------------------------------------
    @property
    def ctl_layout(self):
        return ctl_layout(b_width=self.b_width, tap_width=self.tap_width)

    @property
    def drain_layout(self):
        return drain_layout(p_width=self.pe_width, tap_width=self.tap_width)

    @property
    def param_lane_layout(self):
        return param_lane_layout(p_width=max(self.thresh_width, self.mul_bits), q_width=self.add_bits)

    @property
    def desc_layout(self):
        return data.StructLayout({
            "in_bits": unsigned(_uwidth(self.max_in_bits)),
            "seg_words": unsigned(_uwidth(self.max_seg_words)),
            "n_seg": unsigned(_uwidth(self.max_taps)),
            "n_pt": unsigned(self.count_bits),
            "n_gt": unsigned(self.count_bits),
            "out_kind": OutKind,
            "shift": unsigned(6),
            "out_bits": unsigned(4),
        })

    @property
    def mfilt_layout(self):
        return data.ArrayLayout(unsigned(self.m_bits), self.max_planes)

    @property
    def param_layout(self):
        return data.ArrayLayout(self.param_lane_layout, self.max_planes)

    @property
    def oper_layout(self):
        return data.StructLayout({
            "w": data.ArrayLayout(self.word, self.rows),
            "a": data.ArrayLayout(self.word, self.cols),
            "m": data.ArrayLayout(self.word, self.cols),
        })

    @property
    def in_layout(self):
        """Payload of the engine's input stream: a kind and a union of the four beat kinds."""
        return data.StructLayout({
            "kind": BeatKind,
            "data": data.UnionLayout({
                "desc": self.desc_layout,
                "mfilt": self.mfilt_layout,
                "param": self.param_layout,
                "oper": self.oper_layout,
            }),
        })

    @property
    def out_layout(self):
        """Payload of the output stream: ``lanes`` values, lane ``r*max_planes + j``."""
        return data.ArrayLayout(signed(self.y_width), self.lanes)
