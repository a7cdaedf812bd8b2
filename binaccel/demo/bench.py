"""The demo's synthesis and bench section (called by :func:`binaccel.demo.run_demo`).

:func:`bench_section` does two things and returns the Markdown lines of the demo report:

1. **Small-board synthesis** of the two board designs for the iCEBreaker at the search's starting
   points, with yosys/nextpnr at ``nice 10``: the accelerator (accelerator + UART link + PLL:
   ``LinkedAccelerator`` in ``BoardTop``; ``ACCEL_START`` / ``ACCEL_BASE``, 1x1x16 with plain MNIST
   widths), which does not fit the iCE40UP5K, and the design that does, the layer engine behind
   the same link (``LinkedEngine``; ``DEFAULT_START`` / ``BOARD_BASE``, 1x1x16), about 20 s each.
   The last report of a point is reused, without running the tools,
   when its inputs are unchanged (same parameters, seed, target, nextpnr options, and the same
   gateware sources and tool versions: ``inputs_sha256``; or the same build plan: ``plan_sha256``,
   :func:`binaccel.hw.sweep.gateware_current`), or when ``synth_budget_s`` is smaller than
   the time the last run took (or than :data:`MIN_SYNTH_S` when there is none); the returned lines
   and ``summary["synthesis"]`` / ``summary["synthesis_engine_link"]`` say which. A run is limited to ``synth_budget_s`` per tool.
2. **Bench** of the given trained MNIST model files on both boards, with the board figures of
   ``bench/boards.json`` in the build folder, else of the curated record (accelerator builds where
   one fits, else the engine behind the link, which the table marks; see
   :func:`binaccel.bench.load_boards`): cycles per image from the simulated
   accelerator (Verilator fast path, logits checked against intref), FPGA time at the synthesized
   fmax, CPU times (float torch, Brevitas, bit-packed numpy) with few repetitions; writes
   ``bench.json``, ``bench.md`` and plots into ``out_dir``.
"""

import json
import time
from pathlib import Path

from binaccel import bench, records
from binaccel.hw import sweep
from binaccel.hw.synth import SynthesisError
from binaccel.sw.atomic import write_json_atomic

__all__ = ["bench_section", "MIN_SYNTH_S", "SYNTH_BOARD", "SYNTH_DESIGNS"]

#: The board the demo synthesizes (the small one: about a minute of yosys + nextpnr).
SYNTH_BOARD = "icebreaker"

#: Assumed duration of a synthesis without an earlier report to go by (seconds).
MIN_SYNTH_S = 120.0

#: The designs the demo synthesizes for the small board, with the summary key of each: the
#: accelerator (which does not fit the iCE40UP5K: the demo shows by how much) and the board's
#: design that fits, the engine behind the link.
SYNTH_DESIGNS = (("accel", "synthesis"), ("engine-link", "synthesis_engine_link"))


def _synthesis(summary, *, budget_s, log, board=SYNTH_BOARD, synth_root=None, design="accel", key="synthesis"):
    """Part 1: run or reuse the small-board synthesis of ``design`` at the search's starting point;
    returns the info dict stored in ``summary[key]``."""
    n, word = sweep.start_point(board, design)
    params = sweep.full_params({**sweep.base_params(board, design), "rows": n, "cols": n, "word": word}, design)
    out = sweep._point_dir(board, params, 1, root=synth_root and Path(synth_root) / board / design,
                           design=design)
    path = out / "report.json"
    digest = sweep.inputs_hash()
    old = None
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
    same_point = bool(old and sweep.same_params(old.get("params"), params, design)
                      and old.get("factory") == sweep._FACTORIES[design].__name__
                      and old.get("status") in ("ok", "no_fit", "timeout"))
    info = {"board": board, "design": sweep.DESIGN_KIND[design], "params": params, "report": bench.shown_path(path),
            "budget_s": budget_s, "inputs_sha256": digest}
    last_s = (old or {}).get("runtime_s", {}).get("total") if same_point else None
    if same_point and sweep.gateware_current(old):
        info["action"] = "reused"
        info["why"] = ("inputs unchanged (parameters, gateware sources, tool versions)"
                       if old.get("inputs_sha256") == digest else
                       "build plan unchanged (parameters, netlist, scripts, constraints, tool versions: "
                       "plan_sha256), though the gateware sources changed")
        report = old
    elif (last_s or MIN_SYNTH_S) > budget_s:
        info["why"] = (f"synthesis budget {budget_s:g} s is below the {'last run time' if last_s else 'assumed time'} "
                       f"of {last_s or MIN_SYNTH_S:.0f} s")
        if same_point:
            info["action"] = "reused (stale)"
            info["why"] += ("; the last report does not record its inputs" if not old.get("inputs_sha256")
                            else "; the last report is from different inputs (gateware sources or tools changed)")
            report = old
        else:
            info["action"] = "skipped"
            report = None
    else:
        info["action"] = "ran"
        log(f"[demo] synthesizing the {sweep.DESIGN_KIND[design]} board design for {board} "
            f"({n}x{n}x{word}, budget {budget_s:g} s) ...")
        try:
            report, _ = sweep.synth_point(board, params, design=design, out_dir=out, timeout=budget_s, log=log)
        except SynthesisError as exc:
            report = exc.report
            info["error"] = str(exc)[:500]
        if report.get("inputs_sha256") != digest:
            report["inputs_sha256"] = digest
            write_json_atomic(path, report)
        info["why"] = "no report with the same inputs" if old else "no earlier report"
    if report is not None:
        s = sweep.board_summary(report)
        info.update({k: s[k] for k in ("status", "fits", "fmax_mhz", "target_mhz", "met", "luts", "luts_total",
                                       "ffs", "brams", "dsps", "dsps_total", "array")})
        info["tools"] = report.get("tools")
        info["seed"] = report.get("seed")
        info["runtime_s"] = (report.get("runtime_s") or {}).get("total")
        info["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime)) if path.exists() else None
        info["error_excerpt"] = (report.get("error") or "")[:300] or None
    summary[key] = info
    return info


def _synthesis_lines(info, heading=True):
    lines = ["## Synthesis (small board)", ""] if heading else []
    a = info["params"]
    if info["design"] == "accel+uart":
        what = (f"accelerator + UART link + PLL (LinkedAccelerator in BoardTop) for {info['board']}, array "
                f"{a['rows']}x{a['cols']}x{a['word']}, buffers fm {a['fm_depth']} / w {a['w_depth']} / t {a['t_depth']}")
    else:
        what = (f"the layer engine + UART link + PLL (LinkedEngine in BoardTop; the host does im2col and pooling) "
                f"for {info['board']}, array {a['rows']}x{a['cols']}x{a['word']}")
    if info["action"] == "skipped":
        return lines + [f"- {what}: **not synthesized**: {info['why']}, and there is no earlier report.", ""]
    verb = {"ran": "synthesized now", "reused": "last report reused",
            "reused (stale)": "last report reused (**may be stale**)"}[info["action"]]
    lines.append(f"- {what}: {verb} ({info['why']}; report `{info['report']}`"
                 + (f", written {info['created']}" if info.get("created") else "") + ")")
    util = (f"LUT {info['luts']}/{info['luts_total']}, FF {info['ffs']}, BRAM {info['brams']}, "
            f"DSP {info['dsps']}/{info['dsps_total']}")
    if info.get("fits"):
        lines.append(f"- fits: {util}; fmax **{info['fmax_mhz']:.1f} MHz** for a {info['target_mhz']:g} MHz target "
                     f"({'met' if info['met'] else 'not met'}), seed {info['seed']}")
    else:
        lines.append(f"- **does not fit** (status {info.get('status')}): {util} as far as nextpnr got"
                     + (f" -- {info['error_excerpt']}" if info.get("error_excerpt") else ""))
    if info.get("tools"):
        def short(k, v):
            v = str(v).split(" (git sha1")[0]
            return v if v.lower().startswith(k.split("-")[0]) else f"{k} {v}"
        lines.append("- tools: " + "; ".join(short(k, v) for k, v in info["tools"].items()))
    return lines + [""]


def _fmt(s):
    if s is None:
        return "-"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _ratio(x):
    return "-" if x is None else f"{x:.3g}"


def bench_section(summary: dict, *, model_files: dict, out_dir: str, log=print, synth_budget_s: float = 300,
                  boards_path=None, synth_root=None, reps: int = 3, warmup: int = 1, accel_images: int = 2,
                  batches=(1, 64), cycles: str = "accel", plots: bool = True) -> list:
    """Synthesis and bench section of the demo report.

    Parameters
    ----------
    summary : dict
        The demo's summary; this function sets ``summary["synthesis"]`` (what was done for the
        small-board synthesis of the accelerator: ``action`` "ran" / "reused" / "reused (stale)" /
        "skipped", ``why``, the report path, status, fits, fmax, LUT/FF/BRAM/DSP, tools), the same
        for the board's engine design (the engine behind the link) in
        ``summary["synthesis_engine_link"]``, and ``summary["bench"]``
        (``boards`` and ``networks`` of ``bench.json``: per board ``fmax_mhz``, ``luts``,
        ``luts_total``, ``ffs``, ``brams``, ``array``, ``design``; per network and board
        ``fpga_s_per_image``, ``cpu_torch_s_per_image``, ``cpu_packed_s_per_image``, the onnxruntime
        and ``cpu_best_*`` figures, ``link_s_per_image``, ``end_to_end_s_per_image``,
        ``utilisation``, ``cycles_per_image``, ``cycles_source`` and the ratios, at batch 1, plus
        ``batch`` with every batch size), or ``summary["bench"] = {"error": ...}`` when there are no
        board figures.
    model_files : dict
        ``{name: path of a .bnm file}`` (the demo's trained models: "siman", "mcn", "mcn1",
        "mcn_a8", ...). Models with binary weights only are benched (others are listed as skipped).
        The Brevitas timing uses the checkpoint ``<name>.pt`` next to the file or in
        ``../checkpoints/`` when present.
    out_dir : str
        Where ``bench.json``, ``bench.md`` and the plots go (the demo passes ``bench`` in its output folder).
    log : callable
        Progress messages.
    synth_budget_s : float
        Seconds the demo may spend on synthesis (also the per-tool timeout of a run). 0 never runs the
        tools and reads the last report, if any.
    boards_path, synth_root : optional
        Other ``boards.json`` / synthesis root (tests).
    reps, warmup, accel_images, batches, cycles, plots
        Passed to :func:`binaccel.bench.run_bench` (few repetitions so that the section takes
        about two minutes on 2 cores once the simulation builds are cached).

    Returns
    -------
    list
        The Markdown lines: the synthesis summary and a table per network and board (cycles per
        image, FPGA time, the fastest CPU runtime and FPGA/CPU best, link and end-to-end time, CPU
        torch, CPU packed numpy) at batch 1 and 64. Never raises for a missing boards file or a
        failed synthesis (the lines say so); a wrong accelerator result (logits differing from
        intref) does raise.
    """
    t0 = time.monotonic()
    lines = []
    for design, key in SYNTH_DESIGNS:
        info = _synthesis(summary, budget_s=float(synth_budget_s), log=log, synth_root=synth_root, design=design,
                          key=key)
        lines += _synthesis_lines(info, heading=not lines)
        log(f"[demo] synthesis ({info['design']}): {info['action']} ({info['why']})")

    lines += ["## Bench: FPGA vs CPU", ""]
    try:
        boards = bench.load_boards(boards_path)
    except (FileNotFoundError, ValueError) as exc:
        summary["bench"] = {"error": f"no board figures: {exc}"}
        return lines + [f"No board figures ({exc}); run `binaccel synth --search` first.", ""]
    if not boards:
        summary["bench"] = {"error": "no board with a fitting build in boards.json"}
        return lines + ["No board has a fitting build in boards.json; run `binaccel synth --search`.", ""]
    for name, b in boards.items():
        note = bench.stale_note(name, b)
        if note:
            log(f"[demo] warning: {note}")
    files = {name: str(p) for name, p in model_files.items() if Path(p).exists()}
    missing = sorted(set(model_files) - set(files))
    if not files:
        summary["bench"] = {"error": "no model file found", "missing": missing}
        return lines + ["No model file to bench.", ""]
    mnist, other = bench.load_model_files(files)
    networks = [f"mnist_{n}" for n in mnist] + list(other)
    res = bench.run_bench(out_dir=out_dir, boards=boards, networks=networks, model_files=files, batches=tuple(batches),
                          warmup=warmup, reps=reps, accel_images=accel_images, cycles=cycles, plots=plots,
                          train=False, log=log)
    keep = ("fpga_s_per_image", "fpga_bitstream_s_per_image", "cpu_torch_s_per_image", "cpu_brevitas_s_per_image", "cpu_packed_s_per_image",
            "cpu_onnxruntime_t1_s_per_image", "cpu_onnxruntime_tall_s_per_image", "cpu_best_s_per_image",
            "cpu_best_runtime", "ratio_fpga_over_cpu_best", "link_s_per_image", "end_to_end_s_per_image",
            "utilisation", "cycles_per_image", "ratio_fpga_over_torch", "ratio_fpga_over_packed", "cycles_source",
            "build_supports", "headline_batch")
    bnets = {}
    for net, e in res["networks"].items():
        if "skipped" in e:
            bnets[net] = {"skipped": e["skipped"]}
            continue
        bnets[net] = {b: ({"does_not_run": e[b]["does_not_run"]} if e[b].get("does_not_run") else
                          {**{k: e[b].get(k) for k in keep},
                           "batch": {n: {k: v for k, v in r.items() if k != "layers"}
                                     for n, r in e[b]["batch"].items()}})
                      for b in res["boards"] if b in e}
    summary["bench"] = {"boards": {b: {k: v.get(k) for k in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "dsps",
                                                           "array", "design", "datapath", "bitstream_mhz",
                                                           "fallback", "target_mhz", "met", "gateware_current")}
                                   for b, v in res["boards"].items()},
                        "networks": bnets, "out_dir": str(out_dir), "bench_json": str(Path(out_dir) / "bench.json"),
                        "cycles_source": res["cycles_source"], "reps": reps, "missing_model_files": missing,
                        "wall_s": round(time.monotonic() - t0, 1)}

    srcs = sorted({str(v.get("source", "build/bench/boards.json")) for v in boards.values()})
    measured = records.RECORD_LABEL in srcs
    lines += [f"Board figures from `{'`, `'.join(srcs)}`"
              + (" -- the curated record of the last board search (this checkout has not run "
                 "`binaccel synth --search`, which takes about 30 minutes; the figures are from that run, "
                 "not from this machine now):" if measured else " (`binaccel synth --search`):"), "",
              ] + bench.boards_table(res["boards"])
    lines += ["", f"Cycles from the simulated accelerator (one RUN per image; batch 64 = throughput over "
                  f"{accel_images} simulated images) where available; for a board running the engine behind "
                  f"the link, the simulation of its engine build on each batch (`engine sim`); else the engine "
                  f"cycle model (`source`); "
                  f"FPGA time = cycles / fmax; CPU: median of {reps} runs on this machine (torch with 1 thread, "
                  f"onnxruntime with 1 and with all threads, bit-packed numpy); CPU best = the fastest of them "
                  f"(its runtime in brackets). Ratio = FPGA time / CPU best time (< 1: the FPGA is faster). "
                  f"Link = the host link's transfer time per image at the board's baud; end to end = link + "
                  f"FPGA time at the timing-met bitstream's clock.", "",
              "| network | board | batch | cycles/image | source | FPGA | CPU best | FPGA/CPU best | link | "
              "end to end | CPU torch | CPU packed |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for net, e in res["networks"].items():
        if "skipped" in e:
            lines.append(f"| {net} | - | - | skipped: {e['skipped']} | | | | | | | | |")
            continue
        for b in res["boards"]:
            if b not in e:
                continue
            if e[b].get("does_not_run"):
                lines.append(f"| {net} | {b} | - | does not run: {e[b]['does_not_run']} | | | | | | | | |")
                continue
            src = bench.SOURCE_LABEL.get(e[b]["cycles_source"], "model")
            for n in batches:
                r = e[b]["batch"][str(n)]
                lines.append(f"| {net} | {b} | {n} | {r['cycles_per_image']:.0f} | {src} | "
                             f"{_fmt(r['fpga_bitstream_s_per_image'])} | {_fmt(r['cpu_best_s_per_image'])} "
                             f"({r['cpu_best_runtime']}) | {_ratio(r['ratio_fpga_over_cpu_best'])} | "
                             f"{_fmt(r['link_s_per_image'])} | {_fmt(r['end_to_end_s_per_image'])} | "
                             f"{_fmt(r['cpu_torch_s_per_image'])} | {_fmt(r['cpu_packed_s_per_image'])} |")
    if missing:
        lines += ["", f"Model files not found (not benched): {', '.join(missing)}."]
    lines += ["", f"Full tables and plots: `{Path(out_dir) / 'bench.md'}`.", ""]
    log(f"[demo] bench section done in {time.monotonic() - t0:.0f} s")
    return lines
