"""Integer fitting of the importer: level boundaries by bisection and the exact requant fit."""

from __future__ import annotations

import numpy as np


def _search(ev, a_lo: int, a_hi: int, c: int):
    """Level boundaries of a per-channel monotone integer function ``ev`` on ``a_lo..a_hi``.

    Returns ``(S, R, low, high, d)``: points ``S`` (P, c) (row 0: ``a_lo``, row 1: ``a_hi``, then the first
    accumulator of each level above the lowest, then the last one below it), the levels ``R = ev(S)``,
    the lowest/highest level and the direction ``d`` (+1 non-decreasing, -1 non-increasing) per channel."""
    ends = ev(np.array([[a_lo] * c, [a_hi] * c], dtype=np.int64))
    r_lo, r_hi = ends[0], ends[1]
    d = np.where(r_hi >= r_lo, 1, -1)
    low, high = np.minimum(r_lo, r_hi), np.maximum(r_lo, r_hi)
    n_lv = int((high - low).max())
    pts = [np.full(c, a_lo, dtype=np.int64), np.full(c, a_hi, dtype=np.int64)]
    if n_lv:
        v = low[None] + 1 + np.arange(n_lv)[:, None]
        valid = v <= high[None]
        # in the coordinate a' = d * acc the function is non-decreasing: first a' with level >= v
        lo = np.broadcast_to(np.where(d > 0, a_lo, -a_hi), (n_lv, c)).astype(np.int64)
        hi = np.broadcast_to(np.where(d > 0, a_hi, -a_lo), (n_lv, c)).astype(np.int64)
        while True:
            active = (hi - lo > 1) & valid
            if not active.any():
                break
            mid = np.where(active, (lo + hi) // 2, hi)
            ge = ev(d[None] * mid).reshape(n_lv, c) >= v
            hi = np.where(active & ge, mid, hi)
            lo = np.where(active & ~ge, mid, lo)
        pts += [np.where(valid[k], d * hi[k], a_lo) for k in range(n_lv)]
        pts += [np.where(valid[k], d * (hi[k] - 1), a_lo) for k in range(n_lv)]
    S = np.stack(pts).astype(np.int64)
    return S, ev(S), low, high, d


def _channel_fit(col, acc, top: int, shift: int):
    """Integer (mul, add) with ``clamp((acc*mul + add) >> shift, 0, top) == col`` at every point, or None
    (Python integers: exact at any shift).

    For a fixed ``mul`` the feasible ``add`` form an interval ``[L(mul), R(mul)]``; ``R - L`` is concave
    in ``mul`` (a minimum of linear functions minus a maximum of linear functions), so an integer
    ternary search finds the best ``mul``."""
    big = 1 << 400
    lo_pts = [(a, u << shift) for a, u in zip(acc, col) if u > 0]
    hi_pts = [(a, ((u + 1) << shift) - 1) for a, u in zip(acc, col) if u < top]

    def interval(m):
        lo = max((v - a * m for a, v in lo_pts), default=-big)
        hi = min((v - a * m for a, v in hi_pts), default=big)
        return lo, hi

    def gap(m):
        lo, hi = interval(m)
        return hi - lo

    lo_m, hi_m = -((top + 1) << shift), (top + 1) << shift
    while hi_m - lo_m > 2:
        m1 = lo_m + (hi_m - lo_m) // 3
        m2 = hi_m - (hi_m - lo_m) // 3
        if gap(m1) < gap(m2):
            lo_m = m1 + 1
        else:
            hi_m = m2
    best = max(range(lo_m, hi_m + 1), key=gap)
    lo, hi = interval(best)
    if lo > hi:
        return None
    return best, (lo if lo > -big else (hi if hi < big else 0))


def _fit_points(S: np.ndarray, u: np.ndarray, bits: int, max_shift: int = 62):
    """(mul, add, shift): per channel ``clamp((S*mul + add) >> shift, 0, 2**bits-1) == u`` at the points
    ``S`` (P, c), the smallest common shift; or None."""
    top = (1 << bits) - 1
    fits, shift = [], 0
    for ch in range(S.shape[1]):
        acc, col = [int(v) for v in S[:, ch]], [int(v) for v in u[:, ch]]
        while True:  # feasibility only grows with the shift: start at the shift reached so far
            f = _channel_fit(col, acc, top, shift)
            if f is not None:
                break
            if shift >= max_shift:
                return None
            shift += 1
        fits.append((f, shift))
    mul = [m << (shift - s) for (m, _), s in fits]
    add = [a << (shift - s) for (_, a), s in fits]
    for ch in range(S.shape[1]):
        for a, want in zip(S[:, ch], u[:, ch]):
            if min(max((int(a) * mul[ch] + add[ch]) >> shift, 0), top) != int(want):
                return None
    return mul, add, shift
