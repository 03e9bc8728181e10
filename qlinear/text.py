"""Evaluation text: CPython's own documentation prose (on every machine), Jane Austen's novels
(where Debian's ``r-cran-janeaustenr`` is installed), or any UTF-8 file."""
from __future__ import annotations

from pathlib import Path


def pydoc_text() -> str:
    """All of ``pydoc_data.topics`` (the text behind ``help('topic')``), topics in sorted order, blank-line separated."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_text(source: str = "pydoc") -> str:
    """``pydoc`` for the built-in text; ``austen`` for Jane Austen's six novels, ``austen:emma,persuasion``
    for some of them (:mod:`qlinear.austen`); else the path of a UTF-8 text file.

    Raises:
        FileNotFoundError: the file, or janeaustenr's data, does not exist.
        ValueError: an ``austen:`` name that is not one of :data:`qlinear.austen.NOVELS`.
    """
    if source == "pydoc":
        return pydoc_text()
    if source == "austen" or source.startswith("austen:"):
        from .austen import NOVELS, austen_text

        names = tuple(n.strip() for n in source.removeprefix("austen").removeprefix(":").split(",") if n.strip())
        return austen_text(names or NOVELS)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist (use 'pydoc' for the built-in text, "
                                f"'austen' for Jane Austen's novels)")
    return path.read_text(encoding="utf-8")
