"""QONNX -> IntModel: compile a binarized QONNX graph to binaccel's integer model.

The inverse of :mod:`binaccel.sw.qonnx_export`, and an importer for Brevitas's own binarized
examples (``brevitas_examples.bnn_pynq``: tfc/sfc/lfc/cnv ``_1w1a`` exported with
``brevitas.export.export_qonnx``).

Input contract
    The graph's (single, non-initializer) input is ``pixels * input_scale`` for uint8 pixels
    ``(N, C, H, W)``, computed as :func:`graph_input` does (float64 product rounded to float32).
    ``input_scale`` is 1 for binaccel's own graphs (metadata ``binaccel.input``) and 1/255 otherwise
    (the ``ToTensor`` scaling the bnn_pynq models are trained with), unless given.

What is compiled (the graph must be one chain of these, every other node a constant)
    * input: ``Reshape``/``Flatten`` (a flatten), ``Gather`` on axis 1 repeating each channel K times
      (MCN ``input_repeat``), scalar/per-channel ``Mul``/``Add``/``Sub``/``Div``; then either a
      quantizer or directly a ``Conv``/``Gemm`` (only with an input scale that is a power of two).
      A quantizer on the input becomes an extra 1x1 conv layer ``input_quant`` on the pixels:
      ``BipolarQuant`` / one-threshold ``MultiThreshold`` -> a sign layer (thresholds on the pixel),
      ``Quant`` (2..8 bits, zero point 0) -> a requant layer reproducing the quantizer's code table
      (the code minus its minimum: ``q + 128`` for signed 8 bit) for all 256 pixel values.
    * per layer: ``Conv`` (group 1, square kernel, equal strides, symmetric pads, no bias) or
      ``Gemm`` (alpha = beta = 1, no bias) / ``MatMul``, optionally after a ``Cast`` to float64
      (binaccel's wide fc layer); the weight is found by the node's weight input
      name: ``BipolarQuant`` (-> w_bits 1), ``Quant`` signed <= 8 bits zero point 0 (-> w_bits 8),
      binaccel's MCN pattern ``Reshape(Mul(Reshape(BipolarQuant(W)), M))`` (-> mode mcn / mcn1), or a
      constant of integers; scales must be powers of two (then the float Conv/Gemm is exact).
      Then any chain of ``BatchNormalization``, ``Mul``, ``Add``, ``Sub``, ``Div``, ``Cast`` with
      constants, ended by ``BipolarQuant`` or a one-threshold ``MultiThreshold``: a sign layer with
      integer thresholds; or by an activation ``Quant`` (2..8 bits, zero point 0) or a
      ``MultiThreshold`` with several thresholds: a requant layer
      ``clamp((acc*mul + add) >> shift, 0, 2**bits - 1)``. The level boundaries of every channel are
      found by bisection over the accumulator range ``[-acc_bound, acc_bound]``, running the graph's
      own chain with qonnx's ``execute_onnx`` (the accepted ops are monotone per channel; ``Div`` by
      the data is refused); the requant is fitted exactly on the boundary points (integer ternary
      search on ``mul``, the smallest common ``shift``). Then, wherever range x channels <= 2**24
      (every binarized layer here), *every* accumulator value is run through the chain and compared
      with intref's post-processing of the layer: any difference is refused. No requant clamp
      exists e.g. for Brevitas's narrow-range 2-bit activations (3 levels saturating inside the range,
      the clamp has 4): refused.
      Then optionally ``MaxPool`` 2x2 stride 2 (layer ``pool = 2``) and ``Reshape``/``Flatten``.
    * last layer (chain ends at the graph output): logits. An integer chain (``Cast`` to int64,
      integer ``Mul``/``Add``: binaccel's own graphs) is kept exactly (``mul``, ``add``, the
      ``binaccel.logit_shift`` metadata as ``shift``). A float chain that is the same positive affine
      for every class (Brevitas's ``TensorNorm``) is not applied: the logits are the integer
      accumulator (``mul = 1``), the affine is recorded in ``meta`` (``qonnx.logit_affine``);
      a per-class float affine is refused.

Exactness: ``meta["qonnx.layer_tensors"]`` lists for every layer a graph tensor and ``(scale, bias)``
with ``graph_tensor == scale * intref_output + bias`` (whole tensors, reshaped to the intref shape).

Not supported (refused with :class:`QonnxImportError` naming the file, node, op and the supported set):
activation levels no requant clamp reproduces (narrow-range ``Quant``, e.g. bnn_pynq ``*_1w2a`` /
``*_2w2a``), biases, grouped/dilated convolutions, pooling other than 2x2/2, residual or branching graphs, an input
offset on a padded convolution, per-class float logit affines.
"""

from .common import DEFAULT_INPUT_SCALE, SUPPORTED, QonnxImportError, graph_input
from .importer import import_qonnx

__all__ = ["QonnxImportError", "SUPPORTED", "import_qonnx", "graph_input", "DEFAULT_INPUT_SCALE"]
