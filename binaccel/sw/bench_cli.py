"""``binaccel synth`` and ``binaccel bench`` (registered by :mod:`binaccel.sw.cli` via ``register``).

::

    binaccel synth --board icebreaker --rows 1 --cols 1 --word 16      # accelerator + UART + PLL
    binaccel synth --board icebreaker --design engine --rows 2 --cols 4 --word 16   # engine only
    binaccel synth --board ulx3s --search                               # largest array that fits
    binaccel synth --board ulx3s --rows 5 --cols 6 --word 32 --close-timing   # + a bitstream that meets its clock
    binaccel synth --search                                             # both boards -> build/bench/boards.json
    binaccel bench                                 # reuses build/bench/boards.json, else docs/measured/boards.json
    binaccel bench --array ulx3s=4x4x32            # a fitting build other than the largest
    binaccel bench --synth                         # re-runs the board search first
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["register", "main"]


_ACCEL_ONLY = ("fm_depth", "w_depth", "t_depth", "max_layers", "max_dim")


def _engine_fields(args, base, design="engine"):
    """``base`` with the build parameters given on the command line (engine fields, plus the
    accelerator's buffer fields for ``design="accel"``)."""
    from binaccel.hw.params import EngineParams
    from binaccel.hw.seq import AccelParams

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
    from binaccel.hw import sweep
    from binaccel.hw.synth import SynthesisError, report_markdown

    design = _design(args)
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
        results = _search(boards, args)
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


def _closure_text(c) -> str:
    tried = ", ".join(f"{a['clock_mhz']:g} MHz: fmax {a['fmax_mhz']} ({'met' if a['met'] else 'missed'})"
                      for a in c["attempts"])
    if c["met"]:
        return f"[synth] timing closed at {c['clock_mhz']:g} MHz (fmax {c['fmax_mhz']} MHz): {c['bitstream']} [{tried}]"
    return f"[synth] timing NOT closed: no build met its clock [{tried}]"


def _search(boards, args):
    from binaccel.hw import sweep

    design = _design(args)
    results = {}
    for board in boards:
        base = _engine_fields(args, sweep.base_params(board, design), design)
        for k in ("rows", "cols", "word"):
            base.pop(k, None)

        def save(partial, board=board):
            sweep.update_boards_json(board, partial)

        results[board] = sweep.largest_array(board, design=design, base=base, seed=getattr(args, "seed", 1),
                                             freq_mhz=getattr(args, "freq", None),
                                             reuse=not getattr(args, "force", False),
                                             max_points=getattr(args, "max_points", 8), on_point=save,
                                             timeout=getattr(args, "timeout", None))
        _keep_closures(board, results[board])
        best = results[board]["best"]
        if getattr(args, "close_timing", False) and best is not None and not (best.get("closure") or {}).get("met"):
            rep = json.loads(Path(best["report"]).read_text())
            best["closure"] = sweep.close_timing(board, dict(best["params"]), rep, design=design, seed=best["seed"],
                                                 timeout=getattr(args, "timeout", None),
                                                 reuse=not getattr(args, "force", False),
                                                 margin=getattr(args, "closure_margin", sweep.CLOSURE_MARGIN))
        path = sweep.update_boards_json(board, results[board])
        print(f"[synth] wrote {path}")
    return results


def _same_point(a, b) -> bool:
    """Two board summaries of the same synthesis point: design, parameters (defaults filled in), seed
    and clock (a summary without its clock, from before it was recorded, was built for the board's
    target)."""
    from binaccel.hw.sweep import DESIGN_OF_KIND, TARGET_MHZ, _point_kind, same_params

    def clock(p):
        c = p.get("clock_mhz")
        return TARGET_MHZ.get(p.get("board"), c) if c is None else c

    ca, cb = clock(a), clock(b)
    same_clock = ca == cb or (ca is not None and cb is not None and abs(ca - cb) <= 0.01 * max(ca, cb))
    kind = _point_kind(a)
    return (kind == _point_kind(b) and a.get("seed") == b.get("seed") and same_clock
            and same_params(a.get("params"), b.get("params"), DESIGN_OF_KIND[kind]))


def _with_old_closure(summary, old_points):
    """``summary``, with the timing closure recorded for the same point before if it has none of its
    own and both come from the same gateware (``inputs_sha256``) or the same build plan (``plan_sha256``)."""
    old = [p for p in old_points if _same_point(p, summary)]

    def same(key):
        return bool(old[-1].get(key)) and old[-1].get(key) == summary.get(key)

    if old and not summary.get("closure") and old[-1].get("closure") and (same("inputs_sha256") or same("plan_sha256")):
        return {**summary, "closure": old[-1]["closure"]}
    return summary


def _keep_closures(board, result):
    """Carry the timing closures of ``build/bench/boards.json`` over to a new search result of ``board``."""
    from binaccel.hw import sweep

    try:
        doc = sweep.load_boards_json()
    except (FileNotFoundError, ValueError):
        return
    section = sweep.section_of(result)
    old_points = (doc.get(section, {}).get(board) or {}).get("points") or []
    for p in result["points"]:
        q = _with_old_closure(p, old_points)
        if q is not p:
            p["closure"] = q["closure"]


def _update_boards(board, summary):
    from binaccel.hw import sweep

    try:
        doc = sweep.load_boards_json()
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
    print(f"[synth] updated {sweep.update_boards_json(board, res)}")


def _cmd_bench(args) -> int:
    from binaccel.hw import sweep

    from . import bench

    path = sweep.BOARDS_JSON
    try:
        arrays = dict(bench.parse_array(a) for a in args.array or ())
    except ValueError as exc:
        print(f"binaccel bench: error: {exc}", file=sys.stderr)
        return 2
    if args.synth or not (path.exists() or os.path.exists(bench.MEASURED_BOARDS_JSON)):
        why = "--synth given" if args.synth else f"{path} not found"
        print(f"[bench] {why}: running the board search (binaccel synth --search)")
        ns = argparse.Namespace(seed=1, freq=None, force=args.synth, max_points=8)
        _search(list(sweep.TARGET_MHZ), ns)
    elif path.exists():
        print(f"[bench] reusing the last synthesis results {path} (binaccel bench --synth re-synthesizes)")
    else:
        print(f"[bench] {path} not found: using the committed measurement {bench.MEASURED_BOARDS_JSON} "
              f"(binaccel bench --synth synthesizes on this checkout, an hour or more for both boards)")
        path = None
    try:
        boards = bench.load_boards(path, arrays=arrays)
    except ValueError as exc:
        print(f"binaccel bench: error: {exc}", file=sys.stderr)
        return 2
    for name, b in boards.items():
        note = bench.stale_note(name, b)
        if note:
            print(f"[bench] warning: {note}")
    networks = args.networks.split(",") if args.networks else None
    result = bench.run_bench(out_dir=args.out, boards=boards, networks=networks, reps=args.reps,
                             warmup=args.warmup, train=not args.no_train, plots=not args.no_plots,
                             cycles=args.cycles, accel_images=args.accel_images, threads=args.threads)
    print(f"[bench] wrote {args.out}/bench.json, bench.md" + (", plots" if not args.no_plots else ""))
    for net, e in result["networks"].items():
        for board in result["boards"]:
            if board in e:
                r = e[board]
                print(f"  {net:16s} {board:10s} FPGA {r['fpga_s_per_image'] * 1e3:9.3f} ms/img  "
                      f"FPGA/torch {r['ratio_fpga_over_torch']:8.3g}  FPGA/packed {r['ratio_fpga_over_packed']:8.3g}  "
                      f"util {100 * r['utilisation']:5.1f}%")
    return 0


def register(subparsers) -> None:
    """Add ``synth`` and ``bench`` to an argparse ``subparsers`` object."""

    from binaccel.hw import sweep

    from . import bench

    s = subparsers.add_parser("synth", help="synthesize the board design (accelerator + UART link + PLL) or the "
                                            "bare engine (yosys/nextpnr), or search the largest array per board",
                              description="Synthesize, place and route a design for a board and make its "
                                          "bitstream: --design accel (default) = LinkedAccelerator (whole-network "
                                          "accelerator behind the UART frame link) in BoardTop (PLL, reset, UART); "
                                          "--design engine-link = the layer engine behind the same link, the host "
                                          "doing im2col and pooling (the board design where the accelerator does "
                                          "not fit); --design engine = the layer engine alone in a PortHarness "
                                          "(earlier figures). With --search, find the largest array that fits (few points, "
                                          "sequential) and record it in build/bench/boards.json.")
    s.add_argument("--board", choices=["icebreaker", "ulx3s"], default=None)
    s.add_argument("--design", choices=list(sweep.DESIGNS), default="accel",
                   help="accel (default): accelerator + UART link + PLL; engine-link: the layer engine + UART "
                        "link + PLL, the host doing im2col/pooling; engine: bare engine in a PortHarness")
    s.add_argument("--search", action="store_true", help="search the largest fitting array (all boards "
                                                         "unless --board)")
    s.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    s.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="accelerator clock target (default: 48 MHz iCEBreaker, 150 MHz ULX3S)")
    s.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per tool run; a run that takes longer is recorded as status timeout "
                        "(default in --search: 900 iCEBreaker, 1800 ULX3S for the accelerator)")
    s.add_argument("--force", action="store_true", help="re-run points whose report exists")
    s.add_argument("--max-points", type=int, default=8, help="syntheses per board in --search (default 8)")
    s.add_argument("--update-boards", action="store_true",
                   help="add this single point to build/bench/boards.json")
    s.add_argument("--close-timing", action="store_true",
                   help="if the build misses its clock, place and route it again with the PLL at the fastest "
                        "clock at or below --closure-margin x its fmax (twice at most): a bitstream that meets timing, "
                        "in <point>_f<MHz>/ (with --search: for each board's largest array); a rebuild whose "
                        "routing runs out of --timeout counts as a miss at its clock")
    s.add_argument("--closure-margin", type=float, default=sweep.CLOSURE_MARGIN, metavar="F",
                   help=f"--close-timing rebuilds at the fastest clock at or below F x fmax (default "
                        f"{sweep.CLOSURE_MARGIN:g}; lower it when the router does not converge that close to the fmax)")
    from binaccel.hw.seq import AccelParams
    for name in AccelParams.names():
        what = ("accelerator buffer parameter (--design accel only)" if name in _ACCEL_ONLY
                else "engine parameter")
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None, metavar="N",
                       help=f"{what} {name} (default: the board's base, hw/sweep.py ACCEL_BASE / BOARD_BASE; "
                            f"rows/cols/word: the search's starting point)")
    s.set_defaults(func=_cmd_synth)

    b = subparsers.add_parser("bench", help="FPGA cycles/time per image vs CPU (torch, Brevitas, packed numpy)",
                              description="Benchmark networks on the synthesized engine arrays against the CPU; "
                                          "writes build/bench/bench.json, bench.md and plots.")
    b.add_argument("--synth", action="store_true", help="re-run the board search instead of reusing "
                                                        "build/bench/boards.json")
    b.add_argument("--array", action="append", default=None, metavar="BOARD=RxCxW",
                   help="bench this fitting build of the board's synthesis results instead of the largest, "
                        "e.g. --array ulx3s=4x4x32 (repeatable, one per board)")
    b.add_argument("--networks", default=None, help="comma-separated subset (mnist_siman, ..., resnet20_siman, "
                                                    "vgg_small, mcn_wrn22)")
    b.add_argument("--out", default=str(bench.BENCH_DIR), help="output folder (default build/bench)")
    b.add_argument("--reps", type=int, default=5, help="timed repetitions (median; default 5)")
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--no-train", action="store_true", help="do not train MNIST models when none are found")
    b.add_argument("--no-plots", action="store_true")
    b.add_argument("--cycles", choices=["auto", "accel", "model"], default="auto",
                   help="cycle source: accel = whole-network accelerator simulation (binaccel.sim.top), model = "
                        "engine cycle model (hw/perf.py); auto (default) = accel when binaccel.sim.top exists")
    b.add_argument("--threads", type=int, default=1,
                   help="torch threads for the CPU timings (default 1; the numpy packed path is single-threaded)")
    b.add_argument("--accel-images", type=int, default=4,
                   help="images simulated per MNIST network (half, at least 2, for paper-scale ones; default 4)")
    b.set_defaults(func=_cmd_bench)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="binaccel")
    register(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
