"""Verilog of the engine (``amaranth.back.verilog``).

Linting it with Verilator is the simulation side's job: :func:`binaccel.sim.lint.lint_engine`.
"""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog

from binaccel.sw.atomic import write_text_atomic

from .engine import Engine

__all__ = ["verilog_text", "write_verilog", "engine_ports"]

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
