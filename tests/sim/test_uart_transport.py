"""The ``uart`` transport: the accelerator behind the frame link and the board's UART glue
(binaccel.hw.linked.UartAccelerator), on Verilator through cocotb, driven bit by bit over the
simulated serial line by the host driver's HostLink. One build (the default accelerator
parameters, ~2-3.5 min to compile on 2 cores) serves every test; the comparison with the word
transport (``-m sim``) also needs the accelerator's fast-path build.

Checked: logits and every dumped layer equal binaccel.sw.intref (whole tensors) and the other
transports' output words; corrupted host frames are reported by the device and resent, with exact
results; a stream cut off mid-frame is reported (receiver TIMEOUT), and the next session's RESET
brings the accelerator back to idle without a rebuild; a damaged device frame is refused by the
host with the frame and field named."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tests.sim.test_top import P, _check, _images, mixed_model

from binaccel.sim import top
from binaccel.sim.transport import LinkFailure, UartTransport
from binaccel.sw import program
from binaccel.sw.randmodel import random_model


@pytest.fixture(scope="module")
def build():
    return UartTransport.build(program.accel_params(P))


def _exe_stamp(build):
    return os.stat(build.build_dir / "binaccel_build.json").st_mtime_ns


@pytest.mark.sim   # the reference run needs the accelerator's fast-path build (one more Verilator build)
def test_mixed_model_exact_and_equal_to_the_cocotb_word_transport(build):
    rng = np.random.default_rng(5)
    m = mixed_model(rng)
    imgs = _images(rng, m, 2)
    res = top.run_model(m, imgs, transport="uart", params=P, dump=True, seed=1)
    _check(m, imgs, res)
    rec = res.record
    assert rec["events"] == [] and rec["uart_error"] == 0 and rec["error"] == 0
    assert rec["line_bytes"] > 4 * (rec["setup_words"] + 2 * rec["image_words"])
    # same numbers as the word transport; the hardware's cycle counters include waiting for the
    # serial line (image bytes in, dumped maps out), so they can only grow
    ref = top.run_model(m, imgs, transport="fast", params=P, dump=True)
    assert np.array_equal(res.logits, ref.logits)
    assert (res.layer_cycles >= ref.layer_cycles).all()


def test_corrupted_host_frames_are_reported_and_resent(build):
    rng = np.random.default_rng(6)
    m = random_model(rng, mode="mcn", planes=2)
    imgs = _images(rng, m, 1)
    # frame 0 is the session's RESET; damage a payload byte of frame 2 and the header CRC of frame 4
    res = top.run_model(m, imgs, transport="uart", params=P, dump=True, seed=2,
                        transport_options={"corrupt": [(2, 20, 0x04), (4, 6, 0x80)]})
    _check(m, imgs, res)
    codes = {(e["code"], e["frame"]) for e in res.record["events"] if not e.get("stale")}
    assert ("CRC", 2) in codes
    assert any(c == "HEADER_CRC" for c, _ in codes)
    assert res.record["sessions"][-1]["resent_frames"] >= 2


def test_truncated_stream_reported_then_reset_and_rerun_without_rebuild(build):
    stamp = _exe_stamp(build)
    rng = np.random.default_rng(7)
    m = random_model(rng, mode="plain", planes=1)
    imgs = _images(rng, m, 2)
    res = top.run_model(m, imgs, transport="uart", params=P, dump=True, seed=3,
                        transport_options={"truncate": (3, 40)})
    _check(m, imgs, res)
    first = res.record["sessions"][0]
    assert [e["code"] for e in first["events"]] == ["TIMEOUT"]
    assert _exe_stamp(build) == stamp


def test_damaged_result_frame_is_refused_by_the_host(build):
    rng = np.random.default_rng(8)
    m = random_model(rng, mode="plain", planes=1)
    imgs = _images(rng, m, 1)
    with pytest.raises(LinkFailure, match=r"frame \d+ \(stream offset \d+\): field '\w+'") as e:
        # device-to-host byte 60: in the 5th frame (STATUS frames are 14 bytes)
        top.run_model(m, imgs, transport="uart", params=P, dump=True, seed=4, transport_options={"corrupt_rx": (60, 0x01)})
    assert e.value.record["link_error_fields"]["field"] in ("crc", "hcrc", "sync", "type", "len")


def test_uart_transport_refuses_idle_and_backpressure_options():
    with pytest.raises(ValueError, match="serial line"):
        top.run_words([3], 18, params=P, transport="uart", idle=0.5)
