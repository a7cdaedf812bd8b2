"""Constants, the error class and the input contract of the QONNX importer."""

from __future__ import annotations

import numpy as np
from onnx import helper


DEFAULT_INPUT_SCALE = 1.0 / 255.0
SUPPORTED = ("Identity, Reshape, Flatten, Gather (input channel repeat), Mul, Add, Sub, Div, Cast, BatchNormalization, "
             "BipolarQuant, Quant (weights <= 8 bits; activations 2..8 bits), MultiThreshold (1..255 thresholds), "
             "Conv, Gemm, MatMul, MaxPool 2x2/2; one chain, binary or requant activations")
_ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "BatchNormalization", "Cast")
_LAYOUT = ("Reshape", "Flatten")
_EVAL_CELLS = 1 << 22  # rows * channels per execute_onnx call of a threshold search
_VERIFY_CELLS = 1 << 24  # accumulator values x channels checked exhaustively per layer


class QonnxImportError(ValueError):
    """A QONNX graph binaccel cannot compile exactly (names the file, node, op and what is supported).

    ``path`` is the file (None for an in-memory model) and ``reason`` the message without it."""

    def __init__(self, reason: str, path=None):
        self.path, self.reason = (None if path is None else str(path)), reason
        super().__init__(reason if path is None else f"{path}: {reason}")


def graph_input(images: np.ndarray, input_scale: float = DEFAULT_INPUT_SCALE) -> np.ndarray:
    """The graph input for uint8 ``images`` ``(N, C, H, W)`` (or ``(N, H, W)``): float32 of ``pixels * input_scale``."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    return (x.astype(np.float64) * float(input_scale)).astype(np.float32)


def _pow2(values) -> bool:
    v = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    if v.size == 0 or np.any(v == 0) or not np.all(np.isfinite(v)):
        return False
    m, _ = np.frexp(v)
    return bool(np.all(m == 0.5))


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
