"""``binaccel demo``: train, export and check every model, then the simulated hardware and the bench."""

from __future__ import annotations

from binaccel.demo import DEFAULT_MODELS, run_demo
from binaccel.sw.outputs import check_output_dir
from binaccel.sw.paths import build_dir
from binaccel.sw.zoo import MODELS
from binaccel.commands.argtypes import name_list, nonneg_float, nonneg_int, positive_int

__all__ = ["register", "model_list"]


#: ``--models``: a comma-separated list of the named models of :data:`binaccel.sw.zoo.MODELS`.
model_list = name_list(MODELS)


def _cmd_demo(args):
    check_output_dir(args.out or build_dir("demo"))
    models = args.models or DEFAULT_MODELS
    run_demo(out_dir=args.out, epochs=args.epochs, models=models, progress=not args.no_progress,
             hardware=not args.no_hardware, accel_images=args.accel_images, bench=not args.no_bench,
             synth_budget_s=args.synth_budget)


def register(sub) -> None:
    """Add ``demo`` to an argparse ``subparsers`` object."""
    d = sub.add_parser("demo", help="train, export and check every model; write demo/report.md and summary.json "
                                    "in the build folder")
    d.add_argument("--out", default=None, help="output folder (default: demo in the build folder)")
    d.add_argument("--epochs", type=positive_int, default=None, help="epochs per model (default: 10)")
    d.add_argument("--models", type=model_list, default=None,
                   help=f"comma-separated subset of: {', '.join(MODELS)} (default: {','.join(DEFAULT_MODELS)})")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.add_argument("--no-hardware", action="store_true", help="skip the simulated-hardware sections")
    d.add_argument("--accel-images", type=nonneg_int, default=200,
                   help="test images per model run through the whole simulated accelerator (0: skip; 1000: all; "
                        "default 200)")
    d.add_argument("--no-bench", action="store_true", help="skip the small-board synthesis and the FPGA-vs-CPU bench")
    d.add_argument("--synth-budget", type=nonneg_float, default=300.0, metavar="S",
                   help="seconds the demo may spend on the iCEBreaker synthesis; with less, or unchanged "
                        "gateware, it reuses the last report and says so (default 300)")
    d.set_defaults(func=_cmd_demo)
