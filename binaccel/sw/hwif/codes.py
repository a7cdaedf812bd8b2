"""The codes and constants of the interface: engine beat and output kinds, accelerator opcodes and
write targets, the stream word width and the INFO reply, and the frame link's constants and kinds."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .params import AccelParams


class BeatKind(enum.IntEnum):
    """Kind of an engine input beat (field ``kind`` of :attr:`EngineParams.in_layout`, 2 bits)."""

    DESC = 0    #: layer descriptor; starts a layer
    MFILT = 1   #: one M-Filter column: the planes' factors of one segment (tap)
    PARAM = 2   #: one row's output-channel parameters (thresh/flip or mul/add) of a group tile
    OPER = 3    #: one operand step: a weight word per row, an activation and a mask word per column


class OutKind(enum.IntEnum):
    """Output kind of a layer (descriptor field ``out_kind``, 2 bits), as ``Layer.out_kind``."""

    SIGN = 0
    REQUANT = 1
    LOGITS = 2


#: ``Layer.out_kind`` -> :class:`OutKind`.
OUT_KIND = {"sign": OutKind.SIGN, "requant": OutKind.REQUANT, "logits": OutKind.LOGITS}


class Op:
    """Accelerator command opcodes (bits 3:0 of a command header word; plain ints, so that the
    gateware's constants keep the width of the value)."""

    NOP = 0
    WRITE = 1   #: write ``count`` entries of a buffer from address (next word)
    RUN = 2     #: image words follow; run the program's layers on it
    INFO = 3    #: reply with the build parameters


class Target:
    """Buffer written by a WRITE command (header bits 7:4; plain ints, as :class:`Op`)."""

    DESC = 0
    WEIGHT = 1
    TABLE = 2
    FMAP0 = 3
    FMAP1 = 4


#: Width of the accelerator's input and output stream words (and of the link's words).
IO_WIDTH = 32
#: First word of the INFO reply ("BACC").
MAGIC = 0x42414343
#: Second word of the INFO reply: 2 since the build parameter ``pair_reads``, 3 since ``pe_stages``
#: (one more word each).
VERSION = 3


def info_words(params: "AccelParams") -> list:
    """The words of the INFO reply of a build: magic, version, then every parameter in
    :meth:`AccelParams.names` order."""
    return [MAGIC, VERSION] + [getattr(params, k) for k in params.names()]


# ---- the frame link (docs/link.md; the codec is binaccel.sw.link) ----------------------------------

SYNC0 = 0xA5
SYNC1 = 0x5A
SYNC = bytes([SYNC0, SYNC1])
#: Bytes before the payload: SYNC0 SYNC1 TYPE SEQ LEN_LO LEN_HI HCRC_LO HCRC_HI.
HEADER_SIZE = 8
#: Bytes after the payload: CRC_LO CRC_HI.
TRAILER_SIZE = 2
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
#: Default (and the gateware's default) largest payload of one frame, in bytes.
MAX_PAYLOAD = 256
#: Initial value of the frames' CRC-16/CCITT-FALSE.
CRC_INIT = 0xFFFF

TYPE_KIND_MASK = 0x0F
TYPE_SOT = 0x10
TYPE_EOT = 0x20
TYPE_RESERVED_MASK = 0xC0


class FrameKind(enum.IntEnum):
    """Frame kinds (bits 3..0 of TYPE). 0 and 8..15 are not defined (an 'unknown type')."""

    PROGRAM = 1   #: host -> device: layer descriptors
    WEIGHTS = 2   #: host -> device: packed weights
    TABLES = 3    #: host -> device: threshold / requantisation tables
    IMAGE = 4     #: host -> device: one input image
    RESULT = 5    #: device -> host: logits / outputs
    STATUS = 6    #: device -> host: link and accelerator status (see ``binaccel.sw.link.StatusEvent``)
    RESET = 7     #: host -> device: return the receiver (and what it feeds) to idle


HOST_TO_DEVICE = frozenset({FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES, FrameKind.IMAGE,
                            FrameKind.RESET})
DEVICE_TO_HOST = frozenset({FrameKind.RESULT, FrameKind.STATUS})
ALL_KINDS = frozenset(FrameKind)


class RxCode(enum.IntEnum):
    """Outcome of one frame at the gateware receiver (``FrameRx.o_status.code``; STATUS payload byte 0)."""

    OK = 0          #: frame verified and its payload handed to the output (RESET: reset done)
    HEADER_CRC = 1  #: header CRC mismatch (type, sequence and length cannot be trusted)
    TYPE = 2        #: unknown kind or reserved TYPE bits set
    LENGTH = 3      #: LEN larger than the receiver's max_payload
    CRC = 4         #: frame CRC mismatch
    SEQUENCE = 5    #: SEQ is not the expected sequence number (frame dropped)
    TIMEOUT = 6     #: the frame stopped arriving (idle too long before its last byte)


#: Bytes of a STATUS frame's payload: code, kind, seq, expect.
STATUS_SIZE = 4
