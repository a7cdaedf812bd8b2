"""``binaccel run``: a model file on the simulated accelerator, checked image by image.

The host compiles the model file to the accelerator program, streams it and the test images through
the chosen transport, reads the logits back and compares them, element for element, with the numpy
integer reference (and, given ``--checkpoint``, with the Brevitas model's integer forward).
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["register", "run_accelerator"]


def run_accelerator(model_file, images, labels=None, *, transport="fast", checkpoint=None, batch=None,
                    idle=0.0, backpressure=0.0, seed=0, progress=True, params=None) -> dict:
    """Run ``images`` through the accelerator; return the figures (JSON-ready dict)."""
    from tqdm import tqdm

    from binaccel.sim.top import run_model
    from binaccel.sw import intref, modelfile

    im = modelfile.load(model_file)
    n = len(images)
    batch = batch or {"fast": n, "cocotb": 4, "uart": 25}.get(transport, 4)
    logits, image_cycles, layer_cycles, wall, sim_cycles, line_bytes, events = [], [], [], 0.0, 0, 0, []
    rec = None
    with tqdm(total=n, desc=f"{im.name} [{transport}]", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch):
            r = run_model(im, images[s:s + batch], transport=transport, idle=idle, backpressure=backpressure,
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
    if checkpoint is not None:
        from binaccel.sw.fold import int_forward
        from binaccel.sw.train import load_checkpoint

        model = load_checkpoint(checkpoint)
        brev = int_forward(model, im, images)[-1].reshape(n, -1)
        both = matched & (logits == brev).all(axis=1)
        out["matched_brevitas"] = int((logits == brev).all(axis=1).sum())
        out["matched"] = int(both.sum())
    return out


def _cmd_run(args):
    from binaccel.sw.data import load

    if args.data == "cifar10":
        if not args.data_dir:
            raise SystemExit("binaccel run: --data cifar10 needs --data-dir")
        data = load("cifar10", root=args.data_dir)
    else:
        data = load(args.data)
    n = min(args.images, len(data.x_test)) if args.images else len(data.x_test)
    r = run_accelerator(args.model, data.x_test[:n], data.y_test[:n], transport=args.transport,
                        checkpoint=args.checkpoint, batch=args.batch, idle=args.idle, backpressure=args.backpressure,
                        seed=args.seed, progress=not args.no_progress)
    text = json.dumps(r, indent=2)
    if args.json:
        from binaccel.sw.train import write_json_atomic

        write_json_atomic(args.json, r)
    print(text)
    if r["matched"] != r["checked"]:
        print(f"binaccel run: {r['checked'] - r['matched']} of {r['checked']} images differ from the golden model")
        return 1
    return 0


def register(sub):
    p = sub.add_parser("run", help="run a model file on the simulated accelerator, checked image by image")
    p.add_argument("--model", required=True, help="model file written by binaccel export (.bnm)")
    p.add_argument("--checkpoint", default=None, help="also compare with this Brevitas checkpoint")
    p.add_argument("--transport", choices=["fast", "cocotb", "uart"], default="fast",
                   help="fast: compiled Verilator model (whole data sets); cocotb: word streams from Python; "
                        "uart: the board's UART link simulated bit by bit (slow: ~3 s per image)")
    p.add_argument("--batch", type=int, default=None, help="images per simulation run (default: all for fast, "
                   "4 for cocotb, 25 for uart)")
    p.add_argument("--images", type=int, default=None, help="first N test images (default: all)")
    p.add_argument("--data", default="mnist", choices=["mnist", "digits", "cifar10"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--idle", type=float, default=0.0, help="probability of an idle input cycle")
    p.add_argument("--backpressure", type=float, default=0.0, help="probability of output backpressure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_run)
