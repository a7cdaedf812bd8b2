"""The flow: a design's build plan and its digest, and one run of yosys, nextpnr and the packer
(:func:`synthesize`); :func:`sweep` of a design factory over parameter sets."""

import hashlib
import json
import re
import time
from pathlib import Path

from binaccel.sw.atomic import write_json_atomic, write_text_atomic
from binaccel.sw.paths import build_dir

from ..boards import ACCEL_CLOCK_ATTR, _board, make_platform
from .harness import _board_top, _design_label
from .reports import _netlist_clock_names, _yosys_cells, parse_nextpnr_log, parse_nextpnr_report, report_markdown
from .tools import (_TOOLS, SCRIPT_AFTER_READ, SynthesisError, _errors, _read, _run, tool_packages, tool_path,
                    tool_versions)


def synth_root(*parts) -> Path:
    """``synth`` of the build folder (:func:`binaccel.sw.paths.build_dir`, resolved at the call), or a
    path below it: where synthesis files go when no ``out_dir`` is given."""
    return build_dir("synth", *parts)


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
               description=None, pnr_opts=()):
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
        Where the files go (default ``synth/<board>/<design class name>`` of the build folder,
        :func:`synth_root`).
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
    pnr_opts : sequence of str, optional
        Extra nextpnr options (e.g. ``("--router", "router2")``), recorded in the report.

    Returns
    -------
    dict
        The report (also written atomically as ``report.json`` and ``report.md`` in
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
    out = Path(out_dir) if out_dir is not None else synth_root(spec.name, label)
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
            ["--seed", str(seed), "--report", pnr_report.name, "--timing-allow-fail"] + list(pnr_opts))
    report["pnr_opts"] = list(pnr_opts)
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


def sweep(design_factory, params_list, *, board, out_dir=None, seed=1, freq_mhz=None,
          timeout=None, niceness=10, name="sweep"):
    """Synthesise ``design_factory(**params)`` for each ``params`` dict of ``params_list``.

    Returns the list of reports (one per point, in order, each with its ``params``); a point
    that nextpnr cannot fit has ``fits`` False and ``status`` "no_fit" (the sweep goes on);
    other failures raise :class:`SynthesisError`. A summary is written atomically to
    ``<out_dir>/sweep.json`` and ``sweep.md`` (default ``synth/<board>/<name>`` of the build folder).
    """
    spec = _board(board)
    params_list = list(params_list)
    if not params_list or not all(isinstance(p, dict) for p in params_list):
        raise ValueError("params_list must be a non-empty list of dicts of keyword arguments")
    root = Path(out_dir) if out_dir is not None else synth_root(spec.name, name)
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
