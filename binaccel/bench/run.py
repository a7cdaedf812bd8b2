"""The bench run: FPGA cycles and time per image against CPU runtime, per network and board.

For each network (the trained MNIST models, and the paper-scale CIFAR shapes of
:mod:`binaccel.sw.netzoo`) and each board (its board design: the pipelined accelerator where it has
a timing-met bitstream, else the largest array of the accelerator + UART link + PLL that fits it
and its fmax; where no accelerator build fits, the engine + UART link design, the host doing
im2col and pooling, or else the engine-only figures; see :func:`binaccel.bench.boards.load_boards`):

* **FPGA**: cycles per image (:mod:`binaccel.bench.cycles`: the pipelined accelerator's
  simulation, the accelerator simulation, the simulation of the board's engine build, or the
  engine's exact cycle model; the JSON says which, ``cycles_source``), time per image = cycles /
  fmax, utilisation = ideal cycles / cycles. On the pipelined accelerator a network its compiler
  refuses (:class:`binaccel.sw.dpprog.DpFitError`, e.g. MCN) gets ``does_not_run`` with the reason
  and no figures; the others are simulated on ``accel_images`` images and their logits checked
  against intref (a difference raises).
* **CPU**, measured in the same run on this machine (:mod:`binaccel.bench.cpu`): float PyTorch,
  the same float model exported to ONNX and run by onnxruntime (1 thread and all threads),
  Brevitas and the bit-packed numpy path; ``cpu_best_*`` is the fastest deployable one, and
  ``ratio_fpga_over_cpu_best`` the headline ratio.
* **Link** (:mod:`binaccel.bench.linktime`): the bytes of one image on the host link (framed
  RUN command or layer runs in, results out) and their time at the board's baud;
  ``end_to_end_s_per_image`` = link time + FPGA time at the bitstream's clock.

:func:`run_bench` writes ``bench.json``, ``bench.md`` (:mod:`binaccel.bench.report`) and the plots
into the output folder (default ``bench`` of the build folder).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from binaccel.hw.sweep import PIPELINED, bitstream_clock_mhz, params_for_models
from binaccel.sw import dpprog, netzoo
from binaccel.sw.atomic import write_json_atomic, write_text_atomic
from binaccel.sw.data import load_mnist
from binaccel.sw.hwif import EngineParams
from binaccel.sw.hwif.dp import DpParams
from binaccel.sw.link import DEFAULT_BAUD
from binaccel.sw.paths import build_dir
from binaccel.sw.train import load_checkpoint

from .boards import load_boards
from .cpu import check_packed, cpu_timings
from .linktime import accel_link, dp_link, engine_link
from .cycles import (ACCEL_SOURCE, DP_SOURCE, ENGINE_SIM_SOURCE, MODEL_SOURCE, SOURCE_LABEL, accel_cycles,
                     accel_params_for, dp_cycles, engine_sim_cycles, network_cycles, pe_stages_of)
from .networks import MNIST_BENCH_MODELS, load_model_files, mnist_models
from .report import make_plots, render_markdown

__all__ = ["run_bench", "bench_dir", "BATCHES", "CYCLES"]

#: Batch sizes of the bench (images per layer run).
BATCHES = (1, 64)

#: The cycle sources ``run_bench`` can be asked for: ``accel`` (the simulations: the accelerator's,
#: or the engine build's for a board running the engine behind the link) or ``model`` (the cycle model).
CYCLES = ("accel", "model")


def bench_dir():
    """The bench's output folder: ``bench`` of the build folder."""
    return build_dir("bench")


def run_bench(*, out_dir=None, boards=None, networks=None, batches=BATCHES, warmup=2, reps=5,
              mnist_dirs=None, train=True, seed=0, plots=True, extra_models=None, cycles="accel",
              accel_images=4, accel_params=None, threads=1, model_files=None, ort_threads=None,
              baud=DEFAULT_BAUD, log=print) -> dict:
    """Run the bench (module docstring) and write ``bench.json``, ``bench.md`` and plots into
    ``out_dir`` (atomically; default :func:`bench_dir`). ``boards``: ``{board: summary}`` (default :func:`load_boards`);
    ``networks``: names to include (MNIST model names and :mod:`netzoo` names; default all);
    ``extra_models``: further ``{name: IntModel}`` (random weights, no checkpoint); ``cycles``:
    ``"accel"`` (default: the accelerator simulation, or the engine build's for a board running
    the engine behind the link) or ``"model"`` (the engine cycle model); ``accel_images``: images simulated per network
    (half as many, at least 2, for the paper-scale ones); ``accel_params``: the accelerator build
    to simulate (an AccelParams for every board, or ``{board: AccelParams}``; default: per board,
    :func:`accel_params_for`); ``model_files``: ``{name: path of a .bnm}`` to bench instead of
    searching ``mnist_dirs`` (network ``mnist_<name>`` with the MNIST test digits when the input is
    1x28x28, else ``<name>`` with random images; the Brevitas timing uses ``<name>.pt`` next to the
    file or in ``../checkpoints/`` when present);
    ``threads``: torch intra-op threads for the CPU timings (default 1: on a shared machine a
    single thread gives stable figures; numpy's packed path is single-threaded anyway);
    ``ort_threads``: the intra-op threads of the second onnxruntime timing (default ``os.cpu_count()``;
    the first has 1); ``baud``: the host link's bit rate for the link figures (default
    :data:`binaccel.sw.link.DEFAULT_BAUD`, the board tops' default; a board summary's own ``baud``
    wins)."""

    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _run_bench(out_dir=out_dir, boards=boards, networks=networks, batches=batches, warmup=warmup,
                          reps=reps, mnist_dirs=mnist_dirs, train=train, seed=seed, plots=plots,
                          extra_models=extra_models, cycles=cycles, accel_images=accel_images,
                          accel_params=accel_params, model_files=model_files,
                          ort_threads=int(ort_threads if ort_threads is not None else (os.cpu_count() or 1)),
                          baud=baud, log=log)
    finally:
        torch.set_num_threads(saved_threads)


def _run_bench(*, out_dir, boards, networks, batches, warmup, reps, mnist_dirs, train, seed, plots,
               extra_models, cycles, accel_images, accel_params, model_files, ort_threads, baud, log):
    out_dir = Path(bench_dir() if out_dir is None else out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    boards = load_boards() if boards is None else boards
    if not boards:
        raise ValueError("no board with a fitting engine array: run `binaccel synth` first")
    rng = np.random.default_rng(seed)
    nets = {}
    want = set(networks) if networks else None
    want_mnist = want is None or any(w.startswith("mnist_") or w in MNIST_BENCH_MODELS for w in want)
    if model_files is not None:
        mnist, extra_files = load_model_files(model_files)
        for name, (im, ckpt, bnm) in extra_files.items():
            nets[name] = {"model": im, "checkpoint": ckpt, "file": bnm, "family": "extra"}
    else:
        mnist = (mnist_models(dirs=mnist_dirs, train_dir=build_dir("bench", "models") if train else None, log=log)
                 if want_mnist else {})
    if want is not None:
        mnist = {k: v for k, v in mnist.items() if f"mnist_{k}" in want or k in want}
    for name, (im, ckpt, bnm) in mnist.items():
        if want is None or f"mnist_{name}" in want or name in want:
            nets[f"mnist_{name}"] = {"model": im, "checkpoint": ckpt, "file": bnm, "family": "mnist"}
    for name in netzoo.names():
        if want is None or name in want:
            nets[name] = {"model": netzoo.build(name, seed=seed), "checkpoint": None, "file": None,
                          "family": "paper"}
    for name, im in (extra_models or {}).items():
        nets[name] = {"model": im, "checkpoint": None, "file": None, "family": "extra"}
    if want:
        missing = want - set(nets) - {n[len("mnist_"):] for n in nets if n.startswith("mnist_")}
        if missing:
            raise ValueError(f"unknown or unavailable network(s): {', '.join(sorted(missing))}")

    if cycles not in CYCLES:
        raise ValueError(f"cycles: expected 'accel' or 'model', got {cycles!r}")
    use_accel = cycles == "accel"
    source = ACCEL_SOURCE if use_accel else MODEL_SOURCE
    runnable = [v["model"] for v in nets.values() if all(l.w_bits == 1 for l in v["model"].layers)]
    accel_builds = {}

    def accel_build_params(bname, b):
        """One accelerator build per board: its array and PE stages, buffers for the largest runnable
        network."""
        if bname not in accel_builds:
            given = accel_params.get(bname) if isinstance(accel_params, dict) else accel_params
            accel_builds[bname] = (given if given is not None
                                   else accel_params_for(runnable, b["array"], images=max(batches),
                                                         skip_errors=True, pe_stages=pe_stages_of(b)))
        return accel_builds[bname]

    result = {
        "format": "binaccel-bench", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cycles_source": source,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                    "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "onnxruntime": ort.__version__, "onnxruntime_threads": ort_threads,
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_start": list(os.getloadavg())},
        "timing": {"warmup": warmup, "reps": reps, "statistic": "median", "batches": list(batches)},
        "boards": {}, "networks": {},
        "notes": [
            "FPGA time: fpga_bitstream_s_per_image = cycles per image / the clock of the board's timing-met "
            "bitstream (boards.<b>.bitstream_mhz), the time every ratio uses (null without such a bitstream); "
            "fpga_s_per_image = cycles per image / nextpnr fmax of the synthesized build, what the same design "
            "would take at its fmax (boards.<b>.design: "
            "accel+uart = the accelerator behind the UART link with PLL, the real board design; engine+uart = "
            "the layer engine behind the same link, the board design where no accelerator build fits (the host "
            "does im2col, pooling and the maps between layers; its cycles are its engine build's, simulated, or "
            "the engine cycle model's); engine = the bare engine only, the last fallback); host link transfers "
            "are not included in fpga_s_per_image / fpga_bitstream_s_per_image: link_s_per_image is the host link's time "
            "per image at the board's baud (framed bytes in and results out, 10 bits per byte), end_to_end_s_per_image "
            "= link_s_per_image + fpga_bitstream_s_per_image.",
            "cpu_best_s_per_image: the fastest of the deployable CPU runtimes measured here (torch float, onnxruntime "
            "with 1 and with all threads on the float model's ONNX export, the bit-packed numpy path; Brevitas is "
            "not one), named by cpu_best_runtime; ratio_fpga_over_cpu_best = fpga_bitstream_s_per_image / "
            "cpu_best_s_per_image is the headline ratio.",
            "cycles_source per network and board: the accelerator simulation (binaccel.sim.top: whole network "
            "on chip, one RUN per image, image load and on-chip im2col included; batch 64 = throughput over "
            "the simulated images), for a board whose design is the engine + UART link the simulation of its "
            "engine build (layer runs on the batch of n images, host-side im2col/pooling not counted; the "
            "networks that build can run), or the engine cycle model (the same layer runs, exact against the "
            "engine simulation). engine_model always holds the latter.",
            "Paper-scale networks are random-weight IntModels of the papers' shapes cut to what the engine "
            "runs (see cuts); their cycles assume a build of the same array with the widths they need "
            "(params_needed), which may differ from the synthesized build's (build_params).",
        ],
    }
    for bname, b in boards.items():
        board_baud = int(b.get("baud") or baud)
        result["boards"][bname] = {"baud": board_baud} | {k: b.get(k) for k in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "dsps",
                                                        "dsps_total", "array", "target_mhz", "met", "params",
                                                        "seed", "report", "design", "fallback",
                                                        "inputs_sha256", "plan_sha256", "gateware_current",
                                                        "closure", "timing_met", "clock_mhz")}
        result["boards"][bname]["bitstream_mhz"] = bitstream_clock_mhz(b)
        if b.get("datapath") == PIPELINED:
            result["boards"][bname].update(datapath=PIPELINED, freq_mhz=b.get("freq_mhz"),
                                           macs_per_cycle=b.get("macs_per_cycle"),
                                           checkout_plan_sha256=b.get("checkout_plan_sha256"))
    if any(b.get("datapath") == PIPELINED for b in boards.values()):
        result["notes"].append(
            "A board whose design is the pipelined accelerator (boards.<b>.datapath \"pipelined\", binaccel.hw.dp: "
            "the whole network on chip behind the UART link): its cycles are the simulation's (cycles_source: "
            "binaccel.sim.dp, one RUN per image, the image load included) on accel_images images whose logits are "
            "checked against intref (exact: checked, matched); the design runs one image per RUN and has no batching, "
            "so batch 64 is 64 RUNs and its cycles per image equal batch 1's (the CPU figures are those of each "
            "batch); fpga_bitstream_s_per_image is at its timing-met bitstream's clock (boards.<b>.bitstream_mhz), "
            "fpga_s_per_image at that build's fmax; a network its compiler refuses (binaccel.sw.dpprog.DpFitError) "
            "has does_not_run and no figures.")
    images_cache = {}
    for net_name, info in nets.items():
        model = info["model"]
        log(f"[bench] {net_name}: {len(model.layers)} layers, input {tuple(model.input_shape)}")
        shape = tuple(model.input_shape)
        if shape not in images_cache:
            if info["family"] == "mnist":
                images_cache[shape] = load_mnist().x_test[:max(batches)].astype(np.uint8)
            else:
                images_cache[shape] = rng.integers(0, 256, size=(max(batches), *shape), dtype=np.int64).astype(np.uint8)
        images = images_cache[shape]
        if images.ndim == 3:
            images = images[:, None]
        entry = {"family": info["family"], "input_shape": list(shape), "input_repeat": model.input_repeat,
                 "layers": [l.name for l in model.layers],
                 "binary_macs_per_image": int(sum(l.binary_macs * l.in_bits for l in model.layers)),
                 "cuts": list(model.meta.get("cuts", [])) if isinstance(model.meta, dict) else [],
                 "paper": model.meta.get("paper") if isinstance(model.meta, dict) else None,
                 "model_file": str(info["file"]) if info["file"] else None,
                 "checkpoint": str(info["checkpoint"]) if info["checkpoint"] else None}
        unsupported = [l.name for l in model.layers if l.w_bits != 1]
        if unsupported:
            entry["skipped"] = f"layers with w_bits != 1 ({', '.join(unsupported)}): not run by the engine"
            result["networks"][net_name] = entry
            log(f"[bench]   skipped: {entry['skipped']}")
            continue
        entry["packed_exact"] = bool(check_packed(model, images[:2]))
        if not entry["packed_exact"]:
            raise AssertionError(f"{net_name}: PackedNet differs from intref")
        brev = None
        if info["checkpoint"] is not None:
            brev = load_checkpoint(info["checkpoint"])
            entry["brevitas_model"] = f"trained checkpoint {info['checkpoint']}"
        else:
            entry["brevitas_model"] = "Brevitas binary layers of the same shapes (random weights)"
        need = params_for_models([model], images=max(batches))
        entry["params_needed"] = need
        cpu = cpu_timings(model, brevitas_model=brev, images=images, batches=batches, warmup=warmup,
                          reps=reps, log=log, onnx_path=out_dir / "onnx" / f"{net_name}.onnx",
                          ort_threads=ort_threads)
        entry["cpu"] = cpu
        for bname, b in boards.items():
            if b.get("datapath") == PIPELINED:
                k = accel_images if info["family"] != "paper" else max(2, accel_images // 2)
                entry[bname] = _dp_board_entry(bname, model, info["family"], images, k, b, cpu, batches,
                                               result["boards"][bname]["baud"], rng, log)
                continue
            per = {"array": b["array"], "fmax_mhz": b["fmax_mhz"], "batch": {}, "engine_model": {}}
            bp = b.get("params") or {}
            per["build_supports"] = all(need[k] <= bp.get(k, 0) for k in need) if bp else None
            def run_accel():
                ap = accel_build_params(bname, b)
                k = accel_images if info["family"] != "paper" else max(2, accel_images // 2)
                log(f"[bench]   {bname}: accelerator simulation of {k} image(s), build {ap.tag} ...")
                return accel_cycles(model, images[:k], ap)

            def run_engine():
                ep = EngineParams(**{k: v for k, v in bp.items() if k in EngineParams.names()})
                out = {}
                for n in batches:
                    log(f"[bench]   {bname}: engine simulation of a batch of {n}, build {ep.tag} ...")
                    out[n] = engine_sim_cycles(model, images[:n], ep)
                return out

            sim, esim = None, {}
            if use_accel and b.get("design") != "engine+uart":   # (that board runs layers, not networks)
                sim = _simulated(per, "accel_error", f"{bname}: accelerator simulation", run_accel, log)
                if sim is not None:
                    per["accel_sim"] = {kk: sim[kk] for kk in ("cycles_per_image", "throughput_cycles_per_image",
                                                               "images", "sim_wall_s", "params", "total_cycles",
                                                               "logits_exact")}
            if use_accel and b.get("design") == "engine+uart" and per["build_supports"]:
                # the board runs the engine: simulate its build on each batch (the networks it can run)
                esim = _simulated(per, "engine_sim_error", f"{bname}: engine simulation", run_engine, log) or {}
                if esim:
                    per["engine_sim"] = {str(n): {k: v for k, v in r.items() if k != "layers"} for n, r in esim.items()}
            per["cycles_source"] = (ACCEL_SOURCE if sim is not None else ENGINE_SIM_SOURCE if esim else MODEL_SOURCE)
            link = _link(per, model, images[:1], b, need, result["boards"][bname]["baud"],
                         lambda: accel_build_params(bname, b), log)
            for n in batches:
                cyc = network_cycles(model, b["array"], n=n, params={**need, "pe_stages": pe_stages_of(b)})
                per["engine_model"][str(n)] = {"cycles_per_image": cyc["cycles_per_image"],
                                               "utilisation": cyc["utilisation"], "layers": cyc["layers"]}
                ideal_img = cyc["ideal_cycles"] / n
                if n in esim:
                    cyc = esim[n]
                    cpi, layers = cyc["cycles_per_image"], cyc["layers"]
                elif sim is not None:
                    cpi = sim["cycles_per_image"]
                    if n > 1 and sim["throughput_cycles_per_image"]:
                        cpi = sim["throughput_cycles_per_image"]
                    layers = sim["layers"]
                else:
                    cpi, layers = cyc["cycles_per_image"], cyc["layers"]
                fpga_s = cpi / (b["fmax_mhz"] * 1e6) if b.get("fmax_mhz") else None
                bit_mhz = bitstream_clock_mhz(b)
                c = cpu[str(n)]
                bit_s = cpi / (bit_mhz * 1e6) if bit_mhz else None
                link_s = link["link_s_per_image"] if link else None
                per["batch"][str(n)] = {
                    "cycles_per_image": cpi, "ideal_cycles_per_image": ideal_img,
                    "utilisation": ideal_img / cpi if cpi else 0.0, "fpga_s_per_image": fpga_s,
                    # at the clock of the bitstream that meets timing (None: none recorded)
                    "fpga_bitstream_s_per_image": bit_s,
                    **_time_fields(c, fpga_s, bit_s, link_s, result["boards"][bname]["baud"]),
                    "layers": layers,
                }
            head = per["batch"][str(batches[0])]
            for key in _HEAD_KEYS:
                per[key] = head[key]
            per["headline_batch"] = batches[0]
            entry[bname] = per
            clock = f"{bit_mhz:g} MHz (bitstream)" if bit_mhz else "no timing-met bitstream"
            log(f"[bench]   {bname} {b['array']['rows']}x{b['array']['cols']}x{b['array']['word']} at {clock}, "
                f"fmax {b['fmax_mhz']} MHz ({SOURCE_LABEL[per['cycles_source']]}): " + ", ".join(
                    f"batch {n}: {per['batch'][str(n)]['cycles_per_image']:.0f} cycles/img, "
                    f"{_log_ms(per['batch'][str(n)]['fpga_bitstream_s_per_image'])} ms/img, util "
                    f"{100 * per['batch'][str(n)]['utilisation']:.1f}%, FPGA/CPU best "
                    f"({per['batch'][str(n)]['cpu_best_runtime']}) "
                    f"{_log_ratio(per['batch'][str(n)]['ratio_fpga_over_cpu_best'])}" for n in batches))
        result["networks"][net_name] = entry
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    write_json_atomic(out_dir / "bench.json", result)
    write_text_atomic(out_dir / "bench.md", render_markdown(result))
    if plots:
        result["plots"] = make_plots(result, out_dir)
        write_json_atomic(out_dir / "bench.json", result)
    return result


#: Per-board keys of a network's entry that repeat its headline batch's figures.
_HEAD_KEYS = ("fpga_s_per_image", "fpga_bitstream_s_per_image", "cpu_torch_s_per_image", "cpu_brevitas_s_per_image",
              "cpu_packed_s_per_image", "utilisation", "cycles_per_image", "ratio_fpga_over_torch",
              "ratio_fpga_over_packed", "ratio_fpga_over_brevitas", "cpu_onnxruntime_t1_s_per_image",
              "cpu_onnxruntime_tall_s_per_image", "cpu_best_s_per_image", "cpu_best_runtime",
              "ratio_fpga_over_cpu_best", "link_s_per_image", "end_to_end_s_per_image",
              "ratio_end_to_end_over_cpu_best")


def _log_ms(s):
    """A time per image in the progress log, in ms ("-": none)."""
    return "-" if s is None else f"{s * 1e3:.3f}"


def _log_ratio(r):
    """A ratio in the progress log ("-": none)."""
    return "-" if r is None else f"{r:.3g}"


def _time_fields(c: dict, fpga_s, bit_s, link_s, baud: int) -> dict:
    """The CPU, ratio and link fields of a batch entry: ``c`` the CPU timings of that batch,
    ``fpga_s``/``bit_s`` the FPGA time at the fmax / the bitstream's clock, ``link_s`` the link
    time (None where there is none). Every ratio is the FPGA time at the clock of the timing-met
    bitstream (None without one: an fmax is not a clock a board runs at)."""
    best = c["best"]["s_per_image"]
    e2e = link_s + bit_s if link_s is not None and bit_s is not None else None
    fpga_s = bit_s
    return {
        "cpu_torch_s_per_image": c["torch_float"]["s_per_image"],
        "cpu_brevitas_s_per_image": c["brevitas"]["s_per_image"],
        "cpu_packed_s_per_image": c["packed"]["s_per_image"],
        "ratio_fpga_over_torch": fpga_s / c["torch_float"]["s_per_image"] if fpga_s else None,
        "ratio_fpga_over_brevitas": fpga_s / c["brevitas"]["s_per_image"] if fpga_s else None,
        "ratio_fpga_over_packed": fpga_s / c["packed"]["s_per_image"] if fpga_s else None,
        "cpu_onnxruntime_t1_s_per_image": c["onnxruntime_t1"]["s_per_image"],
        "cpu_onnxruntime_tall_s_per_image": c["onnxruntime_tall"]["s_per_image"],
        "cpu_onnxruntime_tall_threads": c["onnxruntime_tall"]["threads"],
        "cpu_best_s_per_image": best, "cpu_best_runtime": c["best"]["runtime"],
        "ratio_fpga_over_cpu_best": fpga_s / best if fpga_s else None,
        "baud": baud, "link_s_per_image": link_s,
        "end_to_end_s_per_image": e2e,
        "ratio_end_to_end_over_cpu_best": e2e / best if e2e is not None else None,
    }


def _dp_images(family: str, images: np.ndarray, k: int, shape, rng) -> np.ndarray:
    """``k`` images for the pipelined accelerator's simulation: the bench's own first ``k`` when it
    has that many, else (``--accel-images`` above the largest batch) more of the same kind: MNIST test
    digits, or random pixels."""
    if k <= len(images):
        return images[:k]
    if family == "mnist":
        more = load_mnist().x_test[:k].astype(np.uint8)
    else:
        more = rng.integers(0, 256, size=(k, *shape), dtype=np.int64).astype(np.uint8)
    return more[:, None] if more.ndim == 3 else more


def _dp_board_entry(bname: str, model, family: str, images, k: int, b: dict, cpu: dict, batches, baud: int,
                    rng, log) -> dict:
    """A network's entry for a board whose design is the pipelined accelerator: ``does_not_run``
    (the compiler's one-line reason) when the build cannot run it; else the simulation of ``k``
    images (:func:`binaccel.bench.cycles.dp_cycles`, logits checked against intref), the link
    figures of one image's RUN command and reply (:func:`binaccel.bench.linktime.dp_link`), and per
    batch the same cycles per image (one RUN per image) against that batch's CPU figures."""
    params = DpParams(**b["params"])
    bit_mhz = bitstream_clock_mhz(b)
    per = {"array": b["array"], "fmax_mhz": b["fmax_mhz"], "bitstream_mhz": bit_mhz, "datapath": PIPELINED,
           "batch": {}}
    try:
        prog = dpprog.compile_model(model, params)
    except dpprog.DpFitError as exc:
        reason = " ".join(str(exc).split())
        per.update(does_not_run=reason, build_supports=False, batch={})
        log(f"[bench]   {bname}: does not run on the pipelined accelerator: {reason}")
        return per
    per["build_supports"] = True
    imgs = _dp_images(family, images, k, tuple(model.input_shape), rng)
    log(f"[bench]   {bname}: pipelined accelerator simulation of {len(imgs)} image(s), build 16x{params.cols}x32 ...")
    sim = dp_cycles(model, imgs, params)       # raises AssertionError on a logit that differs from intref
    per["cycles_source"] = DP_SOURCE
    per["exact"] = dict(sim["exact"])
    per["dp_sim"] = {key: sim.get(key) for key in ("images", "cycles_per_image", "utilisation",
                                                     "utilisation_binary_conv", "ideal_cycles_per_image",
                                                     "sim_wall_s", "params", "source")}
    link = dp_link(prog, model, baud)
    per["link"] = link
    cpi = float(sim["cycles_per_image"])
    for n in batches:
        c = cpu[str(n)]
        fpga_s = cpi / (b["fmax_mhz"] * 1e6) if b.get("fmax_mhz") else None
        bit_s = cpi / (bit_mhz * 1e6) if bit_mhz else None
        link_s = link["link_s_per_image"]
        per["batch"][str(n)] = {
            "cycles_per_image": cpi, "ideal_cycles_per_image": sim["ideal_cycles_per_image"],
            "utilisation": float(sim["utilisation"]), "utilisation_binary_conv": sim.get("utilisation_binary_conv"),
            "runs": n, "exact": dict(sim["exact"]),
            "fpga_s_per_image": fpga_s, "fpga_bitstream_s_per_image": bit_s,
            **_time_fields(c, fpga_s, bit_s, link_s, baud),
            "layers": sim["layers"],
        }
    head = per["batch"][str(batches[0])]
    for key in _HEAD_KEYS:
        per[key] = head[key]
    per["headline_batch"] = batches[0]
    clock = "no timing-met bitstream" if bit_mhz is None else f"{bit_mhz:g} MHz (bitstream)"
    log(f"[bench]   {bname} 16x{params.cols}x32 pipelined at {clock}, fmax {b['fmax_mhz']} MHz: "
        f"{cpi:.0f} cycles/img, {sim['exact']['matched']}/{sim['exact']['checked']} exact, util "
        f"{100 * sim['utilisation']:.1f}%, FPGA/CPU best ({head['cpu_best_runtime']}) "
        + _log_ratio(head["ratio_fpga_over_cpu_best"]))
    return per


def _link(per: dict, model, images, b: dict, need: dict, baud: int, accel_build, log):
    """The host link's figures of one image for board ``b``'s design (the engine's: of a batch of ``images``) (:mod:`binaccel.bench.linktime`),
    into ``per["link"]``; None (the reason in ``per["link_error"]``) when the design has no link
    (engine only) or the network does not run on the build the cycles are for."""
    design = b.get("design")
    try:
        if design == "engine+uart":
            bp = b.get("params") or {}
            fields = {**{k: v for k, v in bp.items() if k in EngineParams.names()},
                      **{k: max(v, bp.get(k, 0)) for k, v in need.items() if k in EngineParams.names()},
                      **b["array"]}
            link = engine_link(model, images, EngineParams(**fields), baud)
        elif design == "engine":
            per["link_error"] = "the engine-only design has no host link"
            return None
        else:
            link = accel_link(model, accel_build(), baud)
    except ValueError as exc:
        per["link_error"] = f"{type(exc).__name__}: {exc}"[:500]
        log(f"[bench]   link figures not available: {per['link_error']}")
        return None
    per["link"] = link
    return link


def _simulated(per: dict, error_key: str, what: str, run, log):
    """``run()``, or None when that simulation cannot run (the network does not fit the build, the
    build failed): the reason goes into ``per[error_key]`` and the log. A result that differs from
    intref (AssertionError) is raised."""
    try:
        return run()
    except Exception as exc:
        per[error_key] = f"{type(exc).__name__}: {exc}"[:500]
        log(f"[bench]   {what} not used: {per[error_key]}")
        if isinstance(exc, AssertionError):
            raise
        return None
