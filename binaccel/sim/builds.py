"""Simulation builds of the accelerator's designs, one per transport (:mod:`binaccel.sim.transport`).

::

    cocotb_build(p, sim="verilator") -> BuildInfo   # sim/accel-<config>[-icarus]/: the cocotb testbench's build
    accel_verilog(p) -> Path                # sim/accel-verilog/: the accelerator's Verilog, cached
    fast_build(p) -> FastSim                # sim/fast-accel-<config>/: the compiled fast path
    uart_build(p, divisor, rx_timeout) -> BuildInfo   # sim/uart-accel-<config>-d<divisor>/: the board design

``p`` is an :class:`~binaccel.sw.hwif.AccelParams`. Each build is made once per process and reused
from disk while its Verilog and tools are unchanged; the folders are under the build folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from amaranth.back import verilog

import binaccel.hw
from binaccel.hw.linked import UartAccelerator
from binaccel.hw.top import Accelerator
from binaccel.hw.uart import divisor_tag
from binaccel.sim.fastpath import FastSim
from binaccel.sim.runner import BUILD_ARGS, BUILD_ARGS_O1, SINGLE_FILE_ARGS, build_component, check_sim, sim_build_dir, \
    sim_suffix
from binaccel.sw.atomic import write_text_atomic

__all__ = ["cocotb_build", "accel_verilog", "fast_build", "uart_build", "linked_build", "HW_PACKAGE"]

#: The folder of the gateware sources whose text keys the cached Verilog.
HW_PACKAGE = Path(binaccel.hw.__file__).parent


@functools.lru_cache(maxsize=None)
def cocotb_build(p, sim="verilator"):
    """The accelerator's build for the cocotb testbench ``sim/tb_top.py`` on ``sim`` (Verilator, or
    ``"icarus"``)."""
    return build_component(Accelerator, name="accel", build_dir=sim_build_dir(f"accel-{p.tag}{sim_suffix(sim)}"),
                           params=p.as_dict(), build_args=BUILD_ARGS if check_sim(sim) == "verilator" else (),
                           sim=sim)


def accel_verilog(p) -> Path:
    """Verilog of the accelerator for ``p`` (module ``accel``), cached under ``sim/accel-verilog/`` of
    the build folder by a hash of the gateware sources, the Amaranth version and the parameters
    (converting the design takes ~10 s)."""
    h = hashlib.sha256()
    for src in sorted(HW_PACKAGE.rglob("*.py")):
        h.update(str(src.relative_to(HW_PACKAGE)).encode() + b"\0" + src.read_bytes())
    h.update(version("amaranth").encode())
    h.update(json.dumps(p.as_dict(), sort_keys=True).encode())
    path = sim_build_dir("accel-verilog", f"accel-{p.tag}-{h.hexdigest()[:16]}.v")
    if not path.is_file():
        write_text_atomic(path, verilog.convert(Accelerator(**p.as_dict()), name="accel"))
    return path


@functools.lru_cache(maxsize=None)
def fast_build(p):
    """The accelerator on the fast path (:class:`~binaccel.sim.fastpath.FastSim`), one C++ file."""
    return FastSim(accel_verilog(p), name="accel", params=p.as_dict(), build_dir=sim_build_dir(f"fast-accel-{p.tag}"),
                   verilator_args=SINGLE_FILE_ARGS)


def linked_build(design, name: str, p, divisor, rx_timeout: int):
    """Verilator build of a board design behind its UART (``design``: :class:`~binaccel.hw.linked.UartAccelerator`
    or :class:`~binaccel.hw.linked.UartEngine`, built from the parameters ``p``, the UART ``divisor`` and the
    receiver's ``rx_timeout``) for ``sim/tb_uart.py``, in ``sim/<name>-<config>-d<divisor>/`` (a fractional
    divisor spelt ``<numerator>_<denominator>``); optimised C++, the runs being long."""
    def factory(*, divisor, rx_timeout, **kw):
        return design(divisor=divisor, timeout=rx_timeout, **kw)

    return build_component(factory, name=name, build_dir=sim_build_dir(f"{name.replace('_', '-')}-{p.tag}-d{divisor_tag(divisor)}"),
                           params={**p.as_dict(), "divisor": divisor, "rx_timeout": rx_timeout},
                           build_args=BUILD_ARGS_O1)


@functools.lru_cache(maxsize=None)
def uart_build(p, divisor, rx_timeout):
    """The accelerator's board design (:class:`~binaccel.hw.linked.UartAccelerator`) for ``sim/tb_uart.py``."""
    return linked_build(UartAccelerator, "uart_accel", p, divisor, rx_timeout)
