"""Linear probe of a run's LMs (ulmfit_multi/probe.py) on the tiny recipe of test_pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.errors import StageError
from ulmfit_multi.config import ModelSection
from ulmfit_multi.pipeline import run_recipe
from ulmfit_multi.probe import ENCODERS, format_probe, pooled_features, probe_encoder, probe_run

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)


def test_pooled_features_are_deterministic_and_ignore_padding() -> None:
    cfg = ModelSection(emb_size=8, hidden_size=16)
    docs = [np.array([5, 6, 7, 8]), np.array([9, 10]), np.array([11, 12, 13])]
    a = pooled_features(probe_encoder(None, cfg, 50), docs)
    assert a.shape == (3, 24)
    np.testing.assert_array_equal(a, pooled_features(probe_encoder(None, cfg, 50), docs))  # seeded random encoder
    # a document's features do not depend on the others in its batch (padding is masked)
    alone = pooled_features(probe_encoder(None, cfg, 50), docs[1:2])
    np.testing.assert_allclose(alone[0], a[1], rtol=1e-5, atol=1e-6)


def test_probe_run_rows_and_errors(tiny_setup: dict[str, Path]) -> None:  # noqa: F811
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="finetune_lm")
    rows = probe_run(result.run_dir, "tiny-sent", max_train=200)
    assert [r["encoder"] for r in rows] == ["majority class", *ENCODERS]
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("weighted_f1", "macro_f1", "accuracy"))
    assert rows[0]["n_train"] == 200 and rows[0]["n_valid"] == 60
    table = format_probe(rows)
    assert table.count("\n") == 5 and "fine-tuned" in table
    with pytest.raises(StageError, match="no encoded task 'nope'"):
        probe_run(result.run_dir, "nope")
