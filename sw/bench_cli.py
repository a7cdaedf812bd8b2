"""``binaccel synth`` and ``binaccel bench`` (registered by :mod:`binaccel.sw.cli` via ``register``).

::

    binaccel synth --board icebreaker --rows 2 --cols 2 --word 16      # one engine build
    binaccel synth --board ulx3s --search                               # largest array that fits
    binaccel synth --search                                             # both boards -> build/bench/boards.json
    binaccel bench                                 # reuses build/bench/boards.json if present
    binaccel bench --synth                         # re-runs the board search first
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "main"]


def _engine_fields(args, base):
    from binaccel.hw.params import EngineParams

    params = dict(base)
    for name in EngineParams.names():
        v = getattr(args, name, None)
        if v is not None:
            params[name] = v
    return params


def _cmd_synth(args) -> int:
    from binaccel.hw import sweep
    from binaccel.hw.synth import SynthesisError, report_markdown

    boards = [args.board] if args.board else list(sweep.TARGET_MHZ)
    if not args.search:
        if not args.board:
            print("binaccel synth: error: --board is required unless --search", file=sys.stderr)
            return 2
        base = sweep.BOARD_BASE[args.board]
        try:
            params = _engine_fields(args, {**base, "rows": 2, "cols": 2, "word": 16})
            report, summary = sweep.synth_engine(args.board, params, seed=args.seed, freq_mhz=args.freq,
                                                 reuse=not args.force)
        except (TypeError, ValueError) as exc:
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 2
        except SynthesisError as exc:
            print(report_markdown(exc.report), end="")
            print(f"binaccel synth: error: {exc}", file=sys.stderr)
            return 1
        print(report_markdown(report), end="")
        print(json.dumps({k: summary[k] for k in ("board", "fits", "fmax_mhz", "target_mhz", "met", "luts",
                                                   "luts_total", "ffs", "brams", "dsps", "array")}, indent=1))
        if args.update_boards:
            _update_boards(args.board, summary)
        return 0 if summary["fits"] else 1
    results = _search(boards, args)
    for board, res in results.items():
        b = res["best"]
        if b:
            a = b["array"]
            print(f"{board}: largest array {a['rows']}x{a['cols']}x{a['word']}, LUT {b['luts']}/{b['luts_total']}, "
                  f"fmax {b['fmax_mhz']} MHz (target {b['target_mhz']:g} MHz: {'met' if b['met'] else 'NOT met'})")
        else:
            print(f"{board}: no point fitted")
    return 0


def _search(boards, args):
    from binaccel.hw import sweep

    results = {}
    try:
        old = sweep.load_boards_json()["boards"]
    except (FileNotFoundError, ValueError):
        old = {}
    for board in boards:
        base = _engine_fields(args, sweep.BOARD_BASE[board]) if args is not None else None
        for k in ("rows", "cols", "word"):
            base.pop(k, None)
        def save(partial, board=board):
            sweep.write_boards_json({**old, **results, board: partial})

        results[board] = sweep.largest_array(board, base=base, seed=getattr(args, "seed", 1),
                                             freq_mhz=getattr(args, "freq", None),
                                             reuse=not getattr(args, "force", False),
                                             max_points=getattr(args, "max_points", 8), on_point=save)
        merged = {**old, **results}
        path = sweep.write_boards_json(merged)
        print(f"[synth] wrote {path}")
    return results


def _update_boards(board, summary):
    from binaccel.hw import sweep

    try:
        doc = sweep.load_boards_json()["boards"]
    except (FileNotFoundError, ValueError):
        doc = {}
    res = doc.get(board) or {"board": board, "target_mhz": sweep.TARGET_MHZ[board], "points": []}
    res["points"] = [p for p in res.get("points", []) if p.get("report") != summary["report"]] + [summary]
    fitting = [p for p in res["points"] if p["fits"]]
    res["best"] = max(fitting, key=lambda p: (p["macs_per_cycle"], p["fmax_mhz"] or 0)) if fitting else None
    res["met"] = bool(res["best"] and res["best"]["met"])
    doc[board] = res
    print(f"[synth] updated {sweep.write_boards_json(doc)}")


def _cmd_bench(args) -> int:
    from binaccel.hw import sweep

    from . import bench

    path = sweep.BOARDS_JSON
    if args.synth or not path.exists():
        why = "--synth given" if args.synth else f"{path} not found"
        print(f"[bench] {why}: running the board search (binaccel synth --search)")
        ns = argparse.Namespace(seed=1, freq=None, force=args.synth, max_points=8)
        _search(list(sweep.TARGET_MHZ), ns)
    else:
        print(f"[bench] reusing the last synthesis results {path} (binaccel bench --synth re-synthesizes)")
    try:
        boards = bench.load_boards(path)
    except ValueError as exc:
        print(f"binaccel bench: error: {exc}", file=sys.stderr)
        return 2
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
    from binaccel.hw.params import EngineParams

    from . import bench

    s = subparsers.add_parser("synth", help="synthesize the engine for a board (yosys/nextpnr), or search "
                                            "the largest array per board",
                              description="Synthesize the layer engine for a board; with --search, find the "
                                          "largest array that fits (few points, sequential) and write "
                                          "build/bench/boards.json.")
    s.add_argument("--board", choices=["icebreaker", "ulx3s"], default=None)
    s.add_argument("--search", action="store_true", help="search the largest fitting array (all boards "
                                                         "unless --board)")
    s.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    s.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="accelerator clock target (default: 48 MHz iCEBreaker, 150 MHz ULX3S)")
    s.add_argument("--force", action="store_true", help="re-run points whose report exists")
    s.add_argument("--max-points", type=int, default=8, help="syntheses per board in --search (default 8)")
    s.add_argument("--update-boards", action="store_true",
                   help="add this single point to build/bench/boards.json")
    for name in EngineParams.names():
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None, metavar="N",
                       help=f"EngineParams.{name} (default: the board's MNIST base; rows/cols/word 2/2/16)")
    s.set_defaults(func=_cmd_synth)

    b = subparsers.add_parser("bench", help="FPGA cycles/time per image vs CPU (torch, Brevitas, packed numpy)",
                              description="Benchmark networks on the synthesized engine arrays against the CPU; "
                                          "writes build/bench/bench.json, bench.md and plots.")
    b.add_argument("--synth", action="store_true", help="re-run the board search instead of reusing "
                                                        "build/bench/boards.json")
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
