"""The board records: ``bench/boards.json`` of the build folder (and its ``.md``), one section per
design kind (and ``dp_boards`` for the pipelined accelerator); reading, writing and updating it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.paths import build_dir

from .closure import closure_cell
from .presets import DESIGN_KIND


def boards_json_path() -> Path:
    """``bench/boards.json`` of the build folder (resolved at the call): the default boards file."""
    return build_dir("bench", "boards.json")


def _point_kind(point) -> str:
    """Design of one board summary ("engine", "engine+uart" or "accel+uart"; older summaries name the
    design class, e.g. "Engine", and say it by their wrapping)."""
    if point.get("design") in DESIGN_KIND.values():
        return point["design"]
    return "engine" if point.get("wrapping") == "core in PortHarness" else "accel+uart"


def _result_kind(res) -> str:
    """Design of one board result (results written before the accelerator design existed: the engine)."""
    if res.get("design"):
        return res["design"]
    for p in res.get("points") or []:
        return _point_kind(p)
    return "accel+uart"


def _n(v):
    return "-" if v is None else v



#: boards.json section of each design kind: ``boards`` the whole-network accelerator (what the bench
#: reads first), ``engine_link_boards`` the engine behind the link (the board design where the
#: accelerator does not fit), ``engine_boards`` the bare engine (figures kept reproducible).
SECTIONS = {"accel+uart": "boards", "engine+uart": "engine_link_boards", "engine": "engine_boards"}

#: ``datapath`` of a board result or summary of the pipelined accelerator (:mod:`binaccel.hw.dp`:
#: design kind ``accel+uart`` too, the whole network behind the UART link), and its boards.json
#: section. A board with a timing-met point there runs the pipelined accelerator in the bench.
PIPELINED = "pipelined"
DP_SECTION = "dp_boards"

#: Every section of a boards file, in the order it is written.
ALL_SECTIONS = (*SECTIONS.values(), DP_SECTION)


def section_of(result) -> str:
    """The boards.json section of a board result (or summary): ``dp_boards`` for the pipelined
    accelerator (``datapath`` "pipelined"), else that of its design kind."""
    if isinstance(result, dict) and result.get("datapath") == PIPELINED:
        return DP_SECTION
    return SECTIONS.get(_result_kind(result), "boards")


_SECTION_TITLES = {
    "boards": "Accelerator + UART link + PLL (the board design; `binaccel synth --design accel`)",
    "engine_link_boards": "Engine + UART link + PLL (the board design where the accelerator does not fit; "
                          "`binaccel synth --design engine-link`)",
    "engine_boards": "Engine only, in a PortHarness (`binaccel synth --design engine`)",
    DP_SECTION: "Pipelined accelerator + UART link + PLL (the board design where it has a timing-met bitstream; "
                "`binaccel synth --design dp`)",
}


def _dp_lines(dp_results: dict) -> list:
    """The ``dp_boards`` table of boards.md: one row per build (each its own clock)."""
    lines = [f"## {_SECTION_TITLES[DP_SECTION]}", "",
             "| board | array (rows x cols x word) | MACs/cycle | clock asked MHz | fits | LUT | FF | BRAM | DSP | "
             "fmax MHz | met its clock | plan | timing-met bitstream |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|"]
    for board, res in dp_results.items():
        best = res.get("best")
        for p in res.get("points") or []:
            a = p["array"]
            mark = " **(best)**" if best is not None and best.get("report") == p.get("report") \
                and best.get("freq_mhz") == p.get("freq_mhz") else ""
            fits = "yes" if p["fits"] else f"no ({p.get('status')})"
            plan = f"`{p['plan_sha256'][:8]}`" if p.get("plan_sha256") else "-"
            fmax = "-" if p.get("fmax_mhz") is None else f"{p['fmax_mhz']:.1f}"
            lines.append(f"| {board} | {a['rows']}x{a['cols']}x{a['word']}{mark} | {p['macs_per_cycle']} | "
                         f"{_n(p.get('freq_mhz'))} | {fits} | {_n(p['luts'])}/{_n(p['luts_total'])} | {_n(p['ffs'])} | "
                         f"{_n(p['brams'])} | {_n(p['dsps'])}/{_n(p.get('dsps_total'))} | {fmax} | "
                         f"{'yes' if p.get('timing_met') else 'no'} | {plan} | {closure_cell(p)} |")
    lines.append("")
    return lines


def boards_markdown(results: dict, engine_results: dict | None = None, link_results: dict | None = None,
                    dp_results: dict | None = None) -> str:
    lines = ["# Synthesis per board", ""]
    sections = [(_SECTION_TITLES["boards"], results), (_SECTION_TITLES["engine_link_boards"], link_results or {}),
                (_SECTION_TITLES["engine_boards"], engine_results or {})]
    for title, res_map in sections:
        if not res_map:
            continue
        lines += [f"## {title}", "",
                  "| board | design | array (rows x cols x word) | MACs/cycle | fits | LUT | FF | BRAM | DSP | fmax MHz | "
                  "target MHz | met | timing-met bitstream |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for board, res in res_map.items():
            if not res.get("points"):
                lines.append(f"| {board} | {_result_kind(res)} | - | | no point synthesized | | | | | | | | |")
            for p in res["points"]:
                # (points of the curated record's boards_doc that did not fit keep only array, status, LUTs, seed)
                a = p["array"]
                best = " **(largest)**" if res.get("best") is p or (res.get("best") and res["best"]["report"] == p.get("report")) else ""
                fmax = "-" if p.get("fmax_mhz") is None else (f"{p['fmax_mhz']:.1f}" if p["fits"]
                                                               else f"({p['fmax_mhz']:.1f} before routing)")
                fits = "yes" if p["fits"] else f"no ({p['status']})"
                if not p["fits"] and p.get("error"):
                    why = p["error"]
                    if "Caused by:" in why:  # a WebAssembly trap: the tool's step and the trap's cause
                        why = why.split(":")[0] + ": " + why.split("Caused by:")[-1].strip(" |")
                    why = why.replace("|", "/")
                    fits += f": {why[:90]}{'...' if len(why) > 90 else ''}"
                kind = p.get("design") if p.get("design") in DESIGN_KIND.values() else _result_kind(res)
                macs = p.get("macs_per_cycle", a["rows"] * a["cols"] * a["word"])
                target = p.get("target_mhz", res.get("target_mhz"))
                lines.append(f"| {board} | {kind} | {a['rows']}x{a['cols']}x{a['word']}{best} | "
                             f"{macs} | {fits} | {_n(p.get('luts'))}/{_n(p.get('luts_total'))} | {_n(p.get('ffs'))} | "
                             f"{_n(p.get('brams'))} | {_n(p.get('dsps'))}/{_n(p.get('dsps_total'))} | {fmax} | "
                             f"{'-' if target is None else f'{target:g}'} | "
                             f"{'yes' if p.get('met') else 'no'} | {closure_cell(p)} |")
            if res.get("points") and not res.get("best"):
                lines.append(f"| {board} | {_result_kind(res)} | **no array fits** | | | | | | | | | | |")
        lines.append("")
    if dp_results:
        lines += _dp_lines(dp_results)
    return "\n".join(lines)


def write_boards_json(results: dict, path=None, *, engine_results: dict | None = None,
                      link_results: dict | None = None, dp_results: dict | None = None) -> Path:
    """Write ``{"boards": {board: result of largest_array}, "engine_link_boards": {...},
    "engine_boards": {...}, "dp_boards": {...}}`` atomically as JSON (and ``.md``). ``boards`` holds
    the accelerator board design (accelerator + UART, what the bench reads first),
    ``engine_link_boards`` the engine behind the link (the bench's board design for a board the
    accelerator does not fit), ``engine_boards`` the engine-only results (the bench's last
    fallback), ``dp_boards`` the pipelined accelerator's builds (:mod:`binaccel.hw.sweep.dp`; the
    bench's board design where one meets its clock). A result in ``results`` goes to the section
    of its design (:func:`section_of`). ``path``: default :func:`boards_json_path` (looked up at the
    call)."""
    path = Path(boards_json_path() if path is None else path)
    doc = {"format": "binaccel-boards", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "boards": {}, "engine_link_boards": dict(link_results or {}), "engine_boards": dict(engine_results or {}),
           DP_SECTION: dict(dp_results or {})}
    for board, res in results.items():
        doc[section_of(res)][board] = res
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    write_text_atomic(path.with_suffix(".md"), boards_markdown(doc["boards"], doc["engine_boards"],
                                                               doc["engine_link_boards"], doc[DP_SECTION]))
    return path


def update_boards_json(board, result, path=None) -> Path:
    """Put one board's ``result`` (of :func:`largest_array` or a single point) into the boards file,
    in the section of its design (:data:`SECTIONS`), keeping everything else (an unreadable or
    missing file starts empty; earlier results found in another design's section move to their
    own, unless that already has one for the board)."""
    path = boards_json_path() if path is None else path
    try:
        doc = load_boards_json(path)
    except (FileNotFoundError, ValueError):
        doc = {}
    sections = {name: {} for name in ALL_SECTIONS}
    for name in ALL_SECTIONS:
        for b, res in (doc.get(name) or {}).items():
            if section_of(res) == name:
                sections[name][b] = res
    for name in ALL_SECTIONS:     # misplaced results (older files: engine results under boards)
        for b, res in (doc.get(name) or {}).items():
            sections[section_of(res)].setdefault(b, res)
    sections[section_of(result)][board] = result
    return write_boards_json(sections["boards"], path, engine_results=sections["engine_boards"],
                             link_results=sections["engine_link_boards"], dp_results=sections[DP_SECTION])


def load_boards_json(path=None) -> dict:
    """Read a boards file written by :func:`write_boards_json` (default :func:`boards_json_path`);
    ValueError naming file and field."""
    path = Path(boards_json_path() if path is None else path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != "binaccel-boards":
        raise ValueError(f"{path}: field 'format': expected 'binaccel-boards'")
    if doc.get("version") != 1:
        raise ValueError(f"{path}: field 'version': expected 1, got {doc.get('version')!r}")
    boards = doc.get("boards")
    if not isinstance(boards, dict):
        raise ValueError(f"{path}: field 'boards': expected an object")
    for section in ("engine_link_boards", "engine_boards", DP_SECTION):
        doc.setdefault(section, {})
        if not isinstance(doc[section], dict):
            raise ValueError(f"{path}: field '{section}': expected an object")
    for section in ALL_SECTIONS:
        for name, res in doc[section].items():
            best = res.get("best") if isinstance(res, dict) else None
            if best is None:
                continue
            for key in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "array"):
                if key not in best:
                    raise ValueError(f"{path}: field '{section}.{name}.best.{key}' missing")
            for key in ("rows", "cols", "word"):
                if not isinstance(best["array"].get(key), int):
                    raise ValueError(f"{path}: field '{section}.{name}.best.array.{key}': expected an int")
    return doc
