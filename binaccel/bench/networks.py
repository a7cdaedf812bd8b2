"""The networks the bench runs: trained MNIST models found in the build folder (or trained for
the bench), and model files given by name."""

from __future__ import annotations

from pathlib import Path

from binaccel.sw import modelfile, pipeline
from binaccel.sw.data import load_mnist
from binaccel.sw.paths import build_dir

__all__ = ["MNIST_BENCH_MODELS", "mnist_models", "load_model_files"]

#: The trained MNIST models the bench looks for.
MNIST_BENCH_MODELS = ("siman", "sign", "mcn", "mcn1", "mcn_a8")


def mnist_models(*, dirs=None, names=MNIST_BENCH_MODELS, train_dir=None, train_epochs=1, log=print) -> dict:
    """Trained MNIST models: ``{name: (IntModel, checkpoint path or None, model file)}``.

    Looks for ``<dir>/models/<name>.bnm`` with ``<dir>/checkpoints/<name>.pt`` (``binaccel demo``'s
    layout) or ``<dir>/<name>.bnm`` with ``<dir>/<name>.pt``, in ``dirs`` (default ``demo`` and
    ``bench/models`` of the build folder, :func:`binaccel.sw.paths.build_dir`). If none is found
    and ``train_dir`` is given, trains ``siman`` and ``mcn`` for ``train_epochs`` epoch(s) there and
    exports them."""
    dirs = [build_dir("demo"), build_dir("bench", "models")] if dirs is None else [Path(d) for d in dirs]
    found = {}
    for d in dirs:
        for name in names:
            if name in found:
                continue
            for bnm, pt in ((d / "models" / f"{name}.bnm", d / "checkpoints" / f"{name}.pt"),
                            (d / f"{name}.bnm", d / f"{name}.pt")):
                if bnm.exists():
                    found[name] = (modelfile.load(bnm), pt if pt.exists() else None, bnm)
                    break
    if not found and train_dir is not None:
        data = load_mnist()
        out = Path(train_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("siman", "mcn"):
            log(f"[bench] no trained MNIST model found: training {name} for {train_epochs} epoch(s) in {out}")
            r = pipeline.train_named(name, data, out_dir=str(out), epochs=train_epochs, progress=False)
            bnm = out / f"{name}.bnm"
            im = pipeline.export_model(r["model"], str(bnm), name=name, calib=data.x_train[:500])
            found[name] = (im, Path(r["checkpoint"]), bnm)
    return found


def load_model_files(model_files) -> tuple:
    """``{name: .bnm path}`` -> (MNIST-shaped ``{name: (IntModel, checkpoint or None, path)}``, others)."""
    mnist, other = {}, {}
    for name, path in model_files.items():
        path = Path(path)
        im = modelfile.load(path)
        ckpt = None
        for cand in (path.with_suffix(".pt"), path.parent.parent / "checkpoints" / f"{path.stem}.pt"):
            if cand.exists():
                ckpt = cand
                break
        if tuple(im.input_shape) == (1, 28, 28):
            mnist[name] = (im, ckpt, path)
        else:
            other[name] = (im, None, path)
    return mnist, other
