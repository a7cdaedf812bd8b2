"""Plain layouts of the stream payloads: :class:`Bits` and :class:`Enum` fields in a :class:`Struct`,
:class:`Array` or :class:`Union`, with field offsets and a packer (no Amaranth)."""

from __future__ import annotations

from dataclasses import dataclass


class FieldRangeError(ValueError):
    """A value given to :meth:`Struct.pack` does not fit its field."""


@dataclass(frozen=True)
class Bits:
    """An integer field of ``width`` bits, two's complement when ``signed``."""

    width: int
    signed: bool = False

    @property
    def size(self) -> int:
        return self.width

    @property
    def range(self) -> tuple:
        """The smallest and largest value the field holds."""
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1


@dataclass(frozen=True)
class Enum:
    """A field holding a member of ``cls`` (an ``enum.IntEnum`` of this module) in ``width`` bits."""

    cls: type
    width: int

    @property
    def size(self) -> int:
        return self.width

    @property
    def signed(self) -> bool:
        return False

    @property
    def range(self) -> tuple:
        return 0, (1 << self.width) - 1


@dataclass(frozen=True)
class Slot:
    """Where a field sits in its layout: its ``shape`` and bit ``offset``."""

    shape: object
    offset: int

    @property
    def width(self) -> int:
        return self.shape.size


def _as_shape(shape):
    """An int ``n`` stands for ``Bits(n)`` (as in Amaranth's layouts)."""
    if isinstance(shape, bool) or not isinstance(shape, (int, Bits, Enum, Struct, Array, Union)):
        raise TypeError(f"a layout field must be an int, Bits, Enum, Struct, Array or Union, got {shape!r}")
    return Bits(shape) if isinstance(shape, int) else shape


class _Layout:
    """Common part of the aggregate layouts: named slots, a size, nested offsets."""

    _slots: tuple  # ((name, Slot), ...)

    def __iter__(self):
        return iter(self._slots)

    def __getitem__(self, key) -> Slot:
        for name, slot in self._slots:
            if name == key:
                return slot
        raise KeyError(f"{type(self).__name__} has no field {key!r}")

    def __eq__(self, other):
        return type(self) is type(other) and self._slots == other._slots

    def __hash__(self):
        return hash((type(self), self._slots))

    def offset(self, *path) -> int:
        """Bit offset of a nested field (``path`` of names and indices)."""
        off, lay = 0, self
        for key in path:
            slot = lay[key]
            off += slot.offset
            lay = slot.shape
        return off


class Struct(_Layout):
    """Fields one after the other, the first at bit 0 (as ``amaranth.lib.data.StructLayout``)."""

    def __init__(self, fields: dict):
        slots, off = [], 0
        for name, shape in fields.items():
            shape = _as_shape(shape)
            slots.append((name, Slot(shape, off)))
            off += shape.size
        self._slots, self.size = tuple(slots), off

    def __repr__(self):
        return f"Struct({dict((n, s.shape) for n, s in self._slots)!r})"

    def pack(self, values: dict, *, where: str = "struct", what: str = "field") -> int:
        """``values`` (nested dicts for nested structs) -> the int of this layout. Every field must
        be given and fit: a missing one raises KeyError, one out of range :class:`FieldRangeError`,
        both naming ``where`` and the field (``what`` names what a field is, e.g. "descriptor
        field")."""
        out = 0
        for name, slot in self._slots:
            if name not in values:
                raise KeyError(f"{where}: {what} {name!r} missing")
            v, shape = values[name], slot.shape
            if isinstance(shape, Struct):
                out |= shape.pack(v, where=where, what=what) << slot.offset
                continue
            if isinstance(shape, Array):
                out |= shape.pack(v, where=where, what=f"{what} '{name}' element") << slot.offset
                continue
            if not isinstance(shape, (Bits, Enum)):
                raise TypeError(f"{where}: {what} {name!r}: only struct, integer and enum fields can be packed")
            v = int(v)
            lo, hi = shape.range
            if not lo <= v <= hi:
                raise FieldRangeError(
                    f"{where}: {what} '{name}' = {v} does not fit the build's {shape.width}-bit "
                    f"{'signed' if shape.signed else 'unsigned'} field [{lo}, {hi}]")
            out |= (v & ((1 << shape.width) - 1)) << slot.offset
        return out


class Array(_Layout):
    """``length`` elements of ``elem``, element ``i`` at bit ``i * elem.size``."""

    def __init__(self, elem, length: int):
        self.elem, self.length = _as_shape(elem), int(length)
        self._slots = tuple((i, Slot(self.elem, i * self.elem.size)) for i in range(self.length))
        self.size = self.length * self.elem.size

    def __repr__(self):
        return f"Array({self.elem!r}, {self.length})"

    def pack(self, values, *, where: str = "array", what: str = "element") -> int:
        """A sequence of ``length`` values (dicts for struct elements) -> the int of this layout;
        errors as :meth:`Struct.pack`."""
        values = list(values)
        if len(values) != self.length:
            raise ValueError(f"{where}: {what}s: expected {self.length} values, got {len(values)}")
        out = 0
        for i, v in enumerate(values):
            if isinstance(self.elem, (Struct, Array)):
                out |= self.elem.pack(v, where=where, what=what) << (i * self.elem.size)
                continue
            v = int(v)
            lo, hi = self.elem.range
            if not lo <= v <= hi:
                raise FieldRangeError(f"{where}: {what} {i} = {v} does not fit the build's {self.elem.width}-bit "
                                      f"{'signed' if self.elem.signed else 'unsigned'} field [{lo}, {hi}]")
            out |= (v & ((1 << self.elem.width) - 1)) << (i * self.elem.size)
        return out


class Union(_Layout):
    """Members overlapping at bit 0; the size is the largest member's."""

    def __init__(self, members: dict):
        self._slots = tuple((name, Slot(_as_shape(shape), 0)) for name, shape in members.items())
        self.size = max((s.shape.size for _, s in self._slots), default=0)

    def __repr__(self):
        return f"Union({dict((n, s.shape) for n, s in self._slots)!r})"
