"""Dump reader and wikitext stripper, on small dumps in the real export format built in code."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from ulmfit_multi.corpus.wiki import (DumpInfo, iter_articles, iter_pages, markup_residue,
                                      wikitext_to_text)
from ulmfit_multi.errors import DataError

HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="0.10" xml:lang="mr">
  <siteinfo>
    <sitename>विकिपीडिया</sitename>
    <dbname>mrwiki</dbname>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">मिडिया</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">चित्र</namespace>
      <namespace key="10" case="first-letter">साचा</namespace>
      <namespace key="14" case="first-letter">वर्ग</namespace>
    </namespaces>
  </siteinfo>
"""
FOOTER = "</mediawiki>\n"
NS = frozenset({"चित्र", "वर्ग", "मिडिया", "file", "image", "category", "media"})

ARTICLE = """{{माहितीचौकट शहर|नाव=पुणे|लोकसंख्या={{formatnum:3124458}}|नकाशा={{{map|}}}}}
'''पुणे''' हे [[महाराष्ट्र]]ातील एक [[शहर|मोठे शहर]] आहे.<ref name="a">{{स्रोत|दुवा=x}}</ref> ते ''मुळा'' नदीकाठी आहे.<ref name=b/>
<!-- लपलेली टीप -->
== इतिहास ==
[[चित्र:Pune.jpg|इवलेसे|[[शनिवारवाडा]] चे चित्र]]
पुण्याचा इतिहास [http://example.org जुना] आहे.
{| class="wikitable"
|-
| अ || ब
|}
* पहिली बाब [[पुणे विद्यापीठ]]
# दुसरी बाब
[[वर्ग:महाराष्ट्रातील शहरे]]
[[en:Pune]]"""


def page(title: str, text: str, *, ns: int = 0, page_id: int = 1, redirect: str | None = None) -> str:
    red = f'    <redirect title="{escape(redirect)}" />\n' if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n{red}"
            f"    <revision>\n      <id>{page_id + 1000}</id>\n      <model>wikitext</model>\n"
            f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>\n'
            f"    </revision>\n  </page>\n")


def sample_pages() -> list[str]:
    return [
        page("पुणे", ARTICLE, page_id=1),
        page("पुना", "#पुनर्निर्देशन [[पुणे]]", page_id=2, redirect="पुणे"),
        page("पुणे (निःसंदिग्धीकरण)", "{{निःसंदिग्धीकरण}}\n'''पुणे''' म्हणजे:\n* [[पुणे]]", page_id=3),
        page("वर्ग:शहरे", "शहरांचा वर्ग.", ns=14, page_id=4),
        page("मुंबई", "मुंबई ही [[महाराष्ट्र]]ाची राजधानी आहे.\n\nती एक बेट शहर आहे.", page_id=5),
        page("Foo", "{{Disambig}}\nFoo may be:", page_id=6),
    ]


def write_dump(path: Path, pages: list[str], compress: str = "bz2", multistream: bool = False) -> Path:
    parts = [HEADER, *pages, FOOTER]
    data = [p.encode("utf-8") for p in parts]
    if compress == "bz2":
        blob = b"".join(bz2.compress(d) for d in data) if multistream else bz2.compress(b"".join(data))
    elif compress == "gz":
        blob = gzip.compress(b"".join(data))
    elif compress == "xz":
        blob = lzma.compress(b"".join(data))
    else:
        blob = b"".join(data)
    path.write_bytes(blob)
    return path


def test_wikitext_to_text_strips_markup_and_keeps_text():
    text = wikitext_to_text(ARTICLE, NS)
    assert text.split("\n") == [
        "पुणे हे महाराष्ट्रातील एक मोठे शहर आहे. ते मुळा नदीकाठी आहे.",
        "पुण्याचा इतिहास जुना आहे.",
        "पहिली बाब पुणे विद्यापीठ",
        "दुसरी बाब",
    ]
    assert markup_residue(text.split("\n")) == 0.0


@pytest.mark.parametrize("wikitext, expected", [
    ("a {{x|{{y|{{z}}}}}} b", "a b"),
    ("[[File:X.png|thumb|caption [[link]]]] after", "after"),
    ("[[Category:Foo]]text", "text"),
    ("[[:वर्ग:शहरे|शहरांची यादी]] पाहा", "शहरांची यादी पाहा"),
    ("<ref>r {{cite}}</ref>x<ref name=\"n\" />y", "xy"),
    ("a<br/>b &amp; c&nbsp;d", "a b & c d"),
    ("=== शीर्षक ===\nमजकूर", "मजकूर"),
    ("x <math>a^2</math> y <gallery>\nचित्र:A.jpg|c\n</gallery>", "x y"),
    ("{|\n|a {{t}}\n{|\n|inner\n|}\n|}\nafter", "after"),
    ("[[de:Foo]][[d:Q1]] text __NOTOC__", "text"),
    ("''[[Big Bang|big]]'' '''bang'''", "big bang"),
])
def test_wikitext_cases(wikitext, expected):
    assert wikitext_to_text(wikitext, NS) == expected


def test_markup_residue_share():
    assert markup_residue(["ok", "a {{b", "c | d", "[[x", "<ref>"]) == 0.8
    assert markup_residue([]) == 0.0


@pytest.mark.parametrize("compress", ["bz2", "gz", "xz", "plain"])
def test_articles_filtered_and_counted(tmp_path, compress):
    dump = write_dump(tmp_path / f"d.xml.{compress}", sample_pages(), compress)
    stats: dict = {}
    info = DumpInfo()
    arts = list(iter_articles(dump, stats=stats, info=info))
    assert [(a.title, a.id) for a in arts] == [("पुणे", "1"), ("मुंबई", "5")]
    assert stats == {"pages": 6, "non_main_namespace": 1, "redirects": 1, "disambiguation": 2, "truncated": False}
    assert info.namespaces[14] == "वर्ग" and "चित्र" in info.drop_ns and "वर्ग" in info.drop_ns


def test_multistream_parallel_equals_sequential(tmp_path):
    pages = [page(f"लेख {i}", f"मजकूर क्रमांक {i} [[दुवा {i}]].", page_id=10 + i) for i in range(50)]
    dump = write_dump(tmp_path / "m.xml.bz2", pages, multistream=True)
    seq = [(p.id, p.text) for p in iter_pages(dump, workers=1)]
    par = [(p.id, p.text) for p in iter_pages(dump, workers=3)]
    assert seq == par and len(seq) == 50


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_bz2(tmp_path, workers):
    pages = [page(f"लेख {i}", f"मजकूर {i}", page_id=i + 1) for i in range(10)]
    full = write_dump(tmp_path / "full.xml.bz2", pages, multistream=True).read_bytes()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(full[: len(full) - 30])  # inside the closing stream
    with pytest.raises(DataError, match=r"cut\.xml\.bz2.*truncated.*compressed byte \d+.*'लेख 9'"):
        list(iter_pages(cut, workers=workers))
    stats: dict = {}
    kept = list(iter_pages(cut, keep_truncated=True, stats=stats, workers=workers))
    assert len(kept) == 10 and stats["truncated"] is True


def test_truncated_inside_page(tmp_path):
    cut = tmp_path / "cut.xml.bz2"
    pages = [page(f"लेख {i}", f"मजकूर {i}", page_id=i + 1) for i in range(3)]
    full = (HEADER + "".join(pages)).encode() + pages[0].encode()[:40]
    cut.write_bytes(bz2.compress(full))
    with pytest.raises(DataError, match="truncated XML"):
        list(iter_pages(cut))
    stats: dict = {}
    assert len(list(iter_pages(cut, keep_truncated=True, stats=stats))) == 3 and stats["truncated"]


def test_corrupt_bz2(tmp_path):
    bad = tmp_path / "bad.xml.bz2"
    blob = bytearray(bz2.compress((HEADER + "".join(sample_pages()) + FOOTER).encode()))
    blob[200:260] = b"\x00" * 60
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"bad\.xml\.bz2.*compressed byte"):
        list(iter_pages(bad))


def test_not_mediawiki(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><rss><channel><title>x</title></channel></rss>')
    with pytest.raises(DataError, match=r"other\.xml.*not a MediaWiki export"):
        list(iter_pages(other))
    html = tmp_path / "page.html"
    html.write_text("<html><body><p>unclosed<br></body></html>")
    with pytest.raises(DataError, match=r"page\.html"):
        list(iter_pages(html))


def test_invalid_utf8(tmp_path):
    data = (HEADER + sample_pages()[0]).encode() + page("वाईट", "x").encode().replace(b"x</text>", b"\xff\xfe</text>") + FOOTER.encode()
    bad = tmp_path / "bad.xml.bz2"
    bad.write_bytes(bz2.compress(data))
    with pytest.raises(DataError, match=r"bad\.xml\.bz2: invalid UTF-8 at decompressed byte \d+ .*'पुणे' \(id 1\)"):
        list(iter_pages(bad))


def test_empty_inputs(tmp_path):
    empty = tmp_path / "empty.xml.bz2"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.xml\.bz2: empty file"):
        list(iter_pages(empty))
    empty_bz = write_dump(tmp_path / "e2.xml.bz2", [])
    with pytest.raises(DataError, match=r"e2\.xml\.bz2: MediaWiki export contains no pages"):
        list(iter_pages(empty_bz))
    nothing = tmp_path / "e3.xml.bz2"
    nothing.write_bytes(bz2.compress(b""))
    with pytest.raises(DataError, match=r"e3\.xml\.bz2"):
        list(iter_pages(nothing))


def _data_root() -> Path:
    env = os.environ.get("ULMFIT_MULTI_MIRROR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


REAL_DUMP = _data_root() / "mr/wiki/mrwiki-20230501-pages-articles-multistream.SAMPLE-wellformed.xml.bz2"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DUMP.is_file(), reason=f"{REAL_DUMP} absent")
def test_real_marathi_sample():
    stats: dict = {}
    info = DumpInfo()
    texts = [wikitext_to_text(p.text, info.drop_ns) for p in iter_articles(REAL_DUMP, stats=stats, info=info)]
    assert stats["pages"] == 1820 and stats["pages"] - stats["non_main_namespace"] == 1086
    assert {"वर्ग", "चित्र"} <= info.drop_ns
    lines = [line for t in texts for line in t.split("\n") if line]
    assert len(texts) > 900 and len(lines) > 10_000
    assert markup_residue(lines) < 0.02
    assert not any("वर्ग:" in line or "चित्र:" in line for line in lines[:2000])
