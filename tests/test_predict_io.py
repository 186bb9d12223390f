"""Batch prediction I/O: texts from txt/csv/tsv/jsonl files or stdin, predictions to CSV/TSV/JSONL, streamed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.errors import DataError
from ulmfit_multi.predict_io import Item, PredictionWriter, count_lines, detect_format, predict_stream, read_texts


def test_each_input_format(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n\nthree\n", encoding="utf-8")
    assert [(i.id, i.text) for i in read_texts(tmp_path / "a.txt")] == [("1", "one"), ("2", ""), ("3", "three")]
    with open(tmp_path / "a.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "review", "stars"], ["r1", "good, very\ngood", "5"], ["r2", "bad", "1"]])
    items = list(read_texts(tmp_path / "a.csv", column="review", id_key="id", label_key="stars"))
    assert [(i.id, i.text, i.label) for i in items] == [("r1", "good, very\ngood", "5"), ("r2", "bad", "1")]
    (tmp_path / "a.tsv").write_text("text\tx\nhello\t1\n", encoding="utf-8")
    assert [i.text for i in read_texts(tmp_path / "a.tsv")] == ["hello"]  # column "text" by default
    (tmp_path / "a.jsonl").write_text('{"body": "x", "k": 7}\n\n{"body": "y", "k": 8}\n', encoding="utf-8")
    assert [(i.id, i.text) for i in read_texts(tmp_path / "a.jsonl", field="body", id_key="k")] == [("7", "x"),
                                                                                                 ("8", "y")]
    assert [i.text for i in read_texts("-", stdin=io.StringIO("a\nb\n"))] == ["a", "b"]
    assert count_lines(tmp_path / "a.txt") == 3 and count_lines(tmp_path / "a.jsonl") == 2
    assert count_lines(tmp_path / "a.csv") is None


def test_input_errors_name_the_file_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        list(read_texts(tmp_path / "missing.csv", column="text"))
    (tmp_path / "a.csv").write_text("review,stars\nx,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Give --column \(columns: review, stars\)"):
        list(read_texts(tmp_path / "a.csv"))
    with pytest.raises(DataError, match="no column 'body'"):
        list(read_texts(tmp_path / "a.csv", column="body"))
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1: no field 'text'"):
        list(read_texts(tmp_path / "a.jsonl"))
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(tmp_path / "a.xlsx")
    assert detect_format("-") == "txt" and detect_format("x.ndjson") == "jsonl"


class FakePredictor:
    """Scores a text by its length; records the batches it was asked for."""

    classes = ["short", "long"]

    def __init__(self) -> None:
        self.calls: list[int] = []

    def flags(self, texts: list[str]) -> list[str]:
        return ["empty text" if not t.strip() else "" for t in texts]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append(len(texts))
        p = np.array([[1.0, 0.0] if len(t) < 5 else [0.2, 0.8] for t in texts])
        return p


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_predictions_keep_the_input_order_in_chunks(tmp_path: Path, suffix: str) -> None:
    items = [Item(str(i), "x" * (i % 9)) for i in range(25)]
    out = tmp_path / f"p{suffix}"
    predictor = FakePredictor()
    stats = predict_stream(predictor, items, PredictionWriter(out, predictor.classes), chunk=10, progress=False)
    assert predictor.calls == [10, 10, 5]
    assert stats["documents"] == 25 and stats["flagged"] == {"empty text": 3} and stats["documents_per_second"] > 0
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["id"] for r in rows] == [str(i) for i in range(25)]
        assert rows[7] == {"id": "7", "label": "long", "probability": 0.8, "probs": {"short": 0.2, "long": 0.8},
                           "flag": ""}
        assert rows[9]["flag"] == "empty text"
    else:
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","))
        assert rows[0] == ["id", "label", "probability", "prob_short", "prob_long", "flag"]
        assert [r[0] for r in rows[1:]] == [str(i) for i in range(25)]
        assert rows[1 + 7][:3] == ["7", "long", "0.800000"] and rows[1 + 9][-1] == "empty text"


def test_a_failed_run_leaves_no_output_file(tmp_path: Path) -> None:
    class Broken(FakePredictor):
        def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
            raise RuntimeError("boom")

    out = tmp_path / "p.csv"
    with pytest.raises(RuntimeError):
        predict_stream(Broken(), [Item("1", "x")], PredictionWriter(out, ["a", "b"]), progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(DataError, match="written as .csv, .tsv or .jsonl"):
        PredictionWriter(tmp_path / "p.txt", ["a"])
