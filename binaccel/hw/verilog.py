"""Verilog of Amaranth designs (``amaranth.back.verilog``), of the engine in particular.

Linting it with Verilator is the simulation side's job: :func:`binaccel.sim.lint.lint_engine`.

:func:`convert` is the Amaranth->Verilog step of the simulation builds. Amaranth's Verilog-2005
text writes combinational processes as ``always @*`` blocks and relies on Yosys's time-zero
device to run each once at the start: a dummy ``reg ... = 0`` per module that every such block
tests. That initialiser makes an event only under Verilog-2005 scheduling. A simulator that
applies declaration initialisers before any process starts, as SystemVerilog specifies (Icarus
Verilog under ``-g2012``, the mode of cocotb's runner), never runs a block whose inputs keep their
initial values, and its outputs stay ``x`` (in ``DpAccelerator``: the ``reset_less`` descriptor
register, loaded through such a block, read ``x`` from the first edge on and the accelerator never
answered). ``time_zero=True`` keeps the text and moves the dummy's value to ``initial #0``, an
assignment after every process has started: it wakes every ``always @*`` block at time zero
under either scheduling. (``write_verilog -sv``, ``always_comb``, is no way out: Icarus 11 widens
an ``always_comb`` block's sensitivity to whole vectors and the accelerator's logic then stops
advancing simulated time.)
"""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog

from binaccel.sw.atomic import write_text_atomic

from .engine import Engine

__all__ = ["convert", "verilog_text", "write_verilog", "engine_ports"]


#: Yosys's time-zero device: ``reg \$auto$verilog_backend.cc:<line>:dump_module$<n>  = 0;``
_TIME_ZERO_REG = re.compile(r"^(?P<indent>[ \t]*)reg (?P<name>\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) *= 0;$",
                            flags=re.M)


def convert(component, *, name: str, time_zero: bool = False) -> str:
    """Verilog text of ``component`` (a ``wiring.Component``; ports from its signature), module
    ``name``: :func:`amaranth.back.verilog.convert`. ``time_zero=True``: every module's time-zero
    dummy is declared without initialiser and set by ``initial #0`` (module docstring), so that
    every ``always @*`` block runs at time zero on a simulator with SystemVerilog scheduling of
    declaration initialisers (Icarus); RuntimeError if the text has ``always @*`` blocks but not
    Yosys's dummy (a Yosys that writes it differently)."""
    text = verilog.convert(component, name=name)
    if not time_zero:
        return text
    text, n = _TIME_ZERO_REG.subn(lambda mo: f"{mo['indent']}reg {mo['name']};\n"
                                             f"{mo['indent']}initial #0 {mo['name']} = 1'h0;", text)
    if "always @*" in text and n == 0:
        raise RuntimeError("the Verilog has `always @*` blocks but no Yosys time-zero register "
                           "(`reg \\$auto$verilog_backend.cc:...:dump_module$N = 0;`) to move")
    return text


def engine_ports(text: str, name: str = "engine") -> set:
    header = re.search(rf"^module {re.escape(name)}\((.*?)\);", text, flags=re.M | re.S)
    return set(re.findall(r"[\w$]+", header.group(1))) if header else set()


def verilog_text(*, name: str = "engine", **params) -> str:
    """Verilog of an :class:`~binaccel.hw.engine.Engine` built with ``params`` (EngineParams fields)."""
    engine = Engine(**params)
    return verilog.convert(engine, name=name)


def write_verilog(path, *, name: str = "engine", **params) -> Path:
    """Write :func:`verilog_text` to ``path`` atomically; returns the path."""
    path = Path(path)
    write_text_atomic(path, verilog_text(name=name, **params))
    return path
