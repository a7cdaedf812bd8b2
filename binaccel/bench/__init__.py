"""The bench: FPGA cycles and time per image against CPU runtime, per network and board.

* :mod:`.cpu`: the CPU baselines (float PyTorch, Brevitas, the bit-packed numpy path) and timing;
* :mod:`.cycles`: the FPGA cycles (pipelined accelerator, accelerator or engine simulation, engine
  cycle model);
* :mod:`.boards`: the board figures (the search's ``boards.json`` or the curated record);
* :mod:`.networks`: the networks to run (trained MNIST models, model files);
* :mod:`.run`: the bench run (``bench.json``);
* :mod:`.report`: ``bench.md`` and the plots.
"""

from .boards import boards_json_path, load_boards, parse_array, shown_path, stale_note
from .cpu import PackedNet, time_call
from .cycles import (ACCEL_SOURCE, DP_SOURCE, ENGINE_SIM_SOURCE, MODEL_SOURCE, SOURCE_LABEL, accel_cycles,
                     accel_params_for, dp_cycles, engine_sim_cycles, network_cycles, pe_stages_of)
from .networks import MNIST_BENCH_MODELS, load_model_files, mnist_models
from .report import boards_table, make_plots, render_markdown
from .run import BATCHES, CYCLES, bench_dir, run_bench

__all__ = ["PackedNet", "time_call", "ACCEL_SOURCE", "DP_SOURCE", "ENGINE_SIM_SOURCE", "MODEL_SOURCE", "SOURCE_LABEL",
           "dp_cycles", "accel_cycles", "accel_params_for", "engine_sim_cycles", "network_cycles", "pe_stages_of",
           "boards_json_path", "load_boards", "parse_array", "shown_path", "stale_note", "MNIST_BENCH_MODELS",
           "load_model_files", "mnist_models", "boards_table", "make_plots", "render_markdown", "BATCHES", "CYCLES",
           "bench_dir", "run_bench"]
