"""`ulmfit-multi new-recipe`: a valid recipe for a user's own labelled files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ulmfit_multi.bundle import finish_bundle, staging_dir
from ulmfit_multi.config import PRESETS, load_recipe
from ulmfit_multi.errors import DataError, RecipeError
from ulmfit_multi.scaffold import new_recipe


def _csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    header = ["id", "review", "stars"]
    return {role: _csv(tmp_path / f"{role}.csv", [header, ["1", "छान", "pos"], ["2", "वाईट", "neg"],
                                                  ["3", "ठीक", "neutral" if role == "test" else "pos"]])
            for role in ("train", "valid", "test")}


def test_a_recipe_from_labelled_csv_files_loads_with_every_preset(tmp_path: Path, files: dict[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = new_recipe(lang="mr", train=files["train"], valid=files["valid"], test=files["test"], text="review",
                      label="stars", name="reviews")
    assert path == Path("recipes/reviews.toml")
    for preset in ("base", *PRESETS):
        cfg = load_recipe("reviews", preset)  # found by name in ./recipes
        task = cfg.tasks[0]
        assert (task.name, task.text, task.label, task.format) == ("reviews", "review", "stars", "csv")
        assert task.labels == {"neg": "neg", "neutral": "neutral", "pos": "pos"}  # every value in every split
        assert task.splits == {r: str(p.resolve()) for r, p in files.items()}
        assert all(str(p.resolve()) in cfg.data.sha256 for p in files.values())
    assert [s.name for s in load_recipe("reviews").corpus.sources] == ["mrwiki", "wikisource"]  # mr.toml's corpus
    smoke, cpu = load_recipe("reviews", "smoke"), load_recipe("reviews", "cpu")
    assert smoke.model.hidden_size < cpu.model.hidden_size and cpu.corpus.max_dump_docs == 2000


def test_a_language_without_a_recipe_gets_its_wikipedia_dump(tmp_path: Path, files: dict[str, Path]) -> None:
    path = new_recipe(lang="en", train=files["train"], test=files["test"], text="review", label="stars",
                      out=tmp_path / "en-reviews.toml")
    src = load_recipe(path).corpus.sources[0]
    assert src.path == "en/wiki/enwiki-latest-pages-articles-multistream.xml.bz2" and src.url.startswith("https://")


def test_a_recipe_that_starts_from_an_lm_bundle_takes_its_sizes(tmp_path: Path, files: dict[str, Path]) -> None:
    staging = staging_dir(tmp_path / "lm.zip")
    (staging / "fwd").mkdir()
    (staging / "fwd" / "model.pt").write_bytes(b"weights")
    finish_bundle(staging, tmp_path / "lm.zip", {
        "kind": "lm", "code": {}, "directions": ["fwd"], "text": {"normalization": "legacy"},
        "model": {"emb_size": 32, "hidden_size": 48, "n_layers": 2, "bptt": 30}})
    path = new_recipe(lang="mr", train=files["train"], test=files["test"], text="review", label="stars",
                      out=tmp_path / "r.toml", lm=tmp_path / "lm.zip")
    for preset in ("base", *PRESETS):
        cfg = load_recipe(path, preset)
        assert (cfg.model.emb_size, cfg.model.hidden_size, cfg.model.n_layers) == (32, 48, 2)
        assert cfg.pretrain.from_.path == str((tmp_path / "lm.zip").resolve()) and len(cfg.pretrain.from_.sha256) == 64
        assert cfg.pretrain.directions == ["fwd"] and cfg.corpus.normalization == "legacy" and not cfg.corpus.sources


def test_wrong_columns_and_labels_are_refused_and_nothing_is_left(tmp_path: Path, files: dict[str, Path]) -> None:
    out = tmp_path / "r.toml"
    with pytest.raises(DataError, match=r"no column 'text' \(columns: id, review, stars\)"):
        new_recipe(lang="mr", train=files["train"], text="text", label="stars", out=out)
    with pytest.raises(DataError, match="1 label value"):
        new_recipe(lang="mr", train=_csv(tmp_path / "one.csv", [["t", "l"], ["a", "x"], ["b", "x"]]), text="t",
                   label="l", out=out)
    with pytest.raises(RecipeError, match="unknown language code 'zz'"):
        new_recipe(lang="zz", train=files["train"], text="review", label="stars", out=out)
    assert not out.exists()
    out.write_text("", encoding="utf-8")
    with pytest.raises(RecipeError, match="already exists"):
        new_recipe(lang="mr", train=files["train"], text="review", label="stars", out=out)


def test_tsv_files_make_a_tsv_task(tmp_path: Path) -> None:
    train = _csv(tmp_path / "train.tsv", [["text", "label"], ["a b", "x"], ["c, d", "y"]], delimiter="\t")
    path = new_recipe(lang="ta", train=train, text="text", label="label", out=tmp_path / "t.toml")
    assert load_recipe(path).tasks[0].format == "tsv"


def test_label_values_the_reader_takes_as_one_name_one_class(tmp_path: Path) -> None:
    train = _csv(tmp_path / "train.csv", [["text", "label"], ["a", "Pos"], ["b", "pos "], ["c", "Mixed feelings"],
                                          ["d", "mixed_feelings"], ["e", "neg"]])
    path = new_recipe(lang="mr", train=train, text="text", label="label", out=tmp_path / "r.toml")
    labels = load_recipe(path).tasks[0].labels
    assert labels == {"Mixed feelings": "Mixed feelings", "Pos": "Pos", "mixed_feelings": "Mixed feelings",
                      "neg": "neg", "pos": "Pos"}
