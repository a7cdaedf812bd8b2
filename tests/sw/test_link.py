"""Host side of the frame link (binaccel.sw.link): encoding, incremental decoding, every error kind."""

import random

import pytest

from binaccel.sw.link import (
    ALL_KINDS, DEVICE_TO_HOST, HEADER_SIZE, MAX_PAYLOAD, OVERHEAD, SYNC, Frame, FrameDecoder,
    FrameEncoder, FrameKind, LinkError, RxCode, StatusEvent, crc16, decode_frames, encode_frame,
    encode_frames, encode_status, frame_count, join_transfers, parse_status, type_byte,
)


def crc16_bitwise(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE written out bit by bit (independent of binascii)."""
    for byte in data:
        for i in range(7, -1, -1):
            fb = ((crc >> 15) ^ (byte >> i)) & 1
            crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if fb else 0)
    return crc


def rand_bytes(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def test_crc16_check_value_and_bitwise_reference():
    assert crc16(b"123456789") == 0x29B1                  # CRC-16/CCITT-FALSE check value
    assert crc16(b"") == 0xFFFF
    rng = random.Random(1)
    for n in (1, 2, 7, 64, 300):
        d = rand_bytes(rng, n)
        assert crc16(d) == crc16_bitwise(d)
        assert crc16(d[n // 2:], crc16(d[:n // 2])) == crc16(d)


def test_frame_layout_byte_by_byte():
    payload = bytes([0x01, 0xA5, 0x5A])
    f = encode_frame(FrameKind.IMAGE, 0x7E, payload, sot=True, eot=False)
    assert f[0:2] == b"\xA5\x5A"
    assert f[2] == 0x14                                    # IMAGE (4) | SOT (0x10)
    assert f[3] == 0x7E
    assert f[4:6] == b"\x03\x00"                           # LEN little-endian
    hcrc = crc16_bitwise(f[2:6])
    assert f[6:8] == hcrc.to_bytes(2, "little")
    assert f[8:11] == payload
    crc = crc16_bitwise(f[2:6] + payload)                  # TYPE..LEN, then payload; HCRC not included
    assert f[11:13] == crc.to_bytes(2, "little")
    assert len(f) == OVERHEAD + 3
    assert type_byte(FrameKind.RESULT, sot=False, eot=True) == 0x25
    assert type_byte(FrameKind.RESET) == 0x37
    # a 256-byte payload: LEN = 0x0100
    big = encode_frame(FrameKind.WEIGHTS, 0, bytes(256))
    assert big[4:6] == b"\x00\x01" and len(big) == 256 + OVERHEAD


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 10_000])
def test_roundtrip_lengths(n):
    rng = random.Random(n)
    payload = rand_bytes(rng, n)
    data = encode_frames(FrameKind.WEIGHTS, payload, seq_start=250)
    nf = frame_count(n)
    assert nf == max(1, -(-n // MAX_PAYLOAD))
    assert len(data) == n + OVERHEAD * nf
    frames = decode_frames(data, seq_start=250)
    assert len(frames) == nf
    assert [f.seq for f in frames] == [(250 + i) % 256 for i in range(nf)]
    assert [f.sot for f in frames] == [True] + [False] * (nf - 1)
    assert [f.eot for f in frames] == [False] * (nf - 1) + [True]
    assert all(len(f.payload) == MAX_PAYLOAD for f in frames[:-1])
    assert [f.index for f in frames] == list(range(nf))
    assert b"".join(f.payload for f in frames) == payload
    assert join_transfers(frames) == [(FrameKind.WEIGHTS, payload)]
    assert all(f.encode() == data[f.offset:f.offset + OVERHEAD + len(f.payload)] for f in frames)


def test_roundtrip_random_transfers_and_max_payload():
    rng = random.Random(7)
    for max_payload in (1, 16, 256, 1000):
        enc = FrameEncoder(max_payload=max_payload)
        transfers, data = [], b""
        for _ in range(12):
            kind = rng.choice(list(FrameKind))
            payload = rand_bytes(rng, rng.choice([0, 1, max_payload - 1, max_payload, max_payload + 1,
                                                  rng.randrange(3 * max_payload)]))
            transfers.append((kind, payload))
            data += enc.encode(kind, payload)
        frames = decode_frames(data, max_payload=max_payload)
        assert join_transfers(frames) == transfers
        assert enc.seq == len(frames) % 256


def test_decoder_fed_byte_by_byte_and_in_random_chunks():
    rng = random.Random(3)
    enc = FrameEncoder()
    transfers = [(FrameKind.PROGRAM, rand_bytes(rng, 40)), (FrameKind.IMAGE, b""),
                 (FrameKind.WEIGHTS, rand_bytes(rng, 700)), (FrameKind.RESULT, rand_bytes(rng, 256))]
    data = b"".join(enc.encode(k, p) for k, p in transfers)
    whole = decode_frames(data)

    dec = FrameDecoder()
    got = []
    for b in data:
        got += dec.feed(bytes([b]))
        assert dec.pending < HEADER_SIZE + MAX_PAYLOAD + 2
    dec.finish()
    assert got == whole
    assert join_transfers(got) == transfers

    dec = FrameDecoder()
    got, pos = [], 0
    while pos < len(data):
        n = rng.randrange(0, 40)
        got += dec.feed(data[pos:pos + n])
        pos += n
    dec.finish()
    assert got == whole and dec.errors == []


def test_sequence_wraps_mod_256():
    enc = FrameEncoder(max_payload=1)
    data = enc.encode(FrameKind.IMAGE, bytes(300))
    assert enc.seq == 300 % 256
    frames = decode_frames(data, max_payload=1)
    assert [f.seq for f in frames] == [i % 256 for i in range(300)]


# ------------------------------------------------------------------ errors, one test each

def three_frames():
    enc = FrameEncoder()
    return [enc.encode(FrameKind.IMAGE, bytes([i]) * 5) for i in range(3)]


def expect_error(data, code, **kwargs):
    dec = FrameDecoder(**kwargs)
    with pytest.raises(LinkError) as ei:
        dec.feed(data)
    return dec, ei.value


def test_error_bad_crc_names_frame_field_expected():
    f = three_frames()
    bad = bytearray(f[1])
    bad[HEADER_SIZE + 2] ^= 0x10                          # a payload byte
    dec, err = expect_error(f[0] + bytes(bad) + f[2], "crc")
    assert err.code == "crc" and err.frame == 1 and err.field == "crc"
    assert err.offset == len(f[0])
    good_crc = int.from_bytes(f[1][-2:], "little")
    assert err.got == f"0x{good_crc:04X}"
    assert err.expected == f"0x{crc16(bytes(bad[2:6]) + bytes(bad[HEADER_SIZE:-2])):04X}"
    assert "frame 1" in str(err) and "'crc'" in str(err)
    assert [fr.seq for fr in err.frames] == [0]           # decoded before the error, not lost
    # decoding goes on after the bad frame; its sequence number is then missing
    with pytest.raises(LinkError) as ei:
        dec.feed(b"")
    assert ei.value.code == "sequence" and ei.value.expected == 1 and ei.value.got == 2


def test_error_bad_header_crc():
    f = three_frames()
    bad = bytearray(f[1])
    bad[3] ^= 0x01                                        # SEQ
    dec, err = expect_error(f[0] + bytes(bad) + f[2], "header_crc")
    assert err.code == "header_crc" and err.frame == 1 and err.field == "hcrc"
    assert err.expected == f"0x{crc16(bytes(bad[2:6])):04X}"


def test_error_bad_length():
    frame = bytearray(encode_frame(FrameKind.IMAGE, 0, bytes(20)))
    dec, err = expect_error(bytes(frame), "length", max_payload=16)
    assert err.code == "length" and err.field == "len" and err.expected == "<= 16" and err.got == 20
    # a LEN above 256 with a correct header CRC (hand-made)
    head = bytes([type_byte(FrameKind.IMAGE), 0, 0x01, 0x02])
    raw = SYNC + head + crc16(head).to_bytes(2, "little")
    dec, err = expect_error(raw, "length")
    assert err.got == 0x201 and err.expected == f"<= {MAX_PAYLOAD}"


def test_error_unknown_type():
    for typ in (0x09, 0x00, 0x44, 0x84):                  # kind 9, kind 0, reserved bits set
        head = bytes([typ, 0, 0, 0])
        raw = SYNC + head + crc16(head).to_bytes(2, "little") + crc16(head).to_bytes(2, "little")
        dec, err = expect_error(raw, "type")
        assert err.code == "type" and err.field == "type" and err.got == f"0x{typ:02X}"
        assert "RESULT(5)" in err.expected and "reserved bits 0" in err.expected
    # a defined kind that the decoder was not told to accept
    _, err = expect_error(encode_frame(FrameKind.IMAGE, 0, b"x"), "type", kinds=DEVICE_TO_HOST)
    assert err.code == "type" and "IMAGE" not in err.expected


def test_error_sequence_gap():
    f = three_frames()
    dec, err = expect_error(f[0] + f[2], "sequence")
    assert err.code == "sequence" and err.frame == 1 and err.field == "seq"
    assert err.expected == 1 and err.got == 2
    # the count continues from the gapped frame
    assert dec.feed(encode_frame(FrameKind.IMAGE, 3, b"")) [0].seq == 3
    # seq_start=None accepts any first number; a RESET frame may carry any number
    assert decode_frames(f[2], seq_start=None)[0].seq == 2
    frames = decode_frames(f[0] + encode_frame(FrameKind.RESET, 77, b"") + encode_frame(FrameKind.IMAGE, 78, b""))
    assert [fr.seq for fr in frames] == [0, 77, 78]


def test_error_bad_sync():
    f = three_frames()
    dec, err = expect_error(b"\x00\x11" + f[0], "sync")
    assert err.code == "sync" and err.field == "sync0" and err.offset == 0
    assert err.expected == "0xA5" and err.got == "0x00"
    assert [fr.seq for fr in dec.feed(b"")] == [0]        # resynchronised on the frame's sync
    dec, err = expect_error(b"\xA5\x00" + f[0], "sync")
    assert err.field == "sync1" and err.offset == 1 and err.expected == "0x5A"


@pytest.mark.parametrize("cut, field", [(3, "header"), (HEADER_SIZE + 2, "payload"),
                                        (HEADER_SIZE + 5 + 1, "crc")])
def test_error_truncated_at_end_of_stream(cut, field):
    f = three_frames()
    dec = FrameDecoder()
    assert len(dec.feed(f[0] + f[1][:cut])) == 1
    with pytest.raises(LinkError) as ei:
        dec.finish()
    err = ei.value
    assert err.code == "truncated" and err.frame == 1 and err.field == field
    assert err.offset == len(f[0])
    assert err.got == f"{cut} bytes"
    if field != "header":
        assert err.expected == f"{len(f[1])} bytes"
    with pytest.raises(RuntimeError):
        dec.feed(b"")


def test_resync_mode_collects_errors_and_keeps_good_frames():
    rng = random.Random(11)
    enc = FrameEncoder()
    frames = [enc.encode(FrameKind.RESULT, rand_bytes(rng, 30)) for _ in range(8)]
    bad_crc = bytearray(frames[2]); bad_crc[-1] ^= 0xFF
    bad_head = bytearray(frames[5]); bad_head[5] ^= 0x80
    stream = (frames[0] + frames[1] + bytes(bad_crc) + frames[3] + b"\x00\xA5\x13" + frames[4]
              + bytes(bad_head) + frames[6] + frames[7][:20])
    dec = FrameDecoder(resync=True)
    got = []
    for i in range(0, len(stream), 7):
        got += dec.feed(stream[i:i + 7])
    dec.finish()
    # seq 2 bad CRC; seq 3 then follows a gap (dropped, the count goes on from it); garbage; seq 4
    # good; seq 5 bad header; seq 6 follows a gap; seq 7 truncated
    assert [f.seq for f in got] == [0, 1, 4]
    codes = [e.code for e in dec.errors]
    assert codes == ["crc", "sequence", "sync", "header_crc", "sequence", "truncated"]
    assert [e.frame for e in dec.errors] == [2, 3, 4, 6, 7, 8]
    assert got[2].payload == decode_frames(frames[4], seq_start=4)[0].payload


def test_false_sync_inside_garbage_is_rejected_by_header_crc():
    f = three_frames()
    junk = SYNC + bytes([0x14, 0, 3, 0, 0x12, 0x34])      # looks like a header, wrong HCRC
    dec = FrameDecoder(resync=True)
    got = dec.feed(f[0] + junk + f[1])
    dec.finish()
    assert [x.seq for x in got] == [0, 1]
    assert [e.code for e in dec.errors] == ["header_crc"]


def test_join_transfers_errors():
    enc = FrameEncoder()
    frames = decode_frames(enc.encode(FrameKind.IMAGE, bytes(600)))
    with pytest.raises(LinkError, match="type.eot"):
        join_transfers(frames[:2])
    with pytest.raises(LinkError, match="type.sot"):
        join_transfers(frames[1:])
    other = Frame(FrameKind.RESULT, 9, b"", sot=False, eot=True)
    with pytest.raises(LinkError, match="type.kind"):
        join_transfers(frames[:2] + [other])


def test_encode_argument_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        encode_frames(9, b"")
    with pytest.raises(ValueError, match="exceeds max_payload"):
        encode_frame(FrameKind.IMAGE, 0, bytes(257))
    with pytest.raises(ValueError, match="seq must be in 0..255"):
        encode_frame(FrameKind.IMAGE, 256, b"")
    with pytest.raises(TypeError, match="max_payload"):
        encode_frames(FrameKind.IMAGE, b"", max_payload=1.5)
    with pytest.raises(ValueError, match="seq_start"):
        FrameDecoder(seq_start=-1)
    with pytest.raises(ValueError, match="at least one"):
        FrameDecoder(kinds=[])


def test_status_payload():
    ev = StatusEvent(RxCode.SEQUENCE, int(FrameKind.IMAGE), 7, 5)
    assert encode_status(ev) == bytes([5, 4, 7, 5])
    assert parse_status(encode_status(ev)) == ev
    with pytest.raises(ValueError, match="'length'"):
        parse_status(b"\x00")
    with pytest.raises(ValueError, match="'code'"):
        parse_status(bytes([15, 0, 0, 0]))
    assert ALL_KINDS == frozenset(FrameKind)
