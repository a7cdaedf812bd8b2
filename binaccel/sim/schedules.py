"""Random valid/ready schedules at scale: many seeded runs per layer kind through the fast path.

::

    python -m binaccel.sim.schedules [--runs N] [--kinds plain,mcn,...] [--seed S]
                                     [--out build/schedules/schedules.json]
    python -m binaccel.sim.schedules --replay KIND:SEED

Each layer kind of :data:`KINDS` is a small network: one layer of that kind and the fewest layers
around it that make a valid network for its design (an 8-bit first layer in front, an FC layer of
logits behind). A run is fixed by its kind and its seed: the seed picks one of :data:`VARIANTS`
random weight sets (with :data:`IMAGES` random images) and draws the schedule (:func:`schedule`):
the probability of an idle cycle before each input word and of ``ready`` low on the output each
cycle (each 0 with probability 0.15, else uniform in [0, 0.85)), the seed of those patterns, and
with probability 0.25 a reset at a random cycle, after which every word is sent again from the
first (a clean rerun; :meth:`binaccel.sim.fastpath.FastSim.run_batch`). The
reset cycle is uniform over the clean run's length divided by ``1 - max(idle, backpressure)``, so
some land past the end of the run and leave it without a reset.

Every run's reply is decoded and every dumped map and the logits of every image are compared with
:func:`binaccel.sw.intref.run_model` (whole int64 tensors, :func:`numpy.array_equal`). A mismatch is
any difference, a run that reaches its cycle limit, or a word beyond the expected ones (the run
goes on for :data:`EXTRA_CYCLES` cycles with ``ready`` high). Runs go in batches of
:data:`BATCH` through one process of one Verilator build per design (cached under
``schedules/sim/`` of the build folder, apart from the other builds so that no rebuild replaces
an executable under a running batch).

The record (JSON, default ``build/schedules/schedules.json``): ``kinds`` maps each kind to
``runs``, ``mismatches``, ``timeouts``, ``resets`` (runs whose reset happened before the end),
``design``, ``params``, ``network``, ``seeds`` (first and last), ``idle_max`` / ``backpressure_max``
(the largest drawn), ``sim_cycles`` and ``run_time_s``; ``total_run_time_s`` and ``command`` at the
top. Exit status 1 when a run mismatched (each printed with its kind, seed, schedule and first
differing index, replayable with ``--replay KIND:SEED``), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from binaccel.hw.dp.accel import DpAccelerator
from binaccel.sim.builds import accel_verilog
from binaccel.sim.fastpath import FastSim, FastSimJob
from binaccel.sim.runner import SINGLE_FILE_ARGS, params_hash
from binaccel.sw import dpprog, intref
from binaccel.sw import program as accprog
from binaccel.sw.atomic import write_json_atomic
from binaccel.sw.hwif import AccelParams
from binaccel.sw.hwif.dp import DpParams
from binaccel.sw.intmodel import IntModel
from binaccel.sw.paths import build_dir
from binaccel.sw.randmodel import random_layer

__all__ = ["KINDS", "Kind", "Variant", "Schedule", "RunOutcome", "KindResult", "DP_PARAMS", "ACCEL_PARAMS",
           "VARIANTS", "IMAGES", "BATCH", "EXTRA_CYCLES", "variant", "schedule", "run_kind", "replay", "main"]

#: The pipelined accelerator's build for the schedules (small buffers, 4 columns; the build of the
#: default tier of tests/sim/test_dp_cocotb.py).
DP_PARAMS = DpParams(cols=4, fm_depth=2048, w_depth=256, t_depth=128, p_depth=256, max_dim=32, max_steps=128,
                     mem_latency=2)
#: The whole-network accelerator's build (the default parameters: 4 x 4 PEs of 32 bits, up to 4 planes).
ACCEL_PARAMS = AccelParams()
#: Weight sets per kind (a run's seed picks one: seed % VARIANTS), images per run.
VARIANTS = 8
IMAGES = 2
#: Runs per process of the executable.
BATCH = 250
#: Cycles with ``ready`` high after the last expected word, in which any further word is a mismatch.
EXTRA_CYCLES = 64
#: Probability that a probability is 0, the upper end of the uniform draw otherwise, and the
#: probability of a reset in the run.
P_ZERO, P_MAX, P_RESET = 0.15, 0.85, 0.25

# a layer: (kind, out_ch, kernel, stride, padding, pool, out_kind, out_bits, mode, planes)
_L = tuple


@dataclass(frozen=True)
class Kind:
    """A layer kind: the ``design`` that runs it (``"dp"``: :class:`binaccel.hw.dp.accel.DpAccelerator`,
    ``"accel"``: :class:`binaccel.hw.top.Accelerator`), the network (``layers`` on ``input_shape``)
    and what it checks."""

    design: str
    layers: tuple
    input_shape: tuple
    what: str


KINDS: dict[str, Kind] = {
    "plain": Kind("dp", (("conv", 8, 3, 1, 1, 1, "sign", 1, "plain", 1),
                         ("conv", 16, 3, 1, 1, 1, "sign", 1, "plain", 1),
                         ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (1, 6, 6),
                  "a binary 3x3 conv (8 -> 16 channels, 6x6) between the first layer and FC"),
    "mcn": Kind("accel", (("conv", 8, 3, 1, 1, 2, "sign", 1, "plain", 1),
                          ("conv", 8, 3, 1, 1, 1, "sign", 1, "mcn", 2),
                          ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (1, 8, 8),
                "an MCN conv with full 3x3 M-Filters (2 planes, 8 channels, 4x4)"),
    "mcn1": Kind("dp", (("conv", 8, 3, 1, 1, 1, "sign", 1, "plain", 1),
                        ("conv", 8, 3, 1, 1, 1, "sign", 1, "mcn1", 2),
                        ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (1, 6, 6),
                 "an MCNs-1 conv (2 planes, one scalar each; compiled to its plain equivalent)"),
    "multibit_first": Kind("dp", (("conv", 8, 3, 1, 1, 2, "requant", 4, "plain", 1),
                                  ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (3, 8, 8),
                           "a first layer on 3 channels of 8-bit pixels, pooled, 4-bit requant out, FC on it"),
    "fc": Kind("dp", (("conv", 8, 3, 1, 1, 2, "sign", 1, "plain", 1),
                      ("fc", 24, 1, 1, 0, 1, "sign", 1, "plain", 1),
                      ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (1, 6, 6),
               "a hidden FC layer (72 -> 24, binary out) and the FC logits"),
    "stride2": Kind("dp", (("conv", 8, 3, 1, 1, 1, "sign", 1, "plain", 1),
                           ("conv", 16, 3, 2, 1, 1, "sign", 1, "plain", 1),
                           ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (1, 8, 8),
                    "a binary 3x3 conv of stride 2 (8x8 -> 4x4)"),
    "padding": Kind("dp", (("conv", 8, 3, 1, 0, 1, "sign", 1, "plain", 1),
                           ("conv", 16, 3, 1, 1, 1, "sign", 1, "plain", 1),
                           ("fc", 10, 1, 1, 0, 1, "logits", 1, "plain", 1)), (2, 8, 10),
                    "a first layer of padding 0 (8x10 -> 6x8), then a binary 3x3 conv of padding 1 "
                    "on the non-square map"),
}


def _kind_id(kind: str) -> int:
    return zlib.crc32(kind.encode())


def _model(kind: str, rng: np.random.Generator) -> IntModel:
    k = KINDS[kind]
    c, h, w = k.input_shape
    bits, layers = 8, []
    for i, (lk, out_ch, ks, s, pad, pool, out_kind, ob, mode, planes) in enumerate(k.layers):
        layer = random_layer(rng, name=f"l{i}", kind=lk, mode=mode, planes=planes, in_ch=c, in_h=h, in_w=w,
                             out_ch=out_ch, kernel=ks, stride=s, padding=pad, in_bits=bits, pool=pool,
                             out_kind=out_kind, out_bits=ob)
        layers.append(layer)
        c, h, w = layer.out_ch, layer.out_h, layer.out_w
        bits = 1 if out_kind == "sign" else ob
    model = IntModel(name=f"schedules-{kind}", input_shape=k.input_shape, layers=layers, classes=layers[-1].out_ch)
    model.validate()
    return model


# --------------------------------------------------------------------------------------------------
# Designs


_SIMS: dict = {}


def _sim(design: str) -> FastSim:
    """The fast-path build of a design (once per process; on disk under ``schedules/sim/``)."""
    if design not in _SIMS:
        root = build_dir("schedules", "sim")
        if design == "dp":
            p = DP_PARAMS.as_dict()
            _SIMS[design] = FastSim(DpAccelerator(**p), name="dpaccel", params=p,
                                    build_dir=root / f"fast-dpaccel-{params_hash(p)}")
        elif design == "accel":
            _SIMS[design] = FastSim(accel_verilog(ACCEL_PARAMS), name="accel", params=ACCEL_PARAMS.as_dict(),
                                    build_dir=root / f"fast-accel-{ACCEL_PARAMS.tag}", verilator_args=SINGLE_FILE_ARGS)
        else:
            raise ValueError(f"unknown design {design!r}")
    return _SIMS[design]


def _design_record(design: str) -> dict:
    if design == "dp":
        return {"design": "dp", "class": "binaccel.hw.dp.accel.DpAccelerator", "compiler": "binaccel.sw.dpprog",
                "params": DP_PARAMS.as_dict()}
    return {"design": "accel", "class": "binaccel.hw.top.Accelerator", "compiler": "binaccel.sw.program",
            "params": ACCEL_PARAMS.as_dict()}


# --------------------------------------------------------------------------------------------------
# Variants and schedules


@dataclass
class Variant:
    """One weight set of a kind: the model, the images, the compiled program, the input words, the
    expected reply length, the references (:func:`binaccel.sw.intref.run_model`, one array per
    layer) and ``clean_cycles`` (a run without idle, backpressure or reset)."""

    kind: str
    index: int
    model: IntModel
    images: np.ndarray
    prog: object
    words: np.ndarray
    n_out: int
    refs: list
    clean_cycles: int = 0


def variant(kind: str, index: int) -> Variant:
    """Weight set ``index`` of ``kind`` (seeded by the kind's name and the index)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    rng = np.random.default_rng([_kind_id(kind), index])
    model = _model(kind, rng)
    images = rng.integers(0, 256, size=(IMAGES, *model.input_shape)).astype(np.uint8)
    if KINDS[kind].design == "dp":
        prog = dpprog.compile_model(model, DP_PARAMS, dump=True)
        words = list(prog.setup)
        for img in images:
            words += prog.run_words(img)
        n_out = prog.reply_words() * IMAGES
    else:
        prog = accprog.compile_model(model, ACCEL_PARAMS, dump=True, stream=False)
        words = prog.setup_words + prog.images_words(images)
        n_out = prog.out_words_per_image * IMAGES
    return Variant(kind=kind, index=index, model=model, images=images, prog=prog,
                   words=np.asarray(words, dtype=np.uint64), n_out=n_out, refs=intref.run_model(model, images))


@dataclass(frozen=True)
class Schedule:
    """A run's schedule: ``variant`` (weight set), ``idle``, ``backpressure``, ``sim_seed`` (of the
    harness's patterns) and ``reset_at`` (a cycle, or None)."""

    kind: str
    seed: int
    variant: int
    idle: float
    backpressure: float
    sim_seed: int
    reset_at: int | None

    def describe(self) -> str:
        return (f"variant {self.variant}, idle {self.idle:.4f}, backpressure {self.backpressure:.4f}, "
                f"sim seed {self.sim_seed}, reset at {self.reset_at if self.reset_at else 'none'}")


def schedule(kind: str, seed: int, clean_cycles: int) -> Schedule:
    """The schedule of run ``seed`` of ``kind`` (``clean_cycles``: the length of the variant's clean run,
    which sets the range of the reset cycle)."""
    rng = np.random.default_rng([_kind_id(kind), int(seed), 0x5C4ED])

    def prob():
        return 0.0 if rng.random() < P_ZERO else float(rng.uniform(0.0, P_MAX))

    idle, bp = prob(), prob()
    sim_seed = int(rng.integers(0, 1 << 62))
    # uniform over about the stalled run's length (the clean run stretched by the larger stall
    # probability); a draw past the run's end leaves it without a reset (the record counts resets)
    span = max(int(clean_cycles / (1.0 - max(idle, bp))), 2)
    reset_at = int(rng.integers(1, span)) if rng.random() < P_RESET else None
    return Schedule(kind=kind, seed=int(seed), variant=int(seed) % VARIANTS, idle=idle, backpressure=bp,
                    sim_seed=sim_seed, reset_at=reset_at)


# --------------------------------------------------------------------------------------------------
# Checking


@dataclass(frozen=True)
class Difference:
    """The first difference of a run from the reference: ``what`` (``"map"``, ``"logits"``,
    ``"timeout"``, ``"extra words"``), the layer, the image and the first differing index."""

    what: str
    layer: str = ""
    image: int = -1
    index: tuple = ()
    got: int | None = None
    want: int | None = None
    count: int = 0

    def __str__(self) -> str:
        if self.what in ("timeout", "extra words", "length"):
            return f"{self.what} ({self.count} words)"
        return (f"{self.what} of layer {self.layer} image {self.image}: {self.count} values differ, first at "
                f"index {self.index}: got {self.got}, want {self.want}")


def _first(what, layer, image, got, want) -> Difference | None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return Difference(what, layer, image, (), None, None, int(want.size))
    if np.array_equal(got, want):
        return None
    diff = got != want
    idx = tuple(int(i) for i in np.argwhere(diff)[0])
    return Difference(what, layer, image, idx, int(got[idx]), int(want[idx]), int(diff.sum()))


def _compare(v: Variant, out: list, refs: list) -> Difference | None:
    if len(out) != v.n_out:
        return Difference("length", count=len(out))
    names = [layer.name for layer in v.model.layers]
    if KINDS[v.kind].design == "dp":
        per = v.n_out // IMAGES
        for k in range(IMAGES):
            rep = v.prog.parse_reply(out[k * per:(k + 1) * per])
            for i in sorted(rep["maps"]):
                d = _first("map", names[i], k, rep["maps"][i], refs[i][k])
                if d:
                    return d
            d = _first("logits", names[-1], k, rep["logits"], refs[-1][k].reshape(-1))
            if d:
                return d
        return None
    dec = v.prog.decode(out, IMAGES)
    for k in range(IMAGES):
        for i in sorted(dec["outputs"]):
            d = _first("map", names[i], k, dec["outputs"][i][k], refs[i][k])
            if d:
                return d
        d = _first("logits", names[-1], k, dec["logits"][k].reshape(-1), refs[-1][k].reshape(-1))
        if d:
            return d
    return None


@dataclass
class RunOutcome:
    schedule: Schedule
    difference: Difference | None
    reset: bool
    cycles: int
    out_before_reset: int


@dataclass
class KindResult:
    """The runs of one kind: ``runs``, ``mismatches`` (the :class:`RunOutcome` of each), ``timeouts``,
    ``resets``, ``sim_cycles``, ``run_time_s``, the largest drawn probabilities, the record."""

    kind: str
    runs: int = 0
    mismatches: list = field(default_factory=list)
    timeouts: int = 0
    resets: int = 0
    resets_mid_output: int = 0
    sim_cycles: int = 0
    run_time_s: float = 0.0
    idle_max: float = 0.0
    backpressure_max: float = 0.0
    seeds: tuple = (0, 0)

    def record(self) -> dict:
        k = KINDS[self.kind]
        return {"runs": self.runs, "mismatches": len(self.mismatches), "timeouts": self.timeouts,
                "resets": self.resets, "resets_after_output": self.resets_mid_output,
                **_design_record(k.design), "what": k.what,
                "network": {"input_shape": list(k.input_shape),
                            "layers": [dict(zip(("kind", "out_ch", "kernel", "stride", "padding", "pool", "out_kind",
                                                 "out_bits", "mode", "planes"), x)) for x in k.layers]},
                "variants": VARIANTS, "images_per_run": IMAGES,
                "seeds": list(self.seeds), "idle_max": round(self.idle_max, 4),
                "backpressure_max": round(self.backpressure_max, 4), "sim_cycles": self.sim_cycles,
                "run_time_s": round(self.run_time_s, 2),
                "mismatch_runs": [{"seed": m.schedule.seed, "schedule": m.schedule.describe(),
                                   "difference": str(m.difference)} for m in self.mismatches[:50]]}


def _jobs(v: Variant, s: Schedule) -> FastSimJob:
    return FastSimJob(words=v.words, n_out=v.n_out, idle=s.idle, backpressure=s.backpressure, seed=s.sim_seed,
                      extra_cycles=EXTRA_CYCLES, reset_at=s.reset_at)


def _variants(kind: str, tamper: Callable | None) -> list:
    sim = _sim(KINDS[kind].design)
    vs = [variant(kind, i) for i in range(VARIANTS)]
    clean = sim.run_batch([FastSimJob(words=v.words, n_out=v.n_out, extra_cycles=EXTRA_CYCLES) for v in vs])
    for v, r in zip(vs, clean):
        v.clean_cycles = r.cycles
        if tamper is not None:
            tamper(v)
    return vs


def run_kind(kind: str, seeds, *, tamper: Callable | None = None, progress: bool = True,
             on_mismatch: Callable | None = None, schedules: Callable | None = None) -> KindResult:
    """Run every seed of ``seeds`` (a range) of ``kind``. ``tamper(variant)``: change a variant's
    references after they are made (a negative control: a wrong expectation must give mismatches).
    ``schedules(kind, seed, clean_cycles) -> Schedule`` replaces :func:`schedule`. ``on_mismatch``
    is called with each mismatching :class:`RunOutcome`."""
    seeds = list(seeds)
    t0 = time.perf_counter()
    vs = _variants(kind, tamper)
    sim = _sim(KINDS[kind].design)
    res = KindResult(kind=kind, seeds=(seeds[0], seeds[-1]) if seeds else (0, 0))
    make = schedules or schedule
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(seeds), desc=kind, unit="run", file=sys.stderr, mininterval=2.0)
    for at in range(0, len(seeds), BATCH):
        chunk = [make(kind, s, vs[s % VARIANTS].clean_cycles) for s in seeds[at:at + BATCH]]
        results = sim.run_batch([_jobs(vs[s.variant], s) for s in chunk])
        for s, r in zip(chunk, results):
            v = vs[s.variant]
            if r.timeout:
                diff = Difference("timeout", count=len(r.out))
                res.timeouts += 1
            elif r.n_extra:
                diff = Difference("extra words", count=r.n_extra)
            else:
                diff = _compare(v, r.out, v.refs)
            res.runs += 1
            res.resets += int(r.reset)
            res.resets_mid_output += int(r.reset and r.out_before_reset > 0)
            res.sim_cycles += r.total_cycles
            res.idle_max = max(res.idle_max, s.idle)
            res.backpressure_max = max(res.backpressure_max, s.backpressure)
            if diff is not None:
                o = RunOutcome(s, diff, r.reset, r.total_cycles, r.out_before_reset)
                res.mismatches.append(o)
                if on_mismatch:
                    on_mismatch(o)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    res.run_time_s = time.perf_counter() - t0
    return res


def replay(kind: str, seed: int) -> KindResult:
    """Run ``seed`` of ``kind`` alone (the same variant and schedule as in a batch of any size)."""
    return run_kind(kind, [seed], progress=False)


# --------------------------------------------------------------------------------------------------
# Command line


def _mismatch_line(o: RunOutcome) -> str:
    s = o.schedule
    return (f"MISMATCH kind {s.kind} seed {s.seed}: {o.difference}; schedule: {s.describe()}"
            f"{' (reset happened)' if o.reset else ''}; replay: python -m binaccel.sim.schedules "
            f"--replay {s.kind}:{s.seed}")


def _parse_kinds(text: str) -> list:
    kinds = [k for part in text for k in part.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown kind(s) {', '.join(bad)}: expected some of {', '.join(KINDS)}")
    if not kinds:
        raise ValueError("no kinds given")
    return list(dict.fromkeys(kinds))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m binaccel.sim.schedules",
                                 description="Seeded random valid/ready schedules (idle, backpressure, resets) per "
                                             "layer kind through the Verilator fast path; every map and logit "
                                             "compared with the integer reference.")
    ap.add_argument("--runs", type=int, default=10_000, help="runs per kind (default 10000)")
    ap.add_argument("--kinds", nargs="+", default=[",".join(KINDS)],
                    help=f"kinds, space- or comma-separated (default all: {','.join(KINDS)})")
    ap.add_argument("--seed", type=int, default=0, help="first run seed (runs use seeds S .. S+N-1; default 0)")
    ap.add_argument("--out", default=None, help="the record (default build/schedules/schedules.json)")
    ap.add_argument("--replay", default=None, metavar="KIND:SEED", help="run one seed of one kind and print it")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        if args.runs < 1:
            raise ValueError(f"--runs must be at least 1, got {args.runs}")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        kinds = _parse_kinds(args.kinds)
        if args.replay is not None:
            kind, _, seed = args.replay.partition(":")
            if kind not in KINDS or not seed.isdigit():
                raise ValueError(f"--replay takes KIND:SEED with KIND one of {', '.join(KINDS)}, got {args.replay!r}")
            return _replay(kind, int(seed))
    except ValueError as e:
        print(f"binaccel.sim.schedules: error: {e}", file=sys.stderr)
        return 2
    out = build_dir("schedules", "schedules.json") if args.out is None else args.out
    t0 = time.perf_counter()
    record = {"command": "python -m binaccel.sim.schedules " + " ".join(sys.argv[1:] if argv is None else argv),
              "runs_per_kind": args.runs, "seeds": [args.seed, args.seed + args.runs - 1],
              "schedule": {"p_zero": P_ZERO, "p_max": P_MAX, "p_reset": P_RESET, "extra_cycles": EXTRA_CYCLES,
                           "batch": BATCH},
              "platform": platform.platform(), "kinds": {}}
    failed = 0
    for kind in kinds:
        res = run_kind(kind, range(args.seed, args.seed + args.runs), progress=not args.no_progress,
                       on_mismatch=lambda o: print(_mismatch_line(o), flush=True))
        record["kinds"][kind] = res.record()
        failed += len(res.mismatches)
        record["total_run_time_s"] = round(time.perf_counter() - t0, 1)
        write_json_atomic(out, record, indent=1)
        print(f"{kind}: {res.runs} runs, {len(res.mismatches)} mismatches, {res.resets} resets, "
              f"{res.run_time_s:.1f} s ({KINDS[kind].design})", flush=True)
    print(f"record: {out}; {failed} mismatching run(s) in {record['total_run_time_s']} s")
    return 1 if failed else 0


def _replay(kind: str, seed: int) -> int:
    vs = _variants(kind, None)
    s = schedule(kind, seed, vs[seed % VARIANTS].clean_cycles)
    print(f"kind {kind} seed {seed} (design {KINDS[kind].design}): {s.describe()}")
    res = replay(kind, seed)
    if res.mismatches:
        print(_mismatch_line(res.mismatches[0]))
        return 1
    print(f"matched: every map and the logits of {IMAGES} images equal intref "
          f"({res.sim_cycles} cycles{', reset happened' if res.resets else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
