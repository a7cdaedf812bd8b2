"""Analytic cycle model of the engine (exact without input idle and output backpressure).

A layer run is counted from the cycle its descriptor is accepted (cycle 0) to the cycle its last
output beat is transferred, inclusive. The input stream then accepts one beat per cycle except that
an operand step ending a segment waits until ``seg_spacing = cols`` cycles have passed since the
previous segment end (the drain chain of a row emits one partial per cycle). The output FIFO
and the parameter FIFOs are sized so that they never stall an unthrottled run. Hence, with
``steps = seg_words * in_bits`` operand steps per segment::

    first segment end  = n_seg (M-Filter beats) + rows (PARAM beats) + steps
    inside a group tile: next segment end = previous + max(seg_spacing, steps)
    new group tile     : next segment end = previous + max(seg_spacing, rows + steps)
    cycles             = last segment end + latency + 1,  latency = rows + 2*cols + 4 + pe_stages

``ideal`` cycles are the binary MACs (``Layer.binary_macs * in_bits`` per image, bit-serial) over
the array's ``rows * cols * word`` MACs per cycle; utilisation = ideal / cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from binaccel.hw.params import EngineParams
from binaccel.sw.pack import plan_layer

__all__ = ["LayerPerf", "layer_cycles", "ideal_cycles", "layer_perf"]


def _params(rows, cols, word, params):
    if params is None:
        params = {}
    if isinstance(params, EngineParams):
        params = params.as_dict()
    return EngineParams(**{**params, "rows": rows, "cols": cols, "word": word})


def layer_cycles(layer, rows, cols, word, *, n=1, params=None) -> int:
    """Cycles of one run of ``layer`` on ``n`` images on an engine of ``rows x cols`` PEs of
    ``word`` bits (other build parameters from ``params``, an EngineParams or dict; defaults
    otherwise). Raises ValueError for a layer the build cannot run."""
    p = _params(rows, cols, word, params)
    pl = plan_layer(layer, n, p)
    steps = pl.seg_words * pl.in_bits
    spacing = p.seg_spacing
    first = pl.n_seg + p.rows + steps
    inner = max(spacing, steps)
    boundary = max(spacing, p.rows + steps)
    segs_per_gt = pl.n_pt * pl.n_seg
    last = first + pl.n_gt * (segs_per_gt - 1) * inner + (pl.n_gt - 1) * boundary
    return last + p.latency + 1


def ideal_cycles(layer, rows, cols, word, *, n=1) -> float:
    """Binary MACs (bit-serial: ``binary_macs * in_bits`` per image) / (rows*cols*word)."""
    return n * layer.binary_macs * layer.in_bits / (rows * cols * word)


@dataclass(frozen=True)
class LayerPerf:
    name: str
    cycles: int
    ideal: float

    @property
    def utilisation(self) -> float:
        return self.ideal / self.cycles if self.cycles else 0.0

    def as_dict(self) -> dict:
        return {"layer": self.name, "cycles": self.cycles, "ideal_cycles": self.ideal,
                "utilisation": self.utilisation}


def layer_perf(layer, rows, cols, word, *, n=1, params=None, cycles=None) -> LayerPerf:
    """:class:`LayerPerf` with the analytic cycles (or the given measured ``cycles``)."""
    c = layer_cycles(layer, rows, cols, word, n=n, params=params) if cycles is None else int(cycles)
    return LayerPerf(layer.name, c, ideal_cycles(layer, rows, cols, word, n=n))
