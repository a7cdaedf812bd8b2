"""Model file format (binaccel.sw.modelfile): round trips, byte layout, and every error the reader reports."""

from __future__ import annotations

import math
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from binaccel.sw import intref, modelfile as mf
from binaccel.sw.intmodel import IntModel, Layer, ModelFormatError
from binaccel.sw.randmodel import random_layer, random_model
from tests import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "model-format.md"

SCALARS = ("name", "kind", "mode", "in_ch", "in_h", "in_w", "out_ch", "kernel", "stride", "padding", "in_bits",
           "w_bits", "out_kind", "planes", "m_bits", "shift", "out_bits", "pool")
ARRAYS = ("weights", "mfilter", "thresh", "flip", "mul", "add")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def assert_models_equal(a: IntModel, b: IntModel) -> None:
    assert (a.name, tuple(a.input_shape), a.input_repeat, a.classes) == \
           (b.name, tuple(b.input_shape), b.input_repeat, b.classes)
    assert a.meta == b.meta
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        for f in SCALARS:
            assert getattr(la, f) == getattr(lb, f), f"{la.name}.{f}"
        for f in ARRAYS:
            va, vb = getattr(la, f), getattr(lb, f)
            assert (va is None) == (vb is None), f"{la.name}.{f}"
            if va is not None:
                assert np.shape(va) == np.shape(vb), f"{la.name}.{f}"
                assert np.array_equal(va, vb), f"{la.name}.{f}"


def mixed_model(rng) -> IntModel:
    """int8 weights, 8/4-bit inputs, requant outputs, odd channel counts (33 -> 297-bit rows), MCN in the middle."""
    layers = [
        random_layer(rng, name="c1", in_ch=3, in_h=10, in_w=10, out_ch=33, in_bits=8, w_bits=8,
                     out_kind="requant", out_bits=4),
        random_layer(rng, name="c2", in_ch=33, in_h=10, in_w=10, out_ch=17, in_bits=4, w_bits=1, pool=2),
        random_layer(rng, name="c3", mode="mcn", planes=3, in_ch=17, in_h=5, in_w=5, out_ch=9, padding=0,
                     in_bits=1, m_bits=16, out_kind="requant", out_bits=8),
        random_layer(rng, name="fc", kind="fc", in_ch=9, in_h=3, in_w=3, out_ch=5, in_bits=8, w_bits=8,
                     out_kind="logits"),
    ]
    layers[2].mfilter.flat[0], layers[2].mfilter.flat[-1] = 0, 0xFFFF  # full u16 range
    model = IntModel(name="mixed", input_shape=(3, 10, 10), layers=layers, classes=5,
                     meta={"source": "test", "scale": 0.0078125, "acc": [98.5, None], "nested": {"k": True}})
    model.validate()
    return model


def mcn1_model(rng) -> IntModel:
    """MCNs-1 first layer on repeated 8-bit input, 4-bit requant into a 1x1 MCN layer (6-bit rows)."""
    layers = [
        random_layer(rng, name="m1", mode="mcn1", planes=2, in_ch=2, in_h=8, in_w=8, out_ch=6, in_bits=8,
                     m_bits=5, out_kind="requant", out_bits=4),
        random_layer(rng, name="m2", mode="mcn", planes=2, in_ch=6, in_h=8, in_w=8, out_ch=4, kernel=1,
                     padding=0, in_bits=4, pool=2),
        random_layer(rng, name="fc", kind="fc", in_ch=4, in_h=4, in_w=4, out_ch=3, out_kind="logits"),
    ]
    model = IntModel(name="mcn1-mixed", input_shape=(1, 8, 8), layers=layers, input_repeat=2, classes=3)
    model.validate()
    return model


MODELS = {
    "plain": lambda rng: random_model(rng, mode="plain"),
    "mcn": lambda rng: random_model(rng, mode="mcn", planes=4),
    "mcn1": lambda rng: random_model(rng, mode="mcn1", planes=4),
    "mcn-k2": lambda rng: random_model(rng, mode="mcn", planes=2, classes=7),
    "mixed": mixed_model,
    "mcn1-mixed": mcn1_model,
}


def images(rng, model, n=6):
    return rng.integers(0, 256, size=(n, *model.input_shape), dtype=np.int64).astype(np.uint8)


def header(data: bytes) -> dict:
    return dict(zip([f for f, _, _ in mf.HEADER_FIELDS], mf._HEADER.unpack_from(data, 0)))


def record(data: bytes, i: int) -> dict:
    off = header(data)["header_len"] + i * mf.RECORD_SIZE
    return dict(zip([f for f, _, _ in mf.RECORD_FIELDS], mf._RECORD.unpack_from(data, off)))


def with_crc(body: bytes) -> bytes:
    """``body`` (file without its CRC) plus a correct CRC: content errors reach the validation."""
    return body + struct.pack("<I", zlib.crc32(body))


def patch_record(data: bytes, i: int, **fields) -> bytes:
    rec = record(data, i)
    rec.update(fields)
    off = header(data)["header_len"] + i * mf.RECORD_SIZE
    new = mf._RECORD.pack(*(rec[f] for f, _, _ in mf.RECORD_FIELDS))
    return with_crc(data[:off] + new + data[off + mf.RECORD_SIZE:-4])


def patch_header(data: bytes, **fields) -> bytes:
    hdr = header(data)
    hdr.update(fields)
    new = mf._HEADER.pack(*(hdr[f] for f, _, _ in mf.HEADER_FIELDS))
    return with_crc(new + data[mf.HEADER_SIZE:-4])


def patch_bytes(data: bytes, off: int, new: bytes) -> bytes:
    return with_crc(data[:off] + new + data[off + len(new):-4])


@pytest.fixture
def model():
    return random_model(np.random.default_rng(1), mode="mcn", planes=4)


@pytest.fixture
def data(model):
    return mf.dumps(model)


# ------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_round_trip_file(kind, tmp_path):
    rng = np.random.default_rng(sorted(MODELS).index(kind) + 10)
    model = MODELS[kind](rng)
    path = tmp_path / f"{kind}.bam"
    mf.save(model, path)
    assert os.listdir(tmp_path) == [path.name]
    loaded = mf.load(path)
    assert_models_equal(model, loaded)
    x = images(rng, model)
    want, got = intref.run_model(model, x), intref.run_model(loaded, x)
    assert len(want) == len(got) == len(model.layers)
    for w, g in zip(want, got):
        assert w.shape == g.shape and np.array_equal(w, g)
    assert np.array_equal(intref.run_model(loaded, x, packed=True)[-1], want[-1])
    # deterministic encoding: re-encoding the loaded model gives the same bytes
    assert mf.dumps(loaded) == path.read_bytes()


def test_loaded_dtypes_and_absent_arrays(tmp_path):
    model = mixed_model(np.random.default_rng(3))
    loaded = mf.loads(mf.dumps(model))
    c1, c2, c3 = loaded.layers[:3]
    assert c1.weights.dtype == np.int8 and c2.weights.dtype == np.int8
    assert set(np.unique(c2.weights)) == {-1, 1}
    assert c3.mfilter.dtype == np.int64 and c3.mfilter.shape == (3, 3, 3)
    assert c2.flip.dtype == np.uint8 and c2.thresh.dtype == np.int64
    assert c1.mfilter is None and c1.thresh is None and c1.flip is None
    assert c2.mul is None and c2.add is None
    assert isinstance(loaded.input_shape, tuple)


def test_extreme_values_round_trip():
    model = random_model(np.random.default_rng(4), mode="mcn1", planes=4)
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    model.layers[0].thresh[:2] = [lo, hi]
    model.layers[-1].mul[:2] = [hi, lo]
    model.layers[-1].add[:2] = [lo, hi]
    model.layers[1].shift = 255  # unused by sign layers, still stored
    model.meta = {"tiny": 5e-324, "big": 1.7976931348623157e308, "neg": -0.0, "unicode": "µ-filter ✓", "int": 2**70}
    model.name = "ünïcode"
    loaded = mf.loads(mf.dumps(model))
    assert_models_equal(model, loaded)
    assert loaded.meta["int"] == 2**70 and math.copysign(1, loaded.meta["neg"]) == -1


def test_save_replaces_existing_file(tmp_path, model):
    path = tmp_path / "m.bam"
    path.write_bytes(b"old contents")
    mf.save(model, str(path))
    assert_models_equal(mf.load(str(path)), model)
    assert sorted(os.listdir(tmp_path)) == ["m.bam"]


# ------------------------------------------------------------------------------------------------
# byte layout (independent of the module's structs: offsets as written in docs/model-format.md)
# ------------------------------------------------------------------------------------------------
def test_bit_order_worked_example():
    """The worked example of the doc: a row of 40 weights, +1 at fan-in 0, 3, 31, 32, 39."""
    row = -np.ones(40, dtype=np.int8)
    row[[0, 3, 31, 32, 39]] = 1
    w = np.stack([row, -row]).reshape(2, 10, 2, 2)  # (rows, c, ky, kx): fan-in = c*4 + ky*2 + kx
    packed = mf.pack_binary_weights(w)
    assert packed == bytes.fromhex("09000080" "81000000" "f6ffff7f" "7e000000")
    assert struct.unpack("<4I", packed) == (0x80000009, 0x00000081, 0x7FFFFFF6, 0x0000007E)
    back, clean = mf.unpack_binary_weights(packed, w.shape)
    assert clean and back.dtype == np.int8 and np.array_equal(back, w)


def test_layout_by_hand(data, model):
    assert data[:8] == b"BINACCEL"
    version, flags, header_len, total_len, count = struct.unpack_from("<HHIQI", data, 8)
    assert (version, flags, total_len, count) == (1, 0, len(data), len(model.layers))
    assert struct.unpack_from("<5I", data, 32) == (*model.input_shape, model.input_repeat, model.classes)
    name_len, meta_len = struct.unpack_from("<H2xI", data, 52)
    assert data[64:64 + name_len].decode() == model.name
    assert header_len == 64 + name_len + meta_len + (-(name_len + meta_len) % 8)
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    for i, layer in enumerate(model.layers):
        rec = header_len + 144 * i
        assert tuple(data[rec:rec + 12]) == (
            {"conv": 0, "fc": 1}[layer.kind], {"plain": 0, "mcn": 1, "mcn1": 2}[layer.mode],
            {"sign": 0, "requant": 1, "logits": 2}[layer.out_kind], layer.in_bits, layer.w_bits, layer.m_bits,
            layer.out_bits, layer.pool, layer.kernel, layer.stride, layer.padding, layer.shift)
        assert struct.unpack_from("<HH4I", data, rec + 12) == (layer.planes, 0, layer.in_ch, layer.in_h,
                                                               layer.in_w, layer.out_ch)
        blobs = struct.unpack_from("<14Q", data, rec + 32)
        (n_off, n_len), (w_off, w_len) = blobs[0:2], blobs[2:4]
        assert data[n_off:n_off + n_len].decode() == layer.name
        rows = layer.weight_shape[0]
        fan = layer.fan_in
        words = np.frombuffer(data[w_off:w_off + w_len], dtype="<u4").reshape(rows, -1)
        assert words.shape[1] == -(-fan // 32)
        flat = layer.weights.reshape(rows, -1)
        for r in range(rows):
            for k in range(words.shape[1] * 32):
                bit = (int(words[r, k // 32]) >> (k % 32)) & 1
                assert bit == (k < fan and flat[r, k] == 1)
        m_off, m_len = blobs[4:6]
        if layer.mode == "plain":
            assert (m_off, m_len) == (0, 0)
        else:
            assert np.array_equal(np.frombuffer(data[m_off:m_off + m_len], "<u2").reshape(np.shape(layer.mfilter)),
                                  layer.mfilter)
        for j, name in enumerate(("thresh", "flip", "mul", "add")):
            off, length = blobs[6 + 2 * j:8 + 2 * j]
            value = getattr(layer, name)
            if value is None:
                assert (off, length) == (0, 0)
            else:
                assert off % 8 == 0 and np.array_equal(np.frombuffer(data[off:off + length], "<i8"), value)


def _doc_table(section: str) -> dict:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n#", start + len(section))
    rows = {}
    for line in text[start:end if end >= 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"\d+", cells[0]):
            rows[cells[3].strip("`")] = (int(cells[0]), int(cells[1]), cells[2].strip("`"))
    return rows


@pytest.mark.parametrize("section,fields", [("### Fixed header", mf.HEADER_FIELDS),
                                            ("### Layer record", mf.RECORD_FIELDS)])
def test_doc_tables_match_code(section, fields):
    """Every field of the code's layout appears in the spec with the same offset, size and type."""
    types = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "8s": "bytes[8]"}
    rows = _doc_table(section)
    off, want = 0, {}
    for name, code, _ in fields:
        size = struct.calcsize("<" + code)
        want[name] = (off, size, types[code])
        off += size
    assert rows == want


# ------------------------------------------------------------------------------------------------
# envelope errors: magic, truncation, checksum, version
# ------------------------------------------------------------------------------------------------
def load_error(tmp_path, content: bytes, name="bad.bam") -> ModelFormatError:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFormatError) as e:
        mf.load(path)
    assert e.value.path == str(path) and str(path) in str(e.value)
    return e.value


@pytest.mark.parametrize("content", [b"PK\x03\x04" + bytes(200), b"binaccel" + bytes(200), b"\x00", b"BINACCEX"])
def test_wrong_magic(tmp_path, content):
    err = load_error(tmp_path, content)
    assert err.field == "magic" and "expected b'BINACCEL'" in str(err)


def test_truncated_at_named_points(tmp_path, data):
    hdr = header(data)
    rec0 = record(data, 0)
    cuts = {
        "empty": 0, "in magic": 5, "in version": 9, "in total_len": 20, "in fixed header": 40,
        "in name/meta": 70, "in layer table": hdr["header_len"] + 50,
        "in weights": rec0["weights_off"] + 3, "in data": (rec0["weights_off"] + len(data)) // 2,
        "in crc": len(data) - 1,
    }
    for where, cut in cuts.items():
        err = load_error(tmp_path, data[:cut])
        assert err.field == "total_len", where
        if cut >= 24:
            assert f"truncated: expected {len(data)} bytes, got {cut}" in str(err), where
        else:
            assert f"truncated: expected at least 68 bytes, got {cut}" in str(err), where


def test_truncated_at_every_cut(data):
    for cut in range(len(data)):
        with pytest.raises(ModelFormatError, match="truncated") as e:
            mf.loads(data[:cut], path="x.bam")
        assert e.value.field == "total_len"


def test_trailing_data(tmp_path, data):
    err = load_error(tmp_path, data + b"\x00")
    assert err.field == "total_len" and f"expected {len(data)} bytes, got {len(data) + 1}" in str(err)


def test_corrupted_byte(tmp_path, data):
    hdr = header(data)
    rec0 = record(data, 0)
    stored = zlib.crc32(data[:-4])
    for where, pos in {"flags": 10, "name": 64, "layer table": hdr["header_len"] + 5,
                       "weights": rec0["weights_off"] + 1, "last data byte": len(data) - 5,
                       "crc itself": len(data) - 2}.items():
        bad = bytearray(data)
        bad[pos] ^= 0x10
        err = load_error(tmp_path, bytes(bad))
        assert err.field == "crc32", where
        computed = zlib.crc32(bytes(bad[:-4]))
        stored_now = struct.unpack("<I", bytes(bad[-4:]))[0]
        assert stored_now == stored or where == "crc itself"
        assert f"expected 0x{stored_now:08x}" in str(err) and f"computed 0x{computed:08x}" in str(err), where


@pytest.mark.parametrize("version", [0, 2, 7, 0xFFFF])
def test_unsupported_version(tmp_path, data, version):
    bad = data[:8] + struct.pack("<H", version) + data[10:]
    err = load_error(tmp_path, bad)  # checked before the CRC: a newer file may checksum differently
    assert err.field == "version" and f"field 'version': expected 1, got {version}" in str(err)
    err = load_error(tmp_path, patch_header(data, version=version))
    assert err.field == "version"


# ------------------------------------------------------------------------------------------------
# content errors under a correct CRC (caught by the format's validation, not the checksum)
# ------------------------------------------------------------------------------------------------
def test_inconsistent_in_ch_from_encoder(tmp_path, monkeypatch):
    """A file written by a (hypothetical) writer that skipped validation: layer 2 reads 8 channels, layer 1 makes 16."""
    model = random_model(np.random.default_rng(5), mode="mcn", planes=4)
    rng = np.random.default_rng(6)
    model.layers[1] = random_layer(rng, name="conv2", mode="mcn", planes=4, in_ch=8, in_h=6, in_w=6, out_ch=32,
                                   stride=2)
    with monkeypatch.context() as mp:
        mp.setattr(IntModel, "validate", lambda self, path=None: None)
        bad = mf.dumps(model)
    assert struct.unpack("<I", bad[-4:])[0] == zlib.crc32(bad[:-4])
    err = load_error(tmp_path, bad)
    assert err.field == "layers[conv2].in_shape" and "expected (16, 6, 6)" in str(err) and "got (8, 6, 6)" in str(err)


def test_inconsistent_in_h_by_bytes(tmp_path, data):
    err = load_error(tmp_path, patch_record(data, 1, in_h=7))
    assert err.field == "layers[conv2].in_shape" and "expected (16, 6, 6)" in str(err)


def test_weight_blob_length_mismatch(tmp_path, data):
    rec = record(data, 1)
    err = load_error(tmp_path, patch_record(data, 1, weights_len=rec["weights_len"] - 4))
    # conv2: 8 groups x (16*3*3 = 144 bits -> 5 words) = 160 bytes
    assert err.field == "layers[1].weights"
    assert "expected 160 bytes for binary weights of shape (8, 16, 3, 3)" in str(err)
    assert f"got {rec['weights_len'] - 4}" in str(err)


def test_in_ch_changed_without_blob_is_caught_by_length(tmp_path, data):
    err = load_error(tmp_path, patch_record(data, 1, in_ch=8))
    assert err.field == "layers[1].weights" and "expected 96 bytes" in str(err)


def test_nonzero_padding_bits(tmp_path, data):
    rec = record(data, 1)  # 144 bits per row: word 4 has 16 padding bits in its upper half
    pos = rec["weights_off"] + 4 * 4 + 3
    err = load_error(tmp_path, patch_bytes(data, pos, bytes([data[pos] | 0x80])))
    assert err.field == "layers[1].weights" and "padding bits" in str(err)


def _blob_field_errors(data):
    hdr = header(data)
    r0, r1, r2 = record(data, 0), record(data, 1), record(data, 2)
    last = hdr["total_len"] - 4
    return [
        # (description, bytes, field, message fragment)
        ("unknown kind", patch_record(data, 0, kind=7), "layers[0].kind", "expected one of 0 (conv), 1 (fc), got 7"),
        ("unknown mode", patch_record(data, 0, mode=3), "layers[0].mode", "got 3"),
        ("unknown out_kind", patch_record(data, 0, out_kind=9), "layers[0].out_kind", "2 (logits), got 9"),
        ("w_bits", patch_record(data, 0, w_bits=4), "layers[0].w_bits", "expected 1 (binary) or 8"),
        ("stride 0", patch_record(data, 0, stride=0), "layers[0].stride", "expected a positive integer, got 0"),
        ("out_ch 0", patch_record(data, 2, out_ch=0), "layers[2].out_ch", "positive integer"),
        ("planes 0", patch_record(data, 0, planes=0), "layers[0].planes", "divisor of out_ch (16), got 0"),
        ("planes", patch_record(data, 0, planes=3), "layers[0].planes", "divisor of out_ch (16), got 3"),
        ("reserved", patch_record(data, 0, reserved=1), "layers[0].reserved", "expected 0, got 1"),
        ("absent blob", patch_record(data, 2, mfilter_off=r0["mfilter_off"], mfilter_len=r0["mfilter_len"]),
         "layers[2].mfilter", "expected no blob"),
        ("offset outside", patch_record(data, 2, weights_off=last), "layers[2].weights", "inside the data section"),
        ("offset in table", patch_record(data, 2, weights_off=hdr["header_len"]), "layers[2].weights",
         "inside the data section"),
        ("misaligned", patch_record(data, 2, name_off=r2["name_off"] + 4), "layers[2].name",
         f"expected an offset that is a multiple of 8, got {r2['name_off'] + 4}"),
        ("overlap", patch_record(data, 2, mul_off=r2["add_off"]), "layers[2].", "not overlapping"),
        ("flags", patch_header(data, flags=1), "flags", "expected 0 (no flags are defined in version 1), got 1"),
        ("reserved1", patch_header(data, reserved1=5), "reserved1", "expected 0, got 5"),
        ("record_len", patch_header(data, record_len=128), "record_len", "expected 144, got 128"),
        ("header_len", patch_header(data, header_len=hdr["header_len"] + 8), "header_len", "padded to 8"),
        ("layer_count 0", patch_header(data, layer_count=0), "layer_count", "at least 1 layer, got 0"),
        ("layer_count big", patch_header(data, layer_count=1000), "layer_count", "to fit before the checksum"),
        ("total_len small", patch_header(data, total_len=10), "total_len", "expected at least 68, got 10"),
        ("classes", patch_header(data, classes=11), "classes", "expected 10 (last layer out_ch), got 11"),
        ("input_repeat", patch_header(data, input_repeat=2), "layers[conv1].in_shape", "expected (2, 12, 12)"),
        ("in_bits", patch_record(data, 1, in_bits=8), "layers[conv2].in_bits", "expected 1 (output of the previous"),
        ("m_bits", patch_record(data, 0, m_bits=1), "layers[conv1].mfilter", "below 2**m_bits = 2"),
        ("logits early", patch_record(data, 1, out_kind=2, thresh_off=0, thresh_len=0, flip_off=0, flip_len=0,
                                      mul_off=r1["thresh_off"], mul_len=r1["thresh_len"],
                                      add_off=r1["flip_off"], add_len=r1["flip_len"]),
         "layers[conv2].out_kind", "only the last layer may output logits"),
    ]


@pytest.mark.parametrize("case", range(26))
def test_content_errors(tmp_path, data, case):
    cases = _blob_field_errors(data)
    assert len(cases) == 26
    what, bad, field, fragment = cases[case]
    err = load_error(tmp_path, bad)
    assert err.field.startswith(field) and fragment in str(err), (what, str(err))


def test_text_and_meta_errors(tmp_path, model):
    data = mf.dumps(model)
    hdr = header(data)
    err = load_error(tmp_path, patch_bytes(data, 64, b"\xff"))
    assert err.field == "name" and "UTF-8" in str(err)
    meta_at = 64 + hdr["name_len"]
    err = load_error(tmp_path, patch_bytes(data, meta_at, b"["))
    assert err.field == "meta" and "JSON" in str(err)
    model.meta = {}
    data = mf.dumps(model)  # meta "{}" -> "[]" : valid JSON, not an object
    err = load_error(tmp_path, patch_bytes(data, 64 + header(data)["name_len"], b"[]"))
    assert err.field == "meta" and "expected a JSON object, got list" in str(err)
    rec = record(data, 0)
    err = load_error(tmp_path, patch_bytes(data, rec["name_off"], b"\xc3"))
    assert err.field == "layers[0].name" and "UTF-8" in str(err)


def test_nonzero_header_padding(tmp_path, data):
    hdr = header(data)
    text_end = 64 + hdr["name_len"] + hdr["meta_len"]
    assert text_end < hdr["header_len"]  # this model has padding to spoil
    err = load_error(tmp_path, patch_bytes(data, text_end, b"\x01"))
    assert err.field == "meta" and f"expected zero padding after meta (bytes {text_end}..{hdr['header_len']})" in str(err)


def test_flip_out_of_range(tmp_path, data):
    rec = record(data, 0)
    err = load_error(tmp_path, patch_bytes(data, rec["flip_off"], struct.pack("<q", 2)))
    assert err.field == "layers[0].flip" and "expected 0 or 1" in str(err)


def test_random_mutations_raise_only_model_format_errors(data):
    """Any byte of header or layer table changed (CRC fixed up): a valid model or a ModelFormatError, never a crash."""
    rng = np.random.default_rng(7)
    table_end = header(data)["header_len"] + 3 * mf.RECORD_SIZE
    ok = 0
    for _ in range(600):
        bad = bytearray(data[:-4])
        for pos in rng.integers(10, table_end, size=rng.integers(1, 3)):
            bad[pos] = rng.integers(0, 256) if rng.random() < 0.5 else bad[pos] ^ (1 << rng.integers(0, 8))
        try:
            loaded = mf.loads(with_crc(bytes(bad)))
        except ModelFormatError:
            continue
        loaded.validate()
        ok += 1
    assert ok < 600  # the mutations did exercise the error paths


# ------------------------------------------------------------------------------------------------
# save refuses what the format cannot express, before writing anything
# ------------------------------------------------------------------------------------------------
def single_layer_model(layer: Layer) -> IntModel:
    return IntModel(name="one", input_shape=(layer.in_ch, layer.in_h, layer.in_w), layers=[layer],
                    classes=layer.out_ch)


def _unsavable():
    rng = np.random.default_rng(8)

    def stride300():
        return single_layer_model(random_layer(rng, in_ch=1, out_ch=2, stride=300, in_bits=8, out_kind="logits"))

    def kernel256():
        layer = random_layer(rng, in_ch=1, in_h=1, in_w=1, out_ch=1, kernel=256, padding=128, in_bits=8,
                             out_kind="logits")
        return single_layer_model(layer)

    def shift300():
        m = random_model(rng)
        m.layers[0].shift = 300
        return m

    def negative_shift_sign():
        m = random_model(rng)
        m.layers[1].shift = -1
        return m

    def unknown_kind():
        m = random_model(rng)
        m.layers[1].kind = "deconv"
        return m

    def float_weights():
        m = random_model(rng)
        m.layers[1].weights = m.layers[1].weights.astype(np.float32)
        return m

    def float_thresh():
        m = random_model(rng)
        m.layers[0].thresh = m.layers[0].thresh + 0.5
        return m

    def uint64_mul():
        m = random_model(rng)
        m.layers[2].mul = np.full(10, 2**63, dtype=np.uint64)
        return m

    def mfilter_on_plain():
        m = random_model(rng)
        m.layers[0].mfilter = np.ones((1, 3, 3), dtype=np.int64)
        return m

    def mul_on_sign():
        m = random_model(rng)
        m.layers[0].mul = np.ones(4, dtype=np.int64)
        return m

    def long_name():
        m = random_model(rng)
        m.name = "x" * 70000
        return m

    def name_not_str():
        m = random_model(rng)
        m.layers[0].name = 5
        return m

    def meta_numpy():
        m = random_model(rng)
        m.meta = {"acc": np.int64(3)}
        return m

    def meta_tuple():
        m = random_model(rng)
        m.meta = {"shape": (1, 2)}
        return m

    def meta_nan():
        m = random_model(rng)
        m.meta = {"loss": float("nan")}
        return m

    def meta_int_key():
        m = random_model(rng)
        m.meta = {1: "a"}
        return m

    def inconsistent():
        m = random_model(rng)
        m.layers[1].in_ch = 5
        return m

    return [
        (stride300, "layers[rand].stride", "expected 0..255 (stored as u8), got 300"),
        (kernel256, "layers[rand].kernel", "expected 0..255 (stored as u8), got 256"),
        (shift300, "layers[conv1].shift", "expected 0..255 (stored as u8), got 300"),
        (negative_shift_sign, "layers[conv2].shift", "got -1"),
        (unknown_kind, "layers[conv2].kind", "got 'deconv'"),
        (float_weights, "layers[conv2].weights", "expected an integer array, got dtype float32"),
        (float_thresh, "layers[conv1].thresh", "expected an integer array"),
        (uint64_mul, "layers[fc].mul", "expected values in [-9223372036854775808, 9223372036854775807]"),
        (mfilter_on_plain, "layers[conv1].mfilter", "expected None for mode 'plain'"),
        (mul_on_sign, "layers[conv1].mul", "expected None for out_kind 'sign'"),
        (long_name, "name", "expected 0..65535 (stored as u16), got 70000"),
        (name_not_str, "layers[5].name", "expected a str, got int"),
        (meta_numpy, "meta", "expected a JSON object"),
        (meta_tuple, "meta", "survives JSON unchanged"),
        (meta_nan, "meta", "finite floats"),
        (meta_int_key, "meta", "survives JSON unchanged"),
        (inconsistent, "layers[conv2]", "expected"),
    ]


@pytest.mark.parametrize("case", range(17))
def test_save_refuses_unrepresentable(tmp_path, case):
    cases = _unsavable()
    assert len(cases) == 17
    make, field, fragment = cases[case]
    model = make()
    path = tmp_path / "out.bam"
    with pytest.raises(ModelFormatError) as e:
        mf.save(model, path)
    assert e.value.field.startswith(field) and fragment in str(e.value), str(e.value)
    assert str(path) in str(e.value)
    assert os.listdir(tmp_path) == []  # nothing written, no temporary file left


def test_save_failure_leaves_old_file_and_no_temp(tmp_path, model, monkeypatch):
    path = tmp_path / "m.bam"
    path.write_bytes(b"previous")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(mf.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        mf.save(model, path)
    assert os.listdir(tmp_path) == ["m.bam"] and path.read_bytes() == b"previous"
    bad = random_model(np.random.default_rng(9))
    bad.layers[0].shift = 999
    monkeypatch.undo()
    with pytest.raises(ModelFormatError, match="shift"):
        mf.save(bad, path)
    assert os.listdir(tmp_path) == ["m.bam"] and path.read_bytes() == b"previous"


def test_atomic_write_permissions(tmp_path):
    """Atomic outputs get the permissions of a plain open() (0o666 less the umask), not mkstemp's 0o600."""
    import stat

    from binaccel.sw import atomic

    path = tmp_path / "out" / "r.json"
    atomic.write_json_atomic(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~atomic._UMASK
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]   # no temporary file left
