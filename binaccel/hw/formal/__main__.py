"""``python -m binaccel.hw.formal [--out build/formal/formal.json] [--only NAME] [--timeout S]``:
run the formal properties (:mod:`binaccel.hw.formal`), write the record; exit 0 only if every
property passed."""

from __future__ import annotations

import argparse
import sys

from . import ToolMissing, run, select


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m binaccel.hw.formal", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/formal/formal.json", help="the JSON record (jobs go beside it)")
    ap.add_argument("--only", help="a property name, a glob (rx.*) or a unit (fifo, window, rx, tx)")
    ap.add_argument("--timeout", type=int, help="seconds per job (sby's timeout)")
    ap.add_argument("--list", action="store_true", help="list the properties and exit")
    args = ap.parse_args(argv)
    jobs = select(args.only)
    if not jobs:
        print(f"error: no property matches {args.only!r}", file=sys.stderr)
        return 2
    if args.list:
        for j in jobs:
            print(f"{j.name:18s} {j.mode:6s} {j.depth:3d}  {j.statement}")
        return 0
    try:
        record = run(jobs, args.out, timeout=args.timeout)
    except ToolMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_pass = sum(e["result"] == "PASS" for e in record["properties"])
    print(f"{n_pass} of {len(record['properties'])} properties passed; record: {args.out}")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
