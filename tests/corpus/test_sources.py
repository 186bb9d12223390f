"""Plain-text and WikiExtractor sources, compressed or not."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from ulmfit_multi.corpus.sources import iter_text_documents, iter_wikiextractor_documents, list_files
from ulmfit_multi.errors import DataError

WX = """<doc id="12" url="https://ml.wikipedia.org/wiki?curid=12" title="കേരളം">
കേരളം

കേരളം ഇന്ത്യയിലെ ഒരു സംസ്ഥാനമാണ്.
</doc>
<doc id="15" url="https://ml.wikipedia.org/wiki?curid=15" title="A &amp; B">
A &amp; B
Second doc text.
</doc>
"""


def test_text_folder_sorted_recursive_and_compressed(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt.gz").write_bytes(gzip.compress("गझ एक\n".encode()))
    (tmp_path / "a.txt.bz2").write_bytes(bz2.compress("पहिला\nदुसरी ओळ\n\n\nनवा दस्तऐवज\n".encode()))
    (tmp_path / "c.xz").write_bytes(lzma.compress(b"xz text"))
    (tmp_path / ".hidden").write_text("skip me")
    docs = list(iter_text_documents(tmp_path, "src"))
    assert [(d.id, d.text) for d in docs] == [
        ("a.txt.bz2:1", "पहिला\nदुसरी ओळ"), ("a.txt.bz2:5", "नवा दस्तऐवज"),
        ("b/z.txt.gz:1", "गझ एक"), ("c.xz:1", "xz text")]
    assert all(d.source == "src" for d in docs)
    assert list_files(tmp_path / "a.txt.bz2") == [tmp_path / "a.txt.bz2"]


def test_text_invalid_utf8_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ठीक\nठीक\n".encode() + b"\xe0\xa4 broken\n")
    with pytest.raises(DataError, match=r"bad\.txt: invalid UTF-8 at line 3"):
        list(iter_text_documents(bad))


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(iter_text_documents(tmp_path / "nope"))


def test_wikiextractor_blocks(tmp_path):
    (tmp_path / "AA").mkdir()
    (tmp_path / "AA" / "wiki_00").write_text(WX, encoding="utf-8")
    docs = list(iter_wikiextractor_documents(tmp_path, "mlwiki"))
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("12", "കേരളം", "കേരളം ഇന്ത്യയിലെ ഒരു സംസ്ഥാനമാണ്."),
        ("15", "A & B", "A &amp; B\nSecond doc text.")]


def test_wikiextractor_folder_skips_files_beside_the_chunks(tmp_path):
    (tmp_path / "AA").mkdir()
    (tmp_path / "AA" / "wiki_00").write_text(WX, encoding="utf-8")
    (tmp_path / "README.md").write_text("This is text extracted with WikiExtractor.\n", encoding="utf-8")
    assert [d.id for d in iter_wikiextractor_documents(tmp_path)] == ["12", "15"]
    (tmp_path / "AA" / "wiki_01").write_text("not a doc block\n", encoding="utf-8")  # a corrupt chunk still fails
    with pytest.raises(DataError, match=r"wiki_01: line 1: text outside"):
        list(iter_wikiextractor_documents(tmp_path))


def test_wikiextractor_errors(tmp_path):
    f = tmp_path / "wiki_01"
    f.write_text('<doc id="1" url="u" title="t">\ntext\n')
    with pytest.raises(DataError, match=r"wiki_01: line 1: <doc> block never closed"):
        list(iter_wikiextractor_documents(f))
    f.write_text("just text\n")
    with pytest.raises(DataError, match=r"wiki_01: line 1: text outside"):
        list(iter_wikiextractor_documents(f))


def _data_root() -> Path:
    import os
    env = os.environ.get("ULMFIT_MULTI_MIRROR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


REAL_WX = _data_root() / "ml/text/smc/text/ml-wiki/AA/wiki_00"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_WX.is_file(), reason=f"{REAL_WX} absent")
def test_real_wikiextractor_chunk():
    docs = list(iter_wikiextractor_documents(REAL_WX))
    assert len(docs) > 10 and all(d.id and d.title for d in docs)
    assert not any("<doc" in d.text for d in docs)
