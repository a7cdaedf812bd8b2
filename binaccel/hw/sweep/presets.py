"""Board presets of the synthesis search: clock targets, per-board parameters and starting points,
the designs the flow builds and how records name them; parameter checks and the engine fields a list
of models needs."""

from __future__ import annotations

import numpy as np

from binaccel.sw.hwif import AccelParams, EngineParams

#: Clock targets of the issue: iCE40UP5K at 48 MHz or more, ECP5-85F at 150 MHz or more.
TARGET_MHZ = {"icebreaker": 48.0, "ulx3s": 150.0}

#: What the trained MNIST models of the zoo need (fan-in: the FC layer 64*4*4; 8-bit first layer;
#: MCN K=4, 3x3 M-Filters of 8 bits; requant/logits factors within 16/32 bits; tile counters:
#: 28*28 positions of 64 images fit 16 bits).
MNIST_PARAMS = {"max_fan_in": 1024, "max_in_bits": 8, "max_planes": 4, "max_taps": 9, "m_bits": 8,
                "mul_bits": 16, "add_bits": 32, "count_bits": 16}

#: The same for the plain (SiMaN / sign) MNIST models only: no MCN planes, taps or M-Filter factors.
#: The iCE40UP5K cannot hold the MCN build (its per-lane scale multipliers alone need 4x the 8 DSPs
#: at 2x2x16), so its search uses this base.
MNIST_PLAIN_PARAMS = {**MNIST_PARAMS, "max_planes": 1, "max_taps": 1, "m_bits": 1}

#: Seconds allowed per tool run in the search (a point that takes longer counts as not fitting).
DEFAULT_TIMEOUT_S = {"icebreaker": 900, "ulx3s": 3600}

#: Extra nextpnr options per board. ECP5: router2 (nextpnr's default router1 did not converge on the
#: 4x4x32 engine: 66k arcs left after 69k iterations and 17 minutes, at 20 % LUT use).
PNR_OPTS = {"icebreaker": (), "ulx3s": ("--router", "router2")}

#: PE stages per board. iCE40UP5K: 2 (the popcount's adder tree and the partial's adder in separate
#: cycles: the engine-only 2x4x16 reached 26.7 MHz against 19.5 MHz with one stage, with fewer LCs).
#: ECP5-85F: 1 (with 2, yosys/abc mapped the 5x6x32 accelerator to 58,962 LUT4s against 50,390, too
#: full to route); see docs/synthesis.md.
PE_STAGES = {"icebreaker": 2, "ulx3s": 1}

#: Base parameters of the search per board.
BOARD_BASE = {"icebreaker": {**MNIST_PLAIN_PARAMS, "pe_stages": PE_STAGES["icebreaker"]},
              "ulx3s": {**MNIST_PARAMS, "pe_stages": PE_STAGES["ulx3s"]}}

#: Starting points of the engine search per board: (rows=cols, word).
DEFAULT_START = {"icebreaker": (1, 16), "ulx3s": (4, 32)}

#: The designs :func:`synth_point` builds, and how reports and boards.json name them.
DESIGNS = ("accel", "engine-link", "engine")
DESIGN_KIND = {"accel": "accel+uart", "engine-link": "engine+uart", "engine": "engine"}
DESIGN_OF_KIND = {kind: design for design, kind in DESIGN_KIND.items()}
DESIGN_DESCRIPTION = {
    "accel": "accelerator + UART link + PLL: LinkedAccelerator (whole-network Accelerator behind the frame "
             "link) in BoardTop (PLL, reset synchroniser, UART 3 Mbaud, receive FIFO, LEDs)",
    "engine-link": "engine + UART link + PLL: LinkedEngine (the layer Engine behind the frame link; the host "
                   "does im2col, pooling and the maps between layers) in BoardTop (PLL, reset synchroniser, UART "
                   "3 Mbaud, receive FIFO, LEDs)",
    "engine": "engine only: layer Engine (FlatPorts) in PortHarness in BoardTop (PLL, reset, UART); "
              "no fetch/write-back/buffers/sequencer/link",
}

#: Accelerator board builds (AccelParams besides rows/cols/word). Buffers are what block RAM allows:
#: every feature-map bank has cols + 1 read ports (2*cols + 1 with ``pair_reads``) and yosys makes one
#: block-RAM copy per read port. iCE40UP5K (30 EBR of 256x16): plain MNIST widths, no tap pairs, banks
#: of 1024 words (MNIST's input map is 784 words), weight buffer 256 entries (the MNIST models stream
#: their weights through it), tables 256 (MNIST needs 115 at one row), 4 descriptors; ECP5-85F (208
#: DP16KD): the MNIST widths with MCN, banks of 1024 words, weights 512 entries (siman needs 284 at
#: 4x4x32), tables 128, 8 descriptors.
ACCEL_BASE = {
    "icebreaker": {**BOARD_BASE["icebreaker"], "fm_depth": 1024, "w_depth": 256, "t_depth": 256, "max_layers": 4,
                   "max_dim": 28, "pair_reads": 0},
    "ulx3s": {**BOARD_BASE["ulx3s"], "fm_depth": 1024, "w_depth": 512, "t_depth": 128, "max_layers": 8,
              "max_dim": 28},
}

#: Starting points of the accelerator search per board: (rows=cols, word).
ACCEL_START = {"icebreaker": (1, 16), "ulx3s": (4, 32)}

#: Seconds allowed per tool run for the accelerator design (a point that takes longer counts as not fitting).
ACCEL_TIMEOUT_S = {"icebreaker": 900, "ulx3s": 1800}


def base_params(board, design="accel") -> dict:
    """Default parameters (besides rows/cols/word) of ``design`` for ``board``."""
    _check_design(design)
    return dict((ACCEL_BASE if design == "accel" else BOARD_BASE)[board])


def start_point(board, design="accel"):
    """``(n, word)`` where the search of ``design`` starts on ``board`` (:data:`ACCEL_START` for
    the accelerator, :data:`DEFAULT_START` for the engine designs)."""
    _check_design(design)
    return (ACCEL_START if design == "accel" else DEFAULT_START)[board]


def _check_design(design):
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")


def full_params(params, design="accel") -> dict:
    """Every build parameter of ``design`` (defaults filled in, each checked): AccelParams or EngineParams."""
    _check_design(design)
    if design == "accel":
        return AccelParams(**params).as_dict()
    return EngineParams(**params).as_dict()


def same_params(a, b, design="accel") -> bool:
    """Whether two parameter dicts (of reports or summaries) describe the same build of ``design``:
    equal once defaults are filled in, so a record made before a parameter existed (it lacks the key)
    equals one with that parameter at its default. Unreadable parameters compare as given."""
    if a == b:
        return True
    try:
        return full_params(dict(a or {}), design) == full_params(dict(b or {}), design)
    except (TypeError, ValueError):
        return False


def _tag(full, design):
    if design == "accel":
        return AccelParams(**full).tag
    return EngineParams(**full).tag


def params_for_models(models, *, images=64) -> dict:
    """Smallest EngineParams fields (except rows/cols/word) that run every layer of ``models``
    (IntModels) on batches of up to ``images`` images; raises ValueError for a layer no build can run
    (``w_bits != 1``)."""
    need = {"max_fan_in": 1, "max_in_bits": 1, "max_planes": 1, "max_taps": 1, "m_bits": 1,
            "mul_bits": 2, "add_bits": 2, "count_bits": 1}

    def sbits(v):
        v = np.asarray(v, dtype=np.int64)
        if not v.size:
            return 2
        lo, hi = int(v.min()), int(v.max())
        return max(max(-lo - 1, hi, 0).bit_length() + 1, 2)

    for model in models:
        for layer in model.layers:
            if layer.w_bits != 1:
                raise ValueError(f"model {model.name!r}, layer {layer.name!r}: field 'w_bits': the engine "
                                 f"runs binary-weight layers only, got {layer.w_bits}")
            need["max_fan_in"] = max(need["max_fan_in"], layer.fan_in)
            need["max_in_bits"] = max(need["max_in_bits"], layer.in_bits)
            if layer.mode != "plain":
                need["max_planes"] = max(need["max_planes"], layer.planes)
                need["m_bits"] = max(need["m_bits"], layer.m_bits)
            if layer.mode == "mcn":
                need["max_taps"] = max(need["max_taps"], layer.kernel ** 2)
            if layer.out_kind != "sign":
                need["mul_bits"] = max(need["mul_bits"], sbits(layer.mul))
                need["add_bits"] = max(need["add_bits"], sbits(layer.add))
            positions = images * layer.conv_h * layer.conv_w
            need["count_bits"] = max(need["count_bits"], positions.bit_length(), layer.groups.bit_length())
    return need
