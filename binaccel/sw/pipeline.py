"""Train -> fold -> export -> check: the steps behind ``binaccel train/export/check/demo``."""

from __future__ import annotations

import os
import time

import numpy as np

from . import intref, modelfile
from .data import Split
from .fold import fold, int_forward, weights_sha256
from .intmodel import IntModel
from .models import BinNet
from .qonnx_export import bits_of_output, execute, layer_outputs, save_qonnx
from .train import evaluate, save_checkpoint, train
from .zoo import configs

__all__ = ["train_named", "export_model", "check_pair", "PairError", "check_export", "check_qonnx",
           "accuracy_of_logits"]


class PairError(ValueError):
    """A model file that was not exported from the checkpoint it is checked against."""


def train_named(name: str, data: Split, *, out_dir: str, epochs=None, seed=0, progress=True, **overrides) -> dict:
    """Train model ``name`` on ``data``; write ``<out_dir>/<name>.pt``; return a result dict.
    ``overrides``: TrainConfig fields (None keeps the model's default)."""
    net, tc = configs(name, input_shape=data.input_shape, classes=data.classes, epochs=epochs, seed=seed,
                      **overrides)
    model, history = train(net, tc, data, progress=progress, desc=name)
    acc, _ = evaluate(model, data.x_test, data.y_test)
    path = os.path.join(out_dir, f"{name}.pt")
    save_checkpoint(model, path, extra={"train": tc.to_dict(), "history": history, "data": data.name})
    return {"model": model, "checkpoint": path, "test_accuracy": acc, "history": history,
            "train_config": tc.to_dict(), "net_config": net.to_dict(),
            "train_seconds": history[-1]["train_seconds"]}


def export_model(model: BinNet, path: str, *, name: str, calib=None, m_bits=8):
    """Fold and write the integer model file (atomically); returns the IntModel."""
    im = fold(model, name=name, calib=calib, m_bits=m_bits)
    modelfile.save(im, path)
    return im


def accuracy_of_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).reshape(len(labels), -1).argmax(1) == labels).mean())


def check_pair(model: BinNet, im: IntModel, *, checkpoint="the checkpoint", model_file="the model file") -> None:
    """Raise :class:`PairError` unless the integer model ``im`` (read from ``model_file``) was folded
    from the network ``model`` (read from ``checkpoint``), before anything is computed: the same input
    shape, input repeat, classes, architecture (the ``meta`` of :func:`binaccel.sw.fold.fold`), layer
    count and conv widths and, when the model file records it, the same weights (``weights_sha256``).
    A model file without that meta (imported from QONNX, say) is matched on its shapes only."""
    cfg = model.cfg
    what = f"{model_file} was not exported from {checkpoint}"
    pairs = [("input_shape", tuple(im.input_shape), tuple(cfg.input_shape)),
             ("input_repeat", im.input_repeat, cfg.input_repeat),
             ("classes", im.classes, cfg.classes)]
    meta = im.meta if isinstance(im.meta, dict) else {}
    pairs += [(f"meta.{k}", meta[k], getattr(cfg, k)) for k in ("arch", "act_bits", "planes", "first", "last")
              if k in meta]
    pairs.append(("layer count", len(im.layers), len(cfg.widths) + 1))
    for field, mine, theirs in pairs:
        if mine != theirs:
            raise PairError(f"{what}: field '{field}': the model file has {mine!r}, the checkpoint {theirs!r}")
    for layer, width in zip(im.layers, cfg.widths):
        if layer.out_ch != width:
            raise PairError(f"{what}: field 'layers[{layer.name}].out_ch': the model file has {layer.out_ch}, "
                            f"the checkpoint {width}")
    digest = meta.get("weights_sha256")
    if digest is not None and digest != weights_sha256(model):
        raise PairError(f"{what}: field 'meta.weights_sha256': the model file was folded from other weights of "
                        f"the same network (export it again from this checkpoint)")


def check_export(model: BinNet, model_path: str, images: np.ndarray, labels: np.ndarray | None = None, *,
                 checkpoint="the checkpoint") -> dict:
    """Run the exported file through the numpy reference and the Brevitas model's integer forward;
    compare every layer's whole output tensor, image by image.

    Returns ``{"checked", "matched", "layers": {name: mismatching images}, "predictions_equal",
    "int_test_accuracy", "ref_seconds"}``; ``matched`` counts images whose every layer matched.
    A model file that was not folded from ``model`` (:func:`check_pair`; ``checkpoint`` names it in
    the message) is refused before anything runs.
    """
    im = modelfile.load(model_path)
    check_pair(model, im, checkpoint=checkpoint, model_file=model_path)
    t0 = time.time()
    ref = intref.run_model(im, images)
    ref_s = time.time() - t0
    brev = int_forward(model, im, images)
    n = len(images)
    ok = np.ones(n, dtype=bool)
    per_layer = {}
    for layer, a, b in zip(im.layers, ref, brev):
        if a.shape != b.shape:
            raise AssertionError(f"layer {layer.name}: reference shape {a.shape} != Brevitas shape {b.shape}")
        eq = (a == b).reshape(n, -1).all(axis=1)
        per_layer[layer.name] = int((~eq).sum())
        ok &= eq
    out = {"checked": n, "matched": int(ok.sum()), "layers": per_layer,
           "predictions_equal": bool(np.array_equal(ref[-1].reshape(n, -1).argmax(1), brev[-1].reshape(n, -1).argmax(1))),
           "ref_seconds": ref_s}
    if labels is not None:
        out["int_test_accuracy"] = accuracy_of_logits(ref[-1], labels)
    return out


def check_qonnx(im, path: str, images: np.ndarray, *, batch: int = 250) -> dict:
    """Write ``im``'s QONNX graph to ``path`` (:func:`binaccel.sw.qonnx_export.save_qonnx`), run it with
    qonnx's ``execute_onnx`` on ``images`` and compare every layer's whole output with the integer
    reference, image by image.

    Returns ``{"checked", "matched", "layers": {name: mismatching images}, "predictions_equal",
    "seconds"}``; ``matched`` counts images whose every layer (logits included) matched.
    """
    save_qonnx(im, path)
    t0 = time.time()
    images = np.asarray(images)
    n = len(images)
    ok = np.ones(n, dtype=bool)
    per_layer = {layer.name: 0 for layer in im.layers}
    same_prediction = np.ones(n, dtype=bool)
    for at in range(0, n, batch):
        x = images[at:at + batch]
        ctx = execute(path, x)
        refs = intref.run_model(im, x)
        m = len(x)
        for layer, name, ref in zip(im.layers, layer_outputs(im), refs):
            got = bits_of_output(layer, ctx[name]).reshape(m, -1)
            eq = (got == ref.reshape(m, -1)).all(axis=1) if got.shape == ref.reshape(m, -1).shape \
                else np.zeros(m, dtype=bool)
            per_layer[layer.name] += int((~eq).sum())
            ok[at:at + m] &= eq
        logits = np.asarray(ctx["logits"]).reshape(m, -1)
        same_prediction[at:at + m] = logits.argmax(1) == refs[-1].reshape(m, -1).argmax(1)
    return {"checked": n, "matched": int(ok.sum()), "layers": per_layer,
            "predictions_equal": bool(same_prediction.all()), "seconds": round(time.time() - t0, 1)}
