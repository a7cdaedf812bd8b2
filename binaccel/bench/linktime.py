"""The bench's host-link figures: bytes on the serial line per image and their time at the board's baud.

The bytes come from the real encoders: the accelerator's RUN command of an image
(:meth:`binaccel.sw.program.Program.transfers`: the IMAGE transfer, and the streamed WEIGHTS
transfer when the network streams weights), the pipelined accelerator's RUN command
(:meth:`binaccel.sw.dpprog.DpProgram.run_words`) or, for the engine behind the link, every layer run's
input beats (:func:`binaccel.sw.enginehost.layer_run`), framed by :func:`binaccel.sw.link.split_frames`
(10 bytes of framing per frame of at most 256 payload bytes); the results come back framed the
same way as RESULT transfers, one per image (the accelerator's logits, no cycle counters) or per
layer run (the engine's outputs). 8N1 puts 10 bits on the line per byte
(:func:`binaccel.sw.link.line_seconds`).

The host-to-device bytes are exactly what the simulated line carries, and so are the
accelerator's result bytes. The engine's result bytes are a lower bound: its device closes a
RESULT transfer whenever its next output word is not ready yet, so its outputs leave in several
transfers, 10 more bytes each (on the simulated line, 4 clock cycles per bit, a small random
network's results took 1.5 times the bound's framed bytes; a slower line lets more words gather
per transfer). The results are a small share of the engine design's traffic (the operand beats
in dominate).

``link_s_per_image`` = (host-to-device bytes + result bytes) x 10 / baud: the image goes in, the
network runs, the results come out, one after the other. The device's STATUS frames (one per host
frame) travel on the other wire while the host is sending and are counted apart
(``status_bytes``); with the credit window of 2 frames they do not hold the host up (a STATUS frame
is 14 bytes, a full host frame 266).
"""

from __future__ import annotations

import numpy as np

from binaccel.sw import enginehost, intref
from binaccel.sw import program as prog
from binaccel.sw.hwif import IO_WIDTH, STATUS_SIZE
from binaccel.sw.link import OVERHEAD, FrameKind, line_seconds, split_frames

__all__ = ["framed_bytes", "link_figures", "accel_link", "dp_link", "engine_link"]

_WORD_BYTES = IO_WIDTH // 8


def framed_bytes(kind, n_bytes: int) -> int:
    """Bytes on the line for one transfer of ``n_bytes`` payload bytes (the frames of
    :func:`binaccel.sw.link.split_frames`)."""
    return sum(len(f) for f in split_frames(FrameKind(kind), bytes(int(n_bytes))))


def link_figures(transfers_in, transfers_out, baud: int) -> dict:
    """``transfers_in`` / ``transfers_out``: ``[(FrameKind, payload bytes)]``, host to
    device and device to host. Returns the byte counts, the frames and ``link_s_per_image``."""
    h2d = sum(framed_bytes(k, n) for k, n in transfers_in)
    d2h = sum(framed_bytes(k, n) for k, n in transfers_out)
    frames_in = sum(len(split_frames(FrameKind(k), bytes(int(n)))) for k, n in transfers_in)
    status = frames_in * (OVERHEAD + STATUS_SIZE)
    return {"baud": int(baud), "host_to_device_bytes": h2d, "result_bytes": d2h, "status_bytes": status,
            "host_frames": frames_in,
            "payload_bytes_in": int(sum(n for _, n in transfers_in)),
            "payload_bytes_out": int(sum(n for _, n in transfers_out)),
            "link_s_per_image": line_seconds(h2d + d2h, baud)}


def accel_link(model, params, baud: int) -> dict:
    """Link figures of one image on the accelerator build ``params`` (an AccelParams or its dict):
    the RUN command's IMAGE transfer (and the streamed weights), the logits back."""
    pr = prog.compile_model(model, prog.accel_params(params), stats=False)
    per_image = pr.transfers(1)[len(pr.setup_sections):]
    ins = [(k, n * _WORD_BYTES) for k, n in per_image]
    outs = [(FrameKind.RESULT, pr.out_words_per_image * _WORD_BYTES)]
    return {"design": "accel+uart", **link_figures(ins, outs, baud),
            "setup_bytes": sum(framed_bytes(k, n * _WORD_BYTES) for k, n in pr.setup_sections)}


def dp_link(prog, model, baud: int) -> dict:
    """Link figures of one image on the pipelined accelerator (``prog``: its
    :class:`binaccel.sw.dpprog.DpProgram`): the RUN command (an IMAGE transfer) in, the logits (a
    RESULT transfer) out."""
    img = np.zeros(model.input_shape, dtype=np.uint8)
    ins = [(FrameKind.IMAGE, len(prog.run_words(img, stats=False)) * _WORD_BYTES)]
    outs = [(FrameKind.RESULT, prog.reply_words(stats=False) * _WORD_BYTES)]
    return {"design": "dp", **link_figures(ins, outs, baud)}


def engine_link(model, images, params, baud: int) -> dict:
    """Link figures of the engine build ``params`` (EngineParams) on a batch of uint8 ``images``
    ``(N, C, H, W)`` or ``(N, H, W)``: per layer, one run on the batch, a transfer of its input
    beats and its outputs back (the host does im2col, pooling and the maps between layers). The
    byte counts are the batch's; ``link_s_per_image`` is their time divided by N."""
    images = np.asarray(images)
    x = intref.model_input(model, images)
    ins, outs = [], []
    for layer in model.layers:
        run = enginehost.layer_run(layer, x, params)
        ins.append((enginehost.LAYER_KIND, len(enginehost.transfer_bytes(run.words))))
        outs.append((FrameKind.RESULT, run.n_out_words * _WORD_BYTES))
        x = intref.run_layer(layer, x)
    f = link_figures(ins, outs, baud)
    f["link_s_per_image"] /= len(images)
    return {"design": "engine+uart", "images": len(images), **f}
