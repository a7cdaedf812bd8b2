"""Small Amaranth stream components used to test the simulation infrastructure (runner, streams,
lint, fast path). Not part of the accelerator."""
from amaranth import Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["INFRA_LAYOUT", "InfraFIFO", "InfraAdder"]

#: A struct payload with an unsigned, a signed and a one-bit field (13 bits).
INFRA_LAYOUT = data.StructLayout({"a": unsigned(8), "b": signed(4), "last": unsigned(1)})


class InfraFIFO(wiring.Component):
    """Stream FIFO: ``o_stream`` delivers the ``i_stream`` payloads in order, unchanged.

    Keyword-only parameters: ``payload`` (shape-castable, default :data:`INFRA_LAYOUT`) and
    ``depth`` (>= 1). Tolerates any valid/ready pattern on both sides.
    """

    def __init__(self, *, payload=INFRA_LAYOUT, depth: int = 4):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self.depth = depth
        self.payload_shape = payload
        super().__init__({
            "i_stream": In(stream.Signature(payload)),
            "o_stream": Out(stream.Signature(payload)),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.payload_shape).width
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        m.d.comb += [
            q.w_data.eq(self.i_stream.payload),
            q.w_en.eq(self.i_stream.valid),
            self.i_stream.ready.eq(q.w_rdy),
            self.o_stream.payload.eq(q.r_data),
            self.o_stream.valid.eq(q.r_rdy),
            q.r_en.eq(self.o_stream.ready),
        ]
        return m


class InfraAdder(wiring.Component):
    """Joins two streams: ``o_stream`` payload is ``a_stream + b_stream`` (unsigned, ``width + 1``
    bits), one output per pair of inputs, in order. Registered output; any valid/ready pattern."""

    def __init__(self, *, width: int = 16):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1, got {width!r}")
        self.width = width
        super().__init__({
            "a_stream": In(stream.Signature(unsigned(width))),
            "b_stream": In(stream.Signature(unsigned(width))),
            "o_stream": Out(stream.Signature(unsigned(width + 1))),
        })

    def elaborate(self, platform):
        m = Module()
        a, b, o = self.a_stream, self.b_stream, self.o_stream
        take = Signal()
        m.d.comb += [
            take.eq(a.valid & b.valid & (~o.valid | o.ready)),
            a.ready.eq(take),
            b.ready.eq(take),
        ]
        with m.If(take):
            m.d.sync += [o.payload.eq(a.payload + b.payload), o.valid.eq(1)]
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        return m
