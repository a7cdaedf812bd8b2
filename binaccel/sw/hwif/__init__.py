"""The interface between the host and the gateware, in plain Python (no Amaranth).

Everything the host side must know about the hardware is defined here once, and the gateware
(:mod:`binaccel.hw`) imports it from here:

* the build parameters: :class:`EngineParams` (the layer engine) and :class:`AccelParams` (the
  whole-network accelerator: the engine's parameters plus its buffer sizes), plain frozen
  dataclasses checked at construction, and every width derived from them;
* the stream payloads as plain layouts (:class:`Struct`, :class:`Array`, :class:`Union` of
  :class:`Bits` and :class:`Enum` fields) with their field offsets and a packer
  (:meth:`Struct.pack`); :func:`binaccel.hw.params.layout` turns one into the
  ``amaranth.lib.data`` layout the gateware uses, field for field;
* the engine's beat kinds (:class:`BeatKind`) and output kinds (:class:`OutKind`), the
  accelerator's command opcodes (:class:`Op`) and write targets (:class:`Target`), its stream word
  width (:data:`IO_WIDTH`) and the INFO reply (:func:`info_words`).

* the frame link's constants: sync bytes, header and trailer sizes, the largest payload, the TYPE
  bits, the frame kinds (:class:`FrameKind`) and the receiver's codes (:class:`RxCode`); the codec
  is :mod:`binaccel.sw.link`.

Modules: :mod:`.layouts` (the plain layouts), :mod:`.codes` (kinds, opcodes, constants of the
command stream and of the frame link), :mod:`.params` (the build parameters and their widths); this
package re-exports every public name.

The formats are specified in
``docs/hardware.md`` (engine beats), ``docs/accelerator.md`` (command stream) and ``docs/link.md``
(frames).

Width bounds of :class:`EngineParams` (a build is correct for every layer that fits its limits;
:func:`binaccel.sw.pack.check_layer` says which do):

* ``pe_width``: the per-segment partial ``P`` of one PE; ``|P| <= max_fan_in * amax`` where
  ``amax = 2**max_in_bits - 1`` (1 for a binary-only build).
* ``acc_width``: the modulated accumulator; ``|acc| <= max_fan_in * amax * (2**m_bits - 1)``.
  Plain and MCNs-1 layers use the same path with a single segment (M = 1 for plain layers).
* ``thresh_width``: ``acc_width + 1``: thresholds are clamped by the host to ``[-B-1, B+1]``
  (``B`` = :attr:`EngineParams.acc_bound`), which keeps every comparison's result.
* ``y_width``: ``acc * mul + add``; ``|y| <= B * 2**(mul_bits-1) + 2**(add_bits-1)``.
"""

from .layouts import Array, Bits, Enum, FieldRangeError, Slot, Struct, Union
from .codes import (ALL_KINDS, CRC_INIT, DEVICE_TO_HOST, HEADER_SIZE, HOST_TO_DEVICE, IO_WIDTH, MAGIC, MAX_PAYLOAD,
                    OUT_KIND, OVERHEAD, STATUS_SIZE, SYNC, SYNC0, SYNC1, TRAILER_SIZE, TYPE_EOT, TYPE_KIND_MASK,
                    TYPE_RESERVED_MASK, TYPE_SOT, VERSION, BeatKind, FrameKind, Op, OutKind, RxCode, Target,
                    info_words)
from .params import AccelParams, EngineParams, param_lane_layout, signed_width

__all__ = [
    "Bits", "Enum", "Struct", "Array", "Union", "Slot", "FieldRangeError",
    "BeatKind", "OutKind", "OUT_KIND", "Op", "Target", "IO_WIDTH", "MAGIC", "VERSION", "info_words",
    "signed_width", "param_lane_layout", "EngineParams", "AccelParams",
    "SYNC", "SYNC0", "SYNC1", "HEADER_SIZE", "TRAILER_SIZE", "OVERHEAD", "MAX_PAYLOAD", "CRC_INIT",
    "TYPE_KIND_MASK", "TYPE_SOT", "TYPE_EOT", "TYPE_RESERVED_MASK", "FrameKind", "HOST_TO_DEVICE",
    "DEVICE_TO_HOST", "ALL_KINDS", "RxCode", "STATUS_SIZE",
]
