"""``binaccel records``: the curated record of the measured synthesis results (:mod:`binaccel.records`).

::

    binaccel records                                  # the record's best points, as JSON
    binaccel records --update [--from FILE] [--out FILE]   # a new record from a search's boards.json
    binaccel records --markdown build/docs/results.md      # the results page of the record

``--update`` reads ``bench/boards.json`` of the build folder (``binaccel synth --search``) unless
``--from`` names another file, and writes ``records/measured.json`` of the build folder unless
``--out`` names another (``--out binaccel/measured.json`` in a checkout replaces the record the
package installs). ``--markdown`` renders the record just written by ``--update``, or the one given
by ``--record`` (default: the installed record).
"""

from __future__ import annotations

import json
import sys

from binaccel import records
from binaccel.bench import boards_json_path, shown_path
from binaccel.hw.sweep import load_boards_json
from binaccel.sw.atomic import write_text_atomic
from binaccel.sw.outputs import check_output_file
from binaccel.sw.paths import build_dir

from .models import add_force_argument

__all__ = ["register"]


def _cmd_records(args) -> int:
    """The outputs are checked before anything is read; a missing input goes to the command's
    one-line error (``binaccel: error: FILE: No such file or directory``)."""
    source = (args.source or boards_json_path()) if args.update else None
    out = (args.out or build_dir("records", "measured.json")) if args.update else None
    inputs = [source, args.record]
    if out is not None:
        check_output_file(out, inputs=inputs, own=records.is_record, what="binaccel record", force=args.force)
    if args.markdown:
        check_output_file(args.markdown, inputs=[*inputs, out], own=records.is_results_page,
                          what="results page written by binaccel records", force=args.force)
    try:
        if args.update:
            record = records.record_from_boards(load_boards_json(source), source=shown_path(source))
            out = records.write_record(record, out)
            print(f"[records] wrote {out} from {source}")
        else:
            record = records.load_record(args.record)
    except ValueError as exc:
        print(f"binaccel records: error: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        write_text_atomic(args.markdown, records.render_markdown(record))
        print(f"[records] wrote {args.markdown}")
    if not args.update and not args.markdown:
        print(json.dumps({board: {kind: ({k: e.get(k) for k in ("array", "fmax_mhz", "bitstream_clock_mhz",
                                                                  "plan_sha256", "command")}
                                         if e.get("fits") else {"fits": False, "command": e["command"]})
                                  for kind, e in designs.items()}
                          for board, designs in record["boards"].items()}, indent=1))
    return 0


def register(subparsers) -> None:
    """Add ``records`` to an argparse ``subparsers`` object."""
    r = subparsers.add_parser("records", help="the curated record of the measured synthesis results: show it, "
                                              "update it from a board search, or write its results page",
                              description="The curated record of the synthesis results (binaccel/measured.json): "
                                          "per board and design the best point of the board search.")
    r.add_argument("--update", action="store_true",
                   help="make a new record from a board search's boards.json (see --from, --out)")
    r.add_argument("--from", dest="source", default=None, metavar="FILE",
                   help="boards file of the search (default: bench/boards.json in the build folder)")
    r.add_argument("--out", default=None, metavar="FILE",
                   help="where --update writes the record (default: records/measured.json in the build folder)")
    r.add_argument("--record", default=None, metavar="FILE",
                   help="the record to show or render without --update (default: the installed one)")
    r.add_argument("--markdown", default=None, metavar="FILE",
                   help="write the results page (Markdown tables of the record) to FILE (default: none)")
    add_force_argument(r, "--out or --markdown")
    r.set_defaults(func=_cmd_records)
