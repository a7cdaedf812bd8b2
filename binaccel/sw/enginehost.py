"""Host driver of the engine board design (:class:`binaccel.hw.linked.LinkedEngine`).

On a device too small for the whole-network accelerator (the iCE40UP5K) the board runs the layer
engine behind the frame link, and the host does the rest of each layer, FINN's host path
fold -> pack -> execute -> unpack -> unfold per layer:

* **pack**: :func:`binaccel.sw.pack.pack_layer` lays the layer's input map out as engine beats
  (descriptor, M-Filter columns, output parameters, operand steps with their weights: host-side
  im2col), each ``in_words`` little-endian 32-bit words (:func:`beat_words`);
* **execute**: one transfer per layer run; the engine's output beats come back, ``out_words``
  words each (:func:`words_to_beats`), in RESULT transfers;
* **unpack / unfold**: :func:`binaccel.sw.pack.unpack_outputs` and
  :func:`~binaccel.sw.pack.unfold_outputs` (the 2x2 max-pool) give the layer's output, which is the
  next layer's input.

The device keeps no state between layer runs, so every run is a complete, independent exchange::

    run = layer_run(layer, x, params)          # the words to send, how many to read back
    y = layer_output(run, device_words)        # the layer's output (N, C, H, W), int64
    outputs = run_model(model, images, params, device)   # device(words, n_out, index) -> words

:func:`run_model` returns every layer's output, as :func:`binaccel.sw.intref.run_model` defines
them; :mod:`binaccel.sim.engine_link` is a ``device`` (the design simulated behind its UART).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import intref, pack
from .hwif import IO_WIDTH
from .link import FrameKind

__all__ = ["IO_WIDTH", "LAYER_KIND", "LayerRun", "words_per_beat", "beat_words", "words_to_beats",
           "transfer_bytes", "layer_run", "layer_output", "run_model"]

#: Frame kind of a layer run's transfer (the device takes the bytes of every data frame alike).
LAYER_KIND = FrameKind.IMAGE


def words_per_beat(width: int) -> int:
    """32-bit words per beat of a ``width``-bit stream payload."""
    if int(width) < 1:
        raise ValueError(f"width must be at least 1 bit, got {width}")
    return -(-int(width) // IO_WIDTH)


def beat_words(beat_bytes: np.ndarray, width: int) -> np.ndarray:
    """Beats as little-endian bytes, ``(beats, ceil(width / 8))`` uint8 (``PackedLayer.beat_bytes``)
    -> the link's words, ``words_per_beat(width)`` per beat, least significant first (uint32)."""
    b = np.asarray(beat_bytes, dtype=np.uint8)
    nbytes = -(-int(width) // 8)
    if b.ndim != 2 or b.shape[1] != nbytes:
        raise ValueError(f"beat_bytes: expected shape (beats, {nbytes}) for {width}-bit beats, got {b.shape}")
    n = words_per_beat(width)
    padded = np.zeros((b.shape[0], 4 * n), dtype=np.uint8)
    padded[:, :nbytes] = b
    return padded.view("<u4").reshape(-1).astype(np.uint32)


def words_to_beats(words, width: int) -> list:
    """The link's words, ``words_per_beat(width)`` per beat -> beats as ints of ``width`` bits.
    ValueError if the words do not make whole beats or a beat has bits past ``width``."""
    n = words_per_beat(width)
    w = np.asarray(words, dtype=np.uint64)
    if w.ndim != 1 or len(w) % n:
        raise ValueError(f"expected a whole number of {n}-word beats, got {w.size} words")
    if w.size and int(w.max()) >> IO_WIDTH:
        raise ValueError(f"a word is wider than {IO_WIDTH} bits: {int(w.max()):#x}")
    rows = w.astype("<u4").view(np.uint8).reshape(-1, 4 * n)
    beats = [int.from_bytes(r.tobytes(), "little") for r in rows]
    for i, v in enumerate(beats):
        if v >> width:
            raise ValueError(f"output beat {i}: bits set past the payload's {width} bits ({v:#x})")
    return beats


@dataclass
class LayerRun:
    """One layer run of the engine board design: what the host sends and what it expects back."""

    packed: pack.PackedLayer
    words: np.ndarray      # the input beats as the link's words (uint32), in stream order
    n_out_words: int       # output words the run returns (out_beats * out_words)



def transfer_bytes(words) -> bytes:
    """The bytes of a transfer of the link's 32-bit words (little-endian)."""
    return np.asarray(words, dtype=np.uint64).astype("<u4").tobytes()


def layer_run(layer, x, params) -> LayerRun:
    """The words of one run of ``layer`` on input ``x`` ``(N, C, H, W)`` for the engine build
    ``params`` (:class:`~binaccel.hw.params.EngineParams`); ValueError naming the layer and field
    when the build cannot run it."""
    pk = pack.pack_layer(layer, np.asarray(x, dtype=np.int64), params)
    words = beat_words(pk.beat_bytes, params.in_layout.size)
    return LayerRun(packed=pk, words=words, n_out_words=pk.out_beats * words_per_beat(params.out_layout.size))


def layer_output(run: LayerRun, words) -> np.ndarray:
    """The device's output words of ``run`` -> the layer's output ``(N, C, H', W')`` (int64, pooled
    when the layer pools), as :func:`binaccel.sw.intref.run_layer`. ValueError if the count is wrong."""
    words = np.asarray(words)
    if words.size != run.n_out_words:
        raise ValueError(f"layer {run.packed.layer.name!r}: expected {run.n_out_words} output words, got {words.size}")
    beats = words_to_beats(words, run.packed.params.out_layout.size)
    return pack.unfold_outputs(run.packed.layer, pack.unpack_outputs(run.packed, beats))


def run_model(model, images, params, device, *, progress=None) -> list:
    """Every layer of ``model`` (:class:`~binaccel.sw.intmodel.IntModel`) on uint8 ``images`` through
    ``device(words, n_out_words, index) -> output words``, one run per layer, each layer's output the
    next one's input. Returns every layer's output (int64), as :func:`binaccel.sw.intref.run_model`.
    Every layer is checked against the build before anything is sent. ``progress(index, layer)``
    is called before each run."""
    for layer in model.layers:
        pack.check_layer(layer, params)
    x = intref.model_input(model, images)
    outputs = []
    for i, layer in enumerate(model.layers):
        if progress is not None:
            progress(i, layer)
        run = layer_run(layer, x, params)
        x = layer_output(run, device(run.words, run.n_out_words, i))
        outputs.append(x)
    return outputs
