"""The prediction benchmark's pieces that need no model: gold labels, the printed result."""

from __future__ import annotations

import numpy as np
import pytest

from ulmfit_multi.bench_predict import format_bench_predict, gold_indices
from ulmfit_multi.errors import DataError


def test_gold_labels_are_raw_values_or_class_names() -> None:
    classes = ["negative", "neutral", "positive"]
    mapping = {"-1": "negative", "0": "neutral", "1": "positive"}
    np.testing.assert_array_equal(gold_indices(["1", "-1", "Neutral ", "positive"], classes, mapping), [2, 0, 1, 2])
    with pytest.raises(DataError, match="label '7' is neither a class"):
        gold_indices(["7"], classes, mapping)


def test_the_result_reads_as_documents_per_second_and_the_accuracy_change() -> None:
    result = {"model": "m.zip", "documents": 100, "batch_size": 64, "threads": 2,
              "fp32": {"seconds": 2.0, "documents_per_second": 50.0, "accuracy": 0.8},
              "bf16": {"seconds": 0.5, "documents_per_second": 200.0, "accuracy": 0.8, "speedup": 4.0,
                       "agreement": 1.0, "accuracy_change": 0.0},
              "int8": {"seconds": 1.0, "documents_per_second": 100.0, "accuracy": 0.79, "speedup": 2.0,
                       "agreement": 0.99, "accuracy_change": -0.01}}
    text = format_bench_predict(result)
    assert "fp32: 50.0 documents/s (2.00 s), accuracy 80.00\n" in text
    assert "bf16: 200.0 documents/s (0.50 s), accuracy 80.00; 4.00x fp32, same label for 100.00% of the texts, " \
           "accuracy +0.00 points" in text
    assert "int8: 100.0 documents/s (1.00 s), accuracy 79.00; 2.00x fp32, same label for 99.00% of the texts, " \
           "accuracy -1.00 points" in text
