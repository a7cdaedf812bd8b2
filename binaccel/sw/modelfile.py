"""The binaccel model file: a versioned binary container for an :class:`~binaccel.sw.intmodel.IntModel`.

Contract
    * :func:`save` validates the model and every value against the width the format stores it in,
      then writes the file atomically (temporary file in the target directory, then ``os.replace``):
      on any error nothing is written and no temporary file is left behind.
    * :func:`load` returns an :class:`IntModel` whose every array equals the saved one
      (``np.array_equal``) and whose scalars, names, input shape and ``meta`` are equal; the result has
      passed :meth:`IntModel.validate`. Every defect of the file (wrong magic, unsupported version,
      truncation, checksum mismatch, malformed header/table/data, inconsistent model) raises
      :class:`~binaccel.sw.intmodel.ModelFormatError` naming the file, the field and what was expected.
    * :func:`dumps` / :func:`loads` do the same on bytes; the encoding is deterministic (the same model
      gives the same bytes).

The byte-level specification is ``docs/model-format.md``; the layouts below are its single source in
code (``HEADER_FIELDS`` and ``RECORD_FIELDS`` list every field in file order).

Arrays of a loaded model: ``weights`` int8 (binary weights as -1/+1), ``mfilter`` int64, ``thresh``,
``mul``, ``add`` int64, ``flip`` uint8; arrays a layer does not use are ``None``.
"""

from __future__ import annotations

import json
import math
import operator
import os
import struct
import zlib

import numpy as np

from .atomic import write_bytes_atomic
from .intmodel import IntModel, Layer, ModelFormatError

__all__ = [
    "FORMAT_VERSION", "MAGIC", "HEADER_FIELDS", "RECORD_FIELDS", "BLOBS", "KIND_CODES", "MODE_CODES",
    "OUT_KIND_CODES", "HEADER_SIZE", "RECORD_SIZE", "save", "load", "dumps", "loads", "is_model_file",
    "pack_binary_weights", "unpack_binary_weights",
]

MAGIC = b"BINACCEL"
FORMAT_VERSION = 1
ALIGN = 8  # layer table and every data blob start at a multiple of 8 bytes

# Enumerations as stored (u8). Explicit so the file format never depends on tuple order elsewhere.
KIND_CODES = {"conv": 0, "fc": 1}
MODE_CODES = {"plain": 0, "mcn": 1, "mcn1": 2}
OUT_KIND_CODES = {"sign": 0, "requant": 1, "logits": 2}

# (field, struct code, meaning) in file order; all little-endian, no implicit padding.
HEADER_FIELDS = [
    ("magic", "8s", "b'BINACCEL'"),
    ("version", "H", "format version (1)"),
    ("flags", "H", "feature flags; none defined in version 1, must be 0"),
    ("header_len", "I", "bytes of header incl. name, meta and padding = offset of the layer table"),
    ("total_len", "Q", "length of the whole file in bytes, including the CRC"),
    ("layer_count", "I", "number of layer records (>= 1)"),
    ("record_len", "H", "bytes per layer record (144 in version 1)"),
    ("reserved0", "H", "0"),
    ("input_c", "I", "input channels C of the uint8 image"),
    ("input_h", "I", "input height H"),
    ("input_w", "I", "input width W"),
    ("input_repeat", "I", "channel repeat K of the input (MCN), >= 1"),
    ("classes", "I", "number of classes (= out_ch of the last layer)"),
    ("name_len", "H", "bytes of the UTF-8 model name"),
    ("reserved1", "H", "0"),
    ("meta_len", "I", "bytes of the UTF-8 JSON meta object"),
    ("reserved2", "I", "0"),
]

# Data blobs of a layer, in record order: (blob, element encoding).
BLOBS = ("name", "weights", "mfilter", "thresh", "flip", "mul", "add")

RECORD_FIELDS = [
    ("kind", "B", "0 conv, 1 fc"),
    ("mode", "B", "0 plain, 1 mcn, 2 mcn1"),
    ("out_kind", "B", "0 sign, 1 requant, 2 logits"),
    ("in_bits", "B", "input activation width (1 binary, 2..8 unsigned)"),
    ("w_bits", "B", "weight width (1 binary, 8 signed)"),
    ("m_bits", "B", "M-Filter width (1..16 for MCN layers)"),
    ("out_bits", "B", "output width (1 for sign, 2..8 for requant)"),
    ("pool", "B", "1 none, 2 max-pool 2x2"),
    ("kernel", "B", "kernel size k"),
    ("stride", "B", "stride"),
    ("padding", "B", "zero padding"),
    ("shift", "B", "requant shift / logit fractional bits"),
    ("planes", "H", "MCN planes K (1 for plain)"),
    ("reserved", "H", "0"),
    ("in_ch", "I", "input channels"),
    ("in_h", "I", "input height"),
    ("in_w", "I", "input width"),
    ("out_ch", "I", "output channels"),
] + [(f"{b}_{part}", "Q", f"{b} blob: {'absolute file offset' if part == 'off' else 'length in bytes'}")
     for b in BLOBS for part in ("off", "len")]

_HEADER = struct.Struct("<" + "".join(code for _, code, _ in HEADER_FIELDS))
_RECORD = struct.Struct("<" + "".join(code for _, code, _ in RECORD_FIELDS))
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size  # 64
RECORD_SIZE = _RECORD.size  # 144
_LIMITS = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFF_FFFF), "Q": (0, 0xFFFF_FFFF_FFFF_FFFF)}
_CODES = {name: code for name, code, _ in HEADER_FIELDS + RECORD_FIELDS}


def _pad(n: int) -> int:
    return -n % ALIGN


# ------------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------------
def _scalar(value, field: str, code: str, path) -> int:
    """An integer scalar that fits the stored width ``code``."""
    try:
        v = operator.index(value)
    except TypeError:
        raise ModelFormatError(field, f"expected an integer, got {value!r}", path=path) from None
    lo, hi = _LIMITS[code]
    if not lo <= v <= hi:
        width = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64"}[code]
        raise ModelFormatError(field, f"expected {lo}..{hi} (stored as {width}), got {v}", path=path)
    return v


def _int_array(value, field: str, shape: tuple, lo: int, hi: int, path) -> np.ndarray:
    """An integer array of ``shape`` with values in ``[lo, hi]``, as int64."""
    a = np.asarray(value)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ModelFormatError(field, f"expected an integer array, got dtype {a.dtype}", path=path)
    if tuple(a.shape) != tuple(shape):
        raise ModelFormatError(field, f"expected shape {tuple(shape)}, got {tuple(a.shape)}", path=path)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ModelFormatError(field, f"expected values in [{lo}, {hi}], got [{int(a.min())}, {int(a.max())}]",
                               path=path)
    return a.astype(np.int64)


def _text(value, field: str, code: str, path) -> bytes:
    if not isinstance(value, str):
        raise ModelFormatError(field, f"expected a str, got {type(value).__name__}", path=path)
    data = value.encode("utf-8")
    _scalar(len(data), f"{field} (UTF-8 length)", code, path)
    return data


def _words_per_row(fan: int) -> int:
    return (fan + 31) // 32


def pack_binary_weights(w: np.ndarray) -> bytes:
    """Binary weights (-1/+1) of shape ``(rows, ...)`` -> little-endian 32-bit words, row by row.

    Bit ``i`` of word ``j`` of a row is fan-in element ``32*j + i`` of ``w.reshape(rows, -1)``; bit 1
    means +1; each row is padded to whole words with 0 bits.
    """
    w = np.asarray(w)
    rows = w.shape[0]
    flat = w.reshape(rows, -1) == 1
    fan = flat.shape[1]
    bits = np.zeros((rows, 32 * _words_per_row(fan)), dtype=np.uint8)
    bits[:, :fan] = flat
    return np.packbits(bits, axis=1, bitorder="little").tobytes()


def unpack_binary_weights(data: bytes, shape: tuple) -> tuple[np.ndarray, bool]:
    """Inverse of :func:`pack_binary_weights`: (int8 -1/+1 array of ``shape``, padding bits all zero)."""
    rows = shape[0]
    fan = math.prod(shape[1:])
    nbytes = 4 * _words_per_row(fan)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    w = np.where(bits[:, :fan] == 1, 1, -1).astype(np.int8).reshape(shape)
    return w, not bits[:, fan:].any()


def _blob_lengths(layer: Layer) -> dict:
    """Expected byte length of each data blob of ``layer`` (``None``: the blob is absent).

    Needs only the scalar fields (and, for MCN, ``planes`` dividing ``out_ch``).
    """
    shape = layer.weight_shape
    rows, fan = shape[0], math.prod(shape[1:])
    n = layer.out_ch
    mcount = layer.planes * (layer.kernel ** 2 if layer.mode == "mcn" else 1)
    return {
        "weights": rows * 4 * _words_per_row(fan) if layer.w_bits == 1 else rows * fan,
        "mfilter": None if layer.mode == "plain" else 2 * mcount,
        "thresh": 8 * n if layer.out_kind == "sign" else None,
        "flip": 8 * n if layer.out_kind == "sign" else None,
        "mul": 8 * n if layer.out_kind != "sign" else None,
        "add": 8 * n if layer.out_kind != "sign" else None,
    }


_I64 = (-(1 << 63), (1 << 63) - 1)


def _encode_layer(layer: Layer, path) -> tuple[dict, dict]:
    """(record scalar values, blob bytes) of a validated layer; raises for what the format cannot hold."""
    f = f"layers[{layer.name}]"
    name = _text(layer.name, f"{f}.name", "I", path)
    rec = {
        "kind": KIND_CODES[layer.kind], "mode": MODE_CODES[layer.mode], "out_kind": OUT_KIND_CODES[layer.out_kind],
        "reserved": 0,
    }
    for field in ("in_bits", "w_bits", "m_bits", "out_bits", "pool", "kernel", "stride", "padding", "shift",
                  "planes", "in_ch", "in_h", "in_w", "out_ch"):
        rec[field] = _scalar(getattr(layer, field), f"{f}.{field}", _CODES[field], path)
    shape = layer.weight_shape
    if layer.w_bits == 1:
        w = _int_array(layer.weights, f"{f}.weights", shape, -1, 1, path)
        weights = pack_binary_weights(w)
    else:
        weights = _int_array(layer.weights, f"{f}.weights", shape, -128, 127, path).astype("<i1").tobytes()
    blobs = {"name": name, "weights": weights}
    used = {"mfilter": layer.mode != "plain", "thresh": layer.out_kind == "sign", "flip": layer.out_kind == "sign",
            "mul": layer.out_kind != "sign", "add": layer.out_kind != "sign"}
    for field, needed in used.items():
        value = getattr(layer, field)
        if not needed:
            if value is not None:
                why = f"mode {layer.mode!r}" if field == "mfilter" else f"out_kind {layer.out_kind!r}"
                raise ModelFormatError(f"{f}.{field}", f"expected None for {why} (the format does not store it), "
                                       f"got an array of shape {np.shape(value)}", path=path)
            blobs[field] = None
            continue
        if field == "mfilter":
            mshape = (layer.planes, layer.kernel, layer.kernel) if layer.mode == "mcn" else (layer.planes,)
            blobs[field] = _int_array(value, f"{f}.mfilter", mshape, 0, 0xFFFF, path).astype("<u2").tobytes()
        elif field == "flip":
            blobs[field] = _int_array(value, f"{f}.flip", (layer.out_ch,), 0, 1, path).astype("<i8").tobytes()
        else:
            blobs[field] = _int_array(value, f"{f}.{field}", (layer.out_ch,), *_I64, path).astype("<i8").tobytes()
    return rec, blobs


def _encode_meta(meta, path) -> bytes:
    if not isinstance(meta, dict):
        raise ModelFormatError("meta", f"expected a dict, got {type(meta).__name__}", path=path)
    try:
        text = json.dumps(meta, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ModelFormatError("meta", f"expected a JSON object (str keys; str/int/float/bool/None/list/dict "
                               f"values, finite floats): {e}", path=path) from None
    if json.loads(text) != meta:
        raise ModelFormatError("meta", "expected a dict that survives JSON unchanged (str keys, lists not "
                               "tuples)", path=path)
    data = text.encode("utf-8")
    _scalar(len(data), "meta (UTF-8 JSON length)", "I", path)
    return data


def dumps(model: IntModel, *, path=None) -> bytes:
    """The file contents for ``model`` (validated first; ``path`` only names the file in errors)."""
    model.validate(path=path)
    name = _text(model.name, "name", "H", path)
    meta = _encode_meta(model.meta, path)
    shape = tuple(model.input_shape)
    hdr = {
        "magic": MAGIC, "version": FORMAT_VERSION, "flags": 0, "reserved0": 0, "reserved1": 0, "reserved2": 0,
        "record_len": RECORD_SIZE, "name_len": len(name), "meta_len": len(meta),
        "layer_count": _scalar(len(model.layers), "layer_count", "I", path),
    }
    for field, value in zip(("input_c", "input_h", "input_w"), shape):
        hdr[field] = _scalar(value, f"input_shape ({field})", "I", path)
    hdr["input_repeat"] = _scalar(model.input_repeat, "input_repeat", "I", path)
    hdr["classes"] = _scalar(model.classes, "classes", "I", path)
    head_var = name + meta + bytes(_pad(len(name) + len(meta)))
    header_len = HEADER_SIZE + len(head_var)
    hdr["header_len"] = _scalar(header_len, "header_len", "I", path)

    encoded = [_encode_layer(layer, path) for layer in model.layers]
    cursor = header_len + RECORD_SIZE * len(encoded)
    records, data = [], []
    for rec, blobs in encoded:
        for b in BLOBS:
            blob = blobs[b]
            if blob is None:
                rec[f"{b}_off"], rec[f"{b}_len"] = 0, 0
                continue
            rec[f"{b}_off"], rec[f"{b}_len"] = cursor, len(blob)
            data.append(blob + bytes(_pad(len(blob))))
            cursor += len(blob) + _pad(len(blob))
        records.append(_RECORD.pack(*(rec[name] for name, _, _ in RECORD_FIELDS)))
    hdr["total_len"] = cursor + _CRC.size
    body = b"".join([_HEADER.pack(*(hdr[name] for name, _, _ in HEADER_FIELDS)), head_var, *records, *data])
    assert len(body) == cursor
    return body + _CRC.pack(zlib.crc32(body))


def save(model: IntModel, path) -> None:
    """Validate ``model`` and write it to ``path`` atomically (nothing is written if anything fails)."""
    path = os.fspath(path)
    data = dumps(model, path=path)
    write_bytes_atomic(path, data, durable=True)


# ------------------------------------------------------------------------------------------------
# decoding
# ------------------------------------------------------------------------------------------------
def _decode_text(raw: bytes, field: str, path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(field, f"expected UTF-8 text: {e}", path=path) from None


def _check_envelope(data: bytes, path) -> None:
    """Magic, version, length and checksum: the checks that do not trust anything else in the file."""
    n = len(data)
    head = data[:len(MAGIC)]
    if head != MAGIC[:len(head)]:
        raise ModelFormatError("magic", f"expected {MAGIC!r} (not a binaccel model file), got {head!r}", path=path)
    if n < len(MAGIC) + 2:
        raise ModelFormatError("total_len", f"truncated: expected at least {HEADER_SIZE + _CRC.size} bytes, "
                               f"got {n}", path=path)
    (version,) = struct.unpack_from("<H", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise ModelFormatError("version", f"expected {FORMAT_VERSION}, got {version} (unsupported format version; "
                               f"this reader reads version {FORMAT_VERSION} only)", path=path)
    if n < 24:
        raise ModelFormatError("total_len", f"truncated: expected at least {HEADER_SIZE + _CRC.size} bytes, "
                               f"got {n}", path=path)
    (total,) = struct.unpack_from("<Q", data, 16)
    if total < HEADER_SIZE + _CRC.size:
        raise ModelFormatError("total_len", f"expected at least {HEADER_SIZE + _CRC.size}, got {total}", path=path)
    if n < total:
        raise ModelFormatError("total_len", f"truncated: expected {total} bytes, got {n}", path=path)
    if n > total:
        raise ModelFormatError("total_len", f"expected {total} bytes, got {n} (trailing data after the checksum)",
                               path=path)
    (stored,) = _CRC.unpack_from(data, n - _CRC.size)
    actual = zlib.crc32(memoryview(data)[:n - _CRC.size])
    if stored != actual:
        raise ModelFormatError("crc32", f"checksum mismatch: expected 0x{stored:08x} (stored), computed "
                               f"0x{actual:08x} (file corrupted)", path=path)


def loads(data: bytes, *, path="<bytes>") -> IntModel:
    """Parse and fully validate model file contents (``path`` names the source in errors)."""
    data = bytes(data)
    _check_envelope(data, path)
    end = len(data) - _CRC.size  # end of the checksummed body
    hdr = dict(zip((name for name, _, _ in HEADER_FIELDS), _HEADER.unpack_from(data, 0)))

    def expect(field, got, want, what=None):
        if got != want:
            raise ModelFormatError(field, f"expected {what or want}, got {got}", path=path)

    expect("flags", hdr["flags"], 0, "0 (no flags are defined in version 1)")
    for r in ("reserved0", "reserved1", "reserved2"):
        expect(r, hdr[r], 0)
    expect("record_len", hdr["record_len"], RECORD_SIZE)
    text_end = HEADER_SIZE + hdr["name_len"] + hdr["meta_len"]
    header_len = text_end + _pad(text_end)
    expect("header_len", hdr["header_len"], header_len, f"{header_len} (64 + name_len + meta_len, padded to 8)")
    count = hdr["layer_count"]
    if count < 1:
        raise ModelFormatError("layer_count", "expected at least 1 layer, got 0", path=path)
    data_start = header_len + RECORD_SIZE * count
    if data_start > end:
        raise ModelFormatError("layer_count", f"expected header and {count} layer records to fit before the "
                               f"checksum at byte {end}, they end at byte {data_start}", path=path)
    if any(data[text_end:header_len]):
        raise ModelFormatError("meta", f"expected zero padding after meta (bytes {text_end}..{header_len}), got "
                               f"{data[text_end:header_len].hex(' ')}", path=path)
    name = _decode_text(data[HEADER_SIZE:HEADER_SIZE + hdr["name_len"]], "name", path)
    meta_text = _decode_text(data[HEADER_SIZE + hdr["name_len"]:text_end], "meta", path)
    try:
        meta = json.loads(meta_text)
    except ValueError as e:
        raise ModelFormatError("meta", f"expected a JSON object: {e}", path=path) from None
    if not isinstance(meta, dict):
        raise ModelFormatError("meta", f"expected a JSON object, got {type(meta).__name__}", path=path)

    layers, extents = [], []
    for i in range(count):
        off = header_len + i * RECORD_SIZE
        rec = dict(zip((n for n, _, _ in RECORD_FIELDS), _RECORD.unpack_from(data, off)))
        layers.append(_decode_layer(data, rec, i, data_start, end, extents, path))
    extents.sort()
    for (a_off, a_end, a_field), (b_off, _, b_field) in zip(extents, extents[1:]):
        if b_off < a_end:
            raise ModelFormatError(b_field, f"expected a blob not overlapping {a_field} (bytes {a_off}..{a_end}), "
                                   f"got offset {b_off}", path=path)
    model = IntModel(name=name, input_shape=(hdr["input_c"], hdr["input_h"], hdr["input_w"]), layers=layers,
                     input_repeat=hdr["input_repeat"], classes=hdr["classes"], meta=meta)
    model.validate(path=path)
    return model


def load(path) -> IntModel:
    """Read, check and validate the model file at ``path`` (errors name ``path``)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return loads(data, path=path)


def is_model_file(path) -> bool:
    """Whether the file at ``path`` starts with the model file's magic (without reading the rest)."""
    try:
        with open(os.fspath(path), "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _decode_enum(codes: dict, value: int, field: str, path) -> str:
    for key, code in codes.items():
        if code == value:
            return key
    choices = ", ".join(f"{c} ({k})" for k, c in codes.items())
    raise ModelFormatError(field, f"expected one of {choices}, got {value}", path=path)


def _decode_layer(data: bytes, rec: dict, i: int, data_start: int, end: int, extents: list, path) -> Layer:
    f = f"layers[{i}]"
    kind = _decode_enum(KIND_CODES, rec["kind"], f"{f}.kind", path)
    mode = _decode_enum(MODE_CODES, rec["mode"], f"{f}.mode", path)
    out_kind = _decode_enum(OUT_KIND_CODES, rec["out_kind"], f"{f}.out_kind", path)
    if rec["reserved"]:
        raise ModelFormatError(f"{f}.reserved", f"expected 0, got {rec['reserved']}", path=path)
    if mode != "plain" and (rec["planes"] < 1 or rec["out_ch"] % rec["planes"]):
        raise ModelFormatError(f"{f}.planes", f"expected a divisor of out_ch ({rec['out_ch']}), got {rec['planes']}",
                               path=path)
    for name in ("in_ch", "in_h", "in_w", "out_ch", "kernel", "stride"):
        if rec[name] < 1:  # checked before any size is derived from them
            raise ModelFormatError(f"{f}.{name}", f"expected a positive integer, got {rec[name]}", path=path)
    if rec["w_bits"] not in (1, 8):
        raise ModelFormatError(f"{f}.w_bits", f"expected 1 (binary) or 8 (signed), got {rec['w_bits']}", path=path)
    scalars = {k: rec[k] for k in ("in_ch", "in_h", "in_w", "out_ch", "kernel", "stride", "padding", "in_bits",
                                   "w_bits", "planes", "m_bits", "shift", "out_bits", "pool")}
    layer = Layer(name="", kind=kind, mode=mode, out_kind=out_kind, weights=np.zeros(0, np.int8), **scalars)
    want = _blob_lengths(layer)
    want["name"] = rec["name_len"]  # any length

    raw = {}
    for b in BLOBS:
        off, length, field = rec[f"{b}_off"], rec[f"{b}_len"], f"{f}.{b}"
        if want[b] is None:
            if off or length:
                raise ModelFormatError(field, f"expected no blob (offset 0, length 0) for mode {mode!r}, out_kind "
                                       f"{out_kind!r}; got offset {off}, length {length}", path=path)
            raw[b] = None
            continue
        if length != want[b]:
            raise ModelFormatError(field, f"expected {want[b]} bytes for {_describe(layer, b)}, got {length}",
                                   path=path)
        if off < data_start or off + length > end:
            raise ModelFormatError(field, f"expected the blob inside the data section (bytes {data_start}..{end}), "
                                   f"got offset {off}, length {length}", path=path)
        if off % ALIGN:
            raise ModelFormatError(field, f"expected an offset that is a multiple of {ALIGN}, got {off}", path=path)
        if length:
            extents.append((off, off + length, field))
        raw[b] = data[off:off + length]

    layer.name = _decode_text(raw["name"], f"{f}.name", path)
    shape = layer.weight_shape
    if layer.w_bits == 1:
        layer.weights, clean = unpack_binary_weights(raw["weights"], shape)
        if not clean:
            raise ModelFormatError(f"{f}.weights", "expected 0 in the padding bits after each row's last fan-in "
                                   "element", path=path)
    else:
        layer.weights = np.frombuffer(raw["weights"], dtype="<i1").astype(np.int8).reshape(shape)
    if raw["mfilter"] is not None:
        mshape = (layer.planes, layer.kernel, layer.kernel) if mode == "mcn" else (layer.planes,)
        layer.mfilter = np.frombuffer(raw["mfilter"], dtype="<u2").astype(np.int64).reshape(mshape)
    for b in ("thresh", "flip", "mul", "add"):
        if raw[b] is not None:
            setattr(layer, b, np.frombuffer(raw[b], dtype="<i8").astype(np.int64))
    if layer.flip is not None:
        if not np.all((layer.flip == 0) | (layer.flip == 1)):
            raise ModelFormatError(f"{f}.flip", "expected 0 or 1 in every element", path=path)
        layer.flip = layer.flip.astype(np.uint8)
    return layer


def _describe(layer: Layer, blob: str) -> str:
    if blob == "weights":
        shape = layer.weight_shape
        if layer.w_bits == 1:
            return f"binary weights of shape {shape} packed in 32-bit words per row"
        return f"int8 weights of shape {shape}"
    if blob == "mfilter":
        return f"a u16 M-Filter of {layer.planes} planes ({layer.mode})"
    return f"{layer.out_ch} int64 values"
