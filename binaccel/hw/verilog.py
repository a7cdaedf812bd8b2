"""Verilog of the engine (``amaranth.back.verilog``) and its Verilator lint waivers.

Every waiver below is a ``{pattern: reason}`` for :func:`binaccel.sim.lint.lint_verilog` and is
listed in ``docs/hardware.md``. They cover how Yosys' ``write_verilog`` spells Amaranth's cells,
never a width chosen in the design: all widths are set (and checked by the simulations) in Amaranth.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["verilog_text", "write_verilog", "engine_ports", "LINT_WAIVERS", "lint_engine"]

#: Waivers for ``verilator --lint-only -Wall`` of the engine's Verilog, each with its reason.
LINT_WAIVERS = {
    r"WIDTHEXPAND:Operator \w+ expects \d+ bits? on the (LHS|RHS)": (
        "Yosys writes each Amaranth arithmetic/comparison cell with its operands at their own width "
        "and relies on Verilog's context-determined extension (zero- or sign-extension as the cell's "
        "signedness says, which Amaranth sets explicitly). The extension is the intended arithmetic "
        "(e.g. a carry bit of an adder); the results are checked bit-exact by the simulations."
    ),
    r"WIDTHTRUNC:Logical operator LOGNOT expects 1 bit": (
        "Yosys spells a comparison with zero (`x == 0`) as the logical negation `!x` of the vector, "
        "which is exactly 'x is zero'."
    ),
    r"WIDTHTRUNC:Operator ASSIGNW expects \d+ bits on the Assign RHS, but Assign RHS's SHIFTR": (
        "A run-time index into an array (the M-Filter column of the current segment, `mfilter[t]`) is "
        "written as a right shift of the whole vector whose low bits are kept: the intended part-select."
    ),
    r"CASEINCOMPLETE:": (
        "Yosys writes Amaranth Switch/FSM statements as `casez` after assigning the default value, so "
        "a value without a case (an unused FSM state encoding, an index beyond the table) keeps the "
        "default: Amaranth's defined semantics, not a latch."
    ),
}


def engine_ports(text: str, name: str = "engine") -> set:
    import re

    header = re.search(rf"^module {re.escape(name)}\((.*?)\);", text, flags=re.M | re.S)
    return set(re.findall(r"[\w$]+", header.group(1))) if header else set()


def verilog_text(*, name: str = "engine", **params) -> str:
    """Verilog of an :class:`~binaccel.hw.engine.Engine` built with ``params`` (EngineParams fields)."""
    from amaranth.back import verilog

    from .engine import Engine

    engine = Engine(**params)
    return verilog.convert(engine, name=name)


def write_verilog(path, *, name: str = "engine", **params) -> Path:
    """Write :func:`verilog_text` to ``path`` atomically; returns the path."""
    import os
    import tempfile

    text = verilog_text(name=name, **params)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def lint_engine(path, *, name: str = "engine") -> None:
    """Lint a written engine Verilog file (``verilator -Wall``) with the standing Amaranth waivers
    (``binaccel.sim.lint.amaranth_waivers``) and :data:`LINT_WAIVERS`; raises LintError otherwise."""
    from binaccel.sim.lint import amaranth_waivers, lint_verilog

    text = Path(path).read_text()
    waivers = {**amaranth_waivers(engine_ports(text, name)), **LINT_WAIVERS}
    lint_verilog(path, top=name, waivers=waivers)
