"""The pipelined datapath units of the accelerator.

* :class:`~binaccel.hw.dp.array.XnorArray`: an output-stationary systolic array of
  :class:`~binaccel.hw.dp.pe.XnorPE` (XNOR-popcount of one word per cycle, pipelined adder tree,
  slot masks, Horner bit planes).

Every unit has a numpy reference of what it computes in :mod:`binaccel.sw.dpref`; the unit tests
compare the two on directed and random cases.
"""
