"""Evaluation texts: the built-in pydoc prose, Jane Austen's novels from janeaustenr's R lazy-load
database (a synthetic database written here; the real one where Debian's package is installed),
and text files."""
from __future__ import annotations

import gzip
import importlib.util
import struct
import zlib

import pytest

from qlinear import austen
from qlinear.text import load_text

from .r_serialize import serialize

needs_rdata = pytest.mark.skipif(importlib.util.find_spec("rdata") is None, reason="rdata is not installed")


def write_lazyload_db(stem, objects: dict, compressed: int = 1) -> None:
    """``stem.rdx`` / ``stem.rdb`` as R's ``makeLazyLoadDB`` lays them out: each object serialized,
    its length as 4 big-endian bytes, then the zlib stream; the index gzip-compressed."""
    db, variables = b"", {}
    for name, value in objects.items():
        raw = serialize(value)
        entry = struct.pack(">I", len(raw)) + zlib.compress(raw)
        variables[name] = (len(db), len(entry))
        db += entry
    stem.with_suffix(".rdb").write_bytes(db)
    flag = (True,) if compressed == 1 else (compressed,)  # R writes TRUE for zlib, an integer 2 or 3 otherwise
    index = {"variables": variables, "references": {}, "compressed": flag}
    stem.with_suffix(".rdx").write_bytes(gzip.compress(serialize(index)))


@pytest.fixture
def library(tmp_path, monkeypatch):
    stem = tmp_path / "Rdata"
    write_lazyload_db(stem, {
        "emma": ["EMMA", "", "By Jane Austen", None, "Emma Woodhouse, handsome, clever, and rich,"],
        "persuasion": ["Persuasion", "Sir Walter Elliot, of Kellynch Hall \u2014 a vain man"],
    })
    monkeypatch.setattr(austen, "DEBIAN_DATA", stem)
    return stem


@needs_rdata
def test_novels_are_their_lines_joined_with_na_as_an_empty_line(library):
    novels = austen.austen_novels(("persuasion", "emma"))
    assert list(novels) == ["persuasion", "emma"]
    assert novels["emma"] == "EMMA\n\nBy Jane Austen\n\nEmma Woodhouse, handsome, clever, and rich,"
    assert novels["persuasion"] == "Persuasion\nSir Walter Elliot, of Kellynch Hall \u2014 a vain man"


@needs_rdata
def test_load_text_austen_names_novels_in_the_order_given(library):
    emma = "EMMA\n\nBy Jane Austen\n\nEmma Woodhouse, handsome, clever, and rich,"
    persuasion = "Persuasion\nSir Walter Elliot, of Kellynch Hall \u2014 a vain man"
    assert load_text("austen:persuasion, emma") == persuasion + "\n\n" + emma
    assert load_text("austen:emma") == emma


@needs_rdata
def test_load_text_austen_alone_asks_for_all_six_novels(library):
    with pytest.raises(ValueError, match=r"holds no novel \['sensesensibility', 'prideprejudice', 'mansfieldpark', "
                                         r"'northangerabbey'\]; it holds \['emma', 'persuasion'\]"):
        load_text("austen")


def test_missing_database_names_the_path_and_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(austen, "DEBIAN_DATA", tmp_path / "nowhere" / "Rdata")
    with pytest.raises(FileNotFoundError, match=r"nowhere/Rdata.rdx does not exist.*r-cran-janeaustenr"):
        load_text("austen:emma")


@needs_rdata
def test_a_database_compressed_otherwise_than_zlib_is_refused(tmp_path):
    stem = tmp_path / "Rdata"
    write_lazyload_db(stem, {"emma": ["EMMA"]}, compressed=3)
    with pytest.raises(ValueError, match="compression type 3 is not zlib"):
        austen.austen_novels(("emma",), stem)


def test_text_files_and_pydoc(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("caf\u00e9\n", encoding="utf-8")
    assert load_text(str(path)) == "caf\u00e9\n"
    assert "The \"if\" statement" in load_text("pydoc")
    with pytest.raises(FileNotFoundError, match="'austen' for Jane Austen's novels"):
        load_text(str(tmp_path / "missing.txt"))


@needs_rdata
@pytest.mark.skipif(not austen.DEBIAN_DATA.with_suffix(".rdx").is_file(), reason="r-cran-janeaustenr not installed")
def test_the_debian_package_holds_the_six_novels_and_the_fixture_writer_matches_r():
    novels = austen.austen_novels()
    assert [text.splitlines()[0] for text in novels.values()] == [
        "SENSE AND SENSIBILITY", "PRIDE AND PREJUDICE", "MANSFIELD PARK", "EMMA", "NORTHANGER ABBEY", "Persuasion"]
    real = gzip.decompress(austen.DEBIAN_DATA.with_suffix(".rdx").read_bytes())
    index = austen._parse_r(real)
    variables = {str(name): tuple(int(v) for v in where) for name, where in index["variables"].items()}
    assert serialize({"variables": variables, "references": {}, "compressed": (True,)}) == real
