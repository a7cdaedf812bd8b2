"""The pipelined accelerator and its units (``docs/pipelined.md``).

* :class:`~binaccel.hw.dp.accel.DpAccelerator`: the whole-network accelerator (command parser,
  buffers, sequencer, parameter and descriptor prefetch);
  :class:`~binaccel.hw.dp.board.LinkedDpAccelerator` puts it behind the frame link;
* :class:`~binaccel.hw.dp.window.WindowGen`: operand steps read from 16-bit feature-map slots
  through a per-layer offset table;
* :class:`~binaccel.hw.dp.array.XnorArray` of :class:`~binaccel.hw.dp.pe.XnorPE`: pipelined
  XNOR-popcount over slot-masked words, Horner bit planes;
* :class:`~binaccel.hw.dp.first.FirstLayerUnit`: 8-bit pixels times binary weights, a 2x2 quad of
  positions per cycle;
* :class:`~binaccel.hw.dp.lane.Lane`: a row's results to sign bits, requantized values or logits;
* :class:`~binaccel.hw.dp.writeback.WriteBack`: outputs into the next feature map, logits into a
  FIFO.

Every unit has a numpy reference of what it computes in :mod:`binaccel.sw.dpref`; the unit tests
compare the two on directed and random cases. :mod:`binaccel.sw.dpprog` compiles models for it.
"""
