"""Host side of the frame link (``docs/link.md``) for a byte-serial transport, without the I/O.

:class:`HostLink` turns transfers (a kind and a payload) into frames and decides which bytes may go
on the line now; it takes the bytes that come back and turns them into the device's RESULT payload
and STATUS events. The transport (a simulated UART in :mod:`binaccel.sim.tb_uart`, a serial port on
a board) only moves bytes::

    link = HostLink(window=2)
    link.send(FrameKind.PROGRAM, program_bytes)
    link.send(FrameKind.IMAGE, image_bytes)
    while not (link.idle and len(link.result) >= expected):
        port.write(link.take_output())        # frames the credit window allows, b"" if none
        link.feed(port.read())                # STATUS and RESULT frames from the device
        if quiet_for_too_long:
            link.on_timeout()                 # resend everything not confirmed
    results = bytes(link.result)

Flow control: the device's receiver holds ``depth`` frames (2); a frame is confirmed by its STATUS
``OK`` once its payload has gone to the accelerator. At most ``window`` frames are on the line beyond
the last confirmed one, so the receiver never drops bytes, however long the accelerator computes.

Recovery (go-back-N): a STATUS error names the sequence number the device expects; the host resends
from that frame. Events of frames that were already on the line before the resend (they arrive as
``SEQUENCE`` errors) are ignored until the resent frame's own event arrives. A frame lost without any
event (its sync bytes destroyed, and nothing sent after it) is resent by :meth:`on_timeout`. Every
error event is kept in :attr:`events` with the time it was seen (``note``), so a run can report
what happened on the line.

The device does not resend: a defect in the device-to-host direction raises
:class:`~binaccel.sw.link.LinkError` from :meth:`feed` (strict decoding): results are never
silently wrong or short.
"""

from __future__ import annotations

from .link import MAX_PAYLOAD, FrameDecoder, FrameKind, RxCode, encode_frame, parse_status, split_frames

__all__ = ["HostLink", "LinkStall"]


class LinkStall(RuntimeError):
    """The device stopped confirming frames (raised by :meth:`HostLink.on_timeout` after too many
    resends of the same frame)."""


class HostLink:
    """Credit-window framing with go-back-N recovery, independent of the byte transport.

    Keyword-only parameters: ``window`` (frames on the line beyond the last confirmed one; the
    device's ``FrameRx`` ``depth``, default 2), ``max_payload`` (the device's, default 256),
    ``max_resends`` (resends of one frame before :class:`LinkStall`, default 8).
    """

    def __init__(self, *, window: int = 2, max_payload: int = MAX_PAYLOAD, max_resends: int = 8):
        for name, v, lo in (("window", window, 1), ("max_payload", max_payload, 1), ("max_resends", max_resends, 0)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"HostLink: {name} must be an int, got {v!r}")
            if v < lo:
                raise ValueError(f"HostLink: {name} must be >= {lo}, got {v}")
        self.window, self.max_payload, self.max_resends = window, max_payload, max_resends
        self._frames: list[bytes] = []   # every frame queued, index = host frame number, SEQ = index mod 256
        self.acked = 0                   # frames [0, acked) confirmed
        self.next = 0                    # next frame to put on the line
        self._resync_at = None           # after a resend: ignore stale errors until this frame's event
        self._resends: dict[int, int] = {}
        self._decoder = FrameDecoder(seq_start=None)   # the device's count runs on across host sessions
        self.result = bytearray()
        self.events: list[dict] = []
        self.resent_frames = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.note = None                 # caller's timestamp attached to events (e.g. the cycle)

    # -- queueing ---------------------------------------------------------------------------

    def _seq(self, index: int) -> int:
        return index & 0xFF

    def send(self, kind, payload: bytes) -> None:
        """Queue one transfer (cut into frames of at most ``max_payload`` bytes)."""
        kind = FrameKind(kind)
        if kind in (FrameKind.RESULT, FrameKind.STATUS):
            raise ValueError(f"HostLink.send: kind {kind.name} goes from the device to the host")
        self._frames += split_frames(kind, payload, seq_start=self._seq(len(self._frames)),
                                     max_payload=self.max_payload)

    def send_reset(self) -> None:
        """Queue a RESET frame: it resets the accelerator (abandoning any run) once every frame
        queued before it has been confirmed. Frames queued after it continue the count."""
        self._frames.append(encode_frame(FrameKind.RESET, self._seq(len(self._frames)), b""))

    @property
    def queued(self) -> int:
        return len(self._frames)

    @property
    def idle(self) -> bool:
        """Every queued frame has been confirmed."""
        return self.acked == len(self._frames)

    # -- the line -----------------------------------------------------------------------------

    def take_frames(self) -> list:
        """The frames that may go on the line now (the credit window): ``[(frame number, bytes)]``."""
        out = []
        while self.next < len(self._frames) and self.next - self.acked < self.window:
            out.append((self.next, self._frames[self.next]))
            self.bytes_out += len(self._frames[self.next])
            self.next += 1
        return out

    def take_output(self) -> bytes:
        """The bytes of :meth:`take_frames`, possibly ``b""``."""
        return b"".join(f for _, f in self.take_frames())

    def _index_of(self, seq: int):
        """Host frame number of a SEQ among the frames on the line (or just confirmed)."""
        d = (seq - self._seq(self.acked)) & 0xFF
        if d < max(self.next - self.acked, 1) + self.window:
            return self.acked + d
        return None

    def _rewind(self, index: int, why: str) -> None:
        if index >= self.next:
            return
        n = self._resends.get(index, 0) + 1
        if n > self.max_resends:
            raise LinkStall(f"frame {index} (SEQ {self._seq(index)}) resent {self.max_resends} times without being "
                            f"confirmed ({why}); the device does not accept it")
        self._resends[index] = n
        self.resent_frames += self.next - index
        self.next = index
        self._resync_at = index

    def feed(self, data: bytes) -> None:
        """Bytes from the device: STATUS events move the window, RESULT payloads are collected.
        Raises :class:`~binaccel.sw.link.LinkError` on a defect in the device's frames."""
        self.bytes_in += len(data)
        for f in self._decoder.feed(bytes(data)):
            if f.kind == FrameKind.RESULT:
                self.result += f.payload
            elif f.kind == FrameKind.STATUS:
                self._on_status(parse_status(f.payload))
            else:
                raise ValueError(f"device sent a {f.kind.name} frame (frame {f.index}); expected RESULT or STATUS")

    def _on_status(self, ev) -> None:
        idx = self._index_of(ev.seq)
        if ev.code == RxCode.OK:
            if ev.kind == FrameKind.RESET:
                # Output before a reset took effect belongs to the abandoned run.
                self.result.clear()
            if idx is not None and idx >= self.acked:
                self.acked = idx + 1
                if self.next < self.acked:
                    self.next = self.acked
                if self._resync_at is not None and idx >= self._resync_at:
                    self._resync_at = None
            return
        record = {"code": RxCode(ev.code).name, "kind": int(ev.kind), "seq": int(ev.seq), "expect": int(ev.expect),
                  "frame": idx, "at": self.note}
        self.events.append(record)
        target = self._index_of(ev.expect)
        if target is None:
            return
        if self._resync_at is not None:
            if idx != self._resync_at:
                record["stale"] = True   # a frame sent before the resend: its error is expected
                return
            self._resync_at = None
        self._rewind(target, f"{record['code']} event")

    def on_timeout(self) -> None:
        """No event for a while with frames on the line: resend from the first unconfirmed frame."""
        if self.next > self.acked:
            self.events.append({"code": "HOST_TIMEOUT", "frame": self.acked, "at": self.note})
            self._resync_at = None
            self._rewind(self.acked, "host timeout")

    def finish(self) -> None:
        """End of the device's byte stream: a partial frame is reported as truncated."""
        self._decoder.finish()
