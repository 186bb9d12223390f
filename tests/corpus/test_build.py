"""build_corpus end to end on small in-code sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ulmfit_multi.config import Source
from ulmfit_multi.corpus.build import build_corpus, corpus_files, iter_documents
from ulmfit_multi.errors import DataError

from .test_wiki import REAL_DUMP, page, sample_pages, write_dump

MR1 = "महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे. मुंबई ही महाराष्ट्राची राजधानी आहे."
MR2 = "पुणे हे महाराष्ट्रातील एक मोठे शहर आहे. येथे अनेक शिक्षण संस्था आहेत."
EN = "This sentence is clearly written in the English language."


def _sources(tmp_path: Path) -> list[tuple[Source, Path]]:
    wiki = write_dump(tmp_path / "mrwiki.xml.bz2", sample_pages() + [
        page("महाराष्ट्र", f"'''{MR1}'''\n\n{EN}\n\n{MR1}", page_id=7),
    ])
    text_dir = tmp_path / "text"
    text_dir.mkdir(exist_ok=True)
    (text_dir / "a.txt").write_text(f"{MR2}\n\n{MR1}\nलहान ओळ\n", encoding="utf-8")
    return [(Source(name="mrwiki", path="mr/mrwiki.xml.bz2", format="mediawiki-xml"), wiki),
            (Source(path="mr/text", format="text"), text_dir)]  # no name: the local folder's name


def _build(tmp_path: Path, out: str, **kw) -> dict:
    kw.setdefault("workers", 1)
    return build_corpus(_sources(tmp_path), tmp_path / out, lang="mr", normalizer_lang="mr",
                        progress=False, **kw)


def test_build_output_and_stats(tmp_path):
    stats = _build(tmp_path, "out")
    files = corpus_files(tmp_path / "out")
    assert [f.name for f in files] == ["corpus-00000.txt"]
    text = files[0].read_text(encoding="utf-8")
    docs = [d.split("\n") for d in text.rstrip("\n").split("\n\n")]
    assert docs[0][0] == "पुणे हे महाराष्ट्रातील एक मोठे शहर आहे."  # first article, wikitext stripped
    # the second sentence of MR1 was already in the मुंबई article: dedupe keeps only its first occurrence
    assert ["महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे."] in docs
    assert sum(line == "मुंबई ही महाराष्ट्राची राजधानी आहे." for doc in docs for line in doc) == 1
    assert EN not in text and "{{" not in text and "वर्ग" not in text
    assert stats == json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["documents"] == len(docs) and stats["sentences"] == sum(map(len, docs))
    d = stats["dropped"]
    assert (d["redirects"], d["disambiguation"], d["non_main_namespace"]) == (1, 2, 1)
    assert d["lid"] >= 1 and d["dedupe"] >= 3 and d["min_chars"] >= 1
    assert stats["sources"]["mrwiki"]["documents_read"] == 3 and stats["sources"]["text"]["documents_read"] == 2
    assert stats["truncated"] is False and stats["markup_residue"] == 0.0
    assert stats["characters"] == sum(len(s) for doc in docs for s in doc)


def test_deterministic_across_workers_and_shards(tmp_path):
    a = _build(tmp_path, "a", workers=1, shard_lines=3)
    b = _build(tmp_path, "b", workers=2, shard_lines=3)
    fa, fb = corpus_files(tmp_path / "a"), corpus_files(tmp_path / "b")
    assert len(fa) > 1 and [f.read_bytes() for f in fa] == [f.read_bytes() for f in fb]
    strip = lambda s: {k: v for k, v in s.items() if k not in ("seconds", "sources")}  # noqa: E731
    assert strip(a) == strip(b)
    for f in fa:  # no shard starts or ends with a document separator
        t = f.read_text(encoding="utf-8")
        assert not t.startswith("\n") and t.endswith("\n") and not t.endswith("\n\n")


def test_options(tmp_path):
    s = _build(tmp_path, "o", lid=False, dedupe=False, min_chars=1, max_docs_per_source=1)
    assert s["dropped"]["lid"] == 0 and s["dropped"]["dedupe"] == 0
    assert all(src["documents_read"] == 1 for src in s["sources"].values())


def test_truncated_source(tmp_path, caplog):
    pages = [page(f"लेख {i}", MR1.replace("मुंबई", f"मुंबई {i}"), page_id=i + 1) for i in range(5)]
    full = write_dump(tmp_path / "t.xml.bz2", pages, multistream=True)
    full.write_bytes(full.read_bytes()[:-30])
    spec = [(Source(name="cut", format="mediawiki-xml"), full)]
    with pytest.raises(DataError, match=r"truncated.*set corpus\.keep_truncated = true"):
        build_corpus(spec, tmp_path / "x", lang="mr", normalizer_lang="mr", progress=False, workers=1)
    with caplog.at_level("WARNING"):
        s = build_corpus(spec, tmp_path / "y", lang="mr", normalizer_lang="mr", progress=False, workers=1,
                         keep_truncated=True)
    assert s["truncated"] is True and s["sources"]["cut"]["documents_read"] == 5
    assert "cut: " in caplog.text and "is truncated; its 5 documents before the cut were kept" in caplog.text


def test_iter_documents_and_bad_format(tmp_path):
    docs = list(iter_documents(*_sources(tmp_path)[0]))
    assert [d.title for d in docs] == ["पुणे", "मुंबई", "महाराष्ट्र"]
    assert docs[1].text == "मुंबई ही महाराष्ट्राची राजधानी आहे.\nती एक बेट शहर आहे." and docs[1].source == "mrwiki"
    with pytest.raises(DataError, match="unknown source format 'csv'"):
        list(iter_documents(Source(format="csv"), tmp_path))


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DUMP.is_file(), reason=f"{REAL_DUMP} absent")
def test_real_marathi_build(tmp_path):
    s = build_corpus([(Source(name="mrwiki", format="mediawiki-xml"), REAL_DUMP)], tmp_path, lang="mr",
                     normalizer_lang="mr", progress=False, workers=1)
    assert s["sources"]["mrwiki"]["documents_read"] > 900 and s["documents"] > 500
    assert s["markup_residue"] < 0.01
