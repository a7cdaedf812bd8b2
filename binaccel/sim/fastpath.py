"""Fast path: a compiled Verilator model of a stream design, driven from files, no per-cycle Python.

Public API::

    FastSim(component_or_verilog, *, name, build_dir=None, in_port="i_stream", out_port="o_stream",
            params=None, clk="clk", rst="rst", reset_cycles=2, opt_fast="-O2")
        .run(words, n_out, *, idle=0.0, backpressure=0.0, seed=0, max_cycles=None) -> (out_words, cycles)
        .run_detailed(words, n_out, *, idle=0.0, backpressure=0.0, seed=0, max_cycles=None,
                      extra_cycles=0, stamps=False, timeout_s=None, reset_at=None) -> FastSimResult
        .run_batch(jobs, *, stamps=False, timeout_s=None) -> list[FastSimResult]   # many runs, one process
        .in_ports, .in_widths, .out_port, .out_width, .executable, .rebuilt
    FastSimJob, FastSimResult, FastSimTimeout

The design is Verilated (``--cc --exe -O3``) together with ``sim/fastpath_main.cpp`` and a generated
port header into one executable per design and parameter set (``build/sim/fast-<name>-<hash>/``,
reused while the Verilog and options are unchanged). Each run writes the input words to files, runs
the executable (reset, then streams with seeded random idle cycles on the inputs and backpressure on
the output, AXI-stream rules; optionally a reset at a given cycle followed by a clean rerun), and
reads back the output words and the cycle count. :meth:`FastSim.run_batch` gives one executable
many runs (:class:`FastSimJob`: words, seed, probabilities, reset cycle) from one batch file, so
that thousands of short runs cost no process start each.

``python tests/sim/fastpath_speed.py --words 1000000`` (in a checkout) measures simulated cycles per wall
second on a FIFO.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.back import verilog

from binaccel.sw.atomic import write_text_atomic

from .runner import (
    BuildError, _check_name, _locked, _make_component, _tail, _tool_versions, params_hash, sim_build_dir,
    verilator_env,
)
from .streams import check_prob

__all__ = ["FastSim", "FastSimJob", "FastSimResult", "FastSimTimeout", "TEMPLATE"]

#: The C++ main program compiled with every fast-path model.
TEMPLATE = Path(__file__).resolve().with_name("fastpath_main.cpp")
_STAMP = "binaccel_fastsim.json"
_EXE = "fastsim"
_PORT_RE = re.compile(r"VL_(IN|OUT|INOUT)\w*\(&(\w+),(\d+),(\d+)")


class FastSimTimeout(RuntimeError):
    """The cycle limit was reached before the expected number of output words.
    ``result`` holds the partial :class:`FastSimResult`."""

    def __init__(self, message: str, result: "FastSimResult"):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class FastSimResult:
    """Outcome of one fast-path run.

    ``out``: output words (ints); ``cycles``: rising edge (after reset, 1-based) at which the last
    expected output word transferred (the whole run's cycles when ``n_out`` is 0);
    ``total_cycles``: cycles simulated including ``extra_cycles``; ``n_extra``: output words
    beyond ``n_out`` seen during ``extra_cycles`` (ready held high); ``in_consumed``/``in_total``:
    input words taken by the design / given, per input stream; ``stamps``: transfer cycle of each
    output word (if requested); ``wall_s`` and ``cycles_per_s``: simulation loop speed.
    With ``reset_at``: ``reset`` (the reset happened: the run had not finished by then),
    ``reset_cycle``, and the words moved before it (``out_before_reset``, ``in_before_reset`` per
    input stream); ``out``, ``stamps`` and ``in_consumed`` are the rerun's, the cycles count on.
    """

    out: list[int]
    cycles: int
    total_cycles: int
    n_extra: int
    in_consumed: list[int]
    in_total: list[int]
    stamps: list[int] | None
    wall_s: float
    cycles_per_s: float
    timeout: bool
    reset: bool = False
    reset_cycle: int = 0
    out_before_reset: int = 0
    in_before_reset: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FastSimJob:
    """One run of :meth:`FastSim.run_batch`: the arguments of :meth:`FastSim.run_detailed`.
    Jobs whose words are the same object (or equal encodings) share one input file."""

    words: Any
    n_out: int
    idle: float = 0.0
    backpressure: float = 0.0
    seed: int = 0
    max_cycles: int | None = None
    extra_cycles: int = 0
    reset_at: int | None = None


def _decode_name(mangled: str) -> str:
    """Verilator's C++ name of a port back to the Verilog name (``a___05Fb`` -> ``a__b``)."""
    return re.sub(r"__0([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), mangled)


def _nbytes(bits: int) -> int:
    return (bits + 7) // 8


class FastSim:
    """A design with stream inputs ``in_port`` (a name or a list of names) and one stream output
    ``out_port``, compiled for whole-data-set simulation.

    ``component_or_verilog``: a ``wiring.Component``, a factory called as ``factory(**params)``,
    or the path of a Verilog file whose top module is ``name``. Ports follow Amaranth's flattening
    (``<port>__valid``, ``<port>__ready``, ``<port>__payload``); the design is clocked by ``clk``
    and reset (synchronously, active high) through ``rst`` (if present) for ``reset_cycles``.
    Input payloads may be up to any width (words are passed as little-endian bytes).
    Raises :class:`~binaccel.sim.runner.BuildError` when the build fails or a port is missing.
    """

    def __init__(self, component_or_verilog: Any, *, name: str, build_dir=None,
                 in_port: str | Sequence[str] = "i_stream", out_port: str = "o_stream",
                 params: Mapping[str, Any] | None = None, clk: str = "clk", rst: str | None = "rst",
                 reset_cycles: int = 2, opt_fast: str = "-O2", verilator_args: Sequence[str] = ()):
        _check_name(name)
        in_ports = [in_port] if isinstance(in_port, str) else list(in_port)
        if not in_ports or not all(isinstance(p, str) and p.isidentifier() for p in in_ports):
            raise ValueError(f"in_port must be a port name or a non-empty list of names, got {in_port!r}")
        if len(set(in_ports)) != len(in_ports):
            raise ValueError(f"in_port names repeat: {in_ports}")
        if not isinstance(out_port, str) or not out_port.isidentifier():
            raise ValueError(f"out_port must be a port name, got {out_port!r}")
        if isinstance(reset_cycles, bool) or not isinstance(reset_cycles, int) or reset_cycles < 0:
            raise ValueError(f"reset_cycles must be an int >= 0, got {reset_cycles!r}")
        if not re.fullmatch(r"-O[0-3s]", opt_fast):
            raise ValueError(f"opt_fast must be one of -O0..-O3, -Os, got {opt_fast!r}")
        verilator_args = [str(a) for a in verilator_args]
        params = dict(params or {})
        self.name = name
        self.verilator_args = verilator_args
        self.in_ports, self.out_port = in_ports, out_port
        self.clk, self.rst, self.reset_cycles = clk, rst, reset_cycles
        self.params = params

        if isinstance(component_or_verilog, (str, os.PathLike)):
            vsrc = Path(component_or_verilog)
            if not vsrc.is_file():
                raise FileNotFoundError(f"Verilog file {vsrc} does not exist")
            text = vsrc.read_text()
        else:
            component = _make_component(component_or_verilog, params)
            try:
                text = verilog.convert(component, name=name)
            except Exception as e:  # noqa: BLE001
                raise BuildError(f"Verilog generation of {name!r} (params {params}) failed: {e}") from e

        self.build_dir = (Path(build_dir) if build_dir is not None
                          else sim_build_dir(f"fast-{name}-{params_hash(params)}")).resolve()
        self.executable = self.build_dir / _EXE
        self._build(text, opt_fast)

    # ---------------------------------------------------------------------------------- build

    def _build(self, text: str, opt_fast: str) -> None:
        stamp = {
            "name": self.name,
            "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "template_sha256": hashlib.sha256(TEMPLATE.read_bytes()).hexdigest(),
            "in_ports": self.in_ports, "out_port": self.out_port, "clk": self.clk, "rst": self.rst,
            "reset_cycles": self.reset_cycles, "opt_fast": opt_fast, "tools": _tool_versions(),
        }
        if self.verilator_args:
            stamp["verilator_args"] = self.verilator_args
        d = self.build_dir
        with _locked(d):
            old = None
            with contextlib.suppress(OSError, ValueError):
                old = json.loads((d / _STAMP).read_text())
            if old is not None and {k: v for k, v in old.items() if k != "ports"} == stamp \
                    and self.executable.is_file():
                self._set_ports(old["ports"])
                self.rebuilt = False
                return
            with contextlib.suppress(OSError):
                (d / _STAMP).unlink()
            env = verilator_env()
            vpath = d / f"{self.name}.v"
            write_text_atomic(vpath, text)
            main = d / "fastpath_main.cpp"
            shutil.copyfile(TEMPLATE, main)
            log = d / "build.log"
            with open(log, "w") as logf:
                def run(cmd):
                    logf.write("$ " + " ".join(cmd) + "\n")
                    logf.flush()
                    r = subprocess.run(cmd, cwd=d, env=env, stdout=logf, stderr=subprocess.STDOUT)
                    if r.returncode != 0:
                        logf.close()
                        raise BuildError(f"fast-path build of {self.name!r} failed: {' '.join(cmd[:2])} "
                                         f"exited {r.returncode}; log {log}:\n{_tail(log)}")

                run(["verilator", "--cc", "--exe", "-O3", "-Wno-fatal", "--quiet-stats", *self.verilator_args,
                     "--top-module", self.name, "--prefix", "Vtop", "-Mdir", str(d), "-o", _EXE,
                     str(main), str(vpath)])
                ports = self._parse_ports(d / "Vtop.h")
                self._set_ports(ports)
                write_text_atomic(d / "fastpath_ports.h", self._ports_header(ports))
                run(["make", "-C", str(d), "-f", "Vtop.mk", f"-j{min(4, os.cpu_count() or 1)}",
                     f"OPT_FAST={opt_fast}", f"OPT_GLOBAL={opt_fast}", "OPT_SLOW=-O1"])
            if not self.executable.is_file():
                raise BuildError(f"fast-path build of {self.name!r} produced no executable {self.executable}")
            write_text_atomic(d / _STAMP, json.dumps({**stamp, "ports": ports}, indent=1, sort_keys=True))
            self.rebuilt = True

    def _parse_ports(self, header: Path) -> dict:
        ports = {}
        for direction, mangled, msb, lsb in _PORT_RE.findall(header.read_text()):
            ports[_decode_name(mangled)] = {"dir": direction, "c": mangled, "bits": int(msb) - int(lsb) + 1}
        where = f"top module {self.name!r} (ports: {', '.join(sorted(ports))})"

        def need(sig, direction, optional=False):
            p = ports.get(sig)
            if p is None:
                if optional:
                    return None
                raise BuildError(f"{where} has no port {sig!r}")
            if p["dir"] != direction:
                raise BuildError(f"{where}: port {sig!r} is an {p['dir'].lower()}put, expected {direction.lower()}put")
            return p

        out = {"clk": need(self.clk, "IN")["c"], "rst": None, "in": [], "out": None}
        if self.rst is not None:
            r = need(self.rst, "IN", optional=True)
            out["rst"] = r["c"] if r else None
        for p in self.in_ports:
            valid, ready = need(f"{p}__valid", "IN")["c"], need(f"{p}__ready", "OUT")["c"]
            pay = need(f"{p}__payload", "IN", optional=True)
            if pay is None:
                raise BuildError(f"{where}: input stream {p!r} has no payload; the fast path needs one")
            out["in"].append({"valid": valid, "ready": ready, "payload": pay["c"], "bits": pay["bits"]})
        pay = need(f"{self.out_port}__payload", "OUT", optional=True)
        out["out"] = {"valid": need(f"{self.out_port}__valid", "OUT")["c"],
                      "ready": need(f"{self.out_port}__ready", "IN")["c"],
                      "payload": pay["c"] if pay else None, "bits": pay["bits"] if pay else 0}
        return out

    def _set_ports(self, ports: dict) -> None:
        self._ports = ports
        self.in_widths = [p["bits"] for p in ports["in"]]
        self.out_width = ports["out"]["bits"]

    @staticmethod
    def _ports_header(ports: dict) -> str:
        ins, o = ports["in"], ports["out"]
        lines = [
            "// generated by binaccel.sim.fastpath: port accessors of this design",
            f"static const int FP_N_IN = {len(ins)};",
            f"static const int FP_IN_BITS[] = {{{', '.join(str(p['bits']) for p in ins)}}};",
            f"static const size_t FP_IN_BYTES[] = {{{', '.join(str(_nbytes(p['bits'])) for p in ins)}}};",
            f"static const int FP_OUT_BITS = {o['bits']};",
            f"static const size_t FP_OUT_BYTES = {_nbytes(o['bits'])};",
            f"#define FP_CLK {ports['clk']}",
            (f"#define FP_SET_RST(t, v) ((t)->{ports['rst']} = (v))" if ports["rst"]
             else "#define FP_SET_RST(t, v) ((void)(t), (void)(v))"),
            "static inline void fp_in_set_valid(Vtop* t, int i, int v) {\n    switch (i) {",
            *[f"    case {i}: t->{p['valid']} = v; break;" for i, p in enumerate(ins)],
            "    }\n}",
            "static inline int fp_in_get_ready(Vtop* t, int i) {\n    switch (i) {",
            *[f"    case {i}: return t->{p['ready']};" for i, p in enumerate(ins)],
            "    }\n    return 0;\n}",
            "static inline void fp_in_set_payload(Vtop* t, int i, const uint8_t* b) {\n    switch (i) {",
            *[f"    case {i}: fp_set(t->{p['payload']}, b, {_nbytes(p['bits'])}); break;"
              for i, p in enumerate(ins)],
            "    }\n}",
            f"static inline void fp_out_set_ready(Vtop* t, int v) {{ t->{o['ready']} = v; }}",
            f"static inline int fp_out_get_valid(Vtop* t) {{ return t->{o['valid']}; }}",
            ("static inline void fp_out_get_payload(Vtop* t, uint8_t* b) "
             + (f"{{ fp_get(t->{o['payload']}, b, {_nbytes(o['bits'])}); }}" if o["payload"]
                else "{ (void)t; (void)b; }")),
            "",
        ]
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------- run

    def _encode(self, words, bits: int, port: str) -> bytes:
        nb = _nbytes(bits)
        if isinstance(words, np.ndarray):
            if words.ndim == 2 and words.dtype == np.uint8:
                if words.shape[1] != nb:
                    raise ValueError(f"{port}: byte array rows must have {nb} bytes, got {words.shape[1]}")
                if bits % 8 and words.size and int(words[:, -1].max()) >> (bits % 8):
                    raise ValueError(f"{port}: a word exceeds {bits} bits")
                return np.ascontiguousarray(words).tobytes()
            if words.ndim == 1 and words.dtype.kind in "ui" and nb <= 8:
                if words.size and (int(words.min()) < 0 or int(words.max()) >> bits):
                    raise ValueError(f"{port}: words must be unsigned {bits}-bit integers")
                return words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :nb].tobytes()
            words = words.tolist()
        out = bytearray()
        for i, w in enumerate(words):
            if isinstance(w, bool) or not isinstance(w, int) or w < 0 or w >> bits:
                raise ValueError(f"{port}: word {i} ({w!r}) is not an unsigned {bits}-bit integer")
            out += w.to_bytes(nb, "little")
        return bytes(out)

    def _decode(self, data: bytes) -> list[int]:
        nb = _nbytes(self.out_width)
        if nb == 0:
            return []
        n = len(data) // nb
        if nb <= 8:
            a = np.zeros((n, 8), dtype=np.uint8)
            a[:, :nb] = np.frombuffer(data, dtype=np.uint8).reshape(n, nb)
            return a.view("<u8").ravel().tolist()
        return [int.from_bytes(data[i * nb:(i + 1) * nb], "little") for i in range(n)]

    def run(self, words, n_out: int, *, idle: float = 0.0, backpressure: float = 0.0, seed: int = 0,
            max_cycles: int | None = None) -> tuple[list[int], int]:
        """Stream ``words`` in and return ``(the first n_out output words, cycles)``.

        ``words``: for one input stream a sequence of unsigned ints (or a numpy array, see
        :meth:`run_detailed`); for several, a sequence of such sequences in ``in_port`` order or a
        dict ``{port: words}``. ``cycles`` is the cycle (after reset) at which the last output word
        transferred. Raises :class:`FastSimTimeout` if ``max_cycles`` pass first.
        """
        r = self.run_detailed(words, n_out, idle=idle, backpressure=backpressure, seed=seed,
                              max_cycles=max_cycles)
        return r.out, r.cycles

    def run_detailed(self, words, n_out: int, *, idle: float = 0.0, backpressure: float = 0.0,
                     seed: int = 0, max_cycles: int | None = None, extra_cycles: int = 0,
                     stamps: bool = False, timeout_s: float | None = None,
                     reset_at: int | None = None) -> FastSimResult:
        """Like :meth:`run`, with all figures (:class:`FastSimResult`).

        Input words may also be given as numpy arrays: 1-D unsigned (payload up to 64 bits) or 2-D
        ``uint8`` of shape ``(n, ceil(bits/8))`` (little-endian bytes). ``idle``: probability of an
        idle cycle before each input word (per stream); ``backpressure``: probability of ``ready``
        low on the output each cycle; ``seed`` seeds both patterns. ``max_cycles`` defaults to
        ``(10000 + 20 * (input words + n_out)) / (1 - max(idle, backpressure))``. After the last
        expected word, ``extra_cycles`` more cycles run with ``ready`` high and count surplus words.
        ``timeout_s`` bounds the wall time of the executable (subprocess.TimeoutExpired).
        ``reset_at``: at that cycle (>= 1) of a run not yet finished, reset for ``reset_cycles``,
        then every input word again from the first, the outputs so far discarded (the result's
        ``reset`` and ``out_before_reset`` say what happened).
        """
        job = FastSimJob(words=words, n_out=n_out, idle=idle, backpressure=backpressure, seed=seed,
                         max_cycles=max_cycles, extra_cycles=extra_cycles, reset_at=reset_at)
        result, max_cycles = self._execute([job], stamps=stamps, timeout_s=timeout_s)
        result = result[0]
        if result.timeout:
            raise FastSimTimeout(
                f"fast-path simulation of {self.name!r} reached max_cycles={max_cycles[0]} with "
                f"{len(result.out)} of {n_out} output words; inputs consumed {result.in_consumed} "
                f"of {result.in_total} (idle={idle}, backpressure={backpressure}, seed={seed})",
                result,
            )
        return result

    def run_batch(self, jobs: Sequence[FastSimJob], *, stamps: bool = False,
                  timeout_s: float | None = None) -> list[FastSimResult]:
        """Run every :class:`FastSimJob` in one process of the executable (a fresh model each, in
        order) and return their results. A job that reaches its cycle limit does not raise: its
        result has ``timeout`` set and the output words it got."""
        return self._execute(list(jobs), stamps=stamps, timeout_s=timeout_s)[0]

    def _job_args(self, job: FastSimJob, files: dict, tmp: Path) -> tuple[list[str], int]:
        idle, backpressure = check_prob("idle", job.idle), check_prob("backpressure", job.backpressure)
        for nm, v in (("n_out", job.n_out), ("seed", job.seed), ("extra_cycles", job.extra_cycles)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{nm} must be an int >= 0, got {v!r}")
        reset_at = job.reset_at
        if reset_at is not None and (isinstance(reset_at, bool) or not isinstance(reset_at, int) or reset_at < 1):
            raise ValueError(f"reset_at must be None or an int >= 1, got {reset_at!r}")
        key = id(job.words)
        if key not in files:
            streams = self._split_streams(job.words)
            encoded = [self._encode(w, bits, port)
                       for w, bits, port in zip(streams, self.in_widths, self.in_ports)]
            paths = []
            for i, e in enumerate(encoded):
                path = files.setdefault(("bytes", i, hashlib.sha256(e).hexdigest()),
                                        tmp / f"in{i}-{len(files)}.bin")
                if not path.exists():
                    path.write_bytes(e)
                paths.append(path)
            n_in = sum(len(e) // _nbytes(b) for e, b in zip(encoded, self.in_widths))
            files[key] = (paths, n_in, job.words)  # keep the words alive: their id stays theirs
        paths, n_in, _ = files[key]
        max_cycles = job.max_cycles
        if max_cycles is None:
            max_cycles = int((10_000 + 20 * (n_in + job.n_out)) / (1.0 - max(idle, backpressure)))
            if reset_at is not None:
                max_cycles += reset_at
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be an int >= 1, got {max_cycles!r}")
        args = ["--n-out", str(job.n_out), "--idle", repr(float(idle)), "--bp", repr(float(backpressure)),
                "--seed", str(job.seed), "--max-cycles", str(max_cycles), "--extra-cycles", str(job.extra_cycles),
                "--reset-at", str(reset_at or 0)]
        for i, path in enumerate(paths):
            args += [f"--in{i}", str(path)]
        return args, max_cycles

    def _execute(self, jobs: list, *, stamps: bool, timeout_s: float | None) -> tuple[list, list]:
        if not jobs:
            return [], []
        runs = self.build_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=runs) as tmp:
            tmp = Path(tmp)
            files: dict = {}
            lines, limits = [], []
            for job in jobs:
                args, mc = self._job_args(job, files, tmp)
                lines.append(" ".join(args))
                limits.append(mc)
            cmd = [str(self.executable), "--out", str(tmp / "out.bin"), "--reset-cycles", str(self.reset_cycles)]
            if len(jobs) == 1:
                cmd += lines[0].split()
            else:
                (tmp / "batch.txt").write_text("\n".join(lines) + "\n")
                cmd += ["--batch", str(tmp / "batch.txt")]
            if stamps:
                cmd += ["--stamps", str(tmp / "stamps.bin")]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            if proc.returncode not in (0, 3):
                raise RuntimeError(f"fast-path simulation {self.executable} failed (exit {proc.returncode}): "
                                   f"{proc.stderr.strip()}\n{proc.stdout[-2000:]}")
            try:
                infos = [json.loads(x) for x in proc.stdout.strip().splitlines()[-len(jobs):]]
                if len(infos) != len(jobs):
                    raise ValueError("too few result lines")
            except (ValueError, IndexError) as e:
                raise RuntimeError(f"fast-path simulation {self.executable} gave no result line: "
                                   f"{proc.stdout[-2000:]!r} {proc.stderr[-2000:]!r}") from e
            out_all = self._decode((tmp / "out.bin").read_bytes())
            st_all = np.fromfile(tmp / "stamps.bin", dtype="<u8").tolist() if stamps else None
        results, k = [], 0
        for job, info in zip(jobs, infos):
            n = info["n_out"]
            out = [0] * n if self.out_width == 0 else out_all[k:k + n]
            st = st_all[k:k + n] if stamps else None
            k += n
            wall = info["wall_s"]
            results.append(FastSimResult(
                out=out, cycles=info["last_out_cycle"] if job.n_out else info["cycles"],
                total_cycles=info["cycles"], n_extra=info["n_extra"], in_consumed=info["in_consumed"],
                in_total=info["in_total"], stamps=st, wall_s=wall,
                cycles_per_s=info["cycles"] / wall if wall > 0 else float("inf"), timeout=info["timeout"],
                reset=info["reset"], reset_cycle=info["reset_cycle"], out_before_reset=info["out_before_reset"],
                in_before_reset=info["in_before_reset"]))
        return results, limits

    def _split_streams(self, words) -> list:
        if len(self.in_ports) == 1:
            if isinstance(words, Mapping):
                return [words[self.in_ports[0]]] if set(words) == {self.in_ports[0]} else \
                    self._bad_mapping(words)
            return [words]
        if isinstance(words, Mapping):
            if set(words) != set(self.in_ports):
                self._bad_mapping(words)
            return [words[p] for p in self.in_ports]
        words = list(words)
        if len(words) != len(self.in_ports):
            raise ValueError(f"expected {len(self.in_ports)} word lists (for {self.in_ports}), got {len(words)}")
        return words

    def _bad_mapping(self, words):
        raise ValueError(f"word dict keys {sorted(words)} must be exactly the input ports {self.in_ports}")
