"""Exact cycle model of the pipelined accelerator (:class:`binaccel.hw.dp.accel.DpAccelerator`).

The model predicts the hardware's own cycle counters of a RUN (the stats words): each layer's
count and the image's. It follows the design register by register; no term is fitted. It holds
for an input stream that offers a word every cycle and an output that is always ready (the fast
path without idle cycles or backpressure), which is when the counts are deterministic.

Time line of a layer (cycle numbers relative to its START state, ``S = 0``)
    * The sequencer: layer 0 spends ``DW + 2`` cycles in LDESC (the descriptor's ``DW =
      desc_words`` words through the prefetch, one a cycle, one more to mark it ready and one
      to take it), then LOAD, START; a later layer starts with LOAD, START (its descriptor was
      prefetched while the previous one ran). WAIT follows until the unit, its drain counter
      and the write-back are idle (and the image is in), then DUMP (``dump_words * (L + 2)``
      cycles: address, ``L`` cycles of memory, the word) and NEXT (one cycle; the last layer
      stays until its last logit word is out). Hence, with ``X`` the last WAIT cycle::

          layer 0          cycles = DW + 5 + X            (LDESC + LOAD + START, WAIT 1..X, NEXT)
          later layers     cycles = 3 + X + dump
          last (logits)    cycles = 2 + max(X + 1, x + 1) (x: the cycle the last logit word leaves)
          image            cycles = 2 + sum of the layers (the RUN header and layer-count words)

    * The unit's counters start at cycle 4 (START, the unit's registered start, then two cycles
      of the group-start wait). Steps leave the counters one per cycle, except that the last
      step of a segment waits until ``spacing`` cycles have passed since the previous segment's
      last step, and the first step of a group tile ``g >= 1`` waits three cycles after the
      previous group's last step and until ``g``'s lane parameters are in (``hold``, registered:
      ``loaded > g`` two cycles earlier); a logits segment also waits for 16 credits of the
      logits FIFO. The first-layer unit's quads also wait for the image rows they read.
    * Lane parameters: a group's 8 entries (row pairs) take ``8 + L`` cycles from the first
      request to ``loaded`` counting it; group 0 from cycle 1, group 1 right after, a group
      ``k >= 2`` from the cycle after group ``k - 1``'s first result reached the lanes (its
      bank is then free).
    * Latencies (from the design): window generator ``5 + L + max(L - 2, 0)`` (a step leaving
      the counters to the array's input), array ``1 + PE + 1`` (PE: its pipeline stages + 1,
      6 for 32-bit words of two 16-bit slots) plus ``c`` for column ``c``; first-layer unit from a
      quad's last step to its results ``L + T + 4`` (unpooled, then the other three positions a
      cycle each) or ``L + T + 7`` (pooled), ``T = 4`` adder-tree registers; lane 10 cycles
      (input to ``o.valid``); write-back: an output enters its queue a cycle later, is written
      from the next, one bit plane a cycle.
    * WAIT ends at ``X = max(b + 1 + DRAIN, p + 2)``: ``b`` the first cycle the unit is not busy
      (its last result register emptied), ``DRAIN`` the sequencer's constant (``C + 17`` for the
      array, ``12`` for the first-layer unit), ``p`` the write-back's last busy cycle (its queue's
      last bit-plane write, or the last logit row into the FIFO).

Per layer kind this gives (``C`` cols, ``L`` mem_latency, ``DW`` desc_words; a segment of ``n``
steps = input bit planes x steps per plane, ``sp`` the descriptor's spacing, ``Nt`` tiles per
group tile, ``G`` group tiles, ``P`` output bit planes; ``Wn = 5 + L + max(L - 2, 0)``, ``An = 6``;
cycle 0 is START)::

    array layer (LINEAR, QUAD, FC), group tile g:
        u_0 = 4,  u_g = max(e_last(g-1) + 3, A_g + 2)             first step
        e_first(g) = max(u_g + n - 1, e_last(g-1) + sp)           its segment's last step
        e_last(g)  = e_first(g) + (Nt - 1) * max(n, sp)
        A_0 = 9 + L,  A_1 = A_0 + 8 + L,
        A_g = max(A_(g-1), e_first(g-1) + Wn + An + 1) + 8 + L    (g >= 2)
        t = e_last(G-1) + Wn + An + (C - 1) + 10                  the last lane output
        X = t + 4 + max(0, k * P - m)     maps: m lane outputs in the last tile (C for LINEAR,
                                          else 1), the first k written (last_cols, else 1)
        X = t + 19                        logits: the 16 rows go into the FIFO one a cycle
        cycles = 3 + max(X + dump, DW + 1)
        logits: each logit takes ceil(y_width / 32) output cycles from 4 cycles after its
        group's lane output (2 + row into the FIFO, 2 more out of it): the last word x, and
        cycles = 2 + max(X + 1, x + 1); a group g >= 2 also waits for 16 credits (its first
        step 3 cycles after the (16 (g + 1) - logit_depth)-th logit's last word)
    first-layer unit, quads of n = (4 / flu_positions) x channels steps, spacing sp:
        as above per quad (Nt quads a group, A_g with e_first(g-1) + L + 4 + 4 + 1, or + 7 + 1
        pooled), and a quad's first step u needs avail(u - 2) > need(u - 2): image word w is
        in from cycle w - DW (all from N - DW, N the image words), need_q = need_off +
        tile_row + 1 + qy * tile_row + qx, held in a register that takes the next quad's need
        the cycle after a quad's last step (so a quad that follows at once is tested against
        the one before's need); a quad of one step also waits for the spacing
        t = e_last + L + 4 + 7 + 10;   X = max(t + 4 + m (P - 1), N - DW - 3)   (m = 1 pooled, 4)
        cycles = DW + 4 + max(X + dump + 1, DW + 2)
    image = 2 + sum of the layers;  back-to-back RUNs: period = image + layers + 1 (stats words)

:func:`layer_cycles` gives one compiled layer's count, :func:`image_cycles` a whole program's.
``tests/sim/test_dp_cycles.py`` checks both equal to the Verilator counters.
"""

from __future__ import annotations

from . import dpprog
from .hwif import IO_WIDTH
from .hwif.dp import SLOT, DpParams, WinMode
from .intmodel import IntModel, Layer

__all__ = ["LANE_DELAY", "layer_cycles", "image_cycles", "timeline"]

ROWS = 16
#: Lane parameter entries (row pairs) of a group tile.
PARAM_ENTRIES = ROWS // 2
#: Cycles from a result at a lane's input to its output's ``valid`` (``Lane.latency``: the input
#: register, the five stages, the two multiplier registers and the output register).
LANE_DELAY = 10
#: Adder-tree registers of the first-layer unit (9 taps, a register after every level).
FLU_TREE_REGS = 4


def _params(params) -> DpParams:
    if params is None:
        return DpParams()
    return params if isinstance(params, DpParams) else DpParams(**params)


def pe_latency(p: DpParams, levels_per_stage: int = 2) -> int:
    """An XNOR PE's latency: its pipeline stages (slot popcount levels and the sum over slots,
    ``levels_per_stage`` a register) plus the partial's register."""
    slot_levels = (SLOT - 1).bit_length()
    sum_levels = (p.word // SLOT - 1).bit_length()
    lv = levels_per_stage
    return -(-slot_levels // lv) + max(1, -(-sum_levels // lv)) + 1


def array_latency(p: DpParams) -> int:
    """From a segment's last step at the array's input to column 0's result at the lanes: the
    edge register, the PE, the row's merged result register."""
    return 1 + pe_latency(p) + 1


def window_latency(p: DpParams) -> int:
    """From a step leaving the window generator's counters to the step at the array's input."""
    L = p.mem_latency
    return 5 + L + max(L - 2, 0)


def _wb_end(t_last: int, m: int, k: int, planes: int) -> int:
    """The write-back's last busy cycle for a last tile of ``m`` lane outputs in consecutive
    cycles ending at ``t_last``, the first ``k`` of them kept: each goes into the queue a cycle
    after its output (``q_v``), is readable a cycle later, and takes ``planes`` write cycles."""
    first = t_last - (m - 1)
    return max(t_last + 1, first + 1 + k * planes)


def _loads(p: DpParams):
    """(cycles of one group's parameter load, first cycle ``loaded >= 1``)."""
    per = PARAM_ENTRIES + p.mem_latency
    return per, 1 + per


def _logit_words(p: DpParams) -> int:
    return -(-p.y_width // IO_WIDTH)


def _array_layer(code, p: DpParams) -> dict:
    d = code.desc
    win, wb = d["win"], d["wb"]
    C, L = p.cols, p.mem_latency
    n = (win["planes_last"] + 1) * (win["last_step"] + 1)
    sp = win["spacing"]
    step = max(n, sp)
    tiles = (win["last_tx"] + 1) * (win["last_ty"] + 1)
    G = win["last_gt"] + 1
    logits = bool(wb["logits"])
    Wn, An = window_latency(p), array_latency(p)
    per, a0 = _loads(p)
    lw = _logit_words(p)
    depth = p.logit_depth
    # the logits FIFO: each in-use row's write cycle, and each entry's last word out
    pops = []              # cycle of each logit's last word (the FIFO pop), in order
    o_prev = None
    e_prev = None
    loaded = []            # A_g: first cycle with loaded >= g + 1
    firsts, lasts, ups = [], [], []
    for g in range(G):
        if g == 0:
            A = a0
            u = 4
        else:
            if g == 1:
                A = loaded[0] + per
            else:
                # the load of group g starts the cycle after group g-1's first result reached the
                # lanes (cur_par), after group g-1's own load
                r_prev = firsts[g - 1] + Wn + An
                A = max(loaded[g - 1], r_prev + 1) + per
            u = max(e_prev + 3, A + 2)
            if logits and g >= 2:
                # hold until 16 credits: credits(u - 2) = depth - 16 g + (pops/drops before u - 2)
                need = ROWS * (g + 1) - depth
                if need > 0:
                    if need > len(pops):
                        raise AssertionError("logits FIFO model: credits from a later group")
                    u = max(u, pops[need - 1] + 1 + 2)
        loaded.append(A)
        e_first = u + n - 1 if g == 0 else max(u + n - 1, e_prev + sp)
        e_last = e_first + (tiles - 1) * step
        ups.append(u)
        firsts.append(e_first)
        lasts.append(e_last)
        e_prev = e_last
        if logits:
            # one lane output per group (the columns summed), all rows together
            t_o = e_last + Wn + An + (C - 1) + LANE_DELAY
            rows = ROWS if g < G - 1 else wb["rows_last"] + 1
            for j in range(rows):
                w = t_o + 2 + j                      # the row's write into the FIFO
                o = w + 2 if o_prev is None else max(w + 2, o_prev + lw)
                pops.append(o + lw - 1)
                o_prev = o
    e_last = lasts[-1]
    t_o = e_last + Wn + An + (C - 1) + LANE_DELAY       # the last lane output
    b = e_last + Wn + 1                                   # the window generator idle
    drain = An + C - 1 + LANE_DELAY + 2
    if logits:
        p_end = t_o + 1 + ROWS                            # the last row into the FIFO (l_v)
    else:
        planes = wb["planes_last"] + 1
        mode = win["mode"]
        if mode == WinMode.LINEAR:
            m, k = C, wb["last_cols"]
        else:                                             # QUAD (pooled) or FC: one output a tile
            m, k = 1, 1
        p_end = _wb_end(t_o, m, k, planes)
    X = max(b + 1 + drain, p_end + 2)
    return {"X": X, "first_steps": ups, "segment_ends": firsts, "group_ends": lasts, "loaded": loaded,
            "last_output": t_o, "logit_pops": pops}


def _flu_layer(code, p: DpParams) -> dict:
    d = code.desc
    f, wb = d["flu"], d["wb"]
    L, DW = p.mem_latency, p.desc_words
    parts = 4 // p.flu_positions
    n = parts * (f["last_ch"] + 1)
    sp = f["spacing"]
    qw, qh = f["last_qx"] + 1, f["last_qy"] + 1
    G = f["last_gt"] + 1
    pool = bool(f["pool"])
    th, tr = dpprog.tile_grid(code.layer.in_h, code.layer.in_w, code.layer.padding)
    N = th * f["tile_row"]                                # image words (tile rows x words per row)
    need0 = f["img_base"] + f["need_off"] + f["tile_row"] + 1
    T = FLU_TREE_REGS
    out_first = L + T + (7 if pool else 4)                # a quad's last step to its first output
    per, a0 = _loads(p)

    def ready(need):
        # first cycle t with avail(t) > need: avail(t) = t - S + DW (image words in, three cycles
        # late), all ones once the image is in
        return -DW + min(need + 1, N)

    e_prev = None          # the last step of the previous quad (any group)
    loaded, firsts, lasts = [], [], []
    for g in range(G):
        if g == 0:
            A, c, regroup = a0, 4, 1
        else:
            if g == 1:
                A = loaded[0] + per
            else:
                A = max(loaded[g - 1], firsts[g - 1] + out_first + 1) + per
            regroup = e_prev
            c = max(e_prev + 3, A + 2)
        loaded.append(A)
        # the need register: (value, from cycle) pairs of the last quads
        hist = [(need0, regroup + 1)]
        first_e = None
        for qy in range(qh):
            for qx in range(qw):
                q_first = qy == 0 and qx == 0
                need_q = need0 + qy * f["tile_row"] + qx
                if not q_first:
                    c = e_prev + 1
                    hist.append((need_q, e_prev + 1))
                if n == 1 and e_prev is not None:
                    c = max(c, e_prev + sp)
                u = c
                while True:
                    t = u - 2
                    held = [v for v, since in hist if since <= t]
                    assert held, "need register: a cycle before the quads kept"
                    v = held[-1]
                    if t >= ready(v):
                        break
                    if t >= hist[-1][1]:
                        u = ready(v) + 2                      # the current quad's need: jump
                    else:
                        u += 1
                e = u + n - 1 if e_prev is None else max(u + n - 1, e_prev + sp)
                if first_e is None:
                    first_e = e
                e_prev = e
                hist = hist[-3:]
        firsts.append(first_e)
        lasts.append(e_prev)
    e_last = lasts[-1]
    t_o = e_last + L + T + 7 + LANE_DELAY                   # the last lane output
    b = e_last + L + T + 8                                  # the unit idle
    drain = LANE_DELAY + 2
    planes = wb["planes_last"] + 1
    m = 1 if pool else 4
    p_end = _wb_end(t_o, m, m, planes)
    img_done = -DW - 3 + N                                  # first cycle with every image word in
    X = max(b + 1 + drain, p_end + 2, img_done)
    return {"X": X, "segment_ends": firsts, "group_ends": lasts, "loaded": loaded, "last_output": t_o,
            "image_words": N}


def timeline(code, params=None, *, first: bool | None = None) -> dict:
    """The key cycles of one compiled layer, relative to its START cycle: ``X`` (the last WAIT
    cycle), the groups' first segment ends and last steps, the parameter loads, the last lane
    output; ``cycles``, the layer's count (:func:`layer_cycles`)."""
    p = _params(params)
    code = _as_code(code, p, first)
    d = code.desc
    out = _flu_layer(code, p) if code.unit == "first" else _array_layer(code, p)
    X = out["X"]
    dump = d["dump_words"] * (p.mem_latency + 2) if (d["dump"] and d["dump_words"]) else 0
    if code.unit == "first":
        # from the layer-count word: LDESC (DW + 2), LOAD, then START at 0; NEXT at X + dump + 1
        cycles = p.desc_words + 4 + max(X + dump + 1, p.desc_words + 2)
    elif code.out_map is None:
        pops = out["logit_pops"]
        cycles = 2 + max(X + 1 + dump, (pops[-1] + 1) if pops else 0)
    else:
        # NEXT needs the next descriptor: prefetched from the cycle after START, ready DW + 2 later
        cycles = 3 + max(X + dump, p.desc_words + 1)
    out["cycles"] = cycles
    return out


def _as_code(code, p: DpParams, first=None):
    if isinstance(code, dpprog.LayerCode):
        return code
    if isinstance(code, Layer):
        return _compile_alone(code, p, first)
    raise TypeError(f"expected a compiled layer (dpprog.LayerCode) or an intmodel.Layer, got {type(code).__name__}")


def _compile_alone(layer: Layer, p: DpParams, first=None):
    """A :class:`~binaccel.sw.intmodel.Layer` compiled on its own: on the first-layer unit with
    ``first`` (None: a 3x3 stride-1 convolution on 8-bit inputs), else on the array; its output
    map has one bit plane for sign outputs, ``out_bits`` for requantized ones."""
    out = None
    if layer.out_kind != "logits":
        planes = 1 if layer.out_kind == "sign" else int(layer.out_bits)
        out = dpprog.MapLayout(h=layer.out_h, w=layer.out_w, channels=layer.out_ch, planes=planes)
    if first is None:
        first = layer.kind == "conv" and layer.in_bits == 8 and layer.kernel == 3 and layer.stride == 1
    if first:
        model = IntModel(name=layer.name, input_shape=(layer.in_ch, layer.in_h, layer.in_w), layers=[layer],
                         classes=layer.out_ch)
        code = dpprog._first_layer(layer, p, out, model)
    else:
        inp = dpprog.MapLayout(h=layer.in_h, w=layer.in_w, channels=layer.in_ch, planes=layer.in_bits)
        code = dpprog._array_layer(layer, p, inp, out)
    code.desc.update({"in_bank": 0, "out_bank": 1, "dump": 0, "dump_base": 0, "dump_words": 0})
    return code


def layer_cycles(code, params=None, *, first: bool | None = None) -> int:
    """The hardware's cycle count of one layer (a :class:`~binaccel.sw.dpprog.LayerCode`, or a
    :class:`~binaccel.sw.intmodel.Layer` compiled on its own) on the build ``params``
    (:class:`~binaccel.sw.hwif.dp.DpParams` or a dict; default the defaults): for the first
    layer from the RUN's layer-count word to its NEXT state, including the descriptor load and
    the waits for the image words; for a later layer from its LOAD state to its NEXT state; for
    the last one until its last logit word is out (module docstring). ``first``: for a Layer,
    whether it runs on the first-layer unit (None: a 3x3 stride-1 convolution on 8-bit inputs)."""
    return timeline(code, params, first=first)["cycles"]


def image_cycles(program, params=None, *, stats: bool = True) -> dict:
    """``{"layers": [each layer's count], "image": the image's count, "period": cycles between
    back-to-back RUNs}`` of a :class:`~binaccel.sw.dpprog.DpProgram` (or an
    :class:`~binaccel.sw.intmodel.IntModel`, compiled for ``params``). The image's count is the
    hardware's, ``2 + sum(layers)``: the RUN header and the layer-count word, then the layers (the
    image words arrive while the first layer runs). The stats words are not counted: one a cycle
    after the last layer (``len(layers) + 1`` of them with ``stats``), so that RUNs that follow
    each other take ``period = image + len(layers) + 1`` cycles each (``image`` without stats)."""
    if isinstance(program, IntModel):
        program = dpprog.compile_model(program, _params(params))
    p = program.params if params is None else _params(params)
    layers = [layer_cycles(c, p) for c in program.layers]
    image = 2 + sum(layers)
    return {"layers": layers, "image": image, "period": image + (len(layers) + 1 if stats else 0)}
