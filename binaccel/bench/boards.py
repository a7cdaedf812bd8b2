"""The board figures the bench uses: per board, the synthesized build it runs and its fmax.

From ``bench/boards.json`` of the build folder (written by ``binaccel synth --search`` and
``binaccel synth ... --update-boards``, see :mod:`binaccel.hw.sweep`), or, where the build folder
has none, from the curated record of the last search (:mod:`binaccel.records`,
``binaccel/measured.json``). A board with a timing-met build of the pipelined accelerator
(section ``dp_boards``, :mod:`binaccel.hw.sweep.dp`) runs that design.
"""

from __future__ import annotations

import os
from pathlib import Path

from binaccel import records
from binaccel.hw.sweep import (DP_SECTION, PIPELINED, _result_kind, bitstream_clock_mhz, gateware_current, inputs_hash,
                               load_boards_json)
from binaccel.hw.sweep import dp as sweepdp
from binaccel.sw.paths import build_dir

__all__ = ["boards_json_path", "shown_path", "parse_array", "load_boards", "stale_note"]


def boards_json_path() -> Path:
    """``bench/boards.json`` of the build folder: the board search's results."""
    return build_dir("bench", "boards.json")


def shown_path(path) -> str:
    """``path`` relative to the working directory when it lies inside it (how reports show it), else as is."""
    rel = os.path.relpath(os.path.abspath(path), os.getcwd())
    return os.fspath(path) if rel.startswith("..") else rel


def parse_array(text: str) -> tuple:
    """``"ulx3s=4x4x32"`` -> ``("ulx3s", (4, 4, 32))``; ValueError saying the expected form."""
    board, sep, arr = str(text).partition("=")
    parts = arr.lower().split("x")
    if not sep or not board or len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--array {text!r}: expected BOARD=ROWSxCOLSxWORD, e.g. ulx3s=4x4x32")
    return board, tuple(int(p) for p in parts)


def load_boards(path=None, *, fallback=True, arrays=None) -> dict:
    """``{board: best summary}`` from a boards file (default :func:`boards_json_path`; ValueError
    naming file/field). Without ``path`` and without that file, from the curated record
    (:func:`binaccel.records.load_record`, its ``best`` points). Every board's summary has
    ``source``: the file it came from (:data:`binaccel.records.RECORD_LABEL` for the record).

    Per board, the pipelined accelerator's point (section ``dp_boards``: ``design`` "accel+uart",
    ``datapath`` "pipelined", ``bitstream_mhz`` the clock of its timing-met bitstream,
    ``gateware_current`` whether its ``plan_sha256`` is the one this checkout makes for its clock and
    parameters) when it has a timing-met bitstream and ``arrays`` names no other array for the
    board; else the largest fitting point of the board design (accelerator + UART link + PLL,
    ``design`` "accel+uart"), or the fitting point whose array ``arrays[board]`` names
    (``(rows, cols, word)``; ValueError listing the fitting arrays if there is none). With
    ``fallback`` (default), a board that no accelerator build fits gets its other board design,
    the engine behind the UART link (``design`` "engine+uart", section ``engine_link_boards``), or,
    without one, the engine-only figures (``design`` "engine"), with ``fallback`` saying why; the
    bench tables show the design per board."""
    source = boards_json_path() if path is None else path
    if path is None and not os.path.exists(source):
        doc, label = records.boards_doc(records.load_record()), records.RECORD_LABEL
    else:
        doc, label = load_boards_json(source), shown_path(source)
    arrays = dict(arrays or {})
    dp = dict(doc.get(DP_SECTION) or {})
    unknown = sorted(set(arrays) - set(doc["boards"]) - set(dp))
    if unknown:
        raise ValueError(f"{label}: field 'boards.{unknown[0]}': no synthesis results for that board "
                         f"(boards: {', '.join(sorted(set(doc['boards']) | set(dp))) or 'none'})")
    out = {}
    for name, res in dp.items():
        best = res.get("best") if isinstance(res, dict) else None
        if not best or bitstream_clock_mhz(best) is None:
            continue
        a = best["array"]
        if name in arrays and arrays[name] != (a["rows"], a["cols"], a["word"]):
            if name not in doc["boards"]:
                w = arrays[name]
                raise ValueError(f"{label}: field '{DP_SECTION}.{name}.best.array': the pipelined accelerator's "
                                 f"build is {a['rows']}x{a['cols']}x{a['word']}, not {w[0]}x{w[1]}x{w[2]}, and the "
                                 f"board has no other synthesis results")
            continue
        out[name] = {**best, "design": "accel+uart", "datapath": PIPELINED, "bitstream_mhz": bitstream_clock_mhz(best)}
    engine = dict(doc.get("engine_boards") or {})
    linked = dict(doc.get("engine_link_boards") or {})
    for name, res in doc["boards"].items():
        if name in out:
            continue
        if _result_kind(res) == "engine":
            engine.setdefault(name, res)
            continue
        if _result_kind(res) == "engine+uart":
            linked.setdefault(name, res)
            continue
        if name in arrays:
            want = {"rows": arrays[name][0], "cols": arrays[name][1], "word": arrays[name][2]}
            fitting = [pt for pt in res.get("points") or [] if pt.get("fits")]
            picked = [pt for pt in fitting if pt.get("array") == want]
            if not picked:
                have = ", ".join(sorted({"{rows}x{cols}x{word}".format(**pt["array"]) for pt in fitting})) or "none"
                raise ValueError(f"{label}: field 'boards.{name}.points': no fitting build with array "
                                 f"{want['rows']}x{want['cols']}x{want['word']} (fitting: {have})")
            # several runs of the same array (seeds): the fastest
            out[name] = {**max(picked, key=lambda pt: pt.get("fmax_mhz") or 0), "design": "accel+uart"}
        elif res.get("best"):
            out[name] = {**res["best"], "design": "accel+uart"}
    if fallback:
        for design, section, what in (
                ("engine+uart", linked, "its board design is the layer engine behind the UART link (LinkedEngine; "
                                        "the host does im2col, pooling and the maps between layers), so the FPGA "
                                        "time counts the engine's layer runs only"),
                ("engine", engine, "engine-only figures (engine in a PortHarness, no fetch/write-back/buffers/link), "
                                   "so the FPGA time is optimistic")):
            for name, res in section.items():
                if name in out or not res.get("best"):
                    continue
                acc = doc["boards"].get(name)
                why = ("no accelerator build fits the board"
                       if acc and _result_kind(acc) == "accel+uart" and acc.get("points")
                       else "the accelerator was not synthesized for this board")
                out[name] = {**res["best"], "design": design, "fallback": f"{why}: {what}"}
    for v in out.values():
        v["source"] = label
        if v.get("datapath") == PIPELINED:
            v["checkout_plan_sha256"] = sweepdp.checkout_plan_dp(v)
            v["gateware_current"] = bool(v.get("plan_sha256")) and v["plan_sha256"] == v["checkout_plan_sha256"]
        else:
            v["gateware_current"] = gateware_current(v)
    return out


def stale_note(name: str, board: dict):
    """A sentence saying that ``board``'s synthesis figures (from :func:`load_boards`) were made from
    other gateware or tools than this checkout's, with the command that measures it again; None when
    they match."""
    if board.get("gateware_current", True):
        return None
    a = board["array"]
    if board.get("datapath") == PIPELINED:
        mine = board.get("checkout_plan_sha256")
        command = sweepdp.dp_command({**board, "board": name})
        plan = (f"its build plan differs (plan_sha256 {board['plan_sha256'][:12]}, this checkout "
                f"{mine[:12] if mine else 'unknown'} at {board.get('freq_mhz')} MHz)" if board.get("plan_sha256")
                else "it has no build plan digest (plan_sha256) to compare")
        return (f"{name} {a['rows']}x{a['cols']}x{a['word']} (pipelined accelerator): the synthesis record in "
                f"{board.get('source')} was made from other gateware or tools than this checkout's: {plan}, so its "
                f"fmax and resources may not describe the current design; `{command} --update-boards` measures it "
                f"again")
    design = {"engine": "--design engine ", "engine+uart": "--design engine-link "}.get(board.get("design"), "")
    plan = (f"and its build plan differs (plan_sha256 {board['plan_sha256'][:12]})" if board.get("plan_sha256")
            else "and it has no build plan digest (plan_sha256) to compare")
    made = (f"was made from other gateware or tools than this checkout's (inputs_sha256 "
            f"{board['inputs_sha256'][:12]}, this checkout {inputs_hash()[:12]}) {plan}" if board.get("inputs_sha256")
            else "does not say which gateware it was made from (a record older than inputs_sha256)")
    return (f"{name} {a['rows']}x{a['cols']}x{a['word']}: the synthesis record in {board.get('source')} {made}, "
            f"so its fmax and resources may not describe the current design; "
            f"`binaccel synth --board {name} {design}--rows {a['rows']} --cols {a['cols']} --word {a['word']}"
            f"{'' if board.get('design') == 'engine' else ' --update-boards'}` measures it again")
