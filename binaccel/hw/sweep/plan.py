"""What decides a synthesis result: the inputs hash (gateware and flow sources, tool versions) and
the build-plan digest of one point; whether a record is current for this checkout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from binaccel.hw import sweep as _sweep  # the package: plan_hash looked up there (tests replace it)

from ..synth import build_plan, plan_digest, tool_packages
from .designs import _FACTORIES
from .presets import DESIGN_KIND, DESIGN_OF_KIND, TARGET_MHZ, _check_design, full_params

#: The hw package's sources (paths relative to it) that do not decide what is synthesised: this search
#: package, the cycle model, the test helpers (parameters and tool options are compared on their own
#: when a report is reused)
_NOT_GATEWARE = frozenset({"sweep", "cli.py", "perf.py", "testing.py"})

#: The hw package folder: its ``*.py`` files, in subpackages too, are the gateware and flow sources.
_HW_DIR = Path(__file__).resolve().parents[1]


def inputs_hash() -> str:
    """SHA-256 over the gateware and flow sources (the ``*.py`` files of the hw package and its
    subpackages but the search, command line, cycle model and test helpers) and the versions of
    amaranth, amaranth-boards and the YoWASP tools: what, besides the parameters, decides a synthesis
    result (recorded in each report as ``inputs_sha256``; a report made from other inputs is not
    reused)."""
    h = hashlib.sha256()
    for f in sorted(_HW_DIR.rglob("*.py")):
        rel = f.relative_to(_HW_DIR)
        if rel.parts[0] in _NOT_GATEWARE:
            continue
        h.update(rel.as_posix().encode())
        h.update(f.read_bytes())
    h.update("".join(tool_packages()).encode())
    return h.hexdigest()


_PLAN_CACHE: dict = {}


def plan_hash(board, params, *, design="accel", freq_mhz=None) -> str:
    """:func:`plan_digest` of the build plan this checkout makes for one point (``params``: the
    design's fields, defaults filled in; ``freq_mhz``: the clock it is built for, default the
    board's target). Elaborates the design (seconds for the largest ULX3S builds); cached per point."""
    _check_design(design)
    full = full_params(params, design)
    freq = TARGET_MHZ[board] if freq_mhz is None else float(freq_mhz)
    key = (board, design, json.dumps(full, sort_keys=True), freq, inputs_hash())
    if key not in _PLAN_CACHE:
        _PLAN_CACHE[key] = plan_digest(build_plan(_FACTORIES[design](**full), board=board, freq_mhz=freq).files)
    return _PLAN_CACHE[key]


def gateware_current(record: dict) -> bool:
    """Whether a synthesis report or board summary describes what this checkout builds: made from
    the same gateware sources and tools (``inputs_sha256``), or, failing that, from the same build
    plan (``plan_sha256``: the same RTLIL, scripts and constraints, so an edit of ``hw/*.py`` that
    does not change this point's netlist keeps its record). A record of a design the flow cannot
    rebuild by name (a test's stand-in factory) is current only by its sources."""
    if not isinstance(record, dict):
        return False
    if record.get("inputs_sha256") and record["inputs_sha256"] == inputs_hash():
        return True
    plan, board, params = record.get("plan_sha256"), record.get("board"), record.get("params")
    design = _record_design(record)
    if not plan or board not in TARGET_MHZ or not isinstance(params, dict) or design is None:
        return False
    try:
        return plan == _sweep.plan_hash(board, params, design=design, freq_mhz=_record_freq(record))
    except (TypeError, ValueError):
        return False


def _record_design(record):
    """The design (a key of :data:`DESIGN_KIND`) of a report or summary the flow's own factories
    made, else None."""
    factory = record.get("factory")
    if factory is not None:
        return {f.__name__: d for d, f in _FACTORIES.items()}.get(factory)
    kind = record.get("design") if record.get("design") in DESIGN_KIND.values() else record.get("design_kind")
    return DESIGN_OF_KIND.get(kind)


def _record_freq(record):
    """The clock (MHz) a report (``target_mhz``: the request it was built with) or a board summary
    (``freq_mhz``) was built for; None: the board's target."""
    if "freq_mhz" in record:
        return record["freq_mhz"]
    return record.get("target_mhz") if "utilization" in record else None
