"""The pipelined accelerator behind the frame link, and behind the board's UART glue."""

from __future__ import annotations

from amaranth.hdl import ResetInserter

from .._util import checking
from ..link import DEFAULT_TIMEOUT
from ..linked import _Linked, _UartDesign
from binaccel.sw.link import MAX_PAYLOAD
from .accel import DpAccelerator

__all__ = ["LinkedDpAccelerator", "UartDpAccelerator"]


class LinkedDpAccelerator(_Linked):
    """:class:`~binaccel.hw.dp.accel.DpAccelerator` behind a :class:`~binaccel.hw.link.FrameLink`,
    as :class:`~binaccel.hw.linked.LinkedAccelerator` does for the time-shared accelerator:
    frame payload bytes are the command words (little-endian), output words come back as
    ``RESULT`` transfers, a good ``RESET`` frame resets the accelerator.

    Keyword-only parameters: ``max_payload``, ``depth``, ``timeout`` of the link; everything
    else is a :class:`~binaccel.sw.hwif.dp.DpParams` build parameter."""

    def __init__(self, *, max_payload=MAX_PAYLOAD, depth=2, timeout=DEFAULT_TIMEOUT, **accel_params):
        with checking(self):
            self.accel = DpAccelerator(**accel_params)
        self.params = self.accel.params
        super().__init__(self.accel, max_payload=max_payload, depth=depth, timeout=timeout)

    def _chain(self, m, soft):
        m.submodules.accel = acc = ResetInserter(soft)(self.accel)
        return [acc], acc.busy, acc.error


class UartDpAccelerator(_UartDesign):
    """:class:`LinkedDpAccelerator` behind the board's UART glue (what a board top holds but the
    pins, clock and reset). Keyword-only: ``divisor``, ``rx_fifo_depth``, and those of
    :class:`LinkedDpAccelerator`."""

    def __init__(self, *, divisor, rx_fifo_depth=16, **params):
        super().__init__(LinkedDpAccelerator, divisor=divisor, rx_fifo_depth=rx_fifo_depth, **params)
