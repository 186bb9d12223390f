"""Seeds aggregated to mean ± sample std; every table format carries the right cells."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from ulmfit_multi.tables import aggregate, write_tables


def _rec(task, system, seed, acc, wf1, mf1=0.5, note=""):
    return {"task": task, "system": system, "seed": seed, "split": "test", "n": 1500, "preset": "cpu", "note": note,
            "metrics": {"accuracy": acc, "weighted_f1": wf1, "macro_f1": mf1}}


RECORDS = [
    _rec("mahasent_gt", "ULMFiT ensemble", 0, 0.80, 0.70),
    _rec("mahasent_gt", "ULMFiT ensemble", 1, 0.82, 0.72),
    _rec("mahasent_gt", "ULMFiT ensemble", 2, 0.84, 0.74),
    _rec("mahasent_gt", "majority", 0, 1 / 3, 0.1667),
    _rec("fire2021_ta", "ULMFiT ensemble", 0, 0.70, 0.65, note="reconstructed train"),
    _rec("fire2021_ta", "ULMFiT ensemble", 1, 0.72, 0.66, note="reconstructed train"),
    _rec("fire2021_ta", "tfidf-lr", 0, 0.66, 0.61, note="reconstructed train"),
    _rec("fire2021_ta", "ULMFiT fwd", 0, 0.69, 0.63, note="reconstructed train"),
]
REFERENCES = [{"task": "mahasent_gt", "system": "MahaBERT", "metric": "accuracy", "value": 0.788,
               "cite": "Pingle et al. 2023, arXiv 2306.13888"}]
METRICS = {"mahasent_gt": "accuracy", "fire2021_ta": "weighted_f1", "fire2021_kn": "weighted_f1"}
UNAVAILABLE = {"fire2021_kn": "file not available: kn/fire2021/kannada_sentiment_full_test_withlabels.tsv"}


def test_aggregate_mean_sample_std_and_seed_count():
    agg = {(r["task"], r["system"]): r for r in aggregate(RECORDS)}
    assert len(agg) == 5
    r = agg[("mahasent_gt", "ULMFiT ensemble")]
    assert r["n_seeds"] == 3 and r["n"] == 1500
    assert r["mean"]["accuracy"] == pytest.approx(0.82)
    assert r["std"]["accuracy"] == pytest.approx(0.02)  # ddof=1: sqrt((0.02² + 0 + 0.02²) / 2)
    assert r["std"]["accuracy"] == pytest.approx(statistics.stdev([0.80, 0.82, 0.84]))
    assert r["mean"]["weighted_f1"] == pytest.approx(0.72)
    r = agg[("fire2021_ta", "ULMFiT ensemble")]
    assert r["n_seeds"] == 2 and r["std"]["weighted_f1"] == pytest.approx(0.00707107, abs=1e-7)
    assert r["note"] == "reconstructed train"
    single = agg[("mahasent_gt", "majority")]
    assert single["n_seeds"] == 1 and single["std"] == {"accuracy": 0.0, "weighted_f1": 0.0, "macro_f1": 0.0}


@pytest.fixture
def tables(tmp_path):
    header = {"recipe": "mr", "command": "ulmfit-multi run mr --preset cpu"}
    paths = write_tables(RECORDS, REFERENCES, tmp_path / "t", title="mr_results (cpu)", metric_by_task=METRICS,
                         header=header, unavailable=UNAVAILABLE)
    return paths


def test_write_tables_writes_four_files(tables):
    assert set(tables) == {"md", "csv", "json", "tex"}
    for p in tables.values():
        assert p.is_file() and p.stat().st_size > 0
        assert not [q for q in p.parent.iterdir() if q.name.endswith(".tmp")]


def test_csv_cells(tables):
    rows = list(csv.reader(tables["csv"].open(encoding="utf-8")))
    assert rows[0] == ["system", "mahasent_gt (acc)", "fire2021_ta (w-F1)", "fire2021_kn (w-F1)"]
    by_system = {r[0]: r[1:] for r in rows[1:]}
    # systems in the fixed order, then references
    assert [r[0] for r in rows[1:]] == ["ULMFiT fwd", "ULMFiT ensemble", "majority", "tfidf-lr", "MahaBERT [1]"]
    assert by_system["ULMFiT ensemble"] == ["82.00 ± 2.00 (3)", "65.50 ± 0.71 (2)", "n/a"]
    assert by_system["majority"] == ["33.33 ± 0.00 (1)", "", "n/a"]
    assert by_system["tfidf-lr"] == ["", "61.00 ± 0.00 (1)", "n/a"]
    assert by_system["MahaBERT [1]"] == ["78.80", "", ""]


def test_json_round_trip(tables):
    doc = json.loads(tables["json"].read_text(encoding="utf-8"))
    assert doc["title"] == "mr_results (cpu)"
    assert doc["metric_by_task"] == METRICS
    assert doc["unavailable"] == UNAVAILABLE
    assert doc["references"] == REFERENCES
    assert doc["records"] == RECORDS
    agg = {(r["task"], r["system"]): r for r in doc["aggregate"]}
    assert agg[("mahasent_gt", "ULMFiT ensemble")]["n_seeds"] == 3
    assert agg[("mahasent_gt", "ULMFiT ensemble")]["mean"]["accuracy"] == pytest.approx(0.82)
    assert agg[("fire2021_ta", "ULMFiT ensemble")]["std"]["weighted_f1"] == pytest.approx(0.0070711, abs=1e-6)


def test_markdown(tables):
    md = tables["md"].read_text(encoding="utf-8")
    assert md.startswith("## mr_results (cpu)\n")
    assert "- command: `ulmfit-multi run mr --preset cpu`" in md
    assert "| system | mahasent_gt (acc) | fire2021_ta (w-F1) | fire2021_kn (w-F1) |" in md
    assert "| ULMFiT ensemble | 82.00 ± 2.00 (3) | 65.50 ± 0.71 (2) | n/a |" in md
    assert "| MahaBERT [1] | 78.80 |  |  |" in md
    assert "[1] Pingle et al. 2023, arXiv 2306.13888 (accuracy, published)" in md
    assert "fire2021_kn: n/a, file not available: kn/fire2021/kannada_sentiment_full_test_withlabels.tsv" in md
    assert "fire2021_ta: reconstructed train" in md


def test_latex(tables):
    tex = tables["tex"].read_text(encoding="utf-8")
    lines = tex.splitlines()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert lines.count(rule) == 1
    assert lines.index("\\toprule") < lines.index("\\midrule") < lines.index("\\bottomrule")
    assert "\\begin{tabular}{lrrr}" in tex
    assert "system & mahasent\\_gt (acc) & fire2021\\_ta (w-F1) & fire2021\\_kn (w-F1) \\\\" in tex
    assert "ULMFiT ensemble & 82.00 $\\pm$ 2.00 (3) & 65.50 $\\pm$ 0.71 (2) & n/a \\\\" in tex
    assert "MahaBERT [1] & 78.80 &  &  \\\\" in tex
    # every underscore is escaped, also in the caption's footnotes
    assert "_" not in tex.replace("\\_", "")
    assert "kannada\\_sentiment\\_full\\_test\\_withlabels.tsv" in tex
    assert "\\caption{mr\\_results (cpu). " in tex
    assert "±" not in tex


def test_latex_escapes_specials(tmp_path):
    paths = write_tables([_rec("a&b", "x%y#z", 0, 0.5, 0.5)], [], tmp_path, title="t",
                         metric_by_task={"a&b": "accuracy"}, header={})
    tex = paths["tex"].read_text(encoding="utf-8")
    assert "a\\&b (acc)" in tex and "x\\%y\\#z & 50.00" in tex


def test_tasks_default_to_records_when_no_metric_map(tmp_path):
    paths = write_tables(RECORDS[:4], [], tmp_path, title="t", metric_by_task={}, header={}, stem="only")
    assert paths["csv"].name == "only.csv"
    rows = list(csv.reader(paths["csv"].open(encoding="utf-8")))
    assert rows[0] == ["system", "mahasent_gt (acc)"]
    assert rows[1] == ["ULMFiT ensemble", "82.00 ± 2.00 (3)"]


def test_references_in_percent_other_metric_and_header_in_latex(tmp_path):
    refs = [{"task": "fire2021_ta", "system": "best", "metric": "weighted_f1", "value": 71.1, "cite": "C1"},
            {"task": "fire2021_ta", "system": "other", "metric": "macro_f1", "value": 0.5, "cite": "C2"},
            {"task": "not_in_table", "system": "x", "metric": "accuracy", "value": 0.9, "cite": "C3"}]
    paths = write_tables(RECORDS, refs, tmp_path, title="t", metric_by_task={"fire2021_ta": "weighted_f1"},
                         header={"command": "ulmfit-multi table runs/a", "hardware": "CPU, 2 cores"})
    rows = {r[0]: r[1:] for r in csv.reader(paths["csv"].open(encoding="utf-8"))}
    # a task with records but no metric entry gets a column too (accuracy), after the listed ones
    assert rows["system"] == ["fire2021_ta (w-F1)", "mahasent_gt (acc)"]
    assert rows["best [1]"] == ["71.10", ""]            # percent given, stored and shown as percent once
    assert rows["other [2]"] == ["50.00 (m-F1)", ""]    # not the column's metric: named
    assert not any(k.startswith("x [") for k in rows)   # its task is not in the table
    tex = paths["tex"].read_text(encoding="utf-8").splitlines()
    assert tex[:2] == ["% command: ulmfit-multi table runs/a", "% hardware: CPU, 2 cores"]


def _fake_run(root, name, stages, tasks):
    """A run folder as the pipeline leaves it: resolved config, run.json, and records of the given stages."""
    run = root / name
    run.mkdir()
    lines = [f'preset = "cpu"', "[recipe]", f'name = "{name}"']
    for task, metric in tasks.items():
        lines += ["[[tasks]]", f'name = "{task}"', f'metric = "{metric}"']
    lines += ["[[reference]]", f'task = "{next(iter(tasks))}"', 'system = "Paper"', 'metric = "accuracy"',
              "value = 0.9", 'cite = "Someone 2024"']
    (run / "config.resolved.toml").write_text("\n".join(lines) + "\n")
    (run / "run.json").write_text(json.dumps({"environment": {"cuda": None, "cpu_count": 2}}))
    for number, stage, recs in stages:
        d = run / f"{number:02d}-{stage}"
        d.mkdir()
        (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def test_gather_runs_with_and_without_ulmfit_results(tmp_path):
    from ulmfit_multi.errors import StageError
    from ulmfit_multi.tables_gather import gather_runs

    full = _fake_run(tmp_path, "mr", [(5, "baselines", [_rec("gt", "tfidf-lr", 0, 0.7, 0.6)]),
                                      (9, "evaluate", [_rec("gt", "ULMFiT ensemble", 0, 0.8, 0.7)])],
                     {"gt": "accuracy"})
    baselines_only = _fake_run(tmp_path, "ta", [(5, "baselines", [_rec("f20", "fasttext", 0, 0.6, 0.55)])],
                               {"f20": "weighted_f1"})
    paths = gather_runs([full, baselines_only], tmp_path / "out", title="both")
    md = paths["md"].read_text()
    assert "| ULMFiT ensemble | 80.00" in md and "| tfidf-lr | 70.00" in md
    assert "55.00" in md and "Paper" in md and "CPU, 2 cores" in md
    kn = _fake_run(tmp_path, "kn", [(5, "baselines", [_rec("f21kn", "fasttext", 0, 0.6, 0.5)])], {"f21kn": "weighted_f1",
                                                                                              "gone": "weighted_f1"})
    cfg = (kn / "config.resolved.toml").read_text().replace(
        'name = "gone"', 'name = "gone"\nsplits = { train = "kn/train.tsv", test = "kn/test.tsv" }')
    (kn / "config.resolved.toml").write_text(cfg)
    (kn / "01-fetch").mkdir()
    (kn / "01-fetch" / "_stage.json").write_text(json.dumps({"summary": {"unavailable": ["kn/test.tsv"]}}))
    md = gather_runs([kn], tmp_path / "out_kn")["md"].read_text()
    assert "| fasttext | 50.00 ± 0.00 (1) | n/a |" in md
    assert "gone: n/a, test: kn/test.tsv unavailable" in md
    nothing = _fake_run(tmp_path, "ml", [], {"f21": "weighted_f1"})
    with pytest.raises(StageError, match="ml.*neither 'evaluate' nor 'baselines'"):
        gather_runs([nothing], tmp_path / "out2")
    with pytest.raises(StageError, match="not a run folder"):
        gather_runs([tmp_path / "out"], tmp_path / "out3")


def test_pooled_and_fused_ulmfit_rows_come_before_the_baselines(tmp_path):
    records = [{"task": "t", "system": s, "seed": 0, "metrics": {"accuracy": 0.5}, "n": 10}
               for s in ("tfidf-lr", "ULMFiT ensemble + tfidf-lr", "majority", "ULMFiT fwd", "other baseline",
                         "ULMFiT ensemble of 3 seeds")]
    paths = write_tables(records, [], tmp_path, title="t", metric_by_task={"t": "accuracy"}, header={})
    order = [line.split("|")[1].strip() for line in paths["md"].read_text(encoding="utf-8").splitlines()
             if line.startswith("| ") and "system" not in line]
    assert order == ["ULMFiT fwd", "ULMFiT ensemble + tfidf-lr", "ULMFiT ensemble of 3 seeds", "majority",
                     "tfidf-lr", "other baseline"]
