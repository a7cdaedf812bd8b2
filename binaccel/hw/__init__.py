"""binaccel.hw: the Amaranth gateware (systolic XNOR/AND-popcount engine).

``verilog_text(**params) -> str`` gives the Verilog of an engine configuration (the keyword
parameters of :class:`binaccel.hw.params.EngineParams`).
"""


def verilog_text(**params) -> str:
    """Verilog of :class:`binaccel.hw.engine.Engine` for the given EngineParams keyword parameters."""
    from .verilog import verilog_text as _verilog_text

    return _verilog_text(**params)
