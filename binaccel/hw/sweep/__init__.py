"""Board synthesis of the accelerator (or the bare engine) and the search for the largest array.

Two designs (``design=``):

* ``"accel"`` (default; recorded as ``"accel+uart"``): the real board design,
  :class:`binaccel.hw.linked.LinkedAccelerator` (the whole-network
  :class:`~binaccel.hw.top.Accelerator` behind the frame link) inside
  :class:`~binaccel.hw.boards.BoardTop` (PLL, reset synchroniser, UART pins, LEDs). Parameters:
  :class:`~binaccel.hw.seq.AccelParams` (array, engine widths, buffer depths), defaults per board
  in :data:`ACCEL_BASE`.
* ``"engine-link"`` (recorded as ``"engine+uart"``): the board design for a device the
  accelerator does not fit (the iCE40UP5K): :class:`binaccel.hw.linked.LinkedEngine` (the layer
  engine behind the frame link; the host does im2col, pooling and the maps between layers,
  :mod:`binaccel.sw.enginehost`) inside a ``BoardTop``. Parameters:
  :class:`~binaccel.hw.params.EngineParams`, defaults :data:`BOARD_BASE`.
* ``"engine"``: the layer engine alone (:class:`~binaccel.hw.engine.Engine` behind
  :class:`FlatPorts`) in the flow's ``PortHarness`` in a ``BoardTop``: the earlier figures,
  kept reproducible. Parameters: :class:`~binaccel.hw.params.EngineParams`, defaults
  :data:`BOARD_BASE`.

Public API::

    MNIST_PARAMS                      EngineParams fields (besides rows/cols/word) the MNIST models need
    ACCEL_BASE                        per board: AccelParams fields of the board build (besides the array)
    params_for_models(models)         the smallest engine fields covering a list of IntModels
    FlatPorts(core)                   a core's ports as plain unsigned signals (for PortHarness)
    accel_design(**params)            LinkedAccelerator (the flow puts it in a BoardTop)
    engine_design(**params)           Engine behind FlatPorts (the flow adds PortHarness + BoardTop)
    synth_point(board, params, design=...)  one synthesis -> (report, summary)
    synth_engine(board, params, ...)  the same for the engine design
    largest_array(board, design=...)  few-point search: grow rows=cols, then word; records every point
    closure_clock(board, fmax_mhz)    the fastest clock the board makes that a build with this fmax meets
    close_timing(board, params, report)  rebuild a point below its target at such a clock: a bitstream that
                                      meets timing (``binaccel synth --close-timing``)
    board_summary(report)             the bench's view of one report (fmax, LUTs, FFs, BRAMs, array, design)
    write_boards_json(results, path)  bench/boards.json of the build folder (atomic)
    TARGET_MHZ                        the clock targets (iCE40UP5K 48 MHz, ECP5-85F 150 MHz)

Modules: :mod:`.presets` (board presets, designs, parameter checks), :mod:`.designs` (design
factories), :mod:`.plan` (inputs hash, build-plan digest, whether a record is current),
:mod:`.point` (one point's synthesis and its summary), :mod:`.search` (the largest array),
:mod:`.closure` (timing closure), :mod:`.records` (``boards.json``), :mod:`.dp` (the pipelined
accelerator's board points; imported on its own, ``from binaccel.hw.sweep import dp``, because it
imports :mod:`binaccel.hw.dp.synth`, which imports this package). Every other name is importable
from this package; the submodules call :func:`synth_point` and :func:`plan_hash` through it, so
that a replacement here (a test's stand-in) is the one they use. Outputs go under the build folder
(:func:`binaccel.sw.paths.build_dir`): points in ``synth/`` (:func:`synth_root`), the board records
in ``bench/boards.json`` (:func:`boards_json_path`).

Search (:func:`largest_array`): one place-and-route of a large ECP5 design takes minutes on a
shared 2-core machine, so the search is a few sequential points, each recorded:

1. square arrays ``rows = cols = n`` at the starting ``word``, ``n`` doubling while the design
   fits (nextpnr packs, places and routes it);
2. between the last fitting ``n`` and the first failing one, one midpoint;
3. at the best square, ``cols`` doubling while it fits (``rows`` sets the number of output lanes
   and their multipliers, so a DSP-bound board can still take more columns);
4. then ``word`` doubling while it fits.

The "largest" array is the fitting point with the most binary MACs per cycle
(``rows * cols * word``); its fmax is nextpnr's estimate for that seed, reported with the board's
target and whether it is met.

Timing closure (:func:`close_timing`): every search point is built for the board's target clock
(the PLL makes the target), so a point whose fmax is below it gives a bitstream that would run its
clock too fast on a board. ``close_timing`` places and routes the point again with the PLL at the
fastest frequency the board makes at or below ``margin * fmax`` (:func:`closure_clock`), and
once more lower if that build misses its own clock (placement changes with the constraint); the
bitstream of the build that meets its clock is the one to program. It is recorded with the point
(``closure`` in its board summary), in its own folder (``..._f<MHz>``).
"""

from __future__ import annotations

from .presets import (ACCEL_BASE, ACCEL_START, ACCEL_TIMEOUT_S, BOARD_BASE, DEFAULT_START, DEFAULT_TIMEOUT_S,
                      DESIGN_DESCRIPTION, DESIGN_KIND, DESIGN_OF_KIND, DESIGNS, MNIST_PARAMS, MNIST_PLAIN_PARAMS,
                      PE_STAGES, PNR_OPTS, TARGET_MHZ, _check_design, _tag, base_params, full_params,
                      params_for_models, same_params, start_point)
from .designs import _FACTORIES, FlatPorts, accel_design, engine_design, linked_engine_design
from .plan import _NOT_GATEWARE, _record_design, _record_freq, gateware_current, inputs_hash, plan_hash
from .point import _off_target, _pnr_options, _point_dir, board_summary, design_kind, synth_engine, synth_point, synth_root
from .closure import CLOSURE_MARGIN, bitstream_clock_mhz, close_timing, closure_cell, closure_clock
from .search import largest_array
from .records import (ALL_SECTIONS, DP_SECTION, PIPELINED, SECTIONS, _n, _point_kind, _result_kind, boards_json_path,
                      boards_markdown, load_boards_json, section_of, update_boards_json, write_boards_json)

__all__ = [
    "MNIST_PARAMS", "MNIST_PLAIN_PARAMS", "PE_STAGES", "BOARD_BASE", "ACCEL_BASE", "TARGET_MHZ", "DEFAULT_START",
    "ACCEL_START", "DESIGNS", "DESIGN_KIND", "FlatPorts", "engine_design", "accel_design", "params_for_models",
    "synth_point", "synth_engine", "largest_array", "board_summary", "write_boards_json", "load_boards_json",
    "full_params", "base_params", "update_boards_json", "inputs_hash", "design_kind", "boards_json_path", "synth_root",
    "SECTIONS", "section_of", "linked_engine_design", "DESIGN_OF_KIND", "start_point",
    "closure_clock", "close_timing", "CLOSURE_MARGIN", "bitstream_clock_mhz", "closure_cell", "same_params",
    "plan_hash", "gateware_current", "boards_markdown", "PIPELINED", "DP_SECTION", "ALL_SECTIONS",
]
