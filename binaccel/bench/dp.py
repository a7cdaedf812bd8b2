"""The pipelined accelerator's bench: ``python -m binaccel.bench.dp``.

Per MNIST network (the trained models of ``binaccel demo`` / the bench when present, else the
untrained zoo networks, labelled so) on the ULX3S build of
:class:`~binaccel.hw.dp.accel.DpAccelerator`:

* **exact**: logits of ``--images`` real MNIST test images on the Verilator fast path against
  :mod:`binaccel.sw.intref`, whole integer vectors (``{"checked", "matched"}``);
* **cycles** per image and utilisation, from the accelerator's own cycle counters;
* **FPGA time** per image = cycles / the clock of the ULX3S bitstream that meets timing (the
  reports of ``python -m binaccel.hw.dp.synth --close-timing`` in the build folder; the plan digest
  of that build is recorded). Without such a bitstream the time is ``null`` and the JSON says how
  to build one;
* **link**: bytes of one image's RUN command and its reply on the frame link, and their time at
  3 Mbaud; ``end_to_end_s_per_image`` = link + FPGA time;
* **CPU**, measured in the same run (:func:`binaccel.bench.cpu.cpu_timings`): float torch,
  onnxruntime (1 and all threads), Brevitas, the packed numpy path, batch 1 and 64;
  ``ratio_fpga_over_cpu_best`` is FPGA time over the fastest of them.

Networks the build cannot run (full M-Filter MCN: not in this datapath) are listed with the compiler's reason.
Writes ``dp.json``, ``dp.md`` and ``dp_speed.png`` to ``--out`` (default ``bench/dp`` of the build
folder), whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from binaccel.hw.dp.synth import ULX3S_BUILD, plan_sha256_dp
from binaccel.sim.dp import run_model
from binaccel.sw import dpprog, zoo
from binaccel.sw.atomic import write_json_atomic, write_text_atomic
from binaccel.sw.data import load_mnist
from binaccel.sw.hwif.dp import DpParams
from binaccel.sw.link import DEFAULT_BAUD
from binaccel.sw.paths import build_dir

from .cpu import cpu_timings
from .linktime import dp_link
from .networks import MNIST_BENCH_MODELS, mnist_models

__all__ = ["bitstream", "run_dp_bench", "main"]


def bitstream(board: str = "ulx3s", params: dict | None = None, *, root=None) -> dict | None:
    """The fastest build of ``params`` (default :data:`ULX3S_BUILD`) among the dp synthesis reports
    of ``board`` in the build folder that meets its clock: ``{"clock_mhz", "fmax_mhz", "luts",
    "luts_total", "ffs", "brams", "dsps", "plan_sha256", "report"}``; None if there is none."""
    want = DpParams(**(params or ULX3S_BUILD)).as_dict()
    root = Path(root) if root is not None else build_dir("synth", board)
    best = None
    for path in sorted(root.glob("dp-*/report.json")):
        try:
            rep = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        clk = rep.get("accel_clock") or {}
        if not (rep.get("fits") and clk.get("met")):
            continue
        try:
            same = DpParams(**(rep.get("params") or {})).as_dict() == want
        except (TypeError, ValueError):
            same = False
        if not same:
            continue
        util = rep.get("utilization") or {}
        entry = {"clock_mhz": round(rep["clk_hz"] / 1e6, 4), "fmax_mhz": clk.get("fmax_mhz"),
                 "luts": (util.get("LUT") or {}).get("used"), "luts_total": (util.get("LUT") or {}).get("total"),
                 "ffs": (util.get("FF") or {}).get("used"), "brams": (util.get("BRAM") or {}).get("used"),
                 "dsps": (util.get("DSP") or {}).get("used"), "plan_sha256": rep.get("plan_sha256"),
                 "report": str(path)}
        if best is None or entry["clock_mhz"] > best["clock_mhz"]:
            best = entry
    return best


def _models(args, log):
    if args.zoo:
        return {name: (zoo.untrained_model(name), None, f"zoo:{name} (untrained)") for name in args.zoo}
    found = mnist_models(log=log)
    if found:
        return {k: (v[0], v[1], str(v[2])) for k, v in found.items()}
    log("[dp-bench] no trained MNIST model in the build folder (binaccel demo makes them): the untrained "
        "zoo networks")
    return {name: (zoo.untrained_model(name), None, f"zoo:{name} (untrained)") for name in MNIST_BENCH_MODELS}


def run_dp_bench(args, log=print) -> dict:
    params = DpParams(**ULX3S_BUILD)
    data = load_mnist()
    images = data.x_test[:args.images]
    bit = bitstream("ulx3s")
    if bit:
        # the bitstream is this checkout's gateware when its build plan is the one made now
        bit["gateware_current"] = bit["plan_sha256"] == plan_sha256_dp("ulx3s", bit["clock_mhz"])
    board = {"board": "ulx3s", "design": "dp+uart", "params": params.as_dict(),
             "macs_per_cycle": params.rows * params.cols * params.word,
             "bitstream": bit, "bitstream_mhz": bit["clock_mhz"] if bit else None}
    if bit and bit["luts"]:
        board["luts_per_mac"] = bit["luts"] / board["macs_per_cycle"]
    if not bit:
        board["note"] = ("no ULX3S bitstream of this build meets timing in the build folder: "
                         "python -m binaccel.hw.dp.synth --board ulx3s --close-timing")
    nets = {}
    for name, (model, ckpt, source) in _models(args, log).items():
        try:
            prog = dpprog.compile_model(model, params)
        except dpprog.DpFitError as exc:
            log(f"[dp-bench] {name}: does not run on this build: {exc}")
            nets[name] = {"source": source, "fits": False, "reason": str(exc)}
            continue
        log(f"[dp-bench] {name}: {len(images)} images on the fast path")
        run = run_model(model, images, params=params)
        rec = dict(run.record)
        fpga_s = rec["cycles_per_image"] / (bit["clock_mhz"] * 1e6) if bit else None
        link = dp_link(prog, model, DEFAULT_BAUD)
        with tempfile.TemporaryDirectory() as tmp:
            cpu = cpu_timings(model, images=images, batches=(1, 64), warmup=args.warmup, reps=args.reps, log=log,
                              onnx_path=Path(tmp) / f"{name}.onnx")
        cpu.pop("onnx", None)
        best1 = cpu["1"]["best"]
        nets[name] = {
            "source": source, "fits": True, **{k: rec[k] for k in ("exact", "cycles_per_image", "utilisation",
                                                                    "utilisation_binary_conv", "layers")},
            "fpga_bitstream_s_per_image": fpga_s, "link": link, "link_s_per_image": link["link_s_per_image"],
            "end_to_end_s_per_image": (link["link_s_per_image"] + fpga_s) if fpga_s is not None else None,
            "cpu": {n: {k: (v["s_per_image"] if isinstance(v, dict) and "s_per_image" in v else v)
                        for k, v in e.items()} for n, e in cpu.items()},
            "cpu_best_s_per_image": best1["s_per_image"], "cpu_best_runtime": best1["runtime"],
            "ratio_fpga_over_cpu_best": (fpga_s / best1["s_per_image"]) if fpga_s is not None else None,
        }
    return {"format": "binaccel-dp-bench", "version": 1, "board": board, "networks": nets,
            "images": int(len(images)), "baud": DEFAULT_BAUD}


def render_markdown(res: dict) -> str:
    b = res["board"]
    lines = ["# Pipelined accelerator bench (ULX3S)", ""]
    if b["bitstream"]:
        bb = b["bitstream"]
        lines += [f"Bitstream meeting timing: {bb['clock_mhz']:g} MHz (fmax {bb['fmax_mhz']} MHz), "
                  f"{bb['luts']} LUT4 of {bb['luts_total']} ({b.get('luts_per_mac', 0):.1f} per binary MAC at "
                  f"{b['macs_per_cycle']} MACs/cycle), {bb['ffs']} FF, {bb['brams']} DP16KD, {bb['dsps']} MULT18; "
                  f"plan {str(bb['plan_sha256'])[:8]}"
                  f"{'' if bb.get('gateware_current', True) else ' (made from other gateware than this checkout)'}.",
                  ""]
    else:
        lines += [f"No bitstream meeting timing: {b['note']}", ""]
    lines += ["| network | exact | cycles/image | util. binary conv | util. network | FPGA us/image | "
              "link ms/image | CPU best us/image | FPGA / CPU best |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in res["networks"].items():
        if not e["fits"]:
            lines.append(f"| {name} | does not run: {e['reason']} | | | | | | | |")
            continue
        fp = e["fpga_bitstream_s_per_image"]
        ubc = e["utilisation_binary_conv"]
        ratio = e["ratio_fpga_over_cpu_best"]
        lines.append(f"| {name} | {e['exact']['matched']}/{e['exact']['checked']} | {e['cycles_per_image']:.0f} | "
                     f"{'' if ubc is None else f'{100 * ubc:.1f} %'} | {100 * e['utilisation']:.1f} % | "
                     f"{'' if fp is None else f'{fp * 1e6:.2f}'} | {e['link_s_per_image'] * 1e3:.2f} | "
                     f"{e['cpu_best_s_per_image'] * 1e6:.1f} ({e['cpu_best_runtime']}) | "
                     f"{'' if ratio is None else f'{ratio:.3f}'} |")
    return "\n".join(lines) + "\n"


def make_plot(res: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = {k: v for k, v in res["networks"].items() if v["fits"]}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(nets))
    series = [("FPGA (bitstream clock)", "fpga_bitstream_s_per_image"), ("CPU best, batch 1", "cpu_best_s_per_image"),
              ("end to end (3 Mbaud link)", "end_to_end_s_per_image")]
    for i, (label, key) in enumerate(series):
        vals = [(e[key] or 0) * 1e6 for e in nets.values()]
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=label)
    ax.set_xticks(x, list(nets))
    ax.set_yscale("log")
    ax.set_ylabel("us per image")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.bench.dp",
                                 description="Bench the pipelined accelerator's ULX3S build against the CPU.")
    ap.add_argument("--images", type=int, default=200, help="MNIST test images checked (default 200)")
    ap.add_argument("--zoo", nargs="+", choices=MNIST_BENCH_MODELS, default=None,
                    help="untrained zoo networks instead of the trained models")
    ap.add_argument("--warmup", type=int, default=2, help="CPU warm-up runs (default 2)")
    ap.add_argument("--reps", type=int, default=5, help="CPU timed runs (default 5)")
    ap.add_argument("--out", default=None, help="output folder (default bench/dp of the build folder)")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images must be 1 or more, got {args.images}")
    out = Path(args.out) if args.out else build_dir("bench", "dp")
    res = run_dp_bench(args)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".png", dir=out, delete=False) as tmp:
        make_plot(res, tmp.name)
    Path(tmp.name).replace(out / "dp_speed.png")
    write_json_atomic(out / "dp.json", res)
    write_text_atomic(out / "dp.md", render_markdown(res))
    print(render_markdown(res), end="")
    print(f"wrote {out / 'dp.json'}, {out / 'dp.md'}, {out / 'dp_speed.png'}")
    bad = [n for n, e in res["networks"].items() if e["fits"] and e["exact"]["matched"] != e["exact"]["checked"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
