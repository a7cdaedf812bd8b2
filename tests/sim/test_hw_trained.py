"""Trained golden models on the Verilator-simulated engine (cocotb): every layer's output equals the
numpy reference AND the Brevitas model's integer forward, whole tensors."""

import numpy as np
import pytest

from binaccel.sw import intref, pipeline
from binaccel.sw.data import load_digits
from binaccel.sw.fold import fold, int_forward


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# on the default 4x4x32 engine build, beyond the default tier's one engine build
# (tests/sim/test_sim_layer.py): `-m sim`, the two longer trainings `-m slow`
@pytest.mark.parametrize("name", [
    pytest.param("siman", marks=pytest.mark.sim), pytest.param("mcn_a4", marks=pytest.mark.sim),
    pytest.param("mcn", marks=pytest.mark.slow), pytest.param("mcn1", marks=pytest.mark.slow),
])
def test_trained_model_layers_on_engine(name, digits, tmp_path):
    from binaccel.sim.layer import run_model

    r = pipeline.train_named(name, digits, out_dir=str(tmp_path), epochs=1, progress=False)
    model = r["model"]
    im = fold(model)
    images = digits.x_test[:3]
    hw_outs, cycles = run_model(im, images, rows=4, cols=4, word=32, seed=1, idle=0.3, backpressure=0.3)
    ref = intref.run_model(im, images)
    brev = int_forward(model, im, images)
    assert len(hw_outs) == len(im.layers) == len(cycles)
    for layer, h, a, b in zip(im.layers, hw_outs, ref, brev):
        assert np.array_equal(h, a), f"{name} {layer.name}: hardware != reference"
        assert np.array_equal(h, b), f"{name} {layer.name}: hardware != Brevitas"
    assert all(c > 0 for c in cycles)
