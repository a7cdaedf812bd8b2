"""Host side of the binaccel frame link: encode transfers into frames, decode frames from a byte stream.

Contract
    * Every transfer between the host and the accelerator (a program, packed weights, threshold
      tables, an image, results, status) travels as one or more *frames*; the byte layout is
      ``docs/link.md``::

          SYNC0 SYNC1 TYPE SEQ LEN_LO LEN_HI HCRC_LO HCRC_HI PAYLOAD[LEN] CRC_LO CRC_HI
          0xA5  0x5A                                                          (10 bytes + payload)

      ``TYPE`` = kind (bits 3..0, :class:`FrameKind`) | SOT (bit 4, first frame of a transfer) |
      EOT (bit 5, last frame of a transfer); bits 7..6 are 0. ``HCRC`` is the CRC of TYPE..LEN_HI,
      ``CRC`` the CRC of TYPE..LEN_HI followed by the payload (HCRC not included); both are
      CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR),
      little-endian. The constants and kinds are part of the host/hardware interface,
      :mod:`binaccel.sw.hwif`, and re-exported here.
    * :func:`encode_frames` splits one transfer into frames of at most ``max_payload`` (256) bytes
      with consecutive sequence numbers (mod 256); an empty transfer is one frame with LEN 0.
    * :class:`FrameDecoder` is incremental (bytes may arrive in any pieces, down to one at a time)
      and checks every field; a defect raises (or, with ``resync=True``, records) a
      :class:`LinkError` that names the frame number, the stream offset, the field, the expected
      and the received value. Decoding then resumes at the next sync pattern.

This module does not import Amaranth: a host driver needs only the standard library.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from .hwif import (
    ALL_KINDS, CRC_INIT, DEVICE_TO_HOST, HEADER_SIZE, HOST_TO_DEVICE, MAX_PAYLOAD, OVERHEAD, STATUS_SIZE, SYNC,
    SYNC0, SYNC1, TRAILER_SIZE, TYPE_EOT, TYPE_KIND_MASK, TYPE_RESERVED_MASK, TYPE_SOT, FrameKind, RxCode,
)

__all__ = [
    "SYNC", "SYNC0", "SYNC1", "HEADER_SIZE", "TRAILER_SIZE", "OVERHEAD", "MAX_PAYLOAD", "CRC_INIT",
    "TYPE_KIND_MASK", "TYPE_SOT", "TYPE_EOT", "TYPE_RESERVED_MASK", "FrameKind", "HOST_TO_DEVICE",
    "DEVICE_TO_HOST", "ALL_KINDS", "RxCode", "StatusEvent", "STATUS_SIZE", "crc16", "type_byte",
    "Frame", "encode_frame", "encode_frames", "split_frames", "frame_count", "FrameEncoder", "LinkError",
    "FrameDecoder", "decode_frames", "join_transfers", "parse_status", "encode_status",
    "DEFAULT_BAUD", "LINE_BITS_PER_BYTE", "line_seconds",
]

@dataclass(frozen=True)
class StatusEvent:
    """One receiver event: ``code`` (:class:`RxCode`), the frame's ``kind`` (TYPE bits 3..0 as
    received, 0 if not yet received), its ``seq`` (as received, 0 if not yet received) and
    ``expect``, the sequence number the receiver expects next."""

    code: RxCode
    kind: int
    seq: int
    expect: int


def parse_status(payload: bytes) -> StatusEvent:
    """Decode the payload of a STATUS frame (:data:`STATUS_SIZE` bytes: code, kind, seq, expect)."""
    payload = bytes(payload)
    if len(payload) != STATUS_SIZE:
        raise ValueError(f"STATUS payload: field 'length': expected {STATUS_SIZE} bytes, got {len(payload)}")
    try:
        code = RxCode(payload[0])
    except ValueError:
        raise ValueError(f"STATUS payload: field 'code': expected one of "
                         f"{[int(c) for c in RxCode]}, got {payload[0]}") from None
    return StatusEvent(code, payload[1], payload[2], payload[3])


def encode_status(event: StatusEvent) -> bytes:
    """Inverse of :func:`parse_status`."""
    return bytes([int(event.code), event.kind, event.seq, event.expect])


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``), continuing from ``crc``."""
    return binascii.crc_hqx(data, crc)


def _check_kind(kind, kinds=ALL_KINDS) -> FrameKind:
    try:
        k = FrameKind(kind)
    except ValueError:
        raise ValueError(f"kind must be one of {[f'{k.name}({int(k)})' for k in FrameKind]}, "
                         f"got {kind!r}") from None
    if k not in kinds:
        raise ValueError(f"kind {k.name} is not allowed here (allowed: {sorted(x.name for x in kinds)})")
    return k


def _check_max_payload(max_payload):
    if isinstance(max_payload, bool) or not isinstance(max_payload, int):
        raise TypeError(f"max_payload must be an int, got {max_payload!r}")
    if not 1 <= max_payload <= 0xFFFF:
        raise ValueError(f"max_payload must be in 1..65535, got {max_payload}")
    return max_payload


def _check_seq(seq, name="seq"):
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError(f"{name} must be an int, got {seq!r}")
    if not 0 <= seq <= 255:
        raise ValueError(f"{name} must be in 0..255, got {seq}")
    return seq


def type_byte(kind, *, sot: bool = True, eot: bool = True) -> int:
    """The TYPE byte of a frame of ``kind`` with the given transfer flags."""
    return int(_check_kind(kind)) | (TYPE_SOT if sot else 0) | (TYPE_EOT if eot else 0)


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``sot``/``eot``: first/last frame of a transfer. ``index``: 0-based
    number of the frame in the decoder's stream (every frame start counts, good or bad);
    ``offset``: stream offset of its SYNC0 byte."""

    kind: FrameKind
    seq: int
    payload: bytes
    sot: bool = True
    eot: bool = True
    index: int = 0
    offset: int = 0

    def encode(self, *, max_payload: int = MAX_PAYLOAD) -> bytes:
        """The frame's bytes on the wire."""
        return encode_frame(self.kind, self.seq, self.payload, sot=self.sot, eot=self.eot,
                            max_payload=max_payload)


def encode_frame(kind, seq: int, payload: bytes, *, sot: bool = True, eot: bool = True,
                 max_payload: int = MAX_PAYLOAD) -> bytes:
    """One frame: ``kind`` (:class:`FrameKind`), sequence number ``seq`` (0..255), ``payload`` of
    at most ``max_payload`` bytes, transfer flags ``sot``/``eot``."""
    _check_seq(seq)
    payload = bytes(payload)
    if len(payload) > _check_max_payload(max_payload):
        raise ValueError(f"payload of {len(payload)} bytes exceeds max_payload {max_payload}; "
                         f"use encode_frames to split a transfer")
    head = bytes([type_byte(kind, sot=sot, eot=eot), seq, len(payload) & 0xFF, len(payload) >> 8])
    hcrc = crc16(head)
    crc = crc16(payload, hcrc)
    return (SYNC + head + hcrc.to_bytes(2, "little") + payload + crc.to_bytes(2, "little"))


def frame_count(n_bytes: int, *, max_payload: int = MAX_PAYLOAD) -> int:
    """Number of frames :func:`encode_frames` makes of an ``n_bytes`` transfer (at least 1)."""
    _check_max_payload(max_payload)
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        raise ValueError(f"n_bytes must be an int >= 0, got {n_bytes!r}")
    return max(1, -(-n_bytes // max_payload))


def split_frames(kind, payload: bytes, *, seq_start: int = 0, max_payload: int = MAX_PAYLOAD) -> list:
    """One transfer as a list of frames (bytes each): ``payload`` cut into pieces of ``max_payload``
    bytes (the last one shorter; an empty payload gives one frame with LEN 0), sequence numbers
    ``seq_start, seq_start + 1, ...`` mod 256, SOT on the first frame and EOT on the last."""
    kind = _check_kind(kind)
    _check_seq(seq_start, "seq_start")
    _check_max_payload(max_payload)
    payload = bytes(payload)
    n = frame_count(len(payload), max_payload=max_payload)
    return [encode_frame(kind, (seq_start + i) & 0xFF, payload[i * max_payload:(i + 1) * max_payload],
                         sot=(i == 0), eot=(i == n - 1), max_payload=max_payload)
            for i in range(n)]


def encode_frames(kind, payload: bytes, *, seq_start: int = 0, max_payload: int = MAX_PAYLOAD) -> bytes:
    """One transfer as consecutive frames, concatenated (see :func:`split_frames`)."""
    return b"".join(split_frames(kind, payload, seq_start=seq_start, max_payload=max_payload))


class FrameEncoder:
    """Sender state: the next sequence number. ``encode(kind, payload)`` = :func:`encode_frames`
    from the current sequence number, which then advances past the frames made."""

    def __init__(self, *, seq: int = 0, max_payload: int = MAX_PAYLOAD):
        self.seq = _check_seq(seq)
        self.max_payload = _check_max_payload(max_payload)

    def encode(self, kind, payload: bytes) -> bytes:
        data = encode_frames(kind, payload, seq_start=self.seq, max_payload=self.max_payload)
        self.seq = (self.seq + frame_count(len(payload), max_payload=self.max_payload)) & 0xFF
        return data

    def reset(self) -> bytes:
        """A RESET frame with the current sequence number; the receiver then expects the next one."""
        return self.encode(FrameKind.RESET, b"")


class LinkError(ValueError):
    """A defect in a frame stream.

    Attributes: ``code`` (``"sync"``, ``"header_crc"``, ``"type"``, ``"length"``, ``"crc"``,
    ``"sequence"``, ``"truncated"``), ``frame`` (0-based frame number in the stream), ``offset``
    (stream offset of the defect's frame start, or of the bad byte for ``"sync"``), ``field``,
    ``expected``, ``got``; ``frames``: frames decoded by the same :meth:`FrameDecoder.feed` call
    before the error (so none is lost when it raises).
    """

    def __init__(self, code: str, *, frame: int, offset: int, field: str, expected, got, detail: str = ""):
        self.code, self.frame, self.offset = code, frame, offset
        self.field, self.expected, self.got = field, expected, got
        self.frames: list[Frame] = []
        msg = (f"frame {frame} (stream offset {offset}): field '{field}': expected {expected}, "
               f"got {got}")
        super().__init__(msg + (f" ({detail})" if detail else ""))


def _hex(v, width=2):
    return f"0x{v:0{width}X}"


class FrameDecoder:
    """Incremental frame decoder.

    ``feed(data)`` returns the frames completed by ``data`` (bytes may arrive in pieces of any
    size); ``finish()`` declares the end of the stream (a partial frame is then a ``"truncated"``
    error). Checks, in order: sync bytes, header CRC, TYPE (kind in ``kinds``, reserved bits 0),
    LEN (<= ``max_payload``), frame CRC, sequence number (the first frame must carry ``seq_start``,
    or any number if ``seq_start`` is None; then +1 mod 256 per frame; a RESET frame may carry any
    number and restarts the count after it).

    On a defect the decoder skips ahead: after a header defect (sync, header CRC, type, length) to
    the next sync pattern after the frame's first byte; after a CRC defect past the frame (its
    length is protected by the header CRC); a frame with a sequence gap is dropped and the count
    continues from its number. Then, with ``resync=False`` (default) :meth:`feed` raises the
    :class:`LinkError` (``err.frames``: the frames decoded before it; the bytes after the defect
    stay buffered and are decoded by the next ``feed``, e.g. ``feed(b"")``); with ``resync=True``
    the error is appended to ``errors`` and decoding goes on. Bytes skipped while searching for
    the next sync after a defect are not reported again.
    """

    def __init__(self, *, seq_start: int | None = 0, kinds: Iterable = ALL_KINDS,
                 max_payload: int = MAX_PAYLOAD, resync: bool = False):
        self.expect = None if seq_start is None else _check_seq(seq_start, "seq_start")
        self.kinds = frozenset(_check_kind(k) for k in kinds)
        if not self.kinds:
            raise ValueError("kinds must name at least one FrameKind")
        self.max_payload = _check_max_payload(max_payload)
        if not isinstance(resync, bool):
            raise TypeError(f"resync must be a bool, got {resync!r}")
        self.resync = resync
        self.errors: list[LinkError] = []
        self._buf = bytearray()
        self._base = 0            # stream offset of _buf[0]
        self._hunting = False     # skipping bytes up to the next SYNC after a defect
        self._index = 0           # number of frame starts seen
        self._finished = False

    @property
    def pending(self) -> int:
        """Bytes buffered, not yet part of a decoded frame."""
        return len(self._buf)

    @property
    def frames_seen(self) -> int:
        """Frame starts seen so far (good and bad)."""
        return self._index

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _error(self, code, field, expected, got, *, offset, detail=""):
        return LinkError(code, frame=self._index, offset=offset, field=field, expected=expected,
                         got=got, detail=detail)

    def _step(self):
        """Try to take one frame (or one defect) off the buffer. Returns (frame, error, progress)."""
        buf = self._buf
        if self._hunting:
            pos = buf.find(SYNC)
            if pos < 0:
                keep = 1 if buf and buf[-1] == SYNC0 else 0
                self._consume(len(buf) - keep)
                return None, None, False
            self._consume(pos)
            self._hunting = False
            buf = self._buf
        if not buf:
            return None, None, False
        base = self._base
        # sync bytes, checked as soon as they arrive
        for i, want in enumerate(SYNC):
            if len(buf) <= i:
                return None, None, False
            if buf[i] != want:
                err = self._error("sync", f"sync{i}", _hex(want), _hex(buf[i]), offset=base + i,
                                  detail="bytes up to the next sync pattern are skipped")
                self._index += 1
                self._consume(1)
                self._hunting = True
                return None, err, True
        if len(buf) < HEADER_SIZE:
            return None, None, False
        typ, seq, length = buf[2], buf[3], buf[4] | (buf[5] << 8)
        hcrc_got = buf[6] | (buf[7] << 8)
        hcrc = crc16(bytes(buf[2:6]))
        err = None
        if hcrc != hcrc_got:
            err = self._error("header_crc", "hcrc", _hex(hcrc, 4), _hex(hcrc_got, 4), offset=base)
        elif typ & TYPE_RESERVED_MASK or (typ & TYPE_KIND_MASK) not in {int(k) for k in self.kinds}:
            allowed = sorted(f"{k.name}({int(k)})" for k in self.kinds)
            err = self._error("type", "type", f"kind in {allowed} and reserved bits 0", _hex(typ),
                              offset=base)
        elif length > self.max_payload:
            err = self._error("length", "len", f"<= {self.max_payload}", length, offset=base)
        if err is not None:
            self._index += 1
            self._consume(1)
            self._hunting = True
            return None, err, True
        total = HEADER_SIZE + length + TRAILER_SIZE
        if len(buf) < total:
            return None, None, False
        crc = crc16(bytes(buf[HEADER_SIZE:HEADER_SIZE + length]), hcrc)
        crc_got = buf[total - 2] | (buf[total - 1] << 8)
        index = self._index
        self._index += 1
        if crc != crc_got:
            err = LinkError("crc", frame=index, offset=base, field="crc", expected=_hex(crc, 4),
                            got=_hex(crc_got, 4))
            self._consume(total)
            return None, err, True
        kind = FrameKind(typ & TYPE_KIND_MASK)
        frame = Frame(kind, seq, bytes(buf[HEADER_SIZE:HEADER_SIZE + length]), bool(typ & TYPE_SOT),
                      bool(typ & TYPE_EOT), index, base)
        self._consume(total)
        if kind != FrameKind.RESET and self.expect is not None and seq != self.expect:
            err = LinkError("sequence", frame=index, offset=base, field="seq", expected=self.expect,
                            got=seq, detail="frame dropped; the count continues from it")
            self.expect = (seq + 1) & 0xFF
            return None, err, True
        self.expect = (seq + 1) & 0xFF
        return frame, None, True

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` to the stream; return the frames it completed (see the class docstring for
        errors)."""
        if self._finished:
            raise RuntimeError("FrameDecoder.feed after finish()")
        self._buf += data
        frames: list[Frame] = []
        while True:
            frame, err, progress = self._step()
            if frame is not None:
                frames.append(frame)
            if err is not None:
                self.errors.append(err)
                if not self.resync:
                    err.frames = frames
                    raise err
            if not progress:
                return frames

    def finish(self) -> None:
        """End of stream: a partial frame left in the buffer is a ``"truncated"`` error (raised, or
        recorded with ``resync=True``). Bytes skipped after an earlier defect are not reported."""
        self._finished = True
        buf = self._buf
        if self._hunting or not buf:
            self._buf = bytearray()
            return
        if len(buf) < HEADER_SIZE:
            field, expected = "header", f"{HEADER_SIZE} bytes"
        else:
            length = buf[4] | (buf[5] << 8)
            total = HEADER_SIZE + length + TRAILER_SIZE
            field = "payload" if len(buf) < HEADER_SIZE + length else "crc"
            expected = f"{total} bytes"
        err = LinkError("truncated", frame=self._index, offset=self._base, field=field,
                        expected=expected, got=f"{len(buf)} bytes", detail="stream ended inside the frame")
        self._index += 1
        self._buf = bytearray()
        self.errors.append(err)
        if not self.resync:
            raise err


def decode_frames(data: bytes, **kwargs) -> list[Frame]:
    """Decode a complete stream (``feed`` + ``finish``); keyword arguments as :class:`FrameDecoder`.
    With ``resync=False`` the first defect raises."""
    dec = FrameDecoder(**kwargs)
    frames = dec.feed(data)
    dec.finish()
    return frames


def join_transfers(frames: Iterable[Frame]) -> list[tuple[FrameKind, bytes]]:
    """Reassemble transfers from frames by their SOT/EOT flags: ``[(kind, payload), ...]``.

    Raises :class:`LinkError` (code ``"transfer"``) for a frame without SOT outside a transfer, a
    SOT frame inside one, a kind change inside one, or a transfer left open at the end.
    """
    out = []
    cur_kind, cur = None, None
    last = None
    for f in frames:
        last = f
        if cur is None:
            if not f.sot:
                raise LinkError("transfer", frame=f.index, offset=f.offset, field="type.sot",
                                expected="SOT set on the first frame of a transfer", got="SOT clear")
            cur_kind, cur = f.kind, bytearray()
        else:
            if f.sot:
                raise LinkError("transfer", frame=f.index, offset=f.offset, field="type.sot",
                                expected="SOT clear inside a transfer", got="SOT set",
                                detail="previous transfer has no EOT")
            if f.kind != cur_kind:
                raise LinkError("transfer", frame=f.index, offset=f.offset, field="type.kind",
                                expected=cur_kind.name, got=f.kind.name)
        cur += f.payload
        if f.eot:
            out.append((cur_kind, bytes(cur)))
            cur_kind, cur = None, None
    if cur is not None:
        raise LinkError("transfer", frame=last.index, offset=last.offset, field="type.eot",
                        expected="EOT on the last frame of a transfer", got="stream ended")
    return out


#: The host link's default bit rate: both boards' USB-UART (FTDI) bridges run 3 Mbaud, and the board
#: tops (:class:`binaccel.hw.boards.BoardTop`) default to it.
DEFAULT_BAUD = 3_000_000

#: Bits on the line per byte (8N1: start bit, 8 data bits, stop bit).
LINE_BITS_PER_BYTE = 10


def line_seconds(n_bytes: int, baud: int = DEFAULT_BAUD) -> float:
    """Time on an 8N1 serial line for ``n_bytes`` bytes at ``baud``: ``n_bytes * 10 / baud``."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        raise ValueError(f"n_bytes: expected a non-negative int, got {n_bytes!r}")
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud: expected a positive int (bits per second), got {baud!r}")
    return n_bytes * LINE_BITS_PER_BYTE / baud
