"""Two runs compared seed by seed: config differences, paired differences on shared seeds, clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ulmfit_multi.cli import app
from ulmfit_multi.compare import compare_runs, config_differences, flatten
from ulmfit_multi.errors import StageError


def _rec(task, system, seed, wf1, acc=0.5, split="test"):
    return {"task": task, "system": system, "seed": seed, "split": split, "n": 100,
            "metrics": {"accuracy": acc, "weighted_f1": wf1}}


def _run(root, name, *, synthetic, evaluate, baselines=(), seeds=(0, 1, 2)):
    """A finished run folder: resolved config, run.json and the evaluate/baselines records."""
    run = root / name
    run.mkdir()
    (run / "config.resolved.toml").write_text(
        f'preset = "cpu"\nsource_file = "/somewhere/{name}.toml"\n'
        '[recipe]\nname = "ml"\n'
        f"[corpus.synthetic]\nenabled = {str(synthetic).lower()}\nromanized_share = 0.7\n"
        f"[evaluate]\nseeds = {list(seeds)}\n"
        f'[runtime]\ndevice = "{"cpu" if synthetic else "cuda"}"\n'
        '[[tasks]]\nname = "f20"\nmetric = "weighted_f1"\n')
    (run / "run.json").write_text(json.dumps({"environment": {"git_commit": "abcdef0123"}}))
    for number, stage, recs in ((5, "baselines", baselines), (9, "evaluate", evaluate)):
        if recs is not None:
            (run / f"{number:02d}-{stage}").mkdir()
            (run / f"{number:02d}-{stage}" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def test_flatten_and_config_differences_skip_provenance_and_runtime():
    a = {"source_file": "a.toml", "corpus": {"synthetic": {"enabled": True, "scheme": "casual"}},
         "runtime": {"device": "cpu"}, "evaluate": {"seeds": [0, 1, 2]}}
    b = {"source_file": "b.toml", "corpus": {"synthetic": {"enabled": False}}, "runtime": {"device": "cuda"},
         "evaluate": {"seeds": [0]}, "model": {"emb_size": 64}}
    assert flatten(a)["corpus.synthetic.enabled"] is True
    diff = {key: (x, y) for key, x, y in config_differences(a, b)}
    assert set(diff) == {"corpus.synthetic.enabled", "corpus.synthetic.scheme", "evaluate.seeds", "model.emb_size"}
    assert diff["corpus.synthetic.enabled"] == (True, False)
    assert diff["evaluate.seeds"] == ([0, 1, 2], [0])


def test_paired_differences_use_only_the_seeds_both_runs_scored(tmp_path):
    base = _run(tmp_path, "ml-cpu", synthetic=True,
                evaluate=[_rec("f20", "ULMFiT ensemble", 0, 0.68), _rec("f20", "ULMFiT ensemble", 1, 0.70),
                          _rec("f20", "ULMFiT ensemble", 2, 0.69), _rec("f20", "ULMFiT ensemble", 0, 0.9, split="valid"),
                          _rec("f20", "ULMFiT ensemble of 3 seeds", None, 0.71)],
                baselines=[_rec("f20", "tfidf-lr", 0, 0.72), _rec("f20", "tfidf-lr", 1, 0.72)])
    other = _run(tmp_path, "ml-cpu-ablation", synthetic=False, seeds=(0, 1),
                 evaluate=[_rec("f20", "ULMFiT ensemble", 0, 0.65), _rec("f20", "ULMFiT ensemble", 1, 0.66),
                           _rec("f20", "ULMFiT ensemble of 2 seeds", None, 0.67)],
                 baselines=[_rec("f20", "tfidf-lr", 0, 0.72), _rec("f20", "tfidf-lr", 1, 0.72)])
    comparison = compare_runs(base, other)
    rows = {r.system: r for r in comparison.rows}
    ens = rows["ULMFiT ensemble"]
    assert ens.seeds == [0, 1] and ens.base_only_seeds == [2]
    assert ens.diffs == pytest.approx([-0.03, -0.04])  # the valid-split record is not a test score
    assert ens.mean_diff == pytest.approx(-0.035)
    assert rows["tfidf-lr"].diffs == pytest.approx([0.0, 0.0])
    assert sorted(comparison.unmatched) == ["f20 / ULMFiT ensemble of 2 seeds: only in other",
                                            "f20 / ULMFiT ensemble of 3 seeds: only in base"]
    keys = [k for k, _, _ in comparison.config_diff]
    assert keys == ["corpus.synthetic.enabled", "evaluate.seeds"]  # not source_file, not runtime.device
    md = comparison.to_markdown()
    assert "| f20 (w-F1) | ULMFiT ensemble | 0, 1 | 69.00 | 65.50 | -3.50 ± 0.71 | -3.00, -4.00 |" in md
    assert "`corpus.synthetic.enabled`: `True` -> `False`" in md
    assert "left out of the comparison: 2." in md


def test_runs_without_evaluate_or_config_are_refused_by_name(tmp_path):
    done = _run(tmp_path, "done", synthetic=True, evaluate=[_rec("f20", "ULMFiT fwd", 0, 0.6)])
    running = _run(tmp_path, "running", synthetic=False, evaluate=None)
    with pytest.raises(StageError, match="running: stage 'evaluate' has not finished"):
        compare_runs(done, running)
    with pytest.raises(StageError, match="nowhere: not a run folder"):
        compare_runs(tmp_path / "nowhere", done)


def test_cli_prints_the_report_and_writes_it(tmp_path):
    base = _run(tmp_path, "a", synthetic=True, evaluate=[_rec("f20", "ULMFiT fwd", 0, 0.60)])
    other = _run(tmp_path, "b", synthetic=False, evaluate=[_rec("f20", "ULMFiT fwd", 0, 0.62)])
    out = tmp_path / "reports" / "ablation.md"
    result = CliRunner().invoke(app, ["compare", str(base), str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| f20 (w-F1) | ULMFiT fwd | 0 | 60.00 | 62.00 | +2.00 |  |" in result.output
    assert out.read_text() in result.output
    bad = CliRunner().invoke(app, ["compare", str(base), str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "missing: not a run folder" in bad.output


def test_a_json_report_is_a_results_page_table_with_the_markdown_rows(tmp_path):
    from ulmfit_multi.compare import write_comparison
    from ulmfit_multi.results_page import render_table

    base = _run(tmp_path, "a", synthetic=True, evaluate=[_rec("f20", "ULMFiT fwd", 0, 0.60)])
    other = _run(tmp_path, "b", synthetic=False, evaluate=[_rec("f20", "ULMFiT fwd", 0, 0.62)])
    comparison = compare_runs(base, other)
    out = write_comparison(comparison, tmp_path / "docs" / "ablation.json")
    doc = json.loads(out.read_text())
    assert doc["rows"] == [["f20 (w-F1)", "ULMFiT fwd", "0", "60.00", "62.00", "+2.00", ""]]
    rendered = "\n".join(render_table(doc))
    assert "| f20 (w-F1) | ULMFiT fwd | 0 | 60.00 | 62.00 | +2.00 |  |" in rendered
    assert "`corpus.synthetic.enabled`: `True` -> `False`" in rendered
    assert "| f20 (w-F1) | ULMFiT fwd | 0 | 60.00 | 62.00 | +2.00 |  |" in comparison.to_markdown()


def test_long_config_values_are_cut_in_the_report(tmp_path):
    from ulmfit_multi.compare import Comparison

    long_tasks = [{"name": "t" * 200}]
    md = Comparison(tmp_path / "a", tmp_path / "b", [("tasks", long_tasks, []), ("x", True, False)], [], []).to_markdown()
    line = next(l for l in md.splitlines() if "`tasks`" in l)
    assert line.endswith("...` -> `[]`") and "t" * 200 not in line
    assert "`x`: `True` -> `False`" in md
