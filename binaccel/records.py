"""The curated record of the measured synthesis results: ``binaccel/measured.json`` (package data).

The board search (``binaccel synth --search``) writes every point it tried into
``build/bench/boards.json``. The record keeps, per board and board design (``accel+uart``,
``engine+uart``, ``engine``), the best point only: its array and build parameters (defaults
filled in), whether it fits, fmax and target, area (LUT, FF, BRAM, DSP), seed, the clock of its
timing-met bitstream (the timing closure), the tool versions, the build-plan digest
(``plan_sha256``) and the ``binaccel synth`` command that builds it again. A design that no point
fits keeps the arrays that were tried.

The record also keeps, per board, the best build of the pipelined accelerator (``dp_boards``: the
boards file's section of the same name, :mod:`binaccel.hw.sweep.dp`): a timing-met build if there is
one, the one at the largest clock, with its area, fmax, clock, seed, tool versions, build-plan
digest and command.

The bench and the demo read the record where the build folder has no ``bench/boards.json``
(:func:`boards_doc` turns it into that file's layout). ``binaccel records --update`` makes a new
record from a search's ``boards.json`` (:func:`record_from_boards`); ``binaccel records --markdown``
writes its tables (:func:`render_markdown`).
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from binaccel.hw.sweep import (CLOSURE_MARGIN, DESIGN_OF_KIND, DP_SECTION, PIPELINED, SECTIONS, TARGET_MHZ,
                               base_params, bitstream_clock_mhz, full_params)
from binaccel.hw.sweep import dp as sweepdp
from binaccel.sw.atomic import write_json_atomic

__all__ = ["RECORD_LABEL", "FORMAT", "record_path", "load_record", "write_record", "record_from_boards",
           "boards_doc", "synth_command", "render_markdown", "is_record", "is_results_page", "RESULTS_TITLE"]

#: How the bench and the demo name the record as the source of board figures.
RECORD_LABEL = "binaccel/measured.json"

#: The record's ``format`` field.
FORMAT = "binaccel-measured"

#: The first line of the results page (:func:`render_markdown`).
RESULTS_TITLE = "# Measured synthesis results"

#: Board designs in the order of the record and its tables.
DESIGN_ORDER = ("accel+uart", "engine+uart", "engine")

# the fields of a board summary (binaccel.hw.sweep.board_summary) that the record keeps
_POINT_FIELDS = ("board", "device", "design", "factory", "array", "params", "fits", "status", "fmax_mhz",
                 "target_mhz", "met", "freq_mhz", "clock_mhz", "timing_met", "luts", "luts_total", "ffs", "brams",
                 "dsps", "dsps_total", "macs_per_cycle", "seed", "tools", "inputs_sha256", "plan_sha256", "report",
                 "closure")
_TRIED_FIELDS = ("array", "status", "luts", "luts_total", "seed")

# the fields of a dp board point (binaccel.hw.sweep.dp.dp_summary) that the record keeps
_DP_POINT_FIELDS = ("board", "device", "design", "datapath", "array", "params", "fits", "status", "fmax_mhz",
                    "target_mhz", "met", "freq_mhz", "clock_mhz", "timing_met", "luts", "luts_total", "ffs", "brams",
                    "dsps", "dsps_total", "macs_per_cycle", "seed", "tools", "plan_sha256", "report", "closure")
_DP_TRIED_FIELDS = ("array", "status", "freq_mhz", "fmax_mhz", "luts", "luts_total", "seed")


def record_path():
    """The record installed with the package (a :class:`importlib.resources.abc.Traversable`)."""
    return importlib.resources.files("binaccel").joinpath("measured.json")


def load_record(path=None) -> dict:
    """Read a record (default :func:`record_path`); ValueError naming the file and the field."""
    path = record_path() if path is None else Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format': expected {FORMAT!r}")
    if doc.get("version") != 1:
        raise ValueError(f"{path}: field 'version': expected 1, got {doc.get('version')!r}")
    if not isinstance(doc.get("boards"), dict):
        raise ValueError(f"{path}: field 'boards': expected an object")
    for board, designs in doc["boards"].items():
        for kind, entry in designs.items():
            where = f"{path}: field 'boards.{board}.{kind}"
            if kind not in DESIGN_ORDER:
                raise ValueError(f"{where}': unknown design (expected one of {', '.join(DESIGN_ORDER)})")
            keys = (("fits", "array", "params", "fmax_mhz", "luts", "luts_total", "ffs", "brams", "command")
                    if entry.get("fits") else ("fits", "tried", "command"))
            for key in keys:
                if key not in entry:
                    raise ValueError(f"{where}.{key}' missing")
    dp = doc.setdefault(DP_SECTION, {})
    if not isinstance(dp, dict):
        raise ValueError(f"{path}: field '{DP_SECTION}': expected an object")
    for board, entry in dp.items():
        where = f"{path}: field '{DP_SECTION}.{board}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}': expected an object")
        keys = (("fits", "array", "params", "fmax_mhz", "freq_mhz", "luts", "luts_total", "ffs", "brams", "command")
                if entry.get("fits") else ("fits", "tried", "command"))
        for key in keys:
            if key not in entry:
                raise ValueError(f"{where}.{key}' missing")
    return doc


def is_record(path) -> bool:
    """Whether ``path`` is a JSON file of this format (a record :func:`write_record` wrote)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def is_results_page(path) -> bool:
    """Whether ``path`` starts as the results page :func:`render_markdown` writes."""
    try:
        with open(path, "rb") as f:
            return f.read(len(RESULTS_TITLE) + 1).decode(errors="replace").startswith(RESULTS_TITLE)
    except OSError:
        return False


def write_record(record: dict, path) -> Path:
    """Write ``record`` atomically as JSON; returns the path."""
    write_json_atomic(path, record)
    return Path(path)


def synth_command(point: dict) -> str:
    """The ``binaccel synth`` command that builds ``point`` (a board summary) again: its board,
    design, array, the parameters that differ from the board's base, seed, clock and, when it has
    a timing closure, ``--close-timing`` with its margin."""
    board, kind = point["board"], point.get("design") or "accel+uart"
    design = DESIGN_OF_KIND[kind]
    a = point["array"]
    args = ["binaccel", "synth", "--board", board]
    if design != "accel":
        args += ["--design", design]
    args += ["--rows", str(a["rows"]), "--cols", str(a["cols"]), "--word", str(a["word"])]
    base = full_params({**base_params(board, design), **a}, design)
    for name, value in full_params(point["params"], design).items():
        if name not in ("rows", "cols", "word") and value != base[name]:
            args += [f"--{name.replace('_', '-')}", str(value)]
    if point.get("seed") not in (None, 1):
        args += ["--seed", str(point["seed"])]
    freq = point.get("freq_mhz")
    if freq is not None and freq != TARGET_MHZ[board]:
        args += ["--freq", f"{freq:g}"]
    closure = point.get("closure")
    if closure:
        args.append("--close-timing")
        if closure.get("margin") not in (None, CLOSURE_MARGIN):
            args += ["--closure-margin", f"{closure['margin']:g}"]
    return " ".join(args)


def _point_entry(point: dict, kind: str) -> dict:
    entry = {k: point.get(k) for k in _POINT_FIELDS}
    entry["design"] = kind
    entry["params"] = full_params(point["params"], DESIGN_OF_KIND[kind])
    entry["closure"] = point.get("closure")
    entry["bitstream_clock_mhz"] = bitstream_clock_mhz(point)
    entry["command"] = synth_command({**point, "design": kind})
    return entry


def _no_fit_entry(board: str, kind: str, res: dict) -> dict:
    design = DESIGN_OF_KIND[kind]
    return {"board": board, "design": kind, "fits": False, "target_mhz": res.get("target_mhz", TARGET_MHZ.get(board)),
            "tried": [{k: p.get(k) for k in _TRIED_FIELDS} for p in res.get("points") or []],
            "command": " ".join(["binaccel", "synth", "--board", board]
                                + (["--design", design] if design != "accel" else []) + ["--search"])}


def _dp_entry(board: str, res: dict) -> dict:
    """The record's entry of a ``dp_boards`` result: its best point (:func:`binaccel.hw.sweep.dp.best_dp_point`
    of its points), or the builds tried when none fits."""
    best = sweepdp.best_dp_point(res.get("points") or [])
    if best is None:
        return {"board": board, "design": "accel+uart", "datapath": PIPELINED, "fits": False,
                "target_mhz": res.get("target_mhz", TARGET_MHZ.get(board)),
                "tried": [{k: p.get(k) for k in _DP_TRIED_FIELDS} for p in res.get("points") or []],
                "command": sweepdp.dp_command({"board": board})}
    entry = {k: best.get(k) for k in _DP_POINT_FIELDS}
    entry["bitstream_clock_mhz"] = bitstream_clock_mhz(best)
    entry["command"] = sweepdp.dp_command(best)
    # what the command cannot give: the point's parameters where this checkout's board build differs
    entry["params_beyond_command"] = sweepdp.params_beyond_command(best)
    return entry


def record_from_boards(doc: dict, *, source: str = "boards.json") -> dict:
    """The record of a boards file's content (:func:`binaccel.hw.sweep.load_boards_json`): per board
    and design its ``best`` point, or the arrays tried when none fits; per board of ``dp_boards``,
    its best pipelined-accelerator build (:func:`_dp_entry`). ``source``: what the record says it
    was made from."""
    boards: dict = {}
    for kind in DESIGN_ORDER:
        for board, res in (doc.get(SECTIONS[kind]) or {}).items():
            if not isinstance(res, dict) or (res.get("design") or kind) != kind or not res.get("points"):
                continue
            best = res.get("best")
            entry = _point_entry(best, kind) if best else _no_fit_entry(board, kind, res)
            boards.setdefault(board, {})[kind] = entry
    boards = {b: boards[b] for b in sorted(boards)}
    dp = {board: _dp_entry(board, res) for board, res in sorted((doc.get(DP_SECTION) or {}).items())
          if isinstance(res, dict) and res.get("points")}
    return {"format": FORMAT, "version": 1,
            "about": "the best point per board and design of the board search (binaccel synth --search) and the "
                     "best build of the pipelined accelerator per board (dp_boards, binaccel synth --design dp); "
                     "written by binaccel records --update",
            "source": {"file": source, "created": doc.get("created")}, "boards": boards, DP_SECTION: dp}


def boards_doc(record: dict) -> dict:
    """The record in the layout of ``boards.json`` (:func:`binaccel.hw.sweep.load_boards_json`):
    per section and board (``dp_boards`` included) a result whose ``best`` and only point is the
    record's point (``best`` None and the tried arrays as points when none fits)."""
    doc = {"format": "binaccel-boards", "version": 1, "created": (record.get("source") or {}).get("created"),
           **{section: {} for section in SECTIONS.values()}, DP_SECTION: {}}
    for board, designs in record["boards"].items():
        for kind, entry in designs.items():
            if entry.get("fits"):
                point = {k: v for k, v in entry.items()
                         if k not in ("command", "bitstream_clock_mhz") and not (k == "closure" and v is None)}
                res = {"board": board, "design": kind, "target_mhz": entry.get("target_mhz"), "best": point,
                       "met": bool(entry.get("met")), "points": [point]}
            else:
                points = [{**p, "board": board, "design": kind, "fits": False} for p in entry.get("tried") or []]
                res = {"board": board, "design": kind, "target_mhz": entry.get("target_mhz"), "best": None,
                       "met": False, "points": points}
            doc[SECTIONS[kind]][board] = res
    for board, entry in (record.get(DP_SECTION) or {}).items():
        if entry.get("fits"):
            point = {k: v for k, v in entry.items()
                     if k not in ("command", "bitstream_clock_mhz", "params_beyond_command")
                     and not (k == "closure" and v is None)}
            points = [point]
        else:
            points = [{**p, "board": board, "design": "accel+uart", "datapath": PIPELINED, "fits": False}
                      for p in entry.get("tried") or []]
        doc[DP_SECTION][board] = sweepdp.dp_result(board, points)
    return doc


def _mhz(v):
    return "-" if v is None else f"{v:g}"


def render_markdown(record: dict) -> str:
    """The results page: per board and design the point, area, fmax, target, the clock of the
    timing-met bitstream, the build-plan digest and the command that builds it; then the tools."""
    lines = [RESULTS_TITLE, "",
             "The best point per board and board design of the board search (`binaccel synth --search`), "
             f"from the curated record `{RECORD_LABEL}`. *fmax* is nextpnr's estimate for the build at its "
             "target clock; *bitstream* is the clock of the build that meets timing (`--close-timing`). "
             "*plan* is the build-plan digest (`plan_sha256`: the netlist, scripts, constraints and tool "
             "versions); a checkout whose plan for the point has the same digest builds the same bitstream.", "",
             "| board | design | array | fits | LUT | FF | BRAM | DSP | fmax MHz | target MHz | bitstream MHz | "
             "plan | command |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    tools = {}
    for board, designs in record["boards"].items():
        for kind in DESIGN_ORDER:
            e = designs.get(kind)
            if e is None:
                continue
            if not e.get("fits"):
                tried = ", ".join(f"{p['array']['rows']}x{p['array']['cols']}x{p['array']['word']} ({p['status']})"
                                  for p in e.get("tried") or [])
                lines.append(f"| {board} | {kind} | none fits (tried {tried or '-'}) | no | | | | | | "
                             f"{_mhz(e.get('target_mhz'))} | | | `{e['command']}` |")
                continue
            a = e["array"]
            plan = f"`{e['plan_sha256'][:12]}`" if e.get("plan_sha256") else "-"
            lines.append(f"| {board} | {kind} | {a['rows']}x{a['cols']}x{a['word']} | yes | "
                         f"{e['luts']}/{e['luts_total']} | {e['ffs']} | {e['brams']} | "
                         f"{'-' if e.get('dsps') is None else e['dsps']}/{'-' if e.get('dsps_total') is None else e['dsps_total']} | "
                         f"{_mhz(e['fmax_mhz'])} | {_mhz(e.get('target_mhz'))} | {_mhz(e.get('bitstream_clock_mhz'))} | "
                         f"{plan} | `{e['command']}` |")
            for tool, version in (e.get("tools") or {}).items():
                tools.setdefault(tool, set()).add(str(version))
    dp = record.get(DP_SECTION) or {}
    dp_lines = []
    if dp:
        dp_lines += ["", "The pipelined accelerator (`binaccel synth --design dp`, `binaccel.hw.dp`; the bench's "
                     "design of a board where it has a timing-met bitstream): the best build per board, one that "
                     "meets its clock if there is one, then the one at the largest clock. *clock* is the clock it "
                     "was built for; *bitstream* the clock of its timing-met bitstream.", "",
                     "| board | design | array | fits | LUT | FF | BRAM | DSP | fmax MHz | clock MHz | bitstream MHz | "
                     "plan | command |",
                     "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for board, e in dp.items():
            if not e.get("fits"):
                tried = ", ".join(f"{_mhz(p.get('freq_mhz'))} MHz ({p['status']})" for p in e.get("tried") or [])
                dp_lines.append(f"| {board} | accel+uart, pipelined | none fits (tried {tried or '-'}) | no | | | | | | "
                                f"| | | `{e['command']}` |")
                continue
            a = e["array"]
            plan = f"`{e['plan_sha256'][:12]}`" if e.get("plan_sha256") else "-"
            dp_lines.append(f"| {board} | accel+uart, pipelined | {a['rows']}x{a['cols']}x{a['word']} | yes | "
                            f"{e['luts']}/{e['luts_total']} | {e['ffs']} | {e['brams']} | "
                            f"{'-' if e.get('dsps') is None else e['dsps']}/"
                            f"{'-' if e.get('dsps_total') is None else e['dsps_total']} | "
                            f"{_mhz(e['fmax_mhz'])} | {_mhz(e.get('freq_mhz'))} | {_mhz(e.get('bitstream_clock_mhz'))} | "
                            f"{plan} | `{e['command']}` |")
            for tool, version in (e.get("tools") or {}).items():
                tools.setdefault(tool, set()).add(str(version))
    lines += ["", "Build parameters of each point (defaults filled in):", ""]
    for board, designs in record["boards"].items():
        for kind in DESIGN_ORDER:
            e = designs.get(kind)
            if e and e.get("fits"):
                params = ", ".join(f"{k} {v}" for k, v in e["params"].items())
                lines.append(f"- {board}, {kind} (seed {e.get('seed')}): {params}")
    for board, e in dp.items():
        beyond = e.get("params_beyond_command") or {}
        if e.get("fits") and beyond:
            now = ", ".join(f"{k} {v}" for k, v in sweepdp.dp_params(e["params"]["cols"]).items() if k in beyond)
            dp_lines += ["", f"{board}: the command builds this checkout's board build, which differs from the "
                             f"recorded one in " + ", ".join(f"{k} (recorded {v})" for k, v in beyond.items())
                             + f" ({now} now)."]
    lines += dp_lines
    if any(e.get("fits") for e in dp.values()):
        lines += ["", "Build parameters of each pipelined-accelerator build (defaults filled in):", ""]
        for board, e in dp.items():
            if e.get("fits"):
                params = ", ".join(f"{k} {v}" for k, v in e["params"].items())
                lines.append(f"- {board}, accel+uart pipelined (seed {e.get('seed')}): {params}")
    if tools:
        lines += ["", "Tools:", ""] + [f"- {tool}: {'; '.join(sorted(v))}" for tool, v in tools.items()]
    return "\n".join(lines) + "\n"

