"""Matching module names against user patterns: exact name, glob, or ``re:`` regex."""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


def matches(name: str, pattern: str) -> bool:
    """True if module ``name`` matches ``pattern``.

    * ``re:<regex>``: the regex must match the whole name (``re.fullmatch``).
    * a pattern containing ``*``, ``?`` or ``[``: shell glob over the whole name (``fnmatchcase``).
    * otherwise: the exact name, or a dotted suffix of it (``lm_head`` matches ``model.lm_head``).
    """
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.endswith("." + pattern)


def first_match(name: str, patterns: Iterable[str]) -> str | None:
    return next((p for p in patterns if matches(name, p)), None)
