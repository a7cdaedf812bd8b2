"""The bench's report: ``bench.md`` (boards, time per image, cuts, notes) and the plots.

The headline ratio is ``ratio_fpga_over_cpu_best``: the FPGA time per image against the fastest
deployable CPU runtime of the same run (``cpu_best_runtime``); the end-to-end time adds the host
link's transfer time at the board's baud."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from binaccel.hw.sweep import bitstream_clock_mhz, closure_cell
from binaccel.sw.atomic import write_bytes_atomic

from .boards import stale_note
from .cycles import SOURCE_LABEL

__all__ = ["boards_table", "render_markdown", "make_plots"]


def _fmt_r(x):
    return "-" if x is None else f"{x:.3g}"


def _fmt_baud(baud):
    if baud is None:
        return "-"
    return f"{baud / 1e6:g} Mbaud" if baud >= 1_000_000 else f"{baud} baud"


def _fmt_s(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def boards_table(boards: dict) -> list:
    """Markdown lines: one row per board (design, array, fmax vs target, resources), then the
    engine-only fallback notes."""
    lines = ["| board | synthesized design | array | fmax MHz (target, met) | timing-met bitstream | LUT | FF | BRAM | DSP |",
             "|---|---|---|---|---|---:|---:|---:|---:|"]
    for name, b in boards.items():
        a = b["array"]
        met = b.get("met", (b.get("fmax_mhz") or 0) >= (b.get("target_mhz") or float("inf")))
        design = b.get("design") or "-"
        if b.get("datapath"):
            design += f" ({b['datapath']})"
        lines.append(f"| {name} | {design} | {a['rows']}x{a['cols']}x{a['word']} | {b['fmax_mhz']} "
                     f"({b.get('target_mhz')}, {'yes' if met else 'no'}) | {closure_cell(b)} | "
                     f"{b['luts']}/{b['luts_total']} | {b['ffs']} | {b['brams']} | {b.get('dsps')}/{b.get('dsps_total')} |")
    for name, b in boards.items():
        if b.get("fallback"):
            lines.append(f"\n*{name}*: {b['fallback']}.")
        clk = bitstream_clock_mhz(b)
        if clk and b.get("fmax_mhz") and clk < b["fmax_mhz"]:
            lines.append(f"\n*{name}*: the FPGA times and ratios below are at the clock of the bitstream that "
                         f"meets timing, {clk:g} MHz; at the build's fmax, {b['fmax_mhz']} MHz, each would take "
                         f"{clk / b['fmax_mhz']:.3g}x as long (`fpga_s_per_image` in bench.json).")
        note = stale_note(name, b)
        if note:
            lines.append(f"\n*{name}*: {note}.")
    return lines


def _figures(per) -> bool:
    """Whether a network's entry for a board has figures (not a network the board's build cannot run)."""
    return bool(per.get("batch"))


def render_markdown(result: dict) -> str:
    lines = ["# binaccel bench: FPGA vs CPU", "",
             f"- cycles: {result['cycles_source']} (per row: `dp sim` = pipelined accelerator simulation, `sim` = "
             f"accelerator simulation, `engine sim` = simulation of the board's engine build, `model` = engine "
             f"cycle model)",
             f"- CPU: {result['machine']['processor']}, {result['machine']['cpus']} cores, torch "
             f"{result['machine']['torch']} ({result['machine']['torch_threads']} threads), onnxruntime "
             f"{result['machine'].get('onnxruntime', '-')} (1 and {result['machine'].get('onnxruntime_threads', '-')} "
             f"threads), numpy "
             f"{result['machine']['numpy']}; load average at start {result['machine']['loadavg_start'][0]:.1f}; "
             f"median of {result['timing']['reps']} after {result['timing']['warmup']} warm-up calls", "",
             "## Boards", ""] + boards_table(result["boards"])
    batches = result["timing"]["batches"]
    lines += ["", "## Time per image", "",
              "FPGA/CPU best < 1 means the FPGA is faster than the fastest deployable CPU runtime measured here "
              "(CPU best: the fastest of float PyTorch, onnxruntime with 1 and with all threads, bit-packed numpy; "
              "its runtime in brackets). FPGA = cycles at the clock of the timing-met bitstream (- without one); "
              "link = the host link's transfer time per image at the board's baud; end to end = link + FPGA.", "",
              "| network | board | batch | cycles/img | source | util % | FPGA | CPU best | FPGA/CPU best | link | "
              "end to end | end to end/CPU best | build has the widths |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    cpu_lines = ["", "## CPU runtimes", "",
                 f"Per network and batch, time per image on this machine. onnxruntime: the float model's ONNX export "
                 f"(torch.onnx.export) with 1 and with {result['machine'].get('onnxruntime_threads', '-')} intra-op "
                 f"threads.", "",
                 "| network | batch | torch | onnxruntime 1 thread | onnxruntime all threads | Brevitas | packed numpy | "
                 "fastest |",
                 "|---|---:|---:|---:|---:|---:|---:|---|"]
    for net, e in result["networks"].items():
        if "skipped" in e:
            lines.append(f"| {net} | - | - | skipped: {e['skipped']} | | | | | | | | | |")
            continue
        for bname in result["boards"]:
            if bname not in e:
                continue
            if not _figures(e[bname]):
                why = e[bname].get("does_not_run") or e[bname].get("error") or "no figures"
                lines.append(f"| {net} | {bname} | - | does not run: {why.replace('|', '/')} | | | | | | | | | |")
                continue
            for n in batches:
                r = e[bname]["batch"][str(n)]
                src = SOURCE_LABEL.get(e[bname]["cycles_source"], "model")
                lines.append(
                    f"| {net} | {bname} | {n} | {r['cycles_per_image']:.0f} | {src} | {100 * r['utilisation']:.1f} | "
                    f"{_fmt_s(r.get('fpga_bitstream_s_per_image'))} | {_fmt_s(r.get('cpu_best_s_per_image'))} "
                    f"({r.get('cpu_best_runtime', '-')}) | {_fmt_r(r.get('ratio_fpga_over_cpu_best'))} | "
                    f"{_fmt_s(r.get('link_s_per_image'))} @ {_fmt_baud(r.get('baud'))} | "
                    f"{_fmt_s(r.get('end_to_end_s_per_image'))} | {_fmt_r(r.get('ratio_end_to_end_over_cpu_best'))} | "
                    f"{'yes' if e[bname]['build_supports'] else 'no'} |")
        for n in batches:   # the CPU figures are the same for every board: once per network
            c = (e.get("cpu") or {}).get(str(n))
            if not c:
                continue

            def s_of(key, c=c):
                return _fmt_s((c.get(key) or {}).get("s_per_image"))

            cpu_lines.append(f"| {net} | {n} | {s_of('torch_float')} | {s_of('onnxruntime_t1')} | "
                             f"{s_of('onnxruntime_tall')} | {s_of('brevitas')} | {s_of('packed')} | "
                             f"{(c.get('best') or {}).get('runtime', '-')} |")
    lines += cpu_lines
    lines += ["", "## Ratios against each CPU runtime", "",
              "| network | board | batch | FPGA/torch | FPGA/Brevitas | FPGA/packed |", "|---|---|---:|---:|---:|---:|"]
    for net, e in result["networks"].items():
        for bname in result["boards"]:
            if "skipped" in e or bname not in e or not _figures(e[bname]):
                continue
            for n in batches:
                r = e[bname]["batch"][str(n)]
                lines.append(f"| {net} | {bname} | {n} | {_fmt_r(r['ratio_fpga_over_torch'])} | "
                             f"{_fmt_r(r['ratio_fpga_over_brevitas'])} | {_fmt_r(r['ratio_fpga_over_packed'])} |")
    lines += ["", "## Cuts (paper-scale networks)", ""]
    for net, e in result["networks"].items():
        if e.get("cuts"):
            lines.append(f"**{net}** ({e.get('paper')}):")
            lines += [f"- {c}" for c in e["cuts"]]
            lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def make_plots(result: dict, out_dir) -> list:
    """Per-layer cycles vs ideal (one PNG per board, batch 1) and the speedup per network and board
    against the fastest CPU runtime (``cpu_best``): of the FPGA time, and end to end (link included)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    files = []
    nets = {k: v for k, v in result["networks"].items() if "skipped" not in v}
    b0 = str(result["timing"]["batches"][0])
    for bname in result["boards"]:
        fig, axes = plt.subplots(len(nets), 1, figsize=(10, 2.6 * len(nets)), squeeze=False)
        for ax, (net, e) in zip(axes[:, 0], nets.items()):
            if bname not in e or not _figures(e[bname]):
                ax.set_title(f"{net} on {bname}: {(e.get(bname) or {}).get('does_not_run', 'no figures')}"[:120],
                             fontsize=8)
                ax.axis("off")
                continue
            layers = e[bname]["batch"][b0]["layers"]
            x = np.arange(len(layers))
            ax.bar(x - 0.2, [l["cycles"] for l in layers], 0.4, label="cycles")
            ax.bar(x + 0.2, [l["ideal_cycles"] for l in layers], 0.4, label="ideal")
            ax.set_xticks(x, [l["layer"] for l in layers], rotation=60, fontsize=7)
            ax.set_yscale("log")
            ax.set_title(f"{net} on {bname} (batch {b0}, utilisation {100 * e[bname]['batch'][b0]['utilisation']:.1f}%)",
                         fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"layers_{bname}.png"
        _save_fig(fig, path)
        plt.close(fig)
        files.append(str(path))
    fig, axes = plt.subplots(1, len(result["timing"]["batches"]), figsize=(12, 4.5), squeeze=False)
    for ax, n in zip(axes[0], result["timing"]["batches"]):
        names = list(nets)
        x = np.arange(len(names))
        boards = list(result["boards"])
        width = 0.8 / max(2 * len(boards), 1)
        i = 0
        for bname in boards:
            for key, label in (("ratio_fpga_over_cpu_best", "FPGA"), ("ratio_end_to_end_over_cpu_best", "end to end")):
                vals = [1.0 / r if (r := ((nets[m].get(bname) or {}).get("batch") or {}).get(str(n), {}).get(key))
                        else np.nan for m in names]
                ax.bar(x - 0.4 + (i + 0.5) * width, vals, width, label=f"{bname} {label} vs CPU best")
                i += 1
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_ylabel("speedup = fastest CPU time / FPGA time")
        ax.set_title(f"batch {n}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "speedup.png"
    _save_fig(fig, path)
    plt.close(fig)
    files.append(str(path))
    return files


def _save_fig(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes_atomic(path, buf.getvalue())
