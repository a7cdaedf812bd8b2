"""The pipelined accelerator (:class:`binaccel.hw.dp.accel.DpAccelerator`) through cocotb on
Verilator (or Icarus Verilog), every hidden layer's whole output map and the logits checked
against the integer reference.

Public API::

    cocotb_build(params, *, sim="verilator") -> BuildInfo   # sim/dpaccel-<hash of params>[-icarus]/
    program_words(prog, images, *, stats=True) -> list
    run_words(words, n_out, *, params=None, seed=0, idle=0.0, backpressure=0.0, reset=None,
              max_cycles=None, allow_error=False, tail=200, sim="verilator") -> TbRun
    compare(prog, images, out, *, stats=True) -> DpCheck
    run_model(model, images, *, params=None, seed=0, idle=0.0, backpressure=0.0, dump=True,
              stats=True, reset=None, max_cycles=None, sim="verilator") -> DpCocotbRun
    reset_in_image(prog, images, *, image=0, fraction=0.5, wait=20) -> dict
    reset_in_layer(prog, images, layer, *, image=0, wait) -> dict
    Mismatch, DpCheck, DpCocotbRun, TbRun

:func:`run_model` compiles the model with :func:`binaccel.sw.dpprog.compile_model` (``dump=True``:
every hidden layer's map comes back with each RUN; a network the build cannot run raises
:class:`~binaccel.sw.dpprog.DpFitError` before anything is simulated), streams the setup words
and one RUN command per image through the cocotb testbench :mod:`binaccel.sim.tb_dp` (random idle
cycles on the input, random backpressure on the output, the stream protocol, the word count, the
error and busy flags checked there), splits the reply image by image with
:meth:`~binaccel.sw.dpprog.DpProgram.parse_reply` and compares every dumped map and the logits
with :func:`binaccel.sw.intref.run_model`: whole int64 tensors, :func:`numpy.array_equal`.
Differences do not raise: they come back as :class:`Mismatch` entries naming the layer and the
image (``DpCocotbRun.exact`` is True when there are none).

``reset`` (:func:`reset_in_image`, :func:`reset_in_layer`) resets the accelerator in the middle of
a RUN, then the testbench sends every word again from the start; the outputs checked are the
clean rerun's, and ``DpCocotbRun.reset`` says how far the first attempt got.

The build is one Verilator build per parameter set (:func:`binaccel.sim.runner.build_component`,
reused from disk while the Verilog and tools are unchanged), compiled at ``-O0``
(:data:`binaccel.sim.runner.BUILD_ARGS`): the cocotb runs are short, the C++ compile dominates.
``sim="icarus"`` builds and runs the same testbench on Icarus Verilog (one more build per
parameter set, ``sim/dpaccel-<hash>-icarus/``): the same words come out, more slowly.
"""

from __future__ import annotations

import functools
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from binaccel.hw.dp.accel import DpAccelerator
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.sim.runner import BUILD_ARGS, BuildInfo, build_component, check_sim, run_cocotb
from binaccel.sim.streams import check_prob
from binaccel.sw import dpprog, intref
from binaccel.sw.hwif.dp import DpParams

__all__ = ["TB_MODULE", "Mismatch", "DpCheck", "DpCocotbRun", "TbRun", "dp_params", "cocotb_build",
           "program_words", "run_words", "compare", "run_model", "reset_in_image", "reset_in_layer"]

#: The cocotb testbench module.
TB_MODULE = "binaccel.sim.tb_dp"


def dp_params(params: DpParams | dict | None) -> DpParams:
    """``params`` as :class:`DpParams` (a dict of them; None: the ULX3S build)."""
    if isinstance(params, DpParams):
        return params
    return DpParams(**(ULX3S_BUILD if params is None else params))


@functools.lru_cache(maxsize=None)
def _build(p: DpParams, sim: str = "verilator") -> BuildInfo:
    return build_component(DpAccelerator, name="dpaccel", params=p.as_dict(),
                           build_args=BUILD_ARGS if sim == "verilator" else (), sim=sim)


def cocotb_build(params: DpParams | dict | None = None, *, sim: str = "verilator") -> BuildInfo:
    """The build of ``params`` on ``sim`` (Verilator, or ``"icarus"``) for :mod:`binaccel.sim.tb_dp`
    (``sim/dpaccel-<hash>[-icarus]/`` of the build folder; made once per process, reused from disk
    while its Verilog is unchanged)."""
    return _build(dp_params(params), check_sim(sim))


def program_words(prog: dpprog.DpProgram, images, *, stats: bool = True) -> list:
    """The program's setup words followed by one RUN command per ``uint8`` image ``(C, H, W)``."""
    words = list(prog.setup)
    for img in images:
        words += prog.run_words(img, stats=stats)
    return words


# --------------------------------------------------------------------------------------------------
# Running words


@dataclass
class TbRun:
    """One testbench run: the ``out`` words (of the clean rerun after a reset), the transfer cycle
    of each (``stamps``, from the first word's offer of that run), ``total_cycles`` (that run,
    with the testbench's tail), ``wall_s`` (the cocotb run), ``reset`` (the testbench's record of
    the reset: words sent and outputs out before it, busy at it; None without one), ``error``
    (the error flag at the end) and ``test_dir`` (results.xml, sim.log, the job)."""

    out: list
    stamps: list
    total_cycles: int
    wall_s: float
    reset: dict | None
    error: int
    test_dir: Path


def _default_max_cycles(n_in: int, n_out: int, idle: float, backpressure: float) -> int:
    return int((20_000 + 40 * (n_in + n_out)) / (1.0 - max(idle, backpressure)))


def run_words(words, n_out: int, *, params: DpParams | dict | None = None, seed: int = 0, idle: float = 0.0,
              backpressure: float = 0.0, reset: dict | None = None, max_cycles: int | None = None,
              allow_error: bool = False, tail: int = 200, sim: str = "verilator") -> TbRun:
    """Stream ``words`` through the build of ``params`` in :mod:`binaccel.sim.tb_dp` and take
    ``n_out`` words back. Raises :class:`~binaccel.sim.runner.CocotbFailure` when the testbench
    failed: a stream-protocol violation, a word more than ``n_out`` within ``tail`` cycles of the
    last, the error flag (unless ``allow_error``), the accelerator still busy, the reset not
    clearing it, or ``max_cycles`` (default from the word counts) passing first. ``sim``: the
    simulator of the build (:func:`cocotb_build`)."""
    p = dp_params(params)
    idle, backpressure = check_prob("idle", idle), check_prob("backpressure", backpressure)
    words = [int(w) for w in words]
    if any(not 0 <= w < 1 << 32 for w in words):
        raise ValueError("every input word must be an unsigned 32-bit integer")
    if n_out < 1:
        raise ValueError(f"n_out must be at least 1, got {n_out}")
    if max_cycles is None:
        max_cycles = _default_max_cycles(len(words), n_out, idle, backpressure)
    build = cocotb_build(p, sim=sim)
    runs = build.build_dir / "run"
    runs.mkdir(parents=True, exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(dir=runs, prefix=f"dp-s{seed}-"))
    job = {"words": words, "n_out": int(n_out), "idle": idle, "backpressure": backpressure, "reset": reset,
           "max_cycles": int(max_cycles), "allow_error": bool(allow_error), "tail": int(tail),
           "out": str(test_dir / "out.pkl")}
    (test_dir / "job.pkl").write_bytes(pickle.dumps(job))
    t0 = time.perf_counter()
    run_cocotb(build, test_module=TB_MODULE, seed=int(seed), testcase="run_job", test_dir=test_dir,
               tb_params={"job": str(test_dir / "job.pkl")})
    wall = time.perf_counter() - t0
    rec = pickle.loads((test_dir / "out.pkl").read_bytes())
    return TbRun(out=rec["out"], stamps=rec["stamps"], total_cycles=int(rec["total_cycles"]), wall_s=wall,
                 reset=rec.get("reset"), error=int(rec["error"]), test_dir=test_dir)


# --------------------------------------------------------------------------------------------------
# Comparing


@dataclass(frozen=True)
class Mismatch:
    """A dumped map (``what="map"``) or the logits (``what="logits"``) of one image that differ from
    :mod:`binaccel.sw.intref`: ``layer`` (index), ``name``, ``image``, ``differing`` values of
    ``size``, the first differing position ``first`` and its ``got`` / ``want`` values (``None``
    where the shapes differ)."""

    layer: int
    name: str
    image: int
    what: str
    differing: int
    size: int
    first: tuple | None
    got: int | None
    want: int | None

    def __str__(self) -> str:
        where = f"layer {self.name!r} (#{self.layer}) {self.what}, image {self.image}"
        if self.first is None:
            return f"{where}: shape differs from the reference"
        return (f"{where}: {self.differing} of {self.size} values differ, first at {self.first}: "
                f"{self.got} instead of {self.want}")


def _mismatch(layer: int, name: str, image: int, what: str, got: np.ndarray, want: np.ndarray):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return Mismatch(layer, name, image, what, int(want.size), int(want.size), None, None, None)
    diff = got != want
    if not diff.any():
        return None
    first = tuple(int(i) for i in np.argwhere(diff)[0])
    return Mismatch(layer, name, image, what, int(diff.sum()), int(want.size), first, int(got[first]),
                    int(want[first]))


@dataclass
class DpCheck:
    """The decoded reply and its comparison: ``logits`` ``(N, classes)``, ``maps`` ``{layer:
    (N, C, H, W)}`` of the dumped layers, ``layer_cycles`` ``(N, layers)`` and ``cycles`` ``(N,)``
    (the hardware's counters; empty without stats), ``mismatches``."""

    logits: np.ndarray
    maps: dict
    layer_cycles: np.ndarray
    cycles: np.ndarray
    mismatches: list = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.mismatches


def compare(prog: dpprog.DpProgram, images, out, *, stats: bool = True) -> DpCheck:
    """Decode the reply words ``out`` of one RUN per image and compare every dumped map and the
    logits with :func:`binaccel.sw.intref.run_model` (whole tensors, every integer)."""
    images = np.asarray(images, dtype=np.uint8)
    n = prog.reply_words(stats=stats)
    if len(out) != n * len(images):
        raise ValueError(f"expected {n} reply words per image ({n * len(images)}), got {len(out)}")
    model = prog.model
    refs = intref.run_model(model, images)
    logits, maps, layer_cycles, cycles, bad = [], {}, [], [], []
    last = len(model.layers) - 1
    for k in range(len(images)):
        rep = prog.parse_reply(out[k * n:(k + 1) * n])
        for i, got in rep["maps"].items():
            maps.setdefault(i, []).append(got)
            bad.append(_mismatch(i, model.layers[i].name, k, "map", got, refs[i][k]))
        logits.append(rep["logits"])
        bad.append(_mismatch(last, model.layers[last].name, k, "logits", rep["logits"], refs[last][k].reshape(-1)))
        layer_cycles.append(rep["layer_cycles"])
        if rep["cycles"] is not None:
            cycles.append(rep["cycles"])
    return DpCheck(logits=np.stack(logits), maps={i: np.stack(v) for i, v in maps.items()},
                   layer_cycles=np.asarray(layer_cycles, dtype=np.int64), cycles=np.asarray(cycles, dtype=np.int64),
                   mismatches=[b for b in bad if b is not None])


# --------------------------------------------------------------------------------------------------
# Resets in the middle of a RUN


def _outputs_before(prog, images, image: int, stats: bool) -> int:
    """Reply words of the images before ``image`` (checked to be one of ``images``)."""
    if not 0 <= image < len(images):
        raise ValueError(f"image must be 0..{len(images) - 1}, got {image}")
    return image * prog.reply_words(stats=stats)


def reset_in_image(prog: dpprog.DpProgram, images, *, image: int = 0, fraction: float = 0.5, wait: int = 20,
                   stats: bool = True) -> dict:
    """A reset while image ``image`` arrives: the setup, the RUNs before it and ``fraction`` of its
    RUN words sent (the first-layer unit runs while the image arrives), then ``wait`` cycles."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    m = _outputs_before(prog, images, image, stats)
    runs = [len(prog.run_words(img, stats=stats)) for img in images]
    k = len(prog.setup) + sum(runs[:image]) + int(fraction * runs[image])
    return {"after_words": k, "after_outputs": m, "wait": int(wait)}


def reset_in_layer(prog: dpprog.DpProgram, images, layer: int, *, image: int = 0, wait: int,
                   stats: bool = True) -> dict:
    """A reset while layer ``layer`` of image ``image`` runs: every word up to that image's RUN
    sent and the dumps of its earlier layers out (they must be dumped), then ``wait`` cycles
    (less than the layer's cycles, so that its own dump has not begun). ``expect_outputs``: the
    output words the testbench should have seen by the reset."""
    codes = prog.layers
    if not 1 <= layer < len(codes):
        raise ValueError(f"layer must be 1..{len(codes) - 1} (layer 0 runs while the image arrives), got {layer}")
    if not all(c.desc["dump"] for c in codes[:layer]):
        raise ValueError("reset_in_layer needs the program compiled with dump=True")
    m = _outputs_before(prog, images, image, stats) + sum(c.desc["dump_words"] for c in codes[:layer])
    k = len(prog.setup) + sum(len(prog.run_words(img, stats=stats)) for img in images[:image + 1])
    return {"after_words": k, "after_outputs": m, "wait": int(wait), "expect_outputs": m}


# --------------------------------------------------------------------------------------------------
# Whole models


@dataclass
class DpCocotbRun:
    """Outcome of :func:`run_model`: the decoded reply and its comparison (:class:`DpCheck`), the
    testbench run (:class:`TbRun`), and ``record`` (a JSON-able summary: the model, the build,
    the stream options, the mismatches as text, the cycles)."""

    check: DpCheck
    tb: TbRun
    record: dict

    @property
    def exact(self) -> bool:
        return self.check.exact

    @property
    def mismatches(self) -> list:
        return self.check.mismatches

    @property
    def logits(self) -> np.ndarray:
        return self.check.logits

    @property
    def maps(self) -> dict:
        return self.check.maps

    @property
    def reset(self) -> dict | None:
        return self.tb.reset

    def report(self) -> str:
        """One line per mismatch (empty when exact)."""
        return "\n".join(str(m) for m in self.mismatches)


def run_model(model, images, *, params: DpParams | dict | None = None, seed: int = 0, idle: float = 0.0,
              backpressure: float = 0.0, dump: bool = True, stats: bool = True, reset=None,
              max_cycles: int | None = None, sim: str = "verilator") -> DpCocotbRun:
    """Run ``model`` on uint8 ``images`` ``(N, C, H, W)`` through the cocotb testbench and compare
    (module docstring). ``reset``: a dict from :func:`reset_in_image` / :func:`reset_in_layer`, or a
    callable ``reset(prog, images) -> dict``. ``sim``: ``"verilator"`` or ``"icarus"``."""
    p = dp_params(params)
    prog = dpprog.compile_model(model, p, dump=dump)
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 3:
        images = images[:, None]
    if len(images) < 1:
        raise ValueError("expected at least one image")
    if callable(reset):
        reset = reset(prog, images)
    words = program_words(prog, images, stats=stats)
    n_out = prog.reply_words(stats=stats) * len(images)
    tb = run_words(words, n_out, params=p, seed=seed, idle=idle, backpressure=backpressure, reset=reset,
                   max_cycles=max_cycles, sim=sim)
    chk = compare(prog, images, tb.out, stats=stats)
    record = {
        "design": "dp", "transport": "cocotb", "sim": sim, "params": p.as_dict(), "model": model.name, "images": len(images),
        "seed": seed, "idle": idle, "backpressure": backpressure, "dump": bool(dump), "stats": bool(stats),
        "setup_words": len(prog.setup), "reply_words_per_image": prog.reply_words(stats=stats),
        "exact": chk.exact, "mismatches": [str(m) for m in chk.mismatches],
        "cycles_per_image": chk.cycles.tolist(), "layer_cycles": chk.layer_cycles.tolist(),
        "total_cycles": tb.total_cycles, "wall_s": tb.wall_s, "reset": tb.reset, "test_dir": str(tb.test_dir),
    }
    return DpCocotbRun(check=chk, tb=tb, record=record)
