"""Transports: how the host driver's command words reach the simulated accelerator.

All transports have one interface, :meth:`Transport.run_words`::

    t = get_transport("fast" | "cocotb" | "uart")
    run = t.run_words(words, n_out, params=AccelParams, seed=0, max_cycles=None, **options)
    run.out           # the accelerator's output words (n_out of them)
    run.total_cycles  # simulated clock cycles of the run
    run.wall_s        # wall-clock seconds of the simulation (build excluded)
    run.stamps        # cycle of each output word (None where the transport cannot see words)
    run.extra         # transport-specific record (error flags, link events, line bytes, ...)

* ``cocotb``: the accelerator's word streams driven cycle by cycle from Python
  (``sim/tb_top.py``); random idle on the input and backpressure on the output; ``reset_after``.
  Slow; for tests.
* ``fast``: one run of a compiled Verilator model for the whole data set, no per-cycle Python
  (:class:`binaccel.sim.fastpath.FastSim`); the same idle/backpressure options.
* ``uart``: what a board runs: the accelerator behind the frame link and UART glue
  (:class:`binaccel.hw.linked.UartAccelerator`), driven over the simulated serial line, bit by bit,
  by the host's :class:`binaccel.sw.hostlink.HostLink` (frames with lengths and CRCs, credit
  window, go-back-N) in the cocotb testbench ``sim/tb_uart.py``. Options: ``transfers`` (how the
  words split into PROGRAM / WEIGHTS / TABLES / IMAGE transfers), ``divisor`` (clock cycles per
  bit, an int or a ``fractions.Fraction`` such as ``uart_divisor(25e6, 3e6)``; default 4: the line
  is the bottleneck, so the simulation uses the fastest line the receiver supports), ``corrupt`` / ``truncate`` / ``corrupt_rx`` fault injection (see
  ``sim/tb_uart.py``). A defect the host cannot recover from raises :class:`LinkFailure`.
"""

from __future__ import annotations

import abc
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from binaccel.sim.builds import cocotb_build, fast_build, uart_build
from binaccel.sim.runner import run_cocotb
from binaccel.sim.streams import check_prob
from binaccel.sw import program as prog
from binaccel.sw.link import FrameKind

__all__ = ["Transport", "WordsRun", "CocotbTransport", "FastTransport", "UartTransport", "TRANSPORTS",
           "get_transport", "LinkFailure", "UART_DIVISOR", "UART_RX_TIMEOUT", "uart_exchange"]

#: Clock cycles per UART bit in simulation (the smallest the receiver supports; a board at 48 MHz
#: and 3 Mbaud has 16, at 25 MHz 8.333).
UART_DIVISOR = 4
#: Idle cycles inside a frame before the simulated receiver drops it (100 byte times at divisor 4).
UART_RX_TIMEOUT = 4096


class LinkFailure(RuntimeError):
    """The byte link failed in a way the host reports instead of returning results (a damaged
    frame from the device; the record is in ``.record``)."""

    def __init__(self, message, record):
        super().__init__(message)
        self.record = record


@dataclass
class WordsRun:
    out: list
    total_cycles: int
    wall_s: float
    stamps: list | None = None
    extra: dict = field(default_factory=dict)


class Transport(abc.ABC):
    """One way of moving the driver's words to the simulated accelerator and its words back."""

    name: str = ""

    @abc.abstractmethod
    def run_words(self, words, n_out, *, params=None, seed=0, max_cycles=None, **options) -> WordsRun:
        """Send ``words``, receive ``n_out`` output words; raise on a protocol or simulation failure."""

    def _default_max_cycles(self, words, n_out, slack=1.0):
        return int((20_000 + 40 * (len(words) + n_out)) / slack)

    def __repr__(self):
        return f"<transport {self.name}>"


class CocotbTransport(Transport):
    name = "cocotb"

    @staticmethod
    def build(p):
        return cocotb_build(p)

    def run_words(self, words, n_out, *, params=None, seed=0, max_cycles=None, idle=0.0, backpressure=0.0,
                  reset_after=None, allow_error=False):
        p = prog.accel_params(params)
        idle, backpressure = check_prob("idle", idle), check_prob("backpressure", backpressure)
        words = [int(w) for w in words]
        if max_cycles is None:
            max_cycles = self._default_max_cycles(words, n_out, 1.0 - max(idle, backpressure))
        build = self.build(p)
        test_dir = _job_dir(build.build_dir, seed)
        job = {"words": words, "n_out": int(n_out), "idle": idle, "backpressure": backpressure,
               "reset_after": reset_after, "max_cycles": max_cycles, "out": str(test_dir / "out.pkl"),
               "allow_error": bool(allow_error)}
        rec, wall = _run_job(build, "binaccel.sim.tb_top", test_dir, job, seed)
        total = rec["stamps"][-1] if rec["stamps"] else 0
        return WordsRun(out=rec["out"], stamps=rec["stamps"], total_cycles=total, wall_s=wall,
                        extra={k: rec[k] for k in ("reset", "error") if k in rec})


class FastTransport(Transport):
    name = "fast"

    @staticmethod
    def build(p):
        return fast_build(p)

    def run_words(self, words, n_out, *, params=None, seed=0, max_cycles=None, idle=0.0, backpressure=0.0):
        p = prog.accel_params(params)
        idle, backpressure = check_prob("idle", idle), check_prob("backpressure", backpressure)
        if max_cycles is None:
            max_cycles = self._default_max_cycles(words, n_out, 1.0 - max(idle, backpressure))
        sim = self.build(p)
        r = sim.run_detailed(np.asarray([int(w) for w in words], dtype=np.uint64), int(n_out), idle=idle,
                             backpressure=backpressure, seed=int(seed), max_cycles=max_cycles, stamps=True,
                             extra_cycles=200)
        if r.n_extra:
            raise AssertionError(f"{r.n_extra} unexpected output words after the last expected one")
        return WordsRun(out=r.out, stamps=r.stamps, total_cycles=r.total_cycles, wall_s=r.wall_s,
                        extra={"in_consumed": r.in_consumed})


class UartTransport(Transport):
    name = "uart"

    @staticmethod
    def build(p, divisor=UART_DIVISOR, rx_timeout=UART_RX_TIMEOUT):
        return uart_build(p, divisor, rx_timeout)

    def run_words(self, words, n_out, *, params=None, seed=0, max_cycles=None, idle=0.0, backpressure=0.0,
                  transfers=None, divisor=UART_DIVISOR, window=2, host_timeout=None, corrupt=(), truncate=None,
                  corrupt_rx=None, log_rx=False):
        if idle or backpressure:
            raise ValueError("the uart transport's pace is the serial line's; idle/backpressure apply to the "
                             "cocotb and fast transports")
        p = prog.accel_params(params)
        words = [int(w) for w in words]
        if transfers is None:
            transfers = [(FrameKind.PROGRAM, len(words))]
        if sum(n for _, n in transfers) != len(words):
            raise ValueError(f"transfers cover {sum(n for _, n in transfers)} words, the run has {len(words)}")
        payloads, at = [], 0
        for kind, n in transfers:
            payloads.append((int(FrameKind(kind)), np.asarray(words[at:at + n], dtype="<u4").tobytes()))
            at += n
        line_bytes = 4 * (len(words) + n_out) + 16 * (len(transfers) + len(words) // 64 + 2)
        if max_cycles is None:
            max_cycles = 3 * 10 * divisor * line_bytes + self._default_max_cycles(words, n_out)
            if truncate is not None:
                max_cycles *= 2
        res, total, wall, extra = uart_exchange(self.build(p, divisor), payloads, 4 * int(n_out), seed=seed,
                                                divisor=divisor, window=window, max_cycles=max_cycles,
                                                host_timeout=host_timeout, corrupt=corrupt, truncate=truncate,
                                                corrupt_rx=corrupt_rx, log_rx=log_rx)
        out = np.frombuffer(res, dtype="<u4").astype(np.uint64).tolist()
        return WordsRun(out=out, stamps=None, total_cycles=total, wall_s=wall, extra=extra)


def uart_exchange(build, payloads, n_out_bytes, *, seed=0, divisor=UART_DIVISOR, window=2, max_cycles,
                  host_timeout=None, corrupt=(), truncate=None, corrupt_rx=None, log_rx=False):
    """Send ``payloads`` (``[(FrameKind, bytes)]``, one transfer each) to a linked design behind its
    UART (a ``build`` of :class:`~binaccel.hw.linked.UartAccelerator` or
    :class:`~binaccel.hw.linked.UartEngine`) through the cocotb testbench ``sim/tb_uart.py``, and
    read ``n_out_bytes`` RESULT bytes back. Returns ``(result bytes, total cycles, wall seconds,
    record)``; raises :class:`LinkFailure` for a defect the host cannot recover from and
    AssertionError for bytes more or fewer than expected."""
    if host_timeout is None:
        host_timeout = max(200_000, max_cycles // 20)
    test_dir = _job_dir(build.build_dir, seed)
    job = {"transfers": [(int(k), bytes(b)) for k, b in payloads], "n_out_bytes": int(n_out_bytes),
           "divisor": divisor, "window": window, "max_cycles": int(max_cycles), "host_timeout": int(host_timeout),
           "rx_timeout": UART_RX_TIMEOUT, "corrupt": [tuple(c) for c in corrupt], "truncate": truncate,
           "corrupt_rx": corrupt_rx, "log_rx": bool(log_rx), "out": str(test_dir / "out.pkl")}
    rec, wall = _run_job(build, "binaccel.sim.tb_uart", test_dir, job, seed)
    extra = {k: rec[k] for k in ("events", "sessions", "uart_error", "error", "extra_bytes", "link_error",
                                 "link_error_fields", "rx_log")}
    extra["line_bytes"] = sum(s.get("bytes_out", 0) + s.get("bytes_in", 0) for s in rec["sessions"])
    extra["divisor"] = divisor
    if rec["link_error"]:
        raise LinkFailure(f"uart transport: the host refused a frame from the device: {rec['link_error']}", extra)
    if rec["uart_error"]:
        raise LinkFailure("uart transport: the device's UART receiver reported a framing error or overrun", extra)
    if rec["extra_bytes"]:
        raise AssertionError(f"uart transport: {rec['extra_bytes']} unexpected bytes after the last result")
    res = rec["result"]
    if len(res) != n_out_bytes:
        raise AssertionError(f"uart transport: expected {n_out_bytes} result bytes, got {len(res)}")
    return res, int(rec["total_cycles"]), wall, extra


def _job_dir(build_dir, seed):
    runs = Path(build_dir) / "run"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=runs, prefix=f"s{seed}-"))


def _run_job(build, module, test_dir, job, seed):
    (test_dir / "job.pkl").write_bytes(pickle.dumps(job))
    t0 = time.perf_counter()
    run_cocotb(build, test_module=module, seed=int(seed), testcase="run_job", test_dir=test_dir,
               tb_params={"job": str(test_dir / "job.pkl")})
    wall = time.perf_counter() - t0
    return pickle.loads((test_dir / "out.pkl").read_bytes()), wall


TRANSPORTS = {t.name: t for t in (CocotbTransport(), FastTransport(), UartTransport())}


def get_transport(name) -> Transport:
    if isinstance(name, Transport):
        return name
    try:
        return TRANSPORTS[name]
    except KeyError:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {name!r}") from None
