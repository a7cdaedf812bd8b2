"""Design factories of the synthesis flow: the accelerator and the engine behind the frame link
(board designs), and the bare engine behind :class:`FlatPorts`."""

from __future__ import annotations

from amaranth.hdl import Module, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

from .._util import checking
from ..engine import Engine
from ..linked import LinkedAccelerator, LinkedEngine


class FlatPorts(wiring.Component):
    """The ports of a ``sync``-domain core as plain ``unsigned`` signals of the same widths and flows.

    ``PortHarness`` (``binaccel.hw.synth``) sizes its shift register and fold with ``len()`` of each
    port, which structured ports (``data.View`` of a ``StructLayout``, like the engine's stream
    payloads) do not support; behind this adapter every port is a plain signal. Pure wiring, no
    logic: the figures are the core's.
    """

    def __init__(self, core):
        with checking(self):
            if not isinstance(getattr(core, "signature", None), wiring.Signature):
                raise TypeError(f"FlatPorts needs a wiring.Component, not {core!r}")
        self.core = core
        self._ports = []
        members = {}
        for path, member, value in core.signature.flatten(core):
            name = "_".join(str(p) for p in path)
            width = len(Value.cast(value))
            members[name] = (In if member.flow == Flow.In else Out)(unsigned(width))
            self._ports.append((name, member.flow, value))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        for name, flow, value in self._ports:
            port = getattr(self, name)
            if flow == Flow.In:
                m.d.comb += Value.cast(value).eq(port)
            else:
                m.d.comb += port.eq(value)
        return m


def engine_design(**params):
    """Default design factory: the layer engine (``binaccel.hw.engine.Engine(**params)``) with
    flattened ports; :func:`binaccel.hw.synth.synthesize` puts it in a PortHarness in a BoardTop."""
    return FlatPorts(Engine(**params))


def linked_engine_design(**params):
    """Engine board design factory: :class:`binaccel.hw.linked.LinkedEngine` (the layer engine behind
    the frame link; a byte-stream component), which :func:`binaccel.hw.synth.synthesize` puts in a
    :class:`~binaccel.hw.boards.BoardTop`."""
    return LinkedEngine(**params)


def accel_design(**params):
    """Accelerator design factory: :class:`binaccel.hw.linked.LinkedAccelerator` (the whole-network
    accelerator behind the frame link; a byte-stream component), which
    :func:`binaccel.hw.synth.synthesize` puts in a :class:`~binaccel.hw.boards.BoardTop`."""
    return LinkedAccelerator(**params)


_FACTORIES = {"accel": accel_design, "engine-link": linked_engine_design, "engine": engine_design}
