"""The demo's hardware section: trained models layer by layer on the Verilator-simulated engine.

For each trained model that the engine can run (binary weights everywhere), a few test images go
through the cocotb testbench (which itself fails on any output integer that differs from the numpy
reference); the measured cycles per layer are recorded next to the ideal cycles
(binary MACs / (rows x cols x word)) and compared with the analytic cycle model.
"""

from __future__ import annotations

import time

import numpy as np

from binaccel.commands.run import run_accelerator
from binaccel.hw.perf import layer_perf
from binaccel.sim.layer import run_model
from binaccel.sw import intref

__all__ = ["hardware_section", "accelerator_section", "DEMO_ARRAY", "HW_MODELS"]

DEMO_ARRAY = {"rows": 4, "cols": 4, "word": 32}
HW_MODELS = ("sign", "siman", "mcn", "mcn_a4", "mcn_a8", "mcn1")


def hardware_section(summary: dict, trained: dict, data, *, out_dir: str, log=print, n_images: int = 1,
                     array: dict = DEMO_ARRAY) -> None:
    rows, cols, word = array["rows"], array["cols"], array["word"]
    hw = {"array": dict(array), "images_per_model": n_images, "models": {}}
    lines = [f"Array: {rows} x {cols} PEs, {word}-bit words (engine simulated in Verilator through cocotb). "
             f"Cycles per layer for {n_images} test image(s), measured without idle/backpressure; ideal = binary MACs "
             f"(x input bits, bit-serial) / ({rows}x{cols}x{word}).", "",
             "| model | layer | cycles | ideal cycles | utilisation % | analytic model |",
             "|---|---|---:|---:|---:|:-:|"]
    images = data.x_test[:n_images]
    for name in HW_MODELS:
        if name not in trained:
            continue
        _, im = trained[name]
        t0 = time.time()
        outs, cycles = run_model(im, images, rows=rows, cols=cols, word=word, idle=0.0, backpressure=0.0)
        wall = time.time() - t0
        ref = intref.run_model(im, images)
        exact = all(np.array_equal(a, b) for a, b in zip(outs, ref))
        layers = []
        for layer, c in zip(im.layers, cycles):
            perf = layer_perf(layer, rows, cols, word, n=n_images, cycles=c)
            model_c = layer_perf(layer, rows, cols, word, n=n_images).cycles
            layers.append({"name": layer.name, "cycles": int(c), "ideal_cycles": perf.ideal,
                           "utilisation": perf.utilisation, "analytic_cycles": model_c})
            lines.append(f"| {name} | {layer.name} | {c} | {perf.ideal:.0f} | {100 * perf.utilisation:.1f} | "
                         f"{'=' if model_c == c else model_c} |")
        total = sum(l["cycles"] for l in layers)
        ideal = sum(l["ideal_cycles"] for l in layers)
        summary["models"][name]["layers"] = layers
        summary["models"][name]["hardware_sim"] = {
            "images": n_images, "exact": bool(exact), "cycles_per_image": total / n_images,
            "utilisation": ideal / total if total else 0.0, "wall_seconds": round(wall, 1)}
        hw["models"][name] = summary["models"][name]["hardware_sim"]
        log(f"{name:14s} on the simulated array: {total / n_images:.0f} cycles/image, "
            f"utilisation {100 * ideal / total:.1f}%, outputs {'equal' if exact else 'DIFFER FROM'} the reference "
            f"[{wall:.0f} s]")
        if not exact:
            raise AssertionError(f"{name}: simulated hardware output differs from the integer reference")
    hw["report_lines"] = lines
    summary["hardware"] = hw


#: Images per transport for the simulation-speed figures of the slow transports (the fast one runs
#: every image of the accelerator section).
SPEED_IMAGES = {"cocotb": 2, "uart": 2}


def accelerator_section(summary: dict, trained: dict, data, *, checkpoints: dict, model_files: dict,
                        n_images: int, log=print, progress=True, transports=("fast", "cocotb", "uart")) -> None:
    """Whole trained networks on the simulated accelerator, fed by the host driver: logits compared
    with the numpy reference and the Brevitas model per image. Every model runs ``n_images`` test
    images through the fast transport; the first model also runs a few images through each other
    transport in ``transports`` (the cocotb word streams, the UART link) for their exactness and
    simulation speed (``summary["sim_speed"][transport]``)."""
    speed, runs = {}, {}
    names = [n for n in HW_MODELS if n in trained]
    for name in names:
        r = run_accelerator(model_files[name], data.x_test[:n_images], data.y_test[:n_images], transport="fast",
                            checkpoint=checkpoints[name], progress=progress)
        summary["models"][name]["accelerator"] = {
            "checked": r["checked"], "matched": r["matched"], "test_accuracy": r["test_accuracy"],
            "cycles_per_image": r["cycles_per_image"], "utilisation": r["utilisation"],
            "layers": r["cycles_per_layer"], "transport": "fast"}
        speed.setdefault("fast", []).append(r)
        log(f"{name:14s} on the simulated accelerator: {r['matched']}/{r['checked']} images equal the golden model, "
            f"accuracy {r['test_accuracy']:.3f}, {r['cycles_per_image']:.0f} cycles/image, "
            f"utilisation {100 * r['utilisation']:.1f}%, {r['images_per_s']:.1f} images/s simulated")
        if r["matched"] != r["checked"]:
            raise AssertionError(f"{name}: accelerator logits differ from the golden model for "
                                 f"{r['checked'] - r['matched']} images")
    for t in transports:
        if t == "fast" or not names:
            continue
        name, k = names[0], SPEED_IMAGES.get(t, 2)
        log(f"{name:14s} through the {t} transport ({k} images; builds its simulation on first use) ...")
        r = run_accelerator(model_files[name], data.x_test[:k], data.y_test[:k], transport=t,
                            checkpoint=checkpoints[name], progress=False, batch=k)
        speed.setdefault(t, []).append(r)
        runs[t] = {"model": name, "checked": r["checked"], "matched": r["matched"],
                   "cycles_per_image": r["cycles_per_image"], **({"line_bytes": r["line_bytes"]} if "line_bytes" in r else {})}
        log(f"{name:14s} [{t}]: {r['matched']}/{r['checked']} images equal the golden model, "
            f"{r['sim_cycles_per_s']:.0f} cycles/s, {r['images_per_s']:.3f} images/s")
        if r["matched"] != r["checked"]:
            raise AssertionError(f"{name} [{t}]: accelerator logits differ from the golden model")
    summary["sim_speed"] = {t: {"cycles_per_s": float(np.mean([r["sim_cycles_per_s"] for r in v])),
                                "images_per_s": float(np.mean([r["images_per_s"] for r in v])),
                                "images": int(sum(r["checked"] for r in v))} for t, v in speed.items()}
    summary["accelerator_transports"] = runs
    lines = ["", f"Whole networks on the simulated accelerator (fast Verilator transport, first {n_images} test images):", "",
             "| model | images equal golden | accuracy % | cycles/image | utilisation % |", "|---|---:|---:|---:|---:|"]
    for name in HW_MODELS:
        a = summary["models"].get(name, {}).get("accelerator")
        if a:
            lines.append(f"| {name} | {a['matched']}/{a['checked']} | {100 * a['test_accuracy']:.1f} | "
                         f"{a['cycles_per_image']:.0f} | {100 * a['utilisation']:.1f} |")
    lines += ["", "Simulation speed per transport (`fast`: compiled Verilator model, no per-cycle Python; `cocotb`: "
              "word streams driven from Python; `uart`: the board's UART link, bytes bit by bit over the simulated "
              "line, 4 clock cycles per bit):", "",
              "| transport | images | exact | cycles/s | images/s |", "|---|---:|---:|---:|---:|"]
    for t, v in summary["sim_speed"].items():
        ok = sum(r["matched"] for r in speed[t])
        lines.append(f"| {t} | {v['images']} | {ok}/{v['images']} | {v['cycles_per_s']:,.0f} | {v['images_per_s']:.3g} |")
    summary.setdefault("hardware", {}).setdefault("report_lines", []).extend(lines)
