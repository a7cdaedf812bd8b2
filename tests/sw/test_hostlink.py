"""The host side of the byte link (binaccel.sw.hostlink.HostLink) against a Python model of the
device's receiver (binaccel.hw.link.FrameRx's rules, docs/link.md): credit window, go-back-N after
corrupted or lost frames, host timeout, RESET, and refusal of damaged device frames. The same
HostLink drives the simulated UART in tests/test_uart_transport.py."""

import random

import pytest

from binaccel.sw.hostlink import HostLink, LinkStall
from binaccel.sw.link import (
    FrameKind, LinkError, RxCode, StatusEvent, decode_frames, encode_frame, encode_status,
)

CODES = {"header_crc": RxCode.HEADER_CRC, "sync": RxCode.HEADER_CRC, "type": RxCode.TYPE,
         "length": RxCode.LENGTH, "crc": RxCode.CRC}


class DeviceModel:
    """Receiver rules of FrameRx, one whole frame at a time, with a STATUS frame per event."""

    def __init__(self):
        self.expect, self.tx_seq = 0, 0
        self.delivered = []           # (kind, payload) in delivery order
        self.resets = 0

    def _status(self, code, kind, seq):
        f = encode_frame(FrameKind.STATUS, self.tx_seq, encode_status(StatusEvent(code, kind, seq, self.expect)))
        self.tx_seq = (self.tx_seq + 1) & 0xFF
        return f

    def receive(self, frame: bytes) -> bytes:
        try:
            (f,) = decode_frames(frame, seq_start=None)
        except LinkError as e:
            return self._status(CODES.get(e.code, RxCode.CRC), frame[2] & 0xF if len(frame) > 2 else 0,
                                frame[3] if len(frame) > 3 else 0)
        if f.kind == FrameKind.RESET:
            self.expect = (f.seq + 1) & 0xFF
            self.resets += 1
            self.delivered.clear()
            return self._status(RxCode.OK, f.kind, f.seq)
        if f.seq != self.expect:
            return self._status(RxCode.SEQUENCE, f.kind, f.seq)
        self.expect = (self.expect + 1) & 0xFF
        self.delivered.append((f.kind, f.payload))
        return self._status(RxCode.OK, f.kind, f.seq)

    def result(self, payload: bytes) -> bytes:
        f = encode_frame(FrameKind.RESULT, self.tx_seq, payload)
        self.tx_seq = (self.tx_seq + 1) & 0xFF
        return f


def transfers(rng, n=12):
    kinds = [FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES, FrameKind.IMAGE]
    return [(rng.choice(kinds), bytes(rng.randrange(256) for _ in range(rng.choice([0, 4, 255, 256, 700]))))
            for _ in range(n)]


def run(link, dev, *, corrupt_first=(), drop_first=(), always_corrupt=(), rng=None, max_rounds=10_000):
    """Pump frames until every frame is confirmed; faults apply to host frame numbers."""
    sent_once = set()
    for _ in range(max_rounds):
        if link.idle:
            return
        frames = link.take_frames()
        assert link.next - link.acked <= link.window
        if not frames:
            link.on_timeout()      # nothing can go out and nothing came back
            continue
        reply = b""
        for idx, data in frames:
            first = idx not in sent_once
            sent_once.add(idx)
            if (first and idx in drop_first):
                continue
            if (first and idx in corrupt_first) or idx in always_corrupt:
                data = bytearray(data)
                data[rng.randrange(len(data)) if rng else len(data) - 1] ^= 0x10
                data = bytes(data)
            reply += dev.receive(data)
        link.feed(reply)
    raise AssertionError("link did not finish")


def payload_of(frames_delivered):
    return [(k, p) for k, p in frames_delivered]


def expected_frames(ts, max_payload=256):
    out = []
    for k, p in ts:
        pieces = [p[i:i + max_payload] for i in range(0, len(p), max_payload)] or [b""]
        out += [(k, piece) for piece in pieces]
    return out


def test_clean_run_delivers_everything_in_order_within_the_window():
    rng = random.Random(1)
    ts = transfers(rng)
    link, dev = HostLink(window=2), DeviceModel()
    for k, p in ts:
        link.send(k, p)
    run(link, dev)
    assert dev.delivered == expected_frames(ts)
    assert link.events == [] and link.resent_frames == 0


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_corrupted_frames_are_reported_and_resent(seed):
    rng = random.Random(seed)
    ts = transfers(rng, 20)
    link, dev = HostLink(window=2), DeviceModel()
    for k, p in ts:
        link.send(k, p)
    bad = set(rng.sample(range(link.queued), 6))
    run(link, dev, corrupt_first=bad, rng=rng)
    assert dev.delivered == expected_frames(ts)
    reported = {e["frame"] for e in link.events if not e.get("stale") and e["code"] != "SEQUENCE"}
    assert bad <= reported | {None}
    assert link.resent_frames >= len(bad)


def test_lost_frames_are_resent_after_a_sequence_error_or_a_host_timeout():
    rng = random.Random(5)
    ts = transfers(rng, 8)
    link, dev = HostLink(window=2), DeviceModel()
    for k, p in ts:
        link.send(k, p)
    last = link.queued - 1
    run(link, dev, drop_first={1, last})      # frame 1: the next frame reveals it; the last: only a timeout
    assert dev.delivered == expected_frames(ts)
    codes = [e["code"] for e in link.events]
    assert "SEQUENCE" in codes and "HOST_TIMEOUT" in codes


def test_a_frame_the_device_never_accepts_stalls_with_a_clear_error():
    link, dev = HostLink(window=2, max_resends=3), DeviceModel()
    link.send(FrameKind.IMAGE, b"\x01" * 10)
    link.send(FrameKind.IMAGE, b"\x02" * 10)
    with pytest.raises(LinkStall, match=r"frame 1 .*resent 3 times"):
        run(link, dev, always_corrupt={1})


def test_reset_first_restarts_the_device_count_and_clears_old_results():
    dev = DeviceModel()
    dev.expect = 77                              # a device left by an earlier session
    link = HostLink()
    link.feed(dev.result(b"stale output"))       # output of the earlier session
    link.send_reset()
    link.send(FrameKind.PROGRAM, b"abcd")
    run(link, dev)
    assert dev.delivered == [(FrameKind.PROGRAM, b"abcd")] and dev.resets == 1
    assert bytes(link.result) == b""
    link.feed(dev.result(b"new"))
    assert bytes(link.result) == b"new"


def test_damaged_device_frame_is_refused():
    dev = DeviceModel()
    link = HostLink()
    f = bytearray(dev.result(b"logits"))
    f[9] ^= 1
    with pytest.raises(LinkError) as e:
        link.feed(bytes(f))
    assert e.value.field == "crc"


def test_parameter_and_kind_checks():
    with pytest.raises(ValueError, match="window"):
        HostLink(window=0)
    with pytest.raises(TypeError, match="max_payload"):
        HostLink(max_payload=1.5)
    with pytest.raises(ValueError, match="RESULT goes from the device"):
        HostLink().send(FrameKind.RESULT, b"")
