"""Training of the golden models (Adam or SGD with momentum, cosine schedule, seeded).

Weight decay follows SiMaN: 0 on binarized weights and their scales (unless the ablation asks for it),
``weight_decay`` (default 5e-4) on everything else. MCN adds the filter loss and the center loss of
Eq. 3.8 (``theta``, ``lam``), the quantization term of Eq. 3.9, a learning rate ``eta2 = lr * m_lr``
for the M-Filters, and keeps M >= 0 after every step (Eq. 3.21: ``M <- |M - eta * grad|``).
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .atomic import write_bytes_atomic, write_json_atomic
from .data import Split
from .models import BinNet, NetConfig, build

__all__ = ["TrainConfig", "train", "evaluate", "save_checkpoint", "load_checkpoint", "is_checkpoint",
           "CheckpointError", "write_json_atomic"]


class CheckpointError(ValueError):
    pass


@dataclass
class TrainConfig:
    epochs: int = 15
    batch: int = 64
    optimizer: str = "adam"  # "adam" (default: best on the short schedule) or "sgd" (the papers');
    # weight decay is the coupled L2 term in both
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    binary_weight_decay: float = 0.0  # SiMaN: none on binarized weights and their scales
    theta: float = 1e-3  # MCN filter loss weight (Eq. 3.8)
    lam: float = 1e-3  # MCN center loss weight (Eq. 3.8)
    m_lr: float = 0.1  # eta2 / eta1 for the M-Filters
    seed: int = 0
    # torch intra-op threads. 1 by default: these small convolutions gain little from a second
    # thread, and when the other core is busy (a simulation, a synthesis) two threads ran a training
    # step 15x slower (0.87 s vs 0.057 s for a SiMaN batch of 64). 0 leaves torch's default.
    threads: int = 1

    def to_dict(self):
        return asdict(self)


def _param_groups(model: BinNet, tc: TrainConfig):
    binary = {id(p) for p in model.binarized_parameters()}
    mfilters = {id(m.mfilter) for m in model.mcn_layers()}
    groups = {"binary": [], "mfilter": [], "other": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        key = "binary" if id(p) in binary else "mfilter" if id(p) in mfilters else "other"
        groups[key].append(p)
    out = [
        {"name": "binary", "params": groups["binary"], "weight_decay": tc.binary_weight_decay},
        {"name": "other", "params": groups["other"], "weight_decay": tc.weight_decay},
    ]
    if groups["mfilter"]:
        out.append({"name": "mfilter", "params": groups["mfilter"], "weight_decay": 0.0, "lr": tc.lr * tc.m_lr})
    return [g for g in out if g["params"]]


def make_optimizer(model: BinNet, tc: TrainConfig):
    groups = _param_groups(model, tc)
    for g in groups:
        g.setdefault("lr", tc.lr)
        g["initial_lr"] = g["lr"]
    if tc.optimizer == "adam":
        return torch.optim.Adam(groups, lr=tc.lr)
    if tc.optimizer != "sgd":
        raise ValueError(f"TrainConfig.optimizer: expected 'sgd' or 'adam', got {tc.optimizer!r}")
    return torch.optim.SGD(groups, lr=tc.lr, momentum=tc.momentum)


def loss_fn(model: BinNet, logits, labels, tc: TrainConfig):
    loss = F.cross_entropy(logits, labels)
    if model.cfg.is_mcn:
        mcn = model.mcn_layers()
        loss = loss + tc.theta / 2 * sum(c.filter_loss() for c in mcn)
        loss = loss + tc.theta / 2 * sum(c.proximal_loss() for c in mcn)
        loss = loss + tc.lam / 2 * model.center_loss(labels)
    return loss


@torch.no_grad()
def evaluate(model: BinNet, x_uint8: np.ndarray, y: np.ndarray, *, batch=500) -> tuple:
    """(accuracy, predictions) of the float (Brevitas) model in eval mode."""
    model.eval()
    preds = []
    for s in range(0, len(x_uint8), batch):
        xb = model.prepare_input(torch.as_tensor(x_uint8[s:s + batch]))
        preds.append(model(xb).argmax(1).numpy())
    p = np.concatenate(preds)
    return float((p == y).mean()), p


def train(cfg: NetConfig, tc: TrainConfig, data: Split, *, progress=True, desc=None) -> tuple:
    """Train a model from scratch; returns ``(model, history)``."""
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    model = build(cfg)
    opt = make_optimizer(model, tc)
    steps_per_epoch = (len(data.x_train) + tc.batch - 1) // tc.batch
    total = tc.epochs * steps_per_epoch
    rng = np.random.default_rng(tc.seed)
    history = []
    step = 0
    t0 = time.time()
    bar = tqdm(total=total, desc=desc or cfg.arch, disable=not progress, leave=False, unit="step")
    for epoch in range(tc.epochs):
        model.train()
        perm = rng.permutation(len(data.x_train))
        run_loss = 0.0
        for s in range(0, len(perm), tc.batch):
            idx = perm[s:s + tc.batch]
            xb = model.prepare_input(torch.as_tensor(data.x_train[idx]))
            yb = torch.as_tensor(data.y_train[idx])
            for g in opt.param_groups:  # cosine schedule per step
                g["lr"] = g["initial_lr"] * 0.5 * (1 + np.cos(np.pi * step / total))
            logits = model(xb)
            loss = loss_fn(model, logits, yb, tc)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for m in model.mcn_layers():
                m.project_m()
            run_loss += float(loss.detach()) * len(idx)
            step += 1
            bar.update(1)
        acc, _ = evaluate(model, data.x_test, data.y_test)
        history.append({"epoch": epoch + 1, "loss": run_loss / len(perm), "test_accuracy": acc})
        bar.set_postfix(loss=f"{run_loss / len(perm):.3f}", acc=f"{acc:.3f}")
    bar.close()
    model.eval()
    history.append({"train_seconds": time.time() - t0})
    return model, history


def save_checkpoint(model: BinNet, path, *, extra=None) -> None:
    """Atomically save config + state dict."""
    blob = {"format": "binaccel-checkpoint", "version": 1, "config": model.cfg.to_dict(),
            "state_dict": model.state_dict(), "extra": extra or {}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path) -> BinNet:
    """Read the checkpoint at ``path`` (:func:`save_checkpoint`); every defect (missing, not a
    checkpoint, truncated, another program's, a config or weights that do not build the network)
    raises :class:`CheckpointError` naming ``path`` and the field."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, expected a checkpoint file (.pt)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as e:
        # torch's messages run to several sentences: the first says what is wrong
        why = (str(e).strip().split(". ")[0] or type(e).__name__).rstrip(".")
        raise CheckpointError(f"{path}: not a readable checkpoint ({why})") from None
    if not isinstance(blob, dict) or blob.get("format") != "binaccel-checkpoint":
        raise CheckpointError(f"{path}: field 'format': expected 'binaccel-checkpoint'")
    if blob.get("version") != 1:
        raise CheckpointError(f"{path}: field 'version': expected 1, got {blob.get('version')!r}")
    config, state = blob.get("config"), blob.get("state_dict")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: field 'config': expected the network's configuration (a dict), "
                              f"got {type(config).__name__}")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: field 'state_dict': expected the network's weights (a dict), "
                              f"got {type(state).__name__}")
    try:
        model = build(NetConfig(**config))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: field 'config': {e}") from None
    model.eval()
    # Brevitas quantizers carry stored bits: load them too.
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    if missing or unexpected:
        parts = ([f"missing {len(missing)} (first {missing[0]!r})"] if missing else []) + \
                ([f"unexpected {len(unexpected)} (first {unexpected[0]!r})"] if unexpected else [])
        raise CheckpointError(f"{path}: field 'state_dict': the weights are not those of its config's "
                              f"{config.get('arch')!r} network: {', '.join(parts)}")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(mine[k].shape):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise CheckpointError(f"{path}: field 'state_dict.{k}': expected a tensor of shape "
                                  f"{tuple(mine[k].shape)}, got {got}")
    model.load_state_dict(state)
    model.eval()
    return model


def is_checkpoint(path) -> bool:
    """Whether ``path`` looks like a checkpoint :func:`save_checkpoint` wrote (a torch archive whose
    record says ``binaccel-checkpoint``), without loading it."""
    try:
        with zipfile.ZipFile(os.fspath(path)) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return bool(pkl) and b"binaccel-checkpoint" in z.read(pkl[0])
    except (OSError, zipfile.BadZipFile, KeyError):
        return False

