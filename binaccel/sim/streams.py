"""cocotb 2.x helpers for Amaranth ``stream.Signature`` ports and ``amaranth.lib.data`` payloads.

Public API::

    bus(dut, prefix) -> (valid, ready, payload)
    StreamDriver(clk, valid, ready, payload, *, idle_prob=0.0, rng=None, garbage=True, counter=None)
        await send(word); await send_all(words); .sent_cycles
    StreamMonitor(clk, valid, ready, payload, *, backpressure_prob=0.0, rng=None, counter=None,
                  check_protocol=True)
        await recv(n) -> list[int]; .beats; .cycles; stop()
    StreamProtocolError
    CycleCounter(clk): .count; stop()
    await count_cycles(clk, awaitable) -> (result, cycles)
    await reset(clk, rst, cycles=2)
    pack_fields(layout, **fields) -> int;  unpack_fields(layout, value) -> dict

Stream rules (AXI-stream): a beat transfers at a rising clock edge where ``valid`` and ``ready`` are
both high; once ``valid`` is high it stays high with ``payload`` unchanged until the transfer.
The driver obeys them; the monitor checks the design obeys them (``check_protocol``).

Timing convention: drivers write signals right after a rising edge; handshakes are sampled in the
``ReadOnly`` phase before the next edge. Call ``send``/``recv`` from a normal (writable) phase,
e.g. after ``await RisingEdge(clk)``.
"""
from __future__ import annotations

import random
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import cocotb
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data
from cocotb.queue import Queue
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = [
    "bus",
    "StreamDriver",
    "StreamMonitor",
    "CycleCounter",
    "count_cycles",
    "reset",
    "pack_fields",
    "unpack_fields",
    "value_of",
    "check_prob",
    "StreamProtocolError",
]


# --------------------------------------------------------------------------------------------------
# Payload packing (pure Python, usable outside a simulation)


def _as_layout(layout):
    try:
        return data.Layout.cast(layout)
    except TypeError as e:
        raise TypeError(f"expected an amaranth.lib.data layout (or a data.Struct class), got {layout!r}") from e


def _field_shape(shape):
    """Return ('layout', Layout) or ('int', width, signed, enum-or-None) for a field shape."""
    if isinstance(shape, data.Layout):
        return ("layout", shape)
    if isinstance(shape, type) and issubclass(shape, data.View):  # data.Struct / data.Union class
        return ("layout", data.Layout.cast(shape))
    enum = shape if isinstance(shape, type) and hasattr(shape, "__members__") else None
    if isinstance(shape, ShapeCastable) and enum is None:
        inner = shape.as_shape()
        if isinstance(inner, data.Layout):
            return ("layout", inner)
    s = Shape.cast(shape)
    return ("int", s.width, s.signed, enum)


def _encode(shape, value, where: str) -> int:
    kind = _field_shape(shape)
    if kind[0] == "layout":
        layout = kind[1]
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < (1 << layout.size):
                raise ValueError(f"{where}: raw value {value} does not fit in {layout.size} bits")
            return value
        return _pack(layout, value, where)
    _, width, signed, enum = kind
    if enum is not None and isinstance(value, enum):
        value = value.value
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"{where}: expected an int, got {type(value).__name__} {value!r}")
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if width == 0:
        lo, hi = 0, 0
    if not lo <= value <= hi:
        kind_s = "signed" if signed else "unsigned"
        raise ValueError(f"{where}: value {value} out of range for {kind_s}({width}) [{lo}, {hi}]")
    return value & ((1 << width) - 1)


def _pack(layout, fields, where: str) -> int:
    if isinstance(layout, data.ArrayLayout):
        items = list(fields) if not isinstance(fields, Mapping) else None
        if items is None or len(items) != layout.length:
            raise ValueError(f"{where}: expected a sequence of {layout.length} elements, got {fields!r}")
        fields = dict(enumerate(items))
    elif not isinstance(fields, Mapping):
        raise TypeError(f"{where}: expected a dict of fields for {layout!r}, got {fields!r}")
    if isinstance(layout, data.UnionLayout):
        raise TypeError(f"{where}: union layouts are not packed field by field; pass the raw int")
    names = [name for name, _ in layout]
    unknown = [k for k in fields if k not in names]
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        raise ValueError(
            f"{where}: fields must be exactly {names}; "
            + (f"unknown {unknown} " if unknown else "")
            + (f"missing {missing}" if missing else "")
        )
    word = 0
    for name, field in layout:
        word |= _encode(field.shape, fields[name], f"{where}.{name}") << field.offset
    return word


def _decode(shape, bits: int):
    kind = _field_shape(shape)
    if kind[0] == "layout":
        return unpack_fields(kind[1], bits)
    _, width, signed, enum = kind
    if signed and width and bits >> (width - 1):
        bits -= 1 << width
    if enum is not None:
        try:
            return enum(bits)
        except ValueError:
            return bits
    return bits


def pack_fields(layout, **fields) -> int:
    """Pack field values into the integer bit pattern of a ``data.StructLayout`` (or ``data.Struct``).

    Every field must be given, with a value in range of its shape (signed fields: two's complement).
    Nested struct fields take a dict (or a raw int), array fields a list.
    """
    layout = _as_layout(layout)
    return _pack(layout, fields, "pack_fields")


def unpack_fields(layout, value: int) -> dict:
    """Inverse of :func:`pack_fields`: a dict of field values (signed fields as negative ints,
    nested structs as dicts, arrays as dicts keyed by index)."""
    layout = _as_layout(layout)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << layout.size):
        raise ValueError(f"unpack_fields: value {value!r} is not an unsigned {layout.size}-bit integer")
    return {name: _decode(field.shape, (value >> field.offset) & ((1 << field.width) - 1))
            for name, field in layout}


# --------------------------------------------------------------------------------------------------
# cocotb helpers


def value_of(handle) -> int:
    """Integer value of a signal handle (raises ValueError on X/Z bits)."""
    v = handle.value
    if hasattr(v, "to_unsigned"):
        return v.to_unsigned()
    return int(v)


def bus(dut, prefix: str):
    """The ``(valid, ready, payload)`` handles of an Amaranth stream port named ``prefix``.

    Amaranth flattens a ``stream.Signature`` port ``i_stream`` to ``i_stream__valid``,
    ``i_stream__ready`` and ``i_stream__payload`` (a struct payload is one vector; use
    :func:`pack_fields`). ``payload`` is None for a zero-width payload.
    """
    handles = []
    for member in ("valid", "ready", "payload"):
        sig = f"{prefix}__{member}"
        try:
            handles.append(getattr(dut, sig))
        except AttributeError:
            if member == "payload":
                handles.append(None)
                continue
            names = sorted(h._name for h in dut if "__" in h._name and not h._name.startswith("\\"))
            raise AttributeError(
                f"{dut._name} has no stream port {prefix!r} (no signal {sig}); stream signals: {names}"
            ) from None
    return tuple(handles)


class CycleCounter:
    """Counts rising edges of ``clk`` from its creation (``count``) until :meth:`stop`."""

    def __init__(self, clk):
        self.clk = clk
        self.count = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        edge = RisingEdge(self.clk)
        while True:
            await edge
            self.count += 1

    def stop(self) -> int:
        self._task.cancel()
        return self.count


async def count_cycles(clk, awaitable: Awaitable) -> tuple[Any, int]:
    """Await ``awaitable`` and return ``(its result, rising edges of clk that passed meanwhile)``."""
    counter = CycleCounter(clk)
    result = await awaitable
    return result, counter.stop()


async def reset(clk, rst, cycles: int = 2) -> None:
    """Hold the Amaranth ``rst`` high for ``cycles`` rising edges, then release it after an edge."""
    rst.value = 1
    for _ in range(cycles):
        await RisingEdge(clk)
    rst.value = 0


class StreamProtocolError(AssertionError):
    """A stream output dropped ``valid`` or changed ``payload`` before its transfer."""


def check_prob(name: str, p: float) -> float:
    """``p`` as a float if it is a probability in [0, 1) (not a bool); else ValueError naming ``name``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


class StreamDriver:
    """Source for a stream input of the design (drives ``valid`` and ``payload``, reads ``ready``).

    Before each word, idle cycles (``valid`` low) are inserted with probability ``idle_prob`` each
    (geometric), using ``rng`` (a ``random.Random``; default: the cocotb-seeded ``random`` module).
    While idle, ``payload`` carries random bits when ``garbage`` is true (the design must ignore it).
    ``sent_cycles`` lists the transfer cycle of every word (numbering of ``counter`` if given, else
    rising edges since the driver was created, 1-based).
    """

    def __init__(self, clk, valid, ready, payload, *, idle_prob: float = 0.0, rng=None,
                 garbage: bool = True, counter: CycleCounter | None = None):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.idle_prob = check_prob("idle_prob", idle_prob)
        self.rng = rng if rng is not None else random
        self.garbage = garbage
        self.width = len(payload) if payload is not None else 0
        self.counter = counter if counter is not None else CycleCounter(clk)
        self.sent_cycles: list[int] = []
        valid.value = 0

    def _idle_payload(self):
        if self.garbage and self.payload is not None and self.width:
            self.payload.value = self.rng.getrandbits(self.width)

    async def send(self, word: int) -> None:
        """Transfer one word (waits for the handshake; returns right after the transfer edge)."""
        if self.payload is not None:
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < (1 << self.width):
                raise ValueError(f"word {word!r} is not an unsigned {self.width}-bit integer")
        edge = RisingEdge(self.clk)
        while self.idle_prob and self.rng.random() < self.idle_prob:
            self.valid.value = 0
            self._idle_payload()
            await edge
        self.valid.value = 1
        if self.payload is not None:
            self.payload.value = word
        while True:
            await ReadOnly()
            accepted = value_of(self.ready) == 1
            stamp = self.counter.count + 1
            await edge
            if accepted:
                break
        self.sent_cycles.append(stamp)
        self.valid.value = 0  # overridden at once if another send follows in this time step
        self._idle_payload()

    async def send_all(self, words: Iterable[int]) -> None:
        """Transfer all words in order."""
        for w in words:
            await self.send(w)


class StreamMonitor:
    """Sink for a stream output of the design (drives ``ready``, records transferred payloads).

    From creation until :meth:`stop`, ``ready`` is driven each cycle, low with probability
    ``backpressure_prob``; every transferred beat is buffered (``beats``, with its transfer cycle
    in ``cycles``, numbered like :class:`StreamDriver`). :meth:`recv` returns buffered beats in order.
    With ``check_protocol`` the design's output is checked: once ``valid`` is high it must stay high
    with the same payload until the transfer; a violation raises :class:`StreamProtocolError` (an
    AssertionError; it fails the test).
    """

    def __init__(self, clk, valid, ready, payload, *, backpressure_prob: float = 0.0, rng=None,
                 counter: CycleCounter | None = None, check_protocol: bool = True):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.backpressure_prob = check_prob("backpressure_prob", backpressure_prob)
        self.rng = rng if rng is not None else random
        self.counter = counter if counter is not None else CycleCounter(clk)
        self.check_protocol = check_protocol
        self.beats: list[int] = []
        self.cycles: list[int] = []
        self.error: AssertionError | None = None
        self._queue: Queue = Queue()
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        edge = RisingEdge(self.clk)
        pending = None  # payload of a beat offered but not taken in the previous cycle
        while True:
            ready = 0 if (self.backpressure_prob and self.rng.random() < self.backpressure_prob) else 1
            self.ready.value = ready
            await ReadOnly()
            valid = value_of(self.valid) == 1
            word = value_of(self.payload) if (valid and self.payload is not None) else (0 if valid else None)
            if self.check_protocol and pending is not None and word != pending:
                what = "valid dropped" if word is None else f"payload changed {pending:#x} -> {word:#x}"
                self.error = StreamProtocolError(
                    f"stream protocol violation on {self.valid._name} at cycle {self.counter.count + 1}: "
                    f"{what} before the transfer"
                )
                raise self.error
            stamp = self.counter.count + 1
            await edge
            if valid and ready:
                self.beats.append(word)
                self.cycles.append(stamp)
                self._queue.put_nowait(word)
                pending = None
            else:
                pending = word

    async def recv(self, n: int) -> list[int]:
        """The next ``n`` transferred payloads (waits for them)."""
        out = []
        for _ in range(n):
            if self.error is not None:
                raise self.error
            out.append(await self._queue.get())
        return out

    def stop(self) -> None:
        """Stop driving ``ready`` (it is left low) and stop recording."""
        self._task.cancel()
        self.ready.value = 0
