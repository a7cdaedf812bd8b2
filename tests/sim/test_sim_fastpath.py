"""Tests of the fast path (compiled Verilator model driven from files): FIFOs of narrow, struct and
wide payloads and a two-input adder, under random idle cycles and backpressure."""
import random

import numpy as np
import pytest
from amaranth import unsigned

from binaccel.sim.fastpath import FastSim, FastSimTimeout
from binaccel.sim.runner import BuildError
from binaccel.sim.streams import pack_fields
from tests.sim.infra_designs import INFRA_LAYOUT, InfraAdder, InfraFIFO

FIFO_LATENCY_MAX = 3  # SyncFIFOBuffered: a word entering at edge t leaves at edge t + 2


@pytest.fixture(scope="module")
def fifo():
    return FastSim(InfraFIFO, name="infra_fifo", params={"depth": 4})


@pytest.fixture(scope="module")
def wide_fifo():
    return FastSim(lambda width, depth: InfraFIFO(payload=unsigned(width), depth=depth),
                   name="infra_fifo_wide", params={"width": 300, "depth": 3})


@pytest.fixture(scope="module")
def adder():
    return FastSim(InfraAdder, name="infra_adder", params={"width": 40},
                   in_port=["a_stream", "b_stream"], out_port="o_stream")


def _struct_words(rng, n):
    return [pack_fields(INFRA_LAYOUT, a=rng.randrange(256), b=rng.randrange(-8, 8), last=rng.randrange(2))
            for _ in range(n)]


@pytest.mark.sim   # the wide FIFO: a second configuration of InfraFIFO (one more Verilator build)
def test_ports_found(fifo, adder, wide_fifo):
    assert fifo.in_widths == [13] and fifo.out_width == 13
    assert adder.in_widths == [40, 40] and adder.out_width == 41
    assert wide_fifo.in_widths == [300] and wide_fifo.out_width == 300


def test_build_cached(fifo):
    again = FastSim(InfraFIFO, name="infra_fifo", params={"depth": 4})
    assert again.rebuilt is False and again.executable == fifo.executable


def test_fifo_full_throughput(fifo):
    words = _struct_words(random.Random(0), 5000)
    r = fifo.run_detailed(words, len(words), stamps=True, extra_cycles=20)
    assert r.out == words
    assert len(words) <= r.cycles <= len(words) + FIFO_LATENCY_MAX
    assert r.stamps == list(range(r.cycles - len(words) + 1, r.cycles + 1))  # one word per cycle
    assert r.n_extra == 0 and r.in_consumed == [len(words)] and r.in_total == [len(words)]
    assert r.total_cycles == r.cycles + 20


@pytest.mark.parametrize("seed,idle,bp", [(1, 0.5, 0.0), (2, 0.0, 0.5), (3, 0.3, 0.3), (4, 0.7, 0.6)])
def test_fifo_idle_backpressure(fifo, seed, idle, bp):
    rng = random.Random(seed)
    n = 4000
    words = _struct_words(rng, n)
    out, cycles = fifo.run(words, n, idle=idle, backpressure=bp, seed=seed)
    assert out == words
    # a stall probability p costs about n*p/(1-p) cycles; require at least half of that
    p = max(idle, bp)
    assert cycles >= n + 0.5 * n * p / (1 - p)


def test_fifo_patterns_depend_on_seed(fifo):
    words = _struct_words(random.Random(9), 1000)
    c = {fifo.run(words, 1000, idle=0.3, backpressure=0.3, seed=s)[1] for s in range(4)}
    assert len(c) > 1  # different seeds give different idle/backpressure patterns
    assert fifo.run(words, 1000, idle=0.3, backpressure=0.3, seed=2) == \
        fifo.run(words, 1000, idle=0.3, backpressure=0.3, seed=2)  # and the same seed the same run


def test_fifo_timeout(fifo):
    words = _struct_words(random.Random(5), 100)
    with pytest.raises(FastSimTimeout, match=r"max_cycles=500 with 100 of 101 output words") as e:
        fifo.run(words, 101, max_cycles=500)
    assert e.value.result.out == words and e.value.result.in_consumed == [100]


def test_fifo_bad_words(fifo):
    with pytest.raises(ValueError, match="word 1 .* 13-bit"):
        fifo.run([1, 1 << 13], 2)
    with pytest.raises(ValueError, match="word 0"):
        fifo.run([-1], 1)
    with pytest.raises(ValueError, match="idle"):
        fifo.run([1], 1, idle=1.0)
    with pytest.raises(ValueError, match="exactly the input ports"):
        fifo.run({"x_stream": [1]}, 1)


@pytest.mark.sim   # a second configuration of InfraFIFO (one more Verilator build)
def test_wide_fifo(wide_fifo):
    rng = random.Random(11)
    words = [rng.getrandbits(300) for _ in range(3000)]
    words[:3] = [0, (1 << 300) - 1, 1 << 299]
    out, cycles = wide_fifo.run(words, len(words), idle=0.4, backpressure=0.4, seed=3)
    assert out == words and cycles > len(words)
    # the same words as little-endian byte rows
    rows = np.frombuffer(b"".join(w.to_bytes(38, "little") for w in words), dtype=np.uint8).reshape(-1, 38)
    assert wide_fifo.run(rows, len(words), idle=0.4, backpressure=0.4, seed=3) == (out, cycles)
    bad = rows.copy()
    bad[0, -1] = 0x10  # bit 300
    with pytest.raises(ValueError, match="exceeds 300 bits"):
        wide_fifo.run(bad, len(words))


@pytest.mark.parametrize("seed,idle,bp", [(1, 0.0, 0.0), (2, 0.4, 0.2), (3, 0.2, 0.6)])
def test_adder(adder, seed, idle, bp):
    rng = np.random.default_rng(seed)
    n = 3000
    a = rng.integers(0, 1 << 40, n, dtype=np.uint64)
    b = rng.integers(0, 1 << 40, n, dtype=np.uint64)
    a[:2], b[:2] = (1 << 40) - 1, (1 << 40) - 1  # the carry into bit 40
    expected = [int(x) + int(y) for x, y in zip(a, b)]
    r = adder.run_detailed([a, b], n, idle=idle, backpressure=bp, seed=seed, extra_cycles=10)
    assert r.out == expected
    assert r.cycles >= n and r.n_extra == 0 and r.in_consumed == [n, n]
    if idle == 0 and bp == 0:
        assert r.cycles == n + 1  # registered output: one cycle of latency, full throughput
    out, _ = adder.run({"b_stream": b.tolist(), "a_stream": a.tolist()}, n, idle=idle, backpressure=bp, seed=seed)
    assert out == expected


def test_adder_unequal_inputs_time_out(adder):
    with pytest.raises(FastSimTimeout, match=r"inputs consumed \[2, 2\] of \[3, 2\]"):
        adder.run([[1, 2, 3], [4, 5]], 3, max_cycles=200)
    with pytest.raises(ValueError, match="expected 2 word lists"):
        adder.run([[1, 2, 3]], 3)


def test_missing_port_is_reported(fifo, tmp_path):
    with pytest.raises(BuildError, match="no port 'x_stream__valid'"):
        FastSim(fifo.build_dir / "infra_fifo.v", name="infra_fifo", in_port="x_stream",
                build_dir=tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        FastSim(tmp_path / "nothing.v", name="infra_fifo")


@pytest.mark.sim   # one more Verilator build of InfraFIFO, with other options
def test_extra_verilator_args_are_passed_and_part_of_the_build_stamp(tmp_path):
    import json

    sim = FastSim(InfraFIFO, name="infra_fifo", params={"depth": 4}, build_dir=tmp_path / "b",
                  verilator_args=("--output-split", "0"))
    assert "--output-split 0" in (tmp_path / "b" / "build.log").read_text()
    assert json.loads((tmp_path / "b" / "binaccel_fastsim.json").read_text())["verilator_args"] == ["--output-split", "0"]
    out, _ = sim.run(np.arange(20, dtype=np.uint64), 20)
    assert list(out) == list(range(20))
