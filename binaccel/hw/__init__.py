"""binaccel.hw: the Amaranth gateware (systolic XNOR/AND-popcount engine).

``verilog_text(**params) -> str`` gives the Verilog of an engine configuration (the keyword
parameters of :class:`binaccel.hw.params.EngineParams`).
"""

from .verilog import verilog_text

__all__ = ["verilog_text"]
