"""The search for the largest array of a design that fits a board (module docstring of
:mod:`binaccel.hw.sweep`)."""

from __future__ import annotations

from binaccel.hw import sweep as _sweep  # the package: synth_point looked up there (tests replace it)

from ..synth import SynthesisError
from .point import board_summary
from .presets import (ACCEL_TIMEOUT_S, DEFAULT_TIMEOUT_S, DESIGN_DESCRIPTION, DESIGN_KIND, TARGET_MHZ,
                      _check_design, base_params, full_params, start_point)


def largest_array(board, *, design="accel", base=None, start=None, max_n=64, max_word=256, seed=1,
                  freq_mhz=None, design_factory=None, reuse=True, max_points=8, timeout=None, on_point=None,
                  log=print) -> dict:
    """Search the largest fitting ``rows = cols = n`` x ``word`` array of ``design`` for ``board``
    (module docstring); ``base``: the other parameters (default :func:`base_params`); ``start``:
    ``(n, word)`` (default :data:`ACCEL_START` / :data:`DEFAULT_START`). At most ``max_points``
    syntheses. A point whose parameters are invalid (e.g. ``word`` below 8 with 8-bit inputs) is
    not synthesized and ends that direction of the search; so does a point whose synthesis fails
    (status ``error``, e.g. a tool crash), which is recorded with its error. ``on_point(result)`` is called after
    every point with the result so far (to save progress).

    Returns ``{"board", "design", "best": summary or None, "points": [summary...], "target_mhz",
    "met", "base_params", "seed"}``.
    """
    _check_design(design)
    base = base_params(board, design) if base is None else dict(base)
    n, word = start_point(board, design) if start is None else start
    if timeout is None:
        timeout = (ACCEL_TIMEOUT_S if design == "accel" else DEFAULT_TIMEOUT_S).get(board)
    points = []
    tried = {}

    def run(rows, cols, w):
        key = (rows, cols, w)
        if key in tried:
            return tried[key]
        if len(points) >= max_points:
            return None
        params = {**base, "rows": rows, "cols": cols, "word": w}
        try:
            full_params(params, design)
        except (TypeError, ValueError) as exc:
            log(f"[synth] {board} {rows}x{cols}x{w}: not a valid build ({exc}); not synthesized")
            tried[key] = None
            return None
        try:
            _, s = _sweep.synth_point(board, params, design=design, seed=seed, freq_mhz=freq_mhz,
                               design_factory=design_factory, reuse=reuse, log=log, timeout=timeout)
        except SynthesisError as exc:
            # a tool that fails on a point (e.g. yosys' WebAssembly build aborting on a large design)
            # ends that direction of the search like a point that does not fit; recorded with its error
            log(f"[synth]   recorded as not synthesizable: {str(exc)[:300]}")
            s = board_summary(exc.report)
        points.append(s)
        tried[key] = s["fits"]
        if on_point is not None:
            on_point(_result())
        return s["fits"]

    def _result():
        fitting = [p for p in points if p["fits"]]
        best = max(fitting, key=lambda p: (p["macs_per_cycle"], p["fmax_mhz"] or 0.0)) if fitting else None
        return {"board": board, "design": DESIGN_KIND[design], "description": DESIGN_DESCRIPTION[design],
                "target_mhz": TARGET_MHZ[board], "base_params": base, "seed": seed,
                "best": best, "met": bool(best and best["met"]), "points": list(points)}

    # 1. grow the square array
    best, fail_n = None, None
    while n <= max_n:
        ok = run(n, n, word)
        if ok is None:
            break
        if not ok:
            fail_n = n
            break
        best = (n, n, word)
        n *= 2
    if best is None:
        # even the starting square did not fit: halve the word
        w = word
        while w > 1 and best is None:
            w //= 2
            ok = run(n, n, w)
            if ok is None:
                break
            if ok:
                best = (n, n, w)
    else:
        # 2. one midpoint between the last fitting square and the first failing one
        if fail_n is not None and fail_n - best[0] > 1:
            mid = (best[0] + fail_n) // 2
            if run(mid, mid, word):
                best = (mid, mid, word)
        # 3. more columns at the same rows (rows set the per-lane multipliers: DSP-bound boards)
        r, c, w = best
        c *= 2
        while c <= max_n:
            if not run(r, c, w):
                break
            best = (r, c, w)
            c *= 2
        # 4. wider words
        r, c, w = best
        w *= 2
        while w <= max_word:
            if not run(r, c, w):
                break
            best = (r, c, w)
            w *= 2
    return _result()
