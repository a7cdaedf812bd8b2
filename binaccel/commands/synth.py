"""``binaccel synth``: synthesize one point of a board design, or search the largest array per board.

::

    binaccel synth --board icebreaker --rows 1 --cols 1 --word 16      # accelerator + UART + PLL
    binaccel synth --board icebreaker --design engine --rows 2 --cols 4 --word 16   # engine only
    binaccel synth --board ulx3s --search                               # largest array that fits
    binaccel synth --board ulx3s --rows 5 --cols 6 --word 32 --close-timing   # + a bitstream that meets its clock
    binaccel synth --search                                             # both boards -> bench/boards.json
    binaccel synth --board ulx3s --design dp --freq 66.6667 --update-boards   # the pipelined accelerator

The search's results (and ``--update-boards`` of a single point) go into ``bench/boards.json`` of
the build folder (:func:`binaccel.bench.boards_json_path`); the pipelined accelerator's builds
(``--design dp``) into its ``dp_boards`` section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from binaccel import records
from binaccel.bench import boards_json_path
from binaccel.hw import sweep
from binaccel.hw.dp import synth as dpsynth
from binaccel.hw.sweep import dp as sweepdp
from binaccel.hw.synth import SynthesisError, report_markdown
from binaccel.sw.hwif import AccelParams, EngineParams
from binaccel.commands.argtypes import fraction, nonneg_int, positive_float, positive_int

__all__ = ["register", "search"]


_ACCEL_ONLY = ("fm_depth", "w_depth", "t_depth", "max_layers", "max_dim")


def _engine_fields(args, base, design="engine"):
    """``base`` with the build parameters given on the command line (engine fields, plus the
    accelerator's buffer fields for ``design="accel"``)."""
    names = AccelParams.names() if design == "accel" else EngineParams.names()
    params = dict(base)
    for name in names:
        v = getattr(args, name, None)
        if v is not None:
            params[name] = v
    if design != "accel":
        given = [n for n in _ACCEL_ONLY if getattr(args, n, None) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} is an accelerator parameter; the {design} design "
                             f"has no buffers (use --design accel)")
    return params


def _design(args):
    return getattr(args, "design", None) or "accel"


def _cmd_synth(args) -> int:
    design = _design(args)
    if design == "dp":
        return _cmd_synth_dp(args)
    if getattr(args, "no_build", False):
        print("binaccel synth: error: --no-build is for --design dp (the other designs reuse a current report "
              "unless --force)", file=sys.stderr)
        return 2
    boards = [args.board] if args.board else list(sweep.TARGET_MHZ)
    margin = getattr(args, "closure_margin", sweep.CLOSURE_MARGIN)
    if not 0 < margin <= 1:
        print(f"binaccel synth: error: --closure-margin must be in (0, 1], got {margin:g}", file=sys.stderr)
        return 2
    if not args.search:
        if not args.board:
            print("binaccel synth: error: --board is required unless --search", file=sys.stderr)
            return 2
        base = sweep.base_params(args.board, design)
        n, word = sweep.start_point(args.board, design)
        try:
            params = _engine_fields(args, {**base, "rows": n, "cols": n, "word": word}, design)
            sweep.full_params(params, design)
            report, summary = sweep.synth_point(args.board, params, design=design, seed=args.seed,
                                                freq_mhz=args.freq, reuse=not args.force, timeout=args.timeout)
        except (TypeError, ValueError) as exc:
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 2
        except SynthesisError as exc:
            print(report_markdown(exc.report), end="")
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 1
        print(report_markdown(report), end="")
        if args.close_timing and summary["fits"]:
            try:
                summary["closure"] = sweep.close_timing(args.board, params, report, design=design, seed=args.seed,
                                                        timeout=args.timeout, reuse=not args.force, margin=margin)
            except ValueError as exc:
                print(f"binaccel synth: error: {exc}", file=sys.stderr)
                return 2
            except SynthesisError as exc:
                print(f"binaccel synth: error: the timing-closure build failed: {exc}", file=sys.stderr)
                return 1
            print(_closure_text(summary["closure"]))
        print(json.dumps({k: summary[k] for k in ("board", "design", "fits", "status", "fmax_mhz", "target_mhz",
                                                   "met", "clock_mhz", "timing_met", "luts", "luts_total", "ffs",
                                                   "brams", "dsps", "array", "closure") if k in summary},
                         indent=1))
        if args.update_boards:
            _update_boards(args.board, summary)
        return 0 if summary["fits"] and (not args.close_timing or summary["closure"]["met"]) else 1
    try:
        results = search(boards, args)
    except (TypeError, ValueError) as exc:
        print(f"binaccel synth: error: {exc}", file=sys.stderr)
        return 2
    for board, res in results.items():
        b = res["best"]
        if b:
            a = b["array"]
            print(f"{board} ({res['design']}): largest array {a['rows']}x{a['cols']}x{a['word']}, "
                  f"LUT {b['luts']}/{b['luts_total']}, fmax {b['fmax_mhz']} MHz "
                  f"(target {b['target_mhz']:g} MHz: {'met' if b['met'] else 'NOT met'})")
            if b.get("closure"):
                print(f"  {_closure_text(b['closure'])}")
        else:
            print(f"{board} ({res['design']}): no point fitted")
    return 0


#: The summary fields ``binaccel synth --design dp`` prints.
_DP_SUMMARY_KEYS = ("board", "design", "datapath", "params", "array", "macs_per_cycle", "fits", "status", "fmax_mhz",
                    "target_mhz", "met", "freq_mhz", "clock_mhz", "timing_met", "luts", "luts_total", "ffs", "brams",
                    "dsps", "seed", "plan_sha256", "report", "reused", "closure")


def _dp_option_error(args):
    """Why the options of ``args`` do not make a ``--design dp`` run, or None."""
    if args.search:
        return ("--search is not supported with --design dp: the pipelined accelerator has one board build "
                "(binaccel.hw.dp.synth.ULX3S_BUILD; --cols changes its columns)")
    if not args.board:
        return "--board is required with --design dp"
    if args.board != "ulx3s":
        return (f"--design dp: the pipelined accelerator's board build is the ULX3S's (ULX3S_BUILD); "
                f"it is not built for {args.board}")
    given = [n for n in AccelParams.names() if n != "cols" and getattr(args, n, None) is not None]
    if given:
        return (f"--{given[0].replace('_', '-')} is not a parameter of --design dp (16 rows of 32-bit PEs and "
                f"the ULX3S build's buffers; only --cols may change)")
    if args.closure_margin != sweep.CLOSURE_MARGIN:
        return (f"--closure-margin is not supported with --design dp (its timing closure rebuilds at "
                f"{sweep.CLOSURE_MARGIN:g} x fmax)")
    if getattr(args, "no_build", False) and args.force:
        return "--no-build and --force contradict each other (--force rebuilds, --no-build never builds)"
    return None


def _cmd_synth_dp(args) -> int:
    """``binaccel synth --design dp``: the pipelined accelerator's board build (:mod:`binaccel.hw.dp.synth`),
    its report reused when it is this checkout's build plan, the timing closure, the summary and,
    with ``--update-boards``, its points in the ``dp_boards`` section of the boards file."""
    why = _dp_option_error(args)
    if why is None:
        try:
            params = sweepdp.dp_params(args.cols)
        except (TypeError, ValueError) as exc:
            why = str(exc)
    if why is not None:
        print(f"binaccel synth: error: {why}", file=sys.stderr)
        return 2
    board, seed, no_build = args.board, args.seed, getattr(args, "no_build", False)
    freq = float(args.freq) if args.freq is not None else sweep.TARGET_MHZ[board]
    report, reused = None, False
    if not args.force:
        report, said = sweepdp.current_dp_report(board, freq, params, seed=seed)
        reused = report is not None
        print(f"[synth] {board} dp 16x{params['cols']}x32 at {freq:g} MHz: {said}"
              + ("" if reused or no_build else "; building"))
    if report is None:
        if no_build:
            print(f"binaccel synth: error: --no-build: no report of this checkout's build to use: {said}; "
                  f"run without --no-build to build it", file=sys.stderr)
            return 2
        try:
            report = dpsynth.synth_dp(board, freq, params, seed=seed, timeout=args.timeout)
        except SynthesisError as exc:
            print(report_markdown(exc.report), end="")
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 1
    print(report_markdown(report), end="")
    try:
        summary = {**sweepdp.dp_summary(report), "reused": reused}
    except ValueError as exc:
        print(f"binaccel synth: error: {exc}", file=sys.stderr)
        return 2
    points = [{k: v for k, v in summary.items() if k != "reused"}]
    if args.close_timing and summary["fits"]:
        closure = None if args.force else sweepdp.current_dp_closure(report, board, params, seed=seed)
        if closure is not None:
            print(f"[synth] reusing the timing closure {Path(report['out_dir']) / 'closure.json'}: its builds are "
                  f"this checkout's")
        elif no_build and not summary["timing_met"]:
            print("binaccel synth: error: --no-build: the build misses its clock and no timing closure of this "
                  "checkout's builds is recorded next to it; run without --no-build to close timing", file=sys.stderr)
            return 2
        else:
            try:
                closure = dpsynth.close_timing_dp(board, report, params, seed=seed, timeout=args.timeout)
            except (ValueError, SynthesisError) as exc:
                print(f"binaccel synth: error: the timing-closure build failed: {exc}", file=sys.stderr)
                return 1
        summary["closure"] = closure
        summary["clock_mhz"] = sweep.bitstream_clock_mhz(summary)
        points += sweepdp.closure_points(closure)
        print(_closure_text(closure))
    print(json.dumps({k: summary[k] for k in _DP_SUMMARY_KEYS if k in summary}, indent=1))
    if args.update_boards:
        try:
            _update_dp_boards(board, points)
        except ValueError as exc:
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 2
    return 0 if summary["fits"] and (not args.close_timing or summary["closure"]["met"]) else 1


def _update_dp_boards(board, points):
    """Put dp ``points`` into the ``dp_boards`` section of :func:`binaccel.bench.boards_json_path`,
    each replacing a point of the same build; the other sections stay as they are. Without a boards
    file, it starts from the curated record (:func:`binaccel.records.boards_doc`), so that the bench
    keeps the record's other boards and designs."""
    path = boards_json_path()
    if not path.exists():
        doc = records.boards_doc(records.load_record())
        sweep.write_boards_json(doc["boards"], path, engine_results=doc["engine_boards"],
                                link_results=doc["engine_link_boards"], dp_results=doc.get(sweep.DP_SECTION))
        print(f"[synth] {path} did not exist: started it from the curated record {records.RECORD_LABEL}")
    try:
        doc = sweep.load_boards_json(path)
    except ValueError as exc:
        raise ValueError(f"{exc} (--update-boards keeps the other sections of the boards file: fix or remove it)") \
            from None
    old = (doc.get(sweep.DP_SECTION, {}).get(board) or {}).get("points") or []
    kept = [p for p in old if not any(sweepdp.same_dp_point(p, q) for q in points)]
    print(f"[synth] updated {sweep.update_boards_json(board, sweepdp.dp_result(board, kept + points), path)} "
          f"({sweep.DP_SECTION}.{board})")


def _closure_text(c) -> str:
    tried = ", ".join(f"{a['clock_mhz']:g} MHz: fmax {a['fmax_mhz']} ({'met' if a['met'] else 'missed'})"
                      for a in c["attempts"])
    if c["met"]:
        return f"[synth] timing closed at {c['clock_mhz']:g} MHz (fmax {c['fmax_mhz']} MHz): {c['bitstream']} [{tried}]"
    return f"[synth] timing NOT closed: no build met its clock [{tried}]"


def search(boards, args):
    """``binaccel synth --search`` for ``boards`` with the options of ``args``: the largest array per
    board (timing closure with ``--close-timing``), recorded in :func:`binaccel.bench.boards_json_path`
    as each point finishes; returns ``{board: result}``."""
    path = boards_json_path()
    design = _design(args)
    results = {}
    for board in boards:
        base = _engine_fields(args, sweep.base_params(board, design), design)
        for k in ("rows", "cols", "word"):
            base.pop(k, None)

        def save(partial, board=board):
            sweep.update_boards_json(board, partial, path)

        results[board] = sweep.largest_array(board, design=design, base=base, seed=getattr(args, "seed", 1),
                                             freq_mhz=getattr(args, "freq", None),
                                             reuse=not getattr(args, "force", False),
                                             max_points=getattr(args, "max_points", 8), on_point=save,
                                             timeout=getattr(args, "timeout", None))
        _keep_closures(board, results[board], path)
        best = results[board]["best"]
        if getattr(args, "close_timing", False) and best is not None and not (best.get("closure") or {}).get("met"):
            rep = json.loads(Path(best["report"]).read_text())
            best["closure"] = sweep.close_timing(board, dict(best["params"]), rep, design=design, seed=best["seed"],
                                                 timeout=getattr(args, "timeout", None),
                                                 reuse=not getattr(args, "force", False),
                                                 margin=getattr(args, "closure_margin", sweep.CLOSURE_MARGIN))
        print(f"[synth] wrote {sweep.update_boards_json(board, results[board], path)}")
    return results


def _same_point(a, b) -> bool:
    """Two board summaries of the same synthesis point: design, parameters (defaults filled in), seed
    and clock (a summary without its clock, from before it was recorded, was built for the board's
    target)."""
    def clock(p):
        c = p.get("clock_mhz")
        return sweep.TARGET_MHZ.get(p.get("board"), c) if c is None else c

    ca, cb = clock(a), clock(b)
    same_clock = ca == cb or (ca is not None and cb is not None and abs(ca - cb) <= 0.01 * max(ca, cb))
    kind = sweep._point_kind(a)
    return (kind == sweep._point_kind(b) and a.get("seed") == b.get("seed") and same_clock
            and sweep.same_params(a.get("params"), b.get("params"), sweep.DESIGN_OF_KIND[kind]))


def _with_old_closure(summary, old_points):
    """``summary``, with the timing closure recorded for the same point before if it has none of its
    own and both come from the same gateware (``inputs_sha256``) or the same build plan (``plan_sha256``)."""
    old = [p for p in old_points if _same_point(p, summary)]

    def same(key):
        return bool(old[-1].get(key)) and old[-1].get(key) == summary.get(key)

    if old and not summary.get("closure") and old[-1].get("closure") and (same("inputs_sha256") or same("plan_sha256")):
        return {**summary, "closure": old[-1]["closure"]}
    return summary


def _keep_closures(board, result, path):
    """Carry the timing closures of the boards file ``path`` over to a new search result of ``board``."""
    try:
        doc = sweep.load_boards_json(path)
    except (FileNotFoundError, ValueError):
        return
    section = sweep.section_of(result)
    old_points = (doc.get(section, {}).get(board) or {}).get("points") or []
    for p in result["points"]:
        q = _with_old_closure(p, old_points)
        if q is not p:
            p["closure"] = q["closure"]


def _update_boards(board, summary):
    """Put one synthesized point into :func:`binaccel.bench.boards_json_path` (``--update-boards``)."""
    path = boards_json_path()
    try:
        doc = sweep.load_boards_json(path)
    except (FileNotFoundError, ValueError):
        doc = {"boards": {}, "engine_link_boards": {}, "engine_boards": {}}
    section = sweep.section_of(summary)
    res = doc.get(section, {}).get(board)
    if res is None and section == "engine_boards" and sweep._result_kind(doc["boards"].get(board) or {}) == "engine":
        res = doc["boards"].get(board)  # an older file: engine results under "boards"
    if res is None or sweep._result_kind(res) != (summary.get("design") or "accel+uart"):
        res = {"board": board, "design": summary.get("design") or "accel+uart",
               "target_mhz": sweep.TARGET_MHZ[board], "points": []}
    # a new run of the same point (parameters, seed and clock) replaces the old one, wherever its report is
    summary = _with_old_closure(summary, res.get("points", []))
    res["points"] = [p for p in res.get("points", []) if not _same_point(p, summary)] + [summary]
    fitting = [p for p in res["points"] if p["fits"]]
    res["best"] = max(fitting, key=lambda p: (p["macs_per_cycle"], p["fmax_mhz"] or 0)) if fitting else None
    res["met"] = bool(res["best"] and res["best"]["met"])
    print(f"[synth] updated {sweep.update_boards_json(board, res, path)}")


def register(subparsers) -> None:
    """Add ``synth`` to an argparse ``subparsers`` object."""
    s = subparsers.add_parser("synth", help="synthesize the board design (accelerator + UART link + PLL) or the "
                                            "bare engine (yosys/nextpnr), or search the largest array per board",
                              description="Synthesize, place and route a design for a board and make its "
                                          "bitstream: --design accel (default) = LinkedAccelerator (whole-network "
                                          "accelerator behind the UART frame link) in BoardTop (PLL, reset, UART); "
                                          "--design dp = the pipelined accelerator (LinkedDpAccelerator, the ULX3S "
                                          "build) in the same board top, recorded in the dp_boards section of "
                                          "bench/boards.json with --update-boards (the bench's ULX3S design once it "
                                          "has a bitstream that meets its clock); "
                                          "--design engine-link = the layer engine behind the same link, the host "
                                          "doing im2col and pooling (the board design where the accelerator does "
                                          "not fit); --design engine = the layer engine alone in a PortHarness "
                                          "(earlier figures). With --search, find the largest array that fits (few points, "
                                          "sequential) and record it in bench/boards.json of the build folder.")
    s.add_argument("--board", choices=["icebreaker", "ulx3s"], default=None,
                   help="the board (required unless --search, which takes both by default)")
    s.add_argument("--design", choices=[*sweep.DESIGNS, "dp"], default="accel",
                   help="accel (default): accelerator + UART link + PLL; dp: the pipelined accelerator + UART link + "
                        "PLL (ULX3S; --cols only, no --search); engine-link: the layer engine + UART "
                        "link + PLL, the host doing im2col/pooling; engine: bare engine in a PortHarness")
    s.add_argument("--search", action="store_true", help="search the largest fitting array (all boards "
                                                         "unless --board)")
    s.add_argument("--seed", type=nonneg_int, default=1, help="nextpnr seed (default 1)")
    s.add_argument("--freq", type=positive_float, default=None, metavar="MHZ",
                   help="accelerator clock target (default: 48 MHz iCEBreaker, 150 MHz ULX3S)")
    s.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                   help="seconds per tool run; a run that takes longer is recorded as status timeout "
                        "(default in --search: 900 iCEBreaker, 1800 ULX3S for the accelerator)")
    s.add_argument("--force", action="store_true", help="re-run points whose report exists")
    s.add_argument("--no-build", action="store_true",
                   help="--design dp: never run the tools; use the report (and timing closure) in the build folder "
                        "of this clock, refused when it is missing or not this checkout's build plan")
    s.add_argument("--max-points", type=positive_int, default=8, help="syntheses per board in --search (default 8)")
    s.add_argument("--update-boards", action="store_true",
                   help="add this single point to bench/boards.json of the build folder (--design dp: its builds "
                        "to the dp_boards section; a missing file starts from the curated record)")
    s.add_argument("--close-timing", action="store_true",
                   help="if the build misses its clock, place and route it again with the PLL at the fastest "
                        "clock at or below --closure-margin x its fmax (twice at most): a bitstream that meets timing, "
                        "in <point>_f<MHz>/ (with --search: for each board's largest array; --design dp: in "
                        "dp-<cols>c-<MHz>/); a rebuild whose routing runs out of --timeout counts as a miss at its clock")
    s.add_argument("--closure-margin", type=fraction, default=sweep.CLOSURE_MARGIN, metavar="F",
                   help=f"--close-timing rebuilds at the fastest clock at or below F x fmax, F in (0, 1] (default "
                        f"{sweep.CLOSURE_MARGIN:g}; lower it when the router does not converge that close to the fmax)")
    for name in AccelParams.names():
        what = ("accelerator buffer parameter (--design accel only)" if name in _ACCEL_ONLY
                else "engine parameter (--design dp: --cols only, 1..8)" if name == "cols" else "engine parameter")
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, type=positive_int, default=None, metavar="N",
                       help=f"{what} {name} (default: the board's base, binaccel.hw.sweep.presets ACCEL_BASE / BOARD_BASE; "
                            f"rows/cols/word: the search's starting point)")
    s.set_defaults(func=_cmd_synth)
