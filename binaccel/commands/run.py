"""``binaccel run``: a model file on the simulated accelerator, checked image by image.

The host compiles the model file to the accelerator program, streams it and the test images through
the chosen transport, reads the logits back and compares them, element for element, with the numpy
integer reference (and, given ``--checkpoint``, with the Brevitas model's integer forward).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from tqdm import tqdm

from binaccel.sim import engine_link, layer, top
from binaccel.sw import intref, modelfile, pack, pipeline
from binaccel.sw import program as prog
from binaccel.sw.atomic import write_json_atomic
from binaccel.sw.fold import int_forward
from binaccel.sw.outputs import check_output_file
from binaccel.sw.train import load_checkpoint

from .argtypes import nonneg_int, positive_int, probability
from .models import add_data_arguments, add_force_argument, check_data_arguments, load_data, select_test_images

__all__ = ["register", "run_accelerator", "run_engine_design", "check_accelerator_fit", "check_engine_fit",
           "is_run_record"]


def check_accelerator_fit(im, model_file, params=None) -> None:
    """Raise :class:`~binaccel.sw.program.FitError` naming ``model_file`` unless its network fits the
    accelerator build ``params`` (default: the default build), before any simulation."""
    try:
        prog.check_fit(im, params)
    except prog.FitError as exc:
        raise prog.FitError(f"{os.fspath(model_file)}: does not fit the accelerator build: {exc}") from None


def check_engine_fit(im, model_file, params) -> None:
    """Raise ValueError naming ``model_file`` unless the engine build ``params`` runs every layer."""
    for lay in im.layers:
        try:
            pack.check_layer(lay, params)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(model_file)}: does not run on the engine build "
                             f"{params.rows}x{params.cols}x{params.word}: {exc}") from None


def _checkpoint_for(im, model_file, checkpoint):
    """The checkpoint's network, checked to be the one ``model_file`` was exported from (None without one)."""
    if checkpoint is None:
        return None
    model = load_checkpoint(checkpoint)
    pipeline.check_pair(model, im, checkpoint=os.fspath(checkpoint), model_file=os.fspath(model_file))
    return model


def is_run_record(path) -> bool:
    """Whether ``path`` holds the JSON figures ``binaccel run --json`` writes."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"model", "model_file", "transport", "checked", "matched"} <= doc.keys()


def run_accelerator(model_file, images, labels=None, *, transport="fast", checkpoint=None, batch=None,
                    idle=0.0, backpressure=0.0, seed=0, progress=True, params=None) -> dict:
    """Run ``images`` through the accelerator; return the figures (JSON-ready dict). A network that
    does not fit the build, or a ``checkpoint`` it was not exported from, is refused before the run."""
    im = modelfile.load(model_file)
    check_accelerator_fit(im, model_file, params)
    model = _checkpoint_for(im, model_file, checkpoint)
    n = len(images)
    batch = batch or {"fast": n, "cocotb": 4, "uart": 25}.get(transport, 4)
    logits, image_cycles, layer_cycles, wall, sim_cycles, line_bytes, events = [], [], [], 0.0, 0, 0, []
    rec = None
    with tqdm(total=n, desc=f"{im.name} [{transport}]", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch):
            r = top.run_model(im, images[s:s + batch], transport=transport, idle=idle, backpressure=backpressure,
                          seed=seed + s, params=params)
            logits.append(r.logits)
            image_cycles.append(r.image_cycles)
            layer_cycles.append(r.layer_cycles)
            wall += r.wall_s
            sim_cycles += r.total_cycles
            rec = r.record
            line_bytes += rec.get("line_bytes", 0)
            events += rec.get("events", [])
            bar.update(len(r.logits))
    logits = np.concatenate(logits)
    ref = intref.predict(im, images)
    matched = (logits == ref).all(axis=1)
    out = {
        "model": im.name, "model_file": os.fspath(model_file), "transport": transport, "checked": int(n),
        "matched": int(matched.sum()), "matched_reference": int(matched.sum()),
        "cycles_per_image": float(np.concatenate(image_cycles).mean()),
        "cycles_per_layer": [{"name": l["layer"], "cycles": float(c), "ideal_cycles": l["ideal_cycles"],
                              "utilisation": l["ideal_cycles"] / float(c) if c else 0.0}
                             for l, c in zip(rec["layers"], np.concatenate(layer_cycles).mean(axis=0))],
        "wall_s": wall, "sim_cycles_per_s": sim_cycles / wall if wall else 0.0,
        "images_per_s": n / wall if wall else 0.0,
        "array": {k: rec["params"].get(k) for k in ("rows", "cols", "word")} if "rows" in rec["params"] else rec["params"].get("engine"),
    }
    if transport == "uart":
        out["line_bytes"] = int(line_bytes)
        out["link_events"] = events
    ideal = sum(l["ideal_cycles"] for l in out["cycles_per_layer"])
    out["utilisation"] = ideal / out["cycles_per_image"] if out["cycles_per_image"] else 0.0
    if labels is not None:
        out["test_accuracy"] = float((logits.argmax(1) == labels).mean())
    _check_brevitas(out, im, images, logits, matched, model)
    return out


def _check_brevitas(out, im, images, logits, matched, model):
    """With a checkpoint's network: ``matched_brevitas`` and ``matched`` (both references) in ``out``."""
    if model is None:
        return
    brev = int_forward(model, im, images)[-1].reshape(len(images), -1)
    out["matched_brevitas"] = int((logits == brev).all(axis=1).sum())
    out["matched"] = int((matched & (logits == brev).all(axis=1)).sum())


def run_engine_design(model_file, images, labels=None, *, transport="fast", checkpoint=None, batch=None, seed=0,
                      progress=True, params=None) -> dict:
    """Run ``images`` through the engine board design (the iCEBreaker's: the layer engine behind the
    UART link, the host driver :mod:`binaccel.sw.enginehost` packing each layer); return the figures.

    ``transport``: ``fast`` / ``cocotb`` simulate the engine build with the host's layer flow
    (:mod:`binaccel.sim.layer`; every layer's output is checked against intref there); ``uart``
    simulates the whole board design behind its UART, bit by bit (:mod:`binaccel.sim.engine_link`;
    minutes per MNIST image). ``params``: the EngineParams (default: the iCEBreaker's build,
    :func:`binaccel.sim.engine_link.board_params`). Cycles per layer are the engine's (``fast``/``cocotb``) or the
    whole exchange's over the serial line (``uart``)."""
    if transport not in ("fast", "cocotb", "uart"):
        raise ValueError(f"transport must be 'fast', 'cocotb' or 'uart', got {transport!r}")
    im = modelfile.load(model_file)
    if params is None:
        params = engine_link.board_params()
    check_engine_fit(im, model_file, params)
    model = _checkpoint_for(im, model_file, checkpoint)
    n = len(images)
    batch = batch or {"fast": 64, "cocotb": 4, "uart": 1}[transport]
    logits, layer_cycles = [], []
    t0 = time.perf_counter()
    with tqdm(total=n, desc=f"{im.name} [engine-link {transport}]", unit="img", disable=not progress,
              leave=False) as bar:
        for s in range(0, n, batch):
            imgs = np.asarray(images[s:s + batch])
            if transport == "uart":
                run = engine_link.run_model(im, imgs, params=params, seed=seed + s)
                outs, cyc = run.outputs, [r["cycles"] for r in run.runs]
            else:
                outs, cyc = layer.run_model(im, imgs, params=params, rows=params.rows, cols=params.cols,
                                            word=params.word, seed=seed + s, idle=0.0, backpressure=0.0,
                                            backend=transport)
            logits.append(outs[-1].reshape(len(imgs), -1))
            layer_cycles.append(np.asarray(cyc, dtype=np.float64))
            bar.update(len(imgs))
    wall = time.perf_counter() - t0
    logits = np.concatenate(logits)
    ref = intref.predict(im, images)
    matched = (logits == ref).all(axis=1)
    per_layer = sum(layer_cycles) / n          # cycles per image, per layer (runs of `batch` images)
    out = {
        "model": im.name, "model_file": os.fspath(model_file), "design": "engine+uart", "transport": transport,
        "params": params.as_dict(), "batch": batch, "checked": int(n), "matched": int(matched.sum()),
        "matched_reference": int(matched.sum()),
        "cycles_per_image": float(per_layer.sum()),
        "cycles_per_layer": [{"name": l.name, "cycles": float(c)} for l, c in zip(im.layers, per_layer)],
        "cycles_meaning": ("engine cycles of each layer run on a batch, per image" if transport != "uart" else
                           "clock cycles of each layer's exchange over the simulated serial line, per image"),
        "wall_s": wall, "images_per_s": n / wall if wall else 0.0,
    }
    if labels is not None:
        out["test_accuracy"] = float((logits.argmax(1) == labels).mean())
    _check_brevitas(out, im, images, logits, matched, model)
    return out


def _cmd_run(args):
    """Every input checked before the simulation starts: the options, the ``--json`` output, the
    model file, its fit on the build, the checkpoint's pairing and the images' shape and count."""
    if args.design == "engine-link" and (args.idle or args.backpressure):
        raise ValueError("--idle/--backpressure apply to the accelerator design (--design accel)")
    check_data_arguments(args)
    if args.json:
        check_output_file(args.json, inputs=[args.model, args.checkpoint], own=is_run_record,
                          what="JSON record of binaccel run", force=args.force)
    im = modelfile.load(args.model)
    if args.design == "engine-link":
        check_engine_fit(im, args.model, engine_link.board_params())
    else:
        check_accelerator_fit(im, args.model)
    _checkpoint_for(im, args.model, args.checkpoint)
    x, y = select_test_images(args, load_data(args), im.input_shape, args.model)
    if args.design == "engine-link":
        r = run_engine_design(args.model, x, y, transport=args.transport, checkpoint=args.checkpoint,
                              batch=args.batch, seed=args.seed, progress=not args.no_progress)
    else:
        r = run_accelerator(args.model, x, y, transport=args.transport, checkpoint=args.checkpoint,
                            batch=args.batch, idle=args.idle, backpressure=args.backpressure, seed=args.seed,
                            progress=not args.no_progress)
    text = json.dumps(r, indent=2)
    if args.json:
        write_json_atomic(args.json, r)
    print(text)
    if r["matched"] != r["checked"]:
        print(f"binaccel run: {r['checked'] - r['matched']} of {r['checked']} images differ from the golden model")
        return 1
    return 0


def register(sub) -> None:
    """Add ``run`` to an argparse ``subparsers`` object."""
    p = sub.add_parser("run", help="run a model file on the simulated accelerator, checked image by image")
    p.add_argument("--model", required=True, help="model file written by binaccel export (.bnm, required)")
    p.add_argument("--checkpoint", default=None, help="also compare with this Brevitas checkpoint, the one the "
                                                      "model file was exported from (default: none)")
    p.add_argument("--design", choices=["accel", "engine-link"], default="accel",
                   help="accel (default): the whole-network accelerator; engine-link: the iCEBreaker's board design, "
                        "the layer engine (2x2x32) behind the UART link with the host packing each layer")
    p.add_argument("--transport", choices=["fast", "cocotb", "uart"], default="fast",
                   help="fast (default): compiled Verilator model (whole data sets); cocotb: word streams from Python; "
                        "uart: the board's UART link simulated bit by bit (slow: ~3 s per image)")
    p.add_argument("--batch", type=positive_int, default=None, help="images per simulation run (default: all for fast, "
                   "4 for cocotb, 25 for uart)")
    p.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="first N test images, at most the split's (default: all)")
    add_data_arguments(p, "the test split to run")
    p.add_argument("--idle", type=probability, default=0.0, metavar="P",
                   help="probability of an idle input cycle, in [0, 1) (default 0)")
    p.add_argument("--backpressure", type=probability, default=0.0, metavar="P",
                   help="probability of output backpressure, in [0, 1) (default 0)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the idle/backpressure schedules (default 0)")
    p.add_argument("--json", default=None, metavar="F.json", help="also write the figures to this JSON file "
                                                                  "(default: none)")
    add_force_argument(p, "--json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)
