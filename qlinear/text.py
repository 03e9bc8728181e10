"""Evaluation text that is on every machine: CPython's own documentation prose."""
from __future__ import annotations

from pathlib import Path


def pydoc_text() -> str:
    """All of ``pydoc_data.topics`` (the text behind ``help('topic')``), topics in sorted order, blank-line separated."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_text(source: str = "pydoc") -> str:
    """``pydoc`` for the built-in text, else the path of a UTF-8 text file.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    if source == "pydoc":
        return pydoc_text()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist (use 'pydoc' for the built-in text)")
    return path.read_text(encoding="utf-8")
