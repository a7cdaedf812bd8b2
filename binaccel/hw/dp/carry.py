"""Additions whose operands are a gate of two signals, fused into the ECP5 carry chain.

An ECP5 carry cell (``CCU2C``) adds one bit per half: a LUT4 of the half's four inputs ``A, B,
C, D`` gives the propagate bit, and a LUT2 of ``A, B`` (the LUT4's entries at ``C = D = 0``) the
generate bit, used where propagate is 0. A sum ``u + v`` whose bits are ``u_i = f(A_i, B_i)`` and
``v_i = g(C_i, D_i)`` with ``g(0, 0) = 0`` fits one half per bit with no LUT in front: the LUT4 is
``f ^ g`` (the propagate), its entries at ``C = D = 0`` are ``f`` (where ``f == g`` the carry out
is ``f``); so does ``u_i = A_i`` with ``v_i = g(B_i, C_i, D_i)``, ``g(B, 0, 0) = 0``, e.g. a
multiplexer. :func:`fused_add` builds such sums: a masked pixel sum ``(a ^ ma) + (b ^ mb)``, an
accumulation ``s + (acc if keep else 0)`` or ``p + (2 * acc if dbl else acc)`` then costs the carry
cells alone.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Instance, Mux, Signal, Value

__all__ = ["Term", "fused_add"]

# operand gates: name -> the bit as a function of its two inputs
_GATES = {
    "pass": lambda x, y: x,
    "not": lambda x, y: 1 - x,
    "xor": lambda x, y: x ^ y,
    "and": lambda x, y: x & y,
    "andnot": lambda x, y: x & (1 - y),
}


class Term:
    """An operand of :func:`fused_add`: bit ``i`` is ``gate(value[i], aux)``.

    ``value`` is an unsigned value; ``aux`` a 1-bit value shared by every bit, or a value of
    ``len(value)`` bits, one per bit; ``gate`` is ``"pass"`` (``value``; ``aux`` unused),
    ``"not"`` (``~value``, with the bits above the value's width 1: the complement of the
    zero-extended value; only as the first operand), ``"xor"`` (``value ^ aux``), ``"and"``
    (``value & aux``), ``"andnot"`` (``value & ~aux``) or ``"mux"`` (``alt`` where ``aux`` (1
    bit) is set, else ``value``; ``alt`` has ``value``'s width; only as the second operand, with a
    ``"pass"`` or ``"not"`` first one)."""

    def __init__(self, value, aux=None, gate="pass", *, alt=None):
        if gate not in _GATES and gate != "mux":
            raise ValueError(f"gate must be one of {sorted([*_GATES, 'mux'])}, got {gate!r}")
        self.value = Value.cast(value)
        if gate not in ("pass", "not") and aux is None:
            raise ValueError(f"gate {gate!r} needs aux")
        self.aux = Const(0, 1) if aux is None else Value.cast(aux)
        if len(self.aux) not in (1, len(self.value)) or (gate == "mux" and len(self.aux) != 1):
            raise ValueError(f"aux must be 1 bit{'' if gate == 'mux' else f' or {len(self.value)} bits'}, "
                             f"got {len(self.aux)}")
        if (gate == "mux") != (alt is not None):
            raise ValueError("alt is the second input of gate 'mux' (and of no other gate)")
        self.alt = None if alt is None else Value.cast(alt)
        if self.alt is not None and len(self.alt) != len(self.value):
            raise ValueError(f"alt must have value's width {len(self.value)}, got {len(self.alt)}")
        self.gate = gate

    def __len__(self):
        return len(self.value)

    def bit_inputs(self, i):
        """The two inputs of bit ``i`` (constant 0 above the value's width); for ``"mux"`` the
        value's and alt's bits."""
        if i >= len(self.value):
            return Const(0, 1), Const(0, 1)
        if self.gate == "mux":
            return self.value[i], self.alt[i]
        return self.value[i], self.aux[0 if len(self.aux) == 1 else i]

    def as_value(self) -> Value:
        """The operand as a plain value (for the generic path)."""
        v, a = self.value, self.aux
        if self.gate == "pass":
            return v
        if self.gate == "not":
            return ~v
        if self.gate == "mux":
            return Mux(a, self.alt, v)
        wide = a if len(a) == len(v) else a.replicate(len(v))
        return {"xor": v ^ wide, "and": v & wide, "andnot": v & ~wide}[self.gate]


def _init(f) -> int:
    """The LUT4 INIT of ``f(A, B, C, D)`` (entry index ``8D + 4C + 2B + A``)."""
    return sum(f(i & 1, (i >> 1) & 1, (i >> 2) & 1, (i >> 3) & 1) << i for i in range(16))


def fused_add(m, platform, u: Term, v: Term, *, name: str, carry_in: int = 0) -> Value:
    """``u + v + carry_in`` (unsigned, ``max(len(u), len(v)) + 1`` bits; ``carry_in`` 0 or 1),
    combinational; a ``"not"`` ``u`` is the complement of ``u`` zero-extended to
    ``max(len(u), len(v))`` bits, so ``Term(n, gate="not")`` with ``carry_in=1`` gives ``v - n``
    modulo ``2**max(len(u), len(v))`` in the low bits.

    On an ECP5 platform (``platform.family == "ecp5"``) one ``CCU2C`` half per bit, the
    operands' gates in the carry cells' LUTs (``v``'s gate must be 0 for inputs (0, 0): any gate
    but ``"not"``); elsewhere ``u + v`` of the gated values."""
    n = max(len(u), len(v))
    if carry_in not in (0, 1):
        raise ValueError(f"carry_in must be 0 or 1, got {carry_in!r}")
    if v.gate == "not":
        raise ValueError("gate 'not' is 1 for inputs (0, 0): only the first operand may have it")
    if getattr(platform, "family", None) != "ecp5":
        uv = u.as_value().as_unsigned()
        if u.gate == "not":
            uv = (~Cat(u.value, Const(0, n - len(u)))).as_unsigned() if len(u) < n else uv
        return (uv + v.as_value().as_unsigned() + carry_in)[:n + 1]
    if v.gate == "mux":
        # u's bit on A; v's select on B, its two inputs on C and D (0 where both are 0)
        if u.gate not in ("pass", "not"):
            raise ValueError("a 'mux' operand needs a 'pass' or 'not' first operand (its select takes input B)")
        fu = _GATES[u.gate]
        init_bits = _init(lambda a, b, c, d: fu(a, 0) ^ (d if b else c))
    else:
        fu, fv = _GATES[u.gate], _GATES[v.gate]
        init_bits = _init(lambda a, b, c, d: fu(a, b) ^ fv(c, d))
    bits = []
    cin = Const(carry_in, 1)
    # one half per sum bit; the half above the operands passes the carry out as the top sum bit
    for k in range((n + 2) // 2):
        ports = {"i_CIN": cin}
        for h in range(2):
            i = 2 * k + h
            if i < n:
                # (above u's width its inputs are 0: a "not" u is 1 there, as the zero-extended complement)
                (a, b), (c, d) = u.bit_inputs(i), v.bit_inputs(i)
                if v.gate == "mux":
                    b = v.aux
                init = init_bits
            else:
                # propagate 0 and no generate: the sum bit is the carry in
                a = b = c = d = Const(0, 1)
                init = 0
            ports.update({f"i_A{h}": a, f"i_B{h}": b, f"i_C{h}": c, f"i_D{h}": d,
                          f"p_INIT{h}": Const(init, 16), f"p_INJECT1_{h}": "NO"})
        s0, s1 = Signal(name=f"{name}_s{2 * k}"), Signal(name=f"{name}_s{2 * k + 1}")
        cout = Signal(name=f"{name}_co{k}")
        ports.update({"o_S0": s0, "o_S1": s1, "o_COUT": cout})
        m.submodules[f"{name}_cc{k}"] = Instance("CCU2C", **ports)
        bits += [s0, s1]
        cin = cout
    return Cat(*bits[:n + 1])
