"""``binaccel bench``: the networks on the boards' synthesized builds against the CPU.

::

    binaccel bench                                 # board figures: bench/boards.json, else the curated record
    binaccel bench --accel-images 64               # more images simulated (and checked) per network
    binaccel bench --array ulx3s=5x6x32            # a fitting build other than the largest
    binaccel bench --synth                         # re-runs the board search first

A board with a timing-met build of the pipelined accelerator (``dp_boards`` of the boards file or
the record, ``binaccel synth --design dp --update-boards``) runs that design; see
:func:`binaccel.bench.load_boards`. Writes ``bench.json``, ``bench.md`` and the plots into ``bench``
of the build folder (``--out``).
"""

from __future__ import annotations

import argparse
import sys

from binaccel import bench, records
from binaccel.hw import sweep

from .synth import search
from binaccel.commands.argtypes import name_list, nonneg_int, positive_int, positive_threads
from binaccel.sw import netzoo
from binaccel.sw.link import DEFAULT_BAUD
from binaccel.sw.outputs import check_output_dir

__all__ = ["register", "network_list"]

#: The names ``--networks`` takes: the MNIST models (with or without ``mnist_``) and the paper-scale networks.
NETWORKS = (*(f"mnist_{m}" for m in bench.MNIST_BENCH_MODELS), *bench.MNIST_BENCH_MODELS, *netzoo.names())


#: ``--networks``: a comma-separated list of :data:`NETWORKS`.
network_list = name_list(NETWORKS)


def _cmd_bench(args) -> int:
    out = args.out or bench.bench_dir()
    check_output_dir(out)
    path = bench.boards_json_path()
    try:
        arrays = dict(bench.parse_array(a) for a in args.array or ())
    except ValueError as exc:
        print(f"binaccel bench: error: {exc}", file=sys.stderr)
        return 2
    if args.synth:
        print("[bench] --synth given: running the board search (binaccel synth --search)")
        search(list(sweep.TARGET_MHZ), argparse.Namespace(seed=1, freq=None, force=True, max_points=8))
    elif path.exists():
        print(f"[bench] reusing the last synthesis results {path} (binaccel bench --synth re-synthesizes)")
    else:
        print(f"[bench] {path} not found: using the curated record {records.RECORD_LABEL} "
              f"(binaccel bench --synth synthesizes on this machine, an hour or more for both boards)")
    try:
        boards = bench.load_boards(arrays=arrays)
    except ValueError as exc:
        print(f"binaccel bench: error: {exc}", file=sys.stderr)
        return 2
    for name, b in boards.items():
        note = bench.stale_note(name, b)
        if note:
            print(f"[bench] warning: {note}")
    networks = args.networks
    result = bench.run_bench(out_dir=out, boards=boards, networks=networks, reps=args.reps,
                             warmup=args.warmup, train=not args.no_train, plots=not args.no_plots,
                             cycles=args.cycles, accel_images=args.accel_images, threads=args.threads,
                             ort_threads=args.ort_threads, baud=args.baud)
    print(f"[bench] wrote {out}/bench.json, bench.md" + (", plots" if not args.no_plots else ""))
    for net, e in result["networks"].items():
        for board in result["boards"]:
            if board in e:
                r = e[board]
                if r.get("does_not_run"):
                    print(f"  {net:16s} {board:10s} does not run: {r['does_not_run']}")
                    continue
                e2e, fpga, ratio = r.get("end_to_end_s_per_image"), r.get("fpga_s_per_image"), \
                    r.get("ratio_fpga_over_cpu_best")
                exact = r.get("exact")
                print(f"  {net:16s} {board:10s} FPGA {'-' if fpga is None else f'{fpga * 1e3:9.3f} ms/img'}  "
                      f"FPGA/CPU best {'-' if ratio is None else f'{ratio:8.3g}'} ({r['cpu_best_runtime']})  "
                      f"end to end {'-' if e2e is None else f'{e2e * 1e3:9.3f} ms/img'}  "
                      f"util {100 * r['utilisation']:5.1f}%"
                      + (f"  exact {exact['matched']}/{exact['checked']}" if exact else ""))
    return 0


def register(subparsers) -> None:
    """Add ``bench`` to an argparse ``subparsers`` object."""
    b = subparsers.add_parser("bench", help="FPGA cycles/time per image vs CPU (torch, onnxruntime, Brevitas, packed numpy)",
                              description="Benchmark networks on the synthesized engine arrays against the CPU; "
                                          "writes bench.json, bench.md and plots into bench/ of the build folder.")
    b.add_argument("--synth", action="store_true", help="re-run the board search instead of reusing "
                                                        "bench/boards.json of the build folder")
    b.add_argument("--array", action="append", default=None, metavar="BOARD=RxCxW",
                   help="bench this fitting build of the board's synthesis results instead of the largest, "
                        "e.g. --array ulx3s=4x4x32 (repeatable, one per board)")
    b.add_argument("--networks", type=network_list, default=None,
                   help=f"comma-separated subset of {', '.join(NETWORKS)} (default: all)")
    b.add_argument("--out", default=None, help="output folder (default: bench in the build folder)")
    b.add_argument("--reps", type=positive_int, default=5, help="timed repetitions (median; default 5)")
    b.add_argument("--warmup", type=nonneg_int, default=2, help="untimed runs before the timed ones (default 2)")
    b.add_argument("--no-train", action="store_true", help="do not train MNIST models when none are found")
    b.add_argument("--no-plots", action="store_true", help="no plots")
    b.add_argument("--cycles", choices=list(bench.CYCLES), default="accel",
                   help="cycle source: accel (default) = the simulations (the whole-network accelerator, "
                        "binaccel.sim.top, or for a board running the engine behind the link its engine build), "
                        "model = engine cycle model (hw/perf.py); a board running the pipelined accelerator is "
                        "always simulated (binaccel.sim.dp)")
    b.add_argument("--threads", type=positive_threads, default=1,
                   help="torch threads for the CPU timings (default 1; the numpy packed path is single-threaded)")
    b.add_argument("--ort-threads", type=positive_threads, default=None,
                   help="intra-op threads of the second onnxruntime timing (default: all, os.cpu_count(); "
                        "the first has 1)")
    b.add_argument("--baud", type=positive_int, default=DEFAULT_BAUD,
                   help=f"host link bit rate for the link and end-to-end figures (default {DEFAULT_BAUD}, the "
                        f"board tops' default; 115200 for the boards' other rate)")
    b.add_argument("--accel-images", type=positive_int, default=4,
                   help="images simulated per MNIST network (half, at least 2, for paper-scale ones; default 4), "
                        "their logits checked against the integer reference")
    b.set_defaults(func=_cmd_bench)
