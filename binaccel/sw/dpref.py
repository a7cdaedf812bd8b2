"""Numpy references of the pipelined datapath units (:mod:`binaccel.hw.dp`).

Each function computes, from the same inputs a unit receives, the integers the unit puts out; the
unit tests assert ``unit(case) == reference(case)`` on directed and random cases.
"""

from __future__ import annotations

import numpy as np

from .hwif.dp import WinMode

__all__ = ["slot_popcounts", "xnor_array", "lane", "window", "first_layer", "writeback"]


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(x, dtype=np.uint64)).astype(np.int64)


def slot_popcounts(a, w, *, word: int, slot: int) -> np.ndarray:
    """``popcount(~(a ^ w))`` of each ``slot``-bit slot of ``word``-bit words: ``(..., word // slot)``."""
    a = np.asarray(a, dtype=np.uint64)
    w = np.asarray(w, dtype=np.uint64)
    x = ~(a ^ w)
    smask = np.uint64((1 << slot) - 1)
    out = [_popcount((x >> np.uint64(s * slot)) & smask) for s in range(word // slot)]
    return np.stack(out, axis=-1)


def xnor_array(steps, *, rows: int, cols: int, word: int, slot: int):
    """What :class:`binaccel.hw.dp.array.XnorArray` puts out for a sequence of operand steps.

    ``steps``: dicts with ``valid``, ``first``, ``dbl``, ``last``, ``tag`` (ints), ``w`` (``rows``
    words), ``a``, ``m``, ``n`` (``cols`` words, slot masks of ``word // slot`` bits, counts). For
    a valid step every PE ``(r, c)`` computes ``p = sum over slots s with m[c] bit s set of
    popcount(~(a[c] ^ w[r]))`` in slot ``s`` and ``acc = p + (0 if first else 2 * acc if dbl else
    acc)``; column ``c`` counts ``N = n[c] + (0 if first else N)``. A valid step with ``last`` ends
    the segment.

    Returns, per row, the list of results in the order the row emits them: for every segment end,
    ``cols`` tuples ``(acc, N, tag)`` for ``c = 0 .. cols - 1``.
    """
    acc = np.zeros((rows, cols), dtype=np.int64)
    n = np.zeros(cols, dtype=np.int64)
    out = [[] for _ in range(rows)]
    for st in steps:
        if not st["valid"]:
            continue
        a = np.asarray(st["a"], dtype=np.uint64)
        w = np.asarray(st["w"], dtype=np.uint64)
        m = np.asarray(st["m"], dtype=np.int64)
        sp = slot_popcounts(a[None, :], w[:, None], word=word, slot=slot)  # (rows, cols, slots)
        bits = (m[:, None] >> np.arange(word // slot)[None, :]) & 1         # (cols, slots)
        p = (sp * bits[None, :, :]).sum(axis=-1)
        if st["first"]:
            acc[:] = 0
            n[:] = 0
        elif st["dbl"]:
            acc *= 2
        acc += p
        n += np.asarray(st["n"], dtype=np.int64)
        if st["last"]:
            for r in range(rows):
                out[r].extend((int(acc[r, c]), int(n[c]), int(st["tag"])) for c in range(cols))
    return out


def lane(results, *, cfg: dict, banks, cols: int) -> list:
    """What :class:`binaccel.hw.dp.lane.Lane` puts out for ``results`` (``(acc, n, tag)`` tuples),
    with ``cfg`` (``kind`` "sign"/"requant"/"logits", ``alpha``, ``sum_cols``, ``pool``,
    ``shift``, ``out_bits``) and the two parameter ``banks`` (dicts ``noff``, ``mul``, ``add``; a
    result uses bank ``tag & 1``)."""
    out, group, pooled = [], [], []
    for acc, n, tag in results:
        prm = banks[tag & 1]
        v = (acc << cfg["alpha"]) - n
        if cfg["sum_cols"]:
            group.append(v)
            if len(group) < cols:
                continue
            v, group = sum(group), []
        z = (v + prm["noff"]) * prm["mul"] + prm["add"]
        if cfg["kind"] == "sign":
            y = int(z >= 0)
        elif cfg["kind"] == "requant":
            y = min(max(z >> cfg["shift"], 0), (1 << cfg["out_bits"]) - 1)
        else:
            y = z
        if cfg["pool"] and cfg["kind"] != "logits":
            pooled.append(y)
            if len(pooled) < cols:
                continue
            y, pooled = max(pooled), []
        out.append(y)
    return out


def window(cfg: dict, *, fm, table, weights, cols: int, aw: int) -> list:
    """The valid steps :class:`binaccel.hw.dp.window.WindowGen` emits for one layer run, in order.

    ``cfg``: the fields of :func:`binaccel.sw.hwif.dp.window_cfg_layout` (``mode`` an int of
    :class:`~binaccel.sw.hwif.dp.WinMode`); ``fm``: the 16-bit slots by address; ``table``: entries
    (pairs of dicts ``off``, ``ky``, ``kx``, ``nbits``, ``used``); ``weights``: lists of row words
    by address. Each step is a dict ``first``, ``dbl``, ``last``, ``tag``, ``w``, ``a``, ``m``,
    ``n`` (as :func:`xnor_array` takes them)."""
    amask = (1 << aw) - 1
    fc = cfg["mode"] == WinMode.FC
    out = []
    top = cfg["planes_last"]
    for g in range(cfg["last_gt"] + 1):
        for ty in range(cfg["last_ty"] + 1):
            for tx in range(cfg["last_tx"] + 1):
                tile = cfg["addr0"] + ty * cfg["dy_addr"] + tx * cfg["dx_addr"]
                iy, ix = cfg["iy0"] + ty * cfg["dy_pix"], cfg["ix0"] + tx * cfg["dx_pix"]
                for b in range(top, -1, -1):
                    plane = tile - (top - b) * cfg["plane_size"]
                    for j in range(cfg["last_step"] + 1):
                        ent = table[cfg["tbl_base"] + j]
                        a, m, n = [], [], []
                        for c in range(cols):
                            base = plane + cfg["col_off"][c]
                            y, x = iy + cfg["col_dy"][c], ix + cfg["col_dx"][c]
                            colok = cfg["mode"] != WinMode.LINEAR or tx != cfg["last_tx"] or c < cfg["last_cols"]
                            word, mask, cnt = 0, 0, 0
                            for s in range(2):
                                e = ent[s]
                                inr = 2 * j + s < cfg["col_lim"][c]
                                vy = colok and (fc or 0 <= y + e["ky"] < cfg["hin"])
                                vx = fc or 0 <= x + e["kx"] < cfg["win"]
                                valid = bool(e["used"] and inr and vy and vx)
                                if valid:
                                    word |= int(fm[(base + e["off"]) & amask]) << (16 * s)
                                if (valid if cfg["binary"] else (e["used"] and inr)):
                                    mask |= 1 << s
                                if cfg["binary"] and valid:
                                    cnt += e["nbits"]
                            a.append(word), m.append(mask), n.append(cnt)
                        out.append({"valid": 1, "first": int(b == top and j == 0), "dbl": int(j == 0 and b != top),
                                    "last": int(b == 0 and j == cfg["last_step"]), "tag": g & 1,
                                    "w": list(weights[cfg["w_base"] + g * cfg["w_stride"] + j]),
                                    "a": a, "m": m, "n": n})
    return out


def first_layer(cfg: dict, *, img, weights, rows: int) -> list:
    """What :class:`binaccel.hw.dp.first.FirstLayerUnit` puts out: per row, the list of
    ``(acc, tag)`` in order. ``img``: tile words by address; ``weights``: entries (ints: 9 weight
    bits per row, then a ``dir`` bit per row) by address."""
    out = [[] for _ in range(rows)]

    def pixel(ch_addr, by, bx):
        word = int(img[ch_addr + (by // 2) * cfg["tile_row"] + (bx // 2)])
        return (word >> (8 * (2 * (by % 2) + (bx % 2)))) & 0xFF

    for g in range(cfg["last_gt"] + 1):
        for qy in range(cfg["last_qy"] + 1):
            for qx in range(cfg["last_qx"] + 1):
                acc = np.zeros((rows, 4), dtype=np.int64)
                dirs = 0
                for c in range(cfg["last_ch"] + 1):
                    went = int(weights[cfg["w_base"] + g * cfg["w_stride"] + c])
                    if c == 0:
                        dirs = went >> (9 * rows)
                    base = cfg["img_base"] + qy * cfg["tile_row"] + qx + c * cfg["ch_size"]
                    for r in range(rows):
                        wb = (went >> (9 * r)) & 0x1FF
                        for p in range(4):
                            dy, dx = p // 2, p % 2
                            acc[r, p] += sum(pixel(base, dy + ky, dx + kx) ^ (0 if (wb >> (3 * ky + kx)) & 1 else 0xFF)
                                             for ky in range(3) for kx in range(3))
                for r in range(rows):
                    vals = [int(v) for v in acc[r]]
                    if cfg["pool"]:
                        vals = [min(vals) if (dirs >> r) & 1 else max(vals)]
                    out[r].extend((v, g & 1) for v in vals)
    return out


def writeback(cfg: dict, outputs, *, rows: int = 16, cols: int) -> tuple:
    """What :class:`binaccel.hw.dp.writeback.WriteBack` does with ``outputs`` (one list of
    ``rows`` output values per output, in order): the map writes ``(addr, word)`` in order and the
    logits, as a pair of lists."""
    writes, logits = [], []
    k = 0
    n_out = cfg["last_out"] + 1
    for g in range(cfg["last_gt"] + 1):
        for ty in range(cfg["last_ty"] + 1):
            for tx in range(cfg["last_tx"] + 1):
                for c in range(n_out):
                    if k >= len(outputs):
                        return writes, logits
                    vals = outputs[k]
                    k += 1
                    if cfg["logits"]:
                        used = rows if g != cfg["last_gt"] else cfg["rows_last"] + 1
                        logits.extend(int(v) for v in vals[:used])
                        continue
                    if cfg["linear"] and tx == cfg["last_tx"] and c >= cfg["last_cols"]:
                        continue
                    addr = cfg["base"] + g + ty * cfg["dy"] + tx * cfg["dx"] + cfg["out_off"][c]
                    for b in range(cfg["planes_last"] + 1):
                        word = sum(((int(v) >> b) & 1) << r for r, v in enumerate(vals))
                        writes.append((addr + b * cfg["plane_size"], word))
    return writes, logits
