"""A small writer of R's XDR serialization (format version 3), for test fixtures only: character,
integer and logical vectors and named lists, which is what an R lazy-load database of text holds.
Reference: R Internals, "Serialization formats" (item flags: type in bits 0-7, has-attributes bit 9,
has-tag bit 10, "levels" from bit 12; a CHARSXP's levels carry its encoding, ASCII 64, UTF-8 8)."""
from __future__ import annotations

import struct

CHARSXP, STRSXP, INTSXP, LGLSXP, VECSXP, LISTSXP, SYMSXP, NILVALUE, REFSXP = 9, 16, 13, 10, 19, 2, 1, 254, 255


def _int(value: int) -> bytes:
    return struct.pack(">i", value)


def _flags(kind: int, *, attributes: bool = False, tag: bool = False, levels: int = 0) -> bytes:
    return _int(kind | (attributes << 9) | (tag << 10) | (levels << 12))


def _charsxp(text: str | None) -> bytes:
    if text is None:  # NA_character_
        return _flags(CHARSXP) + _int(-1)
    data = text.encode("utf-8")
    return _flags(CHARSXP, levels=64 if text.isascii() else 8) + _int(len(data)) + data


def _symbol(name: str, symbols: list[str]) -> bytes:
    """A symbol: written out the first time, then a reference to its place in the stream's table."""
    if name in symbols:
        return _int(((symbols.index(name) + 1) << 8) | REFSXP)
    symbols.append(name)
    return _flags(SYMSXP) + _charsxp(name)


def _names(names: list[str], symbols: list[str]) -> bytes:
    """The attribute pairlist ``names = <names>``."""
    return _flags(LISTSXP, tag=True) + _symbol("names", symbols) + _item(names, symbols) + _int(NILVALUE)


def _item(value, symbols: list[str]) -> bytes:
    if isinstance(value, dict):
        out = _flags(VECSXP, attributes=True) + _int(len(value))
        return out + b"".join(_item(v, symbols) for v in value.values()) + _names(list(value), symbols)
    if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
        return _flags(STRSXP) + _int(len(value)) + b"".join(_charsxp(v) for v in value)
    if isinstance(value, tuple) and all(isinstance(v, bool) for v in value):
        return _flags(LGLSXP) + _int(len(value)) + b"".join(_int(int(v)) for v in value)
    if isinstance(value, tuple):
        return _flags(INTSXP) + _int(len(value)) + b"".join(_int(v) for v in value)
    raise TypeError(f"no R serialization here for {type(value).__name__}")


def serialize(value) -> bytes:
    """``value`` as R would ``serialize()`` it (XDR, version 3): a ``list`` of ``str``/``None`` is a
    character vector (``None`` is NA), a ``tuple`` of ``bool`` a logical vector, a ``tuple`` of
    ``int`` an integer vector, a ``dict`` a named list."""
    header = b"X\n" + _int(3) + _int(0x040201) + _int(0x030500) + _int(5) + b"UTF-8"
    return header + _item(value, [])
