"""Run notes: what was skipped, dropped, truncated or unavailable, derived from the stages' records."""

from __future__ import annotations

from pathlib import Path

from ulmfit_multi.atomic import write_json
from ulmfit_multi.notes import corpus_notes, run_notes, task_notes, unavailable_notes

FETCHED = {
    "kn/wiki/knwiki.xml.bz2": {"path": None, "role": "corpus:knwiki", "url": "https://x"},
    "kn/fire2021/test.tsv": {"path": None, "role": "fire2021-kn:test"},
    "kn/fire2021/dev.tsv": {"path": None, "role": "fire2021-kn:valid"},
    "kn/fire2021/train.tsv": {"path": "/m/kn/fire2021/train.tsv", "role": "fire2021-kn:train"},
}


def test_unavailable_files_corpus_sources_and_splits() -> None:
    assert unavailable_notes(FETCHED, set()) == [
        "fire2021-kn: valid split not available (kn/fire2021/dev.tsv)",
        "fire2021-kn: test split not available (kn/fire2021/test.tsv)",
        "corpus source knwiki not available (kn/wiki/knwiki.xml.bz2): the LM corpus was made without it",
    ]
    # a task whose cells read n/a has its own footnote
    assert unavailable_notes(FETCHED, {"fire2021-kn"}) == [
        "corpus source knwiki not available (kn/wiki/knwiki.xml.bz2): the LM corpus was made without it"]


def test_corpus_truncation_caps_and_test_overlap() -> None:
    summary = {
        "mr": {"config": {"max_docs_per_source": 400},
               "sources": {"mrwiki": {"truncated": True, "documents_read": 120},
                           "wikisource": {"truncated": False, "documents_read": 400}}},
        "synthetic": {"lines": 10},
        "task_text_docs": 100,
        "task_text_dropped_test_overlap": 7,
    }
    assert corpus_notes(summary) == [
        "corpus source mrwiki: the dump is truncated; the pages before the cut were used (corpus.keep_truncated = true)",
        "corpus source wikisource: only its first 400 documents were read (corpus.max_docs_per_source = 400)",
        "LM corpus: 7 task texts equal to a test text were left out",
    ]
    assert corpus_notes({"mr": {"config": {"max_docs_per_source": 0}, "sources": {"w": {"documents_read": 5}}}}) == []


def test_skipped_rows_and_samples_from_task_json() -> None:
    meta = {"mahasent-gt": {"splits": {
        "train": {"n": 1500, "read": 11998, "skipped": 7, "skipped_lines": [7476, 7849, 8000, 9000, 9100, 9200, 9300]},
        "test": {"n": 1500, "read": 1500, "skipped": 0},
        "valid": {"n": 10, "skipped": 0}}}}  # a task.json from before "read" was recorded
    assert task_notes(meta) == [
        'mahasent-gt train: 7 bad rows skipped (on_bad_row = "skip"), lines 7476, 7849, 8000, 9000, 9100, ...',
        "mahasent-gt train: a sample of 1500 of its 11998 rows (data.max_task_rows)",
    ]


def test_run_notes_reads_stage_folders_and_tolerates_missing_ones(tmp_path: Path) -> None:
    fetch, encode = tmp_path / "fetch", tmp_path / "encode"
    write_json(fetch / "fetched.json", FETCHED)
    write_json(encode / "tasks" / "fire2021-kn" / "task.json", {"splits": {"train": {"n": 5, "skipped": 1,
                                                                                      "skipped_lines": [3]}}})
    notes = run_notes(fetch_dir=fetch, corpus_dir=tmp_path / "no-corpus", encode_dir=encode)
    assert notes[-1] == 'fire2021-kn train: 1 bad row skipped (on_bad_row = "skip"), line 3'
    assert run_notes(fetch_dir=None, corpus_dir=None, encode_dir=None) == []
