"""Jane Austen's six novels as evaluation text, from Debian's ``r-cran-janeaustenr`` package.

The package (MIT; the texts are Project Gutenberg's, public domain) installs its data as an R
lazy-load database: ``data/Rdata.rdx``, a gzip-compressed R serialization of the index
``list(variables = list(<name> = c(offset, length), ...), references, compressed)``, and
``data/Rdata.rdb``, where each ``(offset, length)`` slice holds one object: a 4-byte big-endian
length of the serialized bytes, then those bytes, zlib-compressed (``compressed = TRUE``). Each
novel is a character vector of its lines. The R serialization itself is parsed by the ``rdata``
package (PyPI); this module only finds the slices. Format reference: R Internals, "Serialization
formats" and "Lazy loading".
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

DEBIAN_DATA = Path("/usr/lib/R/site-library/janeaustenr/data/Rdata")  # .rdx / .rdb beside each other
NOVELS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")  # published order
ZLIB_COMPRESSED = 1  # the index's ``compressed`` flag for zlib; R also writes 2 (bzip2) and 3 (xz)


def _parse_r(serialized: bytes):
    """An R object (XDR serialization) as Python values: ``rdata``'s parser and default conversion."""
    try:
        import rdata
    except ImportError as err:
        raise ImportError("reading janeaustenr's data needs the 'rdata' package: pip install rdata") from err
    # a lazy-load entry is a bare serialization, as in an .rds file (no RDX header)
    return rdata.conversion.convert(rdata.parser.parse_data(serialized, extension=".rds"))


def austen_novels(names: tuple[str, ...] = NOVELS, data: Path | str | None = None) -> dict[str, str]:
    """``{name: text}`` of the named novels (``janeaustenr`` names, e.g. ``prideprejudice``), each its
    lines joined by newlines (R's NA lines as empty lines), read from the lazy-load database whose
    ``.rdx`` / ``.rdb`` files share the stem ``data`` (default :data:`DEBIAN_DATA`).

    Raises:
        FileNotFoundError: the database is missing (names the path and the Debian package).
        ValueError: a name the database does not hold (lists those it holds), or a compression
            other than zlib.
        ImportError: ``rdata`` is not installed.
    """
    stem = Path(data) if data is not None else DEBIAN_DATA
    index_path, db_path = stem.with_suffix(".rdx"), stem.with_suffix(".rdb")
    for path in (index_path, db_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: Jane Austen's novels come from Debian's "
                                    f"r-cran-janeaustenr package (apt install r-cran-janeaustenr)")
    index = _parse_r(gzip.decompress(index_path.read_bytes()))
    compression = int(index["compressed"][0])
    if compression != ZLIB_COMPRESSED:
        raise ValueError(f"{index_path}: compression type {compression} is not zlib (1); not supported")
    slices = {str(name): (int(where[0]), int(where[1])) for name, where in index["variables"].items()}
    unknown = [name for name in names if name not in slices]
    if unknown:
        raise ValueError(f"{index_path} holds no novel {unknown}; it holds {sorted(slices)}")
    db = db_path.read_bytes()
    novels = {}
    for name in names:
        offset, length = slices[name]
        lines = _parse_r(zlib.decompress(db[offset + 4:offset + length]))
        novels[name] = "\n".join("" if line is None else str(line) for line in lines)
    return novels


def austen_text(names: tuple[str, ...] = NOVELS, data: Path | str | None = None) -> str:
    """The named novels (:func:`austen_novels`) in the order given, separated by blank lines."""
    return "\n\n".join(austen_novels(names, data).values())
