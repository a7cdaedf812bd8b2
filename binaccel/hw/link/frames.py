"""What both directions of the frame link share: the stream payload layouts, the CRC-16 of a byte,
the checks of the buffer geometry and of the accepted kinds, and the Verilator lint waivers."""

from amaranth.hdl import Cat
from amaranth.lib import data

from binaccel.sw.link import FrameKind

from .._util import check_int

#: ``FrameRx.o_stream`` payload: one payload byte of a verified frame.
#: ``data``: the byte (0 when ``empty``); ``kind``: the frame's :class:`FrameKind`;
#: ``first``/``last``: first/last beat of the frame; ``empty``: the frame has no payload (LEN 0;
#: it is delivered as this single beat, ``first = last = 1``); ``sot``/``eot``: the frame's
#: transfer flags (first/last frame of a transfer), the same on all its beats.
RX_BEAT = data.StructLayout({
    "data": 8, "kind": 4, "first": 1, "last": 1, "empty": 1, "sot": 1, "eot": 1,
})

#: ``FrameTx.i_stream`` payload: one beat of a transfer. ``data``: a byte (ignored when ``empty``);
#: ``kind``: the transfer's :class:`FrameKind` (read on the first beat of each frame); ``last``:
#: the transfer ends with this beat; ``empty``: the beat carries no byte (an empty transfer is one
#: beat with ``empty = last = 1``; an empty beat without ``last`` does nothing).
TX_BEAT = data.StructLayout({"data": 8, "kind": 4, "last": 1, "empty": 1})

#: ``FrameRx.o_status`` payload: one event per frame (see :class:`~binaccel.sw.link.StatusEvent`).
#: ``code``: :class:`RxCode`; ``kind``: TYPE bits 3..0 as received (0 if the frame ended before
#: them); ``seq``: SEQ as received (0 if the frame ended before it); ``expect``: the sequence
#: number the receiver expects next, after this event.
RX_STATUS = data.StructLayout({"code": 4, "kind": 4, "seq": 8, "expect": 8})

#: Default idle limit of :class:`FrameRx` inside a frame: 2**22 cycles, 87 ms at 48 MHz (a UART
#: byte at 115200 baud takes 87 us; a host write may pause for a USB frame or a scheduler tick).
DEFAULT_TIMEOUT = 1 << 22

_SEL_CONST, _SEL_MEM, _SEL_CRC_LO, _SEL_CRC_HI = range(4)


def crc16_byte(crc, byte):
    """Next CRC-16/CCITT-FALSE register value (polynomial 0x1021, MSB first) after ``byte``:
    an Amaranth expression of the 16-bit ``crc`` and the 8-bit ``byte``."""
    c = [crc[i] for i in range(16)]
    for i in range(7, -1, -1):
        fb = c[15] ^ byte[i]
        c = [fb] + c[:15]
        c[5] = c[5] ^ fb
        c[12] = c[12] ^ fb
    return Cat(*c)


def _is_pow2(n):
    return n >= 1 and n & (n - 1) == 0


def _check_geometry(who, max_payload, depth):
    check_int(f"{who}: max_payload", max_payload, 1, 32768)
    if not _is_pow2(max_payload):
        raise ValueError(f"{who}: max_payload must be a power of two (one frame per memory "
                         f"region), got {max_payload}")
    check_int(f"{who}: depth", depth, 1, 16)
    if not _is_pow2(depth):
        raise ValueError(f"{who}: depth (frame buffers) must be a power of two, got {depth}")


def _check_kinds(who, kinds):
    try:
        kinds = frozenset(FrameKind(k) for k in kinds)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: kinds must be FrameKind values, got {kinds!r}") from None
    if not kinds:
        raise ValueError(f"{who}: kinds must name at least one FrameKind")
    return kinds
