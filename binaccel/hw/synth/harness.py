"""How a design goes on a board: a ``BoardTop`` as it is, a byte-stream component in a ``BoardTop``,
any other core in a :class:`PortHarness` in a ``BoardTop``."""

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Flow, In, Out

from ..boards import BoardTop, _board

_BYTE_PORTS = {"i_stream": In(stream.Signature(8)), "o_stream": Out(stream.Signature(8))}


def _is_byte_stream_design(design):
    members = getattr(getattr(design, "signature", None), "members", None)
    if members is None:
        return False
    return all(port in members and members[port] == want for port, want in _BYTE_PORTS.items())


class PortHarness(wiring.Component):
    """Byte-stream wrapper that keeps every port of an arbitrary ``sync``-domain core alive.

    Used to place a bare core (e.g. a compute array with wide ports) on a board for
    utilisation/fmax figures: the core's inputs are driven from a shift register loaded
    8 bits per received byte, its outputs are registered and XOR-folded, in registered stages
    of 4 bytes to 1, down to the byte on ``o_stream`` (always valid). Nothing can be optimised
    away, and paths into and out of the core start and end at flip-flops. The harness costs
    about one FF per core input and output bit plus the fold: report figures include it.
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def __init__(self, core):
        if not isinstance(getattr(core, "signature", None), wiring.Signature):
            raise TypeError(f"PortHarness needs a wiring.Component, not {core!r}")
        self.core = core
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        inputs, outputs = [], []
        for path, member, value in core.signature.flatten(core):
            (inputs if member.flow == Flow.In else outputs).append(Value.cast(value))

        in_width = sum(len(v) for v in inputs)
        if in_width:
            sr = Signal(max(in_width, 8))
            m.d.comb += self.i_stream.ready.eq(1)
            with m.If(self.i_stream.valid):
                m.d.sync += sr.eq(Cat(self.i_stream.payload, sr[:-8]) if len(sr) > 8
                                  else self.i_stream.payload)
            offset = 0
            for v in inputs:
                m.d.comb += v.eq(sr[offset:offset + len(v)])
                offset += len(v)
        else:
            m.d.comb += self.i_stream.ready.eq(1)

        out_width = sum(len(v) for v in outputs)
        if out_width:
            level = Signal(out_width)
            m.d.sync += level.eq(Cat(*outputs))
            while len(level) > 8:
                nbytes = (len(level) + 7) // 8
                padded = Cat(level, Signal(nbytes * 8 - len(level)))
                byte_list = [padded[8 * i:8 * i + 8] for i in range(nbytes)]
                groups = [byte_list[i:i + 4] for i in range(0, nbytes, 4)]
                nxt = Signal(8 * len(groups))
                for i, group in enumerate(groups):
                    acc = group[0]
                    for b in group[1:]:
                        acc = acc ^ b
                    m.d.sync += nxt[8 * i:8 * i + 8].eq(acc)
                level = nxt
            m.d.comb += self.o_stream.payload.eq(level)
        m.d.comb += self.o_stream.valid.eq(1)
        return m


def _board_top(design, board, freq_mhz):
    """The platform-level elaboratable for ``design`` and a description of the wrapping."""
    if isinstance(design, BoardTop):
        if design.board.name != _board(board).name:
            raise ValueError(f"design is a BoardTop for {design.board.name!r}, "
                             f"not for {board!r}")
        return design, "board top"
    if _is_byte_stream_design(design):
        return BoardTop(lambda: design, board=board, clk_mhz=freq_mhz), "byte-stream design"
    if isinstance(getattr(design, "signature", None), wiring.Signature):
        return (BoardTop(lambda: PortHarness(design), board=board, clk_mhz=freq_mhz),
                "core in PortHarness")
    if isinstance(design, Elaboratable):
        return design, "platform-level elaboratable"
    raise TypeError(f"design must be an Elaboratable (BoardTop, byte-stream component, or "
                    f"any wiring.Component), not {design!r}")


def _design_label(design):
    core = design
    while True:
        inner = getattr(core, "design", None) or getattr(core, "core", None)
        if inner is None or inner is core:
            break
        core = inner
    return type(core).__name__
