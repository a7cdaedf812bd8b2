"""Speed of the Verilator fast path (binaccel.sim.fastpath.FastSim) on the infrastructure FIFO:
simulated cycles per wall second. Not a test; run it from the project root:

    .venv/bin/python tests/sim/fastpath_speed.py --words 1000000
"""

import argparse
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests`` importable from the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from amaranth import unsigned

from binaccel.sim.fastpath import FastSim
from tests.sim.infra_designs import InfraFIFO


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/sim/fastpath_speed.py",
                                 description="Measure fast-path speed on the infrastructure FIFO.")
    ap.add_argument("--words", type=int, default=1_000_000, help="number of words streamed")
    ap.add_argument("--width", type=int, default=64, help="payload width in bits")
    ap.add_argument("--idle", type=float, default=0.0)
    ap.add_argument("--backpressure", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    t = time.perf_counter()
    sim = FastSim(lambda width: InfraFIFO(payload=unsigned(width), depth=4), name="infra_fifo_bench",
                  params={"width": args.width})
    print(f"build: {time.perf_counter() - t:.1f} s ({'rebuilt' if sim.rebuilt else 'cached'}) in {sim.build_dir}")
    rng = random.Random(args.seed)
    words = [rng.getrandbits(args.width) for _ in range(args.words)]
    t = time.perf_counter()
    r = sim.run_detailed(words, len(words), idle=args.idle, backpressure=args.backpressure, seed=args.seed)
    total = time.perf_counter() - t
    ok = r.out == words
    print(f"{args.words} words of {args.width} bits, idle={args.idle}, backpressure={args.backpressure}: "
          f"{r.total_cycles} cycles in {r.wall_s:.3f} s simulation loop = {r.cycles_per_s / 1e6:.2f} M cycles/s; "
          f"whole run() incl. file I/O {total:.3f} s; outputs equal inputs: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
