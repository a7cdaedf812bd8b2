"""``binaccel demo``: every model trained, exported, checked, run on the simulated hardware and benched.

* :mod:`.run`: the demo run (:func:`run_demo`) and its report;
* :mod:`.hardware`: the trained models on the simulated engine and accelerator;
* :mod:`.bench`: the small-board synthesis and the FPGA-vs-CPU bench.
"""

from .run import DEFAULT_MODELS, render_report, run_demo

__all__ = ["run_demo", "render_report", "DEFAULT_MODELS"]
