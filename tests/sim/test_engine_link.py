# amaranth: UnusedElaboratable=no
"""The engine board design: LinkedEngine (the layer engine behind the frame link) and its host
driver binaccel.sw.enginehost.

* The width converters (WordsToBeats, BeatsToWords) in Amaranth's simulator: beats of several
  widths through each, with random idle and backpressure, every word and beat equal.
* The host's word layout (beat_words / words_to_beats) against the converters' contract, and its
  errors.
* The whole design behind its UART on Verilator (binaccel.sim.engine_link, the host's HostLink
  over the simulated serial line): a random MNIST-shaped network, every layer's whole output
  tensor equal to intref's; a corrupted host frame is reported, resent, and the results stay exact.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module

from binaccel.hw import sweep
from binaccel.hw.linked import BeatsToWords, LinkedEngine, WordsToBeats
from binaccel.hw.params import EngineParams
from binaccel.hw.uart import uart_divisor
from tests.hw.gateware import drive_engine, run_sim
from binaccel.bench import linktime
from binaccel.sim import engine_link
from binaccel.sw import enginehost, intref
from binaccel.sw.randmodel import random_model

WIDTHS = [1, 31, 32, 33, 58, 64, 100]


def _through(dut, items, n_out, seed):
    """``items`` into ``dut.i_stream``, ``n_out`` beats out of ``dut.o_stream``, with random idle
    cycles and backpressure and the stream protocol checked (tests/hw/gateware.py: drive_engine)."""
    res = {}

    async def bench(ctx):
        res["out"] = (await drive_engine(ctx, dut, items, rng=np.random.default_rng(seed), idle=0.3,
                                         backpressure=0.3, n_out=n_out))[0]

    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()   # (a one-word WordsToBeats is combinational: no sync of its own)
    run_sim(top, bench)
    return res["out"]


@pytest.mark.parametrize("width", WIDTHS)
def test_converters_under_stalls(width):
    """BeatsToWords gives the host's word layout of the beats (enginehost.beat_words), WordsToBeats
    the beats back from those words."""
    rng = np.random.default_rng(width)
    edge = [0, (1 << width) - 1, 1, 1 << (width - 1)]
    beats = edge + [int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1) for _ in range(40)]
    nbytes = (width + 7) // 8
    words = enginehost.beat_words(np.array([list(b.to_bytes(nbytes, "little")) for b in beats], dtype=np.uint8),
                                  width).tolist()
    assert _through(BeatsToWords(layout=width), beats, len(words), seed=width) == words
    assert _through(WordsToBeats(layout=width), words, len(beats), seed=width + 1) == beats
    assert enginehost.words_to_beats(words, width) == beats


def test_converters_check_their_layout():
    with pytest.raises(TypeError, match="shape-castable"):
        WordsToBeats(layout="wide")
    with pytest.raises(ValueError, match="at least 1 bit"):
        BeatsToWords(layout=0)


def test_host_word_layout_errors():
    with pytest.raises(ValueError, match="whole number of 2-word beats"):
        enginehost.words_to_beats([1, 2, 3], 58)
    with pytest.raises(ValueError, match="bits set past the payload's 33 bits"):
        enginehost.words_to_beats([0, 2], 33)
    with pytest.raises(ValueError, match=r"expected shape \(beats, 8\)"):
        enginehost.beat_words(np.zeros((3, 7), dtype=np.uint8), 58)
    with pytest.raises(ValueError, match="at least 1 bit"):
        enginehost.words_per_beat(0)


def test_linked_engine_checks_parameters():
    with pytest.raises(ValueError, match="word"):
        LinkedEngine(rows=1, cols=1, word=0)
    with pytest.raises(TypeError):
        LinkedEngine(rows=1, cols=1, word=16, banana=3)
    d = LinkedEngine(**{**sweep.BOARD_BASE["icebreaker"], "rows": 1, "cols": 1, "word": 16})
    assert d.in_words == enginehost.words_per_beat(d.params.in_layout.size)
    assert d.out_words == enginehost.words_per_beat(d.params.out_layout.size)
    Fragment.get(d, None)  # it elaborates (and is used: no UnusedElaboratable warning)


def test_layer_output_wrong_count():
    rng = np.random.default_rng(1)
    m = random_model(rng)
    p = EngineParams(**{**sweep.BOARD_BASE["icebreaker"], "rows": 1, "cols": 1, "word": 16})
    run = enginehost.layer_run(m.layers[0], intref.model_input(m, rng.integers(0, 256, (1, 1, 12, 12))), p)
    with pytest.raises(ValueError, match=f"layer 'conv1': expected {run.n_out_words} output words"):
        enginehost.layer_output(run, np.zeros(run.n_out_words - 1, dtype=np.uint32))


# ---- the design behind its UART on Verilator -------------------------------------------------------

P = engine_link.board_params(1, 2, 16)


def test_network_through_the_simulated_board_is_exact():
    rng = np.random.default_rng(11)
    m = random_model(rng)
    images = rng.integers(0, 256, size=(2, 1, 12, 12)).astype(np.uint8)
    r = engine_link.run_model(m, images, params=P, seed=3)   # raises EngineLinkMismatch on any difference
    ref = intref.run_model(m, images)
    assert len(r.outputs) == len(ref) == 3
    for got, want in zip(r.outputs, ref):
        assert got.dtype == np.int64 and np.array_equal(got, want)
    assert [run["layer"] for run in r.runs] == ["conv1", "conv2", "fc"]
    assert all(run["events"] == [] for run in r.runs)
    # the bench's link figures count the bytes the simulated line carried: every layer run is a
    # session of its own (a RESET frame, 10 bytes, and its STATUS, 14, besides the figures'); the
    # host's bytes exactly; the device's results leave in several transfers where its output words
    # pause, so the figures' one transfer per layer run is a lower bound
    f = linktime.engine_link(m, images, P, 3_000_000)
    host = sum(linktime.framed_bytes(enginehost.LAYER_KIND, 4 * run["words_in"]) + 10 for run in r.runs)
    device = sum(run["line_bytes"] for run in r.runs) - host
    assert host == f["host_to_device_bytes"] + 3 * 10
    assert f["result_bytes"] + f["status_bytes"] + 3 * 14 <= device
    assert f["payload_bytes_out"] == 4 * sum(run["words_out"] for run in r.runs)


def test_corrupted_frame_is_resent_and_results_stay_exact():
    rng = np.random.default_rng(12)
    m = random_model(rng)
    images = rng.integers(0, 256, size=(1, 1, 12, 12)).astype(np.uint8)
    run = enginehost.layer_run(m.layers[0], intref.model_input(m, images), P)
    # frame 0 is the session's RESET; damage a payload byte of frame 1
    r = engine_link.run_words(run.words, run.n_out_words, params=P, seed=4, corrupt=[(1, 20, 0x10)])
    assert np.array_equal(enginehost.layer_output(run, r.out), intref.run_model(m, images)[0])
    assert any(e["code"] == "CRC" and e["frame"] == 1 for e in r.extra["events"])


@pytest.mark.sim   # one more build of the design, at a fractional bit period
def test_fractional_bit_period_25_mhz_at_3_mbaud():
    """8.333 clock cycles per bit (25 MHz, 3 Mbaud): the testbench's line and the UART's phase
    accumulators keep the fractional period; the layer's output is exact."""
    rng = np.random.default_rng(13)
    m = random_model(rng)
    images = rng.integers(0, 256, size=(1, 1, 12, 12)).astype(np.uint8)
    run = enginehost.layer_run(m.layers[0], intref.model_input(m, images), P)
    divisor = uart_divisor(25_000_000, 3_000_000)
    assert divisor == Fraction(25, 3)
    r = engine_link.run_words(run.words, run.n_out_words, params=P, seed=5, divisor=divisor)
    assert np.array_equal(enginehost.layer_output(run, r.out), intref.run_model(m, images)[0])
    assert r.extra["events"] == [] and r.extra["uart_error"] == 0


@pytest.mark.sim   # the engine's fast-path build, beyond the default tier's one engine build
def test_run_command_engine_design_fast(tmp_path):
    """`binaccel run --design engine-link`'s function on the fast engine simulation: every image's
    logits equal intref's, and the cycles per layer are the engine's (cycle model) per image."""
    from binaccel.hw.perf import layer_cycles
    from binaccel.sw import modelfile
    from binaccel.commands.run import run_engine_design

    rng = np.random.default_rng(13)
    m = random_model(rng)
    path = tmp_path / "m.bnm"
    modelfile.save(m, path)
    images = rng.integers(0, 256, size=(5, 1, 12, 12)).astype(np.uint8)
    r = run_engine_design(path, images, transport="fast", batch=5, params=P, progress=False)
    assert r["checked"] == r["matched"] == 5 and r["design"] == "engine+uart"
    want = [layer_cycles(layer, P.rows, P.cols, P.word, n=5, params=P) / 5 for layer in m.layers]
    assert [c["cycles"] for c in r["cycles_per_layer"]] == want
    with pytest.raises(ValueError, match="transport must be"):
        run_engine_design(path, images, transport="tcp", params=P)
