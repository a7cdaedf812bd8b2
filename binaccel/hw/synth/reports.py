"""Reading the tools' results (nextpnr's ``--report`` JSON or its log, yosys' netlist and cell
counts) and writing one synthesis report as Markdown."""

import json
import re

from ..boards import ACCEL_CLOCK_ATTR

# nextpnr resource names per family -> report keys
_RESOURCES = {
    "ice40": {"LUT": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "DSP": "ICESTORM_DSP",
              "SPRAM": "ICESTORM_SPRAM", "IO": "SB_IO", "PLL": "ICESTORM_PLL",
              "GLOBAL": "SB_GB"},
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD",
             "DSP": "MULT18X18D", "IO": "TRELLIS_IO", "PLL": "EHXPLLL", "GLOBAL": "DCCA"},
}


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
    * ``slow_nets`` (only when nextpnr ran with ``--detailed-timing-report``): the
      :data:`SLOW_NETS` routed nets whose latest sink is reached last, latest first, each
      ``{"net", "driver", "fanout", "delay_ns", "sink"}``: ``delay_ns`` is nextpnr's arrival time
      at that sink, the whole path from the launching clock edge through every logic level and net
      before it (global clock nets left out). The worst endpoints of the build besides its one
      critical path.
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
    out = {"utilization": util, "clocks": clocks, "accel_clock": accel, "critical_paths": paths}
    if data.get("detailed_net_timings") is not None:
        out["slow_nets"] = _slow_nets(data["detailed_net_timings"])
    return out


#: How many nets ``slow_nets`` lists.
SLOW_NETS = 20


def _slow_nets(nets, n=SLOW_NETS):
    rows = []
    for net in nets:
        name = net.get("net", "")
        ends = net.get("endpoints") or []
        if name.startswith("$glbnet$") or not ends:
            continue
        worst = max(ends, key=lambda e: max(e.get("delay") or [0.0]))
        rows.append({"net": name, "driver": net.get("driver"), "fanout": len(ends),
                     "delay_ns": round(float(max(worst.get("delay") or [0.0])), 3),
                     "sink": f"{worst.get('cell')}.{worst.get('port')}"})
    rows.sort(key=lambda r: -r["delay_ns"])
    return rows[:n]


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
    if report.get("slow_nets"):
        lines += ["", "| slow net | driver | fanout | arrival at its latest sink, ns | sink |", "|---|---|---:|---:|---|"]
        for r in report["slow_nets"]:
            lines.append(f"| `{r['net']}` | `{r['driver']}` | {r['fanout']} | {r['delay_ns']:.2f} | `{r['sink']}` |")
    lines += ["", "| step | seconds |", "|---|---:|"]
    for step, sec in report.get("runtime_s", {}).items():
        lines.append(f"| {step} | {sec:.1f} |")
    lines += ["", "Tools:", ""] + [f"- {k}: {v}" for k, v in report.get("tools", {}).items()]
    if report.get("files"):
        lines += ["", "Files:", ""] + [f"- {k}: `{v}`" for k, v in report["files"].items()]
    return "\n".join(lines) + "\n"
