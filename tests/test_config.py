"""Recipe loading: defaults, presets, --set overrides and the errors users see."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ulmfit_multi.config import (
    Config,
    RecipeError,
    deep_merge,
    load_recipe,
    parse_override,
    section,
    to_toml,
)

TINY = """
[recipe]
name = "tiny"
langs = ["mr"]

[model]
emb_size = 32

[[tasks]]
name = "sent"
splits = { train = "mr/train.csv", test = "mr/test.csv" }

[preset.smoke]
model.hidden_size = 16
pretrain.epochs = 2
evaluate.seeds = [7]

[preset.cpu]
model.hidden_size = 64
"""


def write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_ulmfit_paper_values():
    cfg = Config()
    assert (cfg.model.emb_size, cfg.model.hidden_size, cfg.model.n_layers, cfg.model.bptt) == (400, 1152, 3, 70)
    assert cfg.pretrain.directions == ["fwd", "bwd"]
    assert cfg.classifier.gradual_unfreezing is True
    assert cfg.preset == "base"


def test_base_recipe_keeps_code_defaults_and_fills_tokenizer_from_lang(tmp_path):
    cfg = load_recipe(write(tmp_path, TINY))
    assert cfg.preset == "base"
    assert cfg.model.emb_size == 32  # from the recipe
    assert cfg.model.hidden_size == 1152  # code default
    assert cfg.pretrain.epochs == 10
    assert cfg.tokenizer.vocab_size == 15_000  # langs/mr.toml
    assert cfg.tokenizer.model_type == "unigram"
    assert cfg.tasks[0].lang == "mr"  # defaults to the recipe's first language
    assert cfg.recipe.name == "tiny"
    assert cfg.source_file == str(tmp_path / "tiny.toml")


def test_preset_merges_over_the_base(tmp_path):
    cfg = load_recipe(write(tmp_path, TINY), preset="smoke")
    assert cfg.preset == "smoke"
    assert cfg.model.hidden_size == 16
    assert cfg.model.emb_size == 32  # base table survives the merge
    assert cfg.pretrain.epochs == 2
    assert cfg.evaluate.seeds == [7]
    other = load_recipe(write(tmp_path, TINY), preset="cpu")
    assert other.model.hidden_size == 64
    assert other.pretrain.epochs == 10


@pytest.mark.parametrize(
    "item, dotted, expected",
    [
        ("pretrain.epochs=3", "pretrain.epochs", 3),
        ("classifier.lr=0.05", "classifier.lr", 0.05),
        ("classifier.wd=1", "classifier.wd", 1.0),  # int literal into a float field
        ("evaluate.seeds=[4, 5]", "evaluate.seeds", [4, 5]),
        ("corpus.synthetic.scheme=itrans", "corpus.synthetic.scheme", "itrans"),  # bare string
        ('corpus.synthetic.scheme="iso"', "corpus.synthetic.scheme", "iso"),  # quoted string
        ("corpus.synthetic.enabled=true", "corpus.synthetic.enabled", True),  # nested bool
        ("corpus.synthetic.romanized_share=0.25", "corpus.synthetic.romanized_share", 0.25),
    ],
)
def test_set_overrides(tmp_path, item, dotted, expected):
    cfg = load_recipe(write(tmp_path, TINY), preset="smoke", overrides=[item])
    value = section(cfg, dotted)
    assert value == expected
    assert type(value) is type(expected)


def test_set_overrides_win_over_preset_and_later_wins(tmp_path):
    cfg = load_recipe(write(tmp_path, TINY), preset="smoke",
                      overrides=["model.hidden_size=8", "model.hidden_size=9"])
    assert cfg.model.hidden_size == 9
    assert cfg.model.emb_size == 32


def test_overrides_as_dict(tmp_path):
    cfg = load_recipe(write(tmp_path, TINY), overrides={"model": {"bptt": 12}})
    assert cfg.model.bptt == 12


def test_parse_override_builds_nested_dict_and_rejects_missing_equals():
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    assert parse_override("a=x=y") == {"a": "x=y"}
    with pytest.raises(RecipeError, match="key=value"):
        parse_override("pretrain.epochs")


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1, "c": [1]}}
    over = {"a": {"b": 2}}
    merged = deep_merge(base, over)
    assert merged == {"a": {"b": 2, "c": [1]}}
    assert base == {"a": {"b": 1, "c": [1]}}


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, TINY.replace("emb_size = 32", "emb_sise = 32"))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "model.emb_sise" in msg
    assert "did you mean 'emb_size'" in msg


def test_unknown_key_from_set_names_file_and_key(tmp_path):
    path = write(tmp_path, TINY)
    with pytest.raises(RecipeError) as e:
        load_recipe(path, overrides=["pretrain.epoch=2"])
    msg = str(e.value)
    assert str(path) in msg and "pretrain.epoch" in msg and "epochs" in msg


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, TINY + "\n[pretrian]\nepochs = 1\n")
    with pytest.raises(RecipeError, match=r"unknown key 'pretrian'.*did you mean 'pretrain'"):
        load_recipe(path)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("pretrain.epochs=1.5", "must be an integer"),
        ("pretrain.epochs=true", "must be an integer"),  # bool is not an int
        ("classifier.lr=fast", "must be a number"),
        ("classifier.gradual_unfreezing=1", "must be true or false"),
        ("evaluate.seeds=3", "must be a list of int"),
        ("evaluate.seeds=[1, 'a']", r"evaluate\.seeds\[1\]' must be an integer"),
        ("model=3", "must be a table"),
        ("recipe.description=3", "must be a string"),
        ("evaluate.baselines=['tfidf']", r"'evaluate\.baselines' is 'tfidf'; expected one of majority, tfidf-lr"),
        ("evaluate.fuse_with=['majority']", r"'evaluate\.fuse_with' is 'majority'; expected one of tfidf-lr, fasttext"),
        ("evaluate.fuse_with=['bert']", "'evaluate.fuse_with' is 'bert'"),
    ],
)
def test_wrong_type_or_value_names_key_and_expected(tmp_path, override, expected):
    path = write(tmp_path, TINY)
    with pytest.raises(RecipeError, match=expected) as e:
        load_recipe(path, overrides=[override])
    assert str(path) in str(e.value)
    assert override.split("=")[0] in str(e.value)


def test_unknown_preset_lists_known(tmp_path):
    path = write(tmp_path, TINY)
    with pytest.raises(RecipeError) as e:
        load_recipe(path, preset="smok")
    msg = str(e.value)
    assert str(path) in msg and "smok" in msg and "did you mean 'smoke'" in msg


def test_unknown_recipe_name():
    with pytest.raises(RecipeError, match="unknown recipe 'nope'"):
        load_recipe("nope")


def test_unknown_language_code(tmp_path):
    path = write(tmp_path, TINY.replace('langs = ["mr"]', 'langs = ["xx"]'))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert str(path) in msg and "recipe.langs" in msg and "'xx'" in msg and "mr" in msg


def test_unknown_task_language(tmp_path):
    path = write(tmp_path, TINY.replace('name = "sent"', 'name = "sent"\nlang = "zz"'))
    with pytest.raises(RecipeError, match=r"task 'sent' lang.*'zz'"):
        load_recipe(path)


def test_no_languages_is_an_error(tmp_path):
    path = write(tmp_path, TINY.replace('langs = ["mr"]', "langs = []"))
    with pytest.raises(RecipeError, match="recipe.langs"):
        load_recipe(path)


def test_toml_syntax_error_names_file(tmp_path):
    path = write(tmp_path, TINY + "\n[model\nbptt = \n")
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert str(path) in str(e.value)
    assert "line" in str(e.value)


def test_typo_in_unused_preset_is_still_reported(tmp_path):
    path = write(tmp_path, TINY.replace("model.hidden_size = 64", "model.hiden_size = 64"))
    with pytest.raises(RecipeError) as e:
        load_recipe(path, preset="smoke")  # the typo is in [preset.cpu]
    msg = str(e.value)
    assert str(path) in msg and "model.hiden_size" in msg and "hidden_size" in msg


@pytest.mark.parametrize(
    "replace, expected",
    [
        (('name = "sent"', 'name = "sent"\nformat = "xml"'), r"tasks\.sent\.format.*csv, tsv"),
        (('name = "sent"', 'name = "sent"\nmetric = "auc"'), r"tasks\.sent\.metric"),
        (("train = ", "dev = "), r"tasks\.sent\.splits"),
        (("[model]", "[tokenizer]\nmodel_type = \"wordpiece\"\n[model]"), "tokenizer.model_type"),
        (("[model]", "[pretrain]\ndirections = [\"up\"]\n[model]"), "pretrain.directions"),
    ],
)
def test_enumerated_values_are_checked(tmp_path, replace, expected):
    path = write(tmp_path, TINY.replace(*replace))
    with pytest.raises(RecipeError, match=expected) as e:
        load_recipe(path)
    assert str(path) in str(e.value)


def test_duplicate_task_and_dangling_reference(tmp_path):
    dup = TINY + '\n[[tasks]]\nname = "sent"\n'
    with pytest.raises(RecipeError, match="declared twice"):
        load_recipe(write(tmp_path, dup))
    ref = TINY + '\n[[reference]]\ntask = "other"\nsystem = "BERT"\nvalue = 0.9\n'
    with pytest.raises(RecipeError, match="unknown task 'other'"):
        load_recipe(write(tmp_path, ref, "ref.toml"))


def test_to_toml_round_trips_the_mr_recipe():
    for preset in (None, "smoke"):
        data = load_recipe("mr", preset).to_dict()
        assert tomllib.loads(to_toml(data)) == data


def test_to_toml_round_trips_awkward_strings():
    cfg = Config()
    cfg.recipe.description = 'quote " backslash \\ newline \n unicode मराठी'
    cfg.data.sha256 = {"a/b c.csv": "00"}
    data = cfg.to_dict()
    assert tomllib.loads(to_toml(data)) == data


def test_pretrain_workers_must_divide_the_batch(tmp_path):
    from ulmfit_multi.config import load_recipe
    from ulmfit_multi.errors import RecipeError

    with pytest.raises(RecipeError, match="pretrain.workers"):
        load_recipe("mr", "smoke", ["pretrain.workers=3"])
    assert load_recipe("mr", "smoke", ["pretrain.workers=2"]).pretrain.workers == 2


def test_added_later_field_left_at_default_is_not_hashed(tmp_path):
    path = write(tmp_path, TINY)
    plain = section(load_recipe(path, "smoke"), "classifier", for_fingerprint=True)
    assert "stage_lrs" not in plain  # runs cached before the key existed keep their fingerprints
    assert "lr" in plain
    set_ = section(load_recipe(path, "smoke", ["classifier.stage_lrs=[0.02, 0.01]"]), "classifier", for_fingerprint=True)
    assert set_["stage_lrs"] == [0.02, 0.01] and {k: v for k, v in set_.items() if k != "stage_lrs"} == plain
    assert section(load_recipe(path, "smoke"), "classifier")["stage_lrs"] == []  # still in stage metadata


def test_stage_lrs_must_be_positive(tmp_path):
    with pytest.raises(RecipeError, match="classifier.stage_lrs"):
        load_recipe(write(tmp_path, TINY), "smoke", ["classifier.stage_lrs=[0.01, 0]"])


def test_fusing_with_a_baseline_that_is_not_run_is_an_error(tmp_path):
    path = write(tmp_path, TINY)
    with pytest.raises(RecipeError, match="'evaluate.fuse_with' is 'fasttext'; expected one of tfidf-lr$"):
        load_recipe(path, overrides=["evaluate.baselines=['majority', 'tfidf-lr']", "evaluate.fuse_with=['fasttext']"])
    cfg = load_recipe(path, overrides=["evaluate.fuse_with=['tfidf-lr']"])
    assert cfg.evaluate.fuse_with == ["tfidf-lr"]


# ---------------------------------------------------------------------------------------------
# ULMFiT's schedule and regularization keys: settable, validated, and fingerprint-neutral at their defaults

ULMFIT_KEYS = [  # (dotted key, default, a non-default value)
    *[(f"{s}.{k}", d, v) for s in ("pretrain", "finetune_lm", "classifier")
      for k, d, v in (("betas", [0.7, 0.99], [0.8, 0.999]), ("cut_frac", 0.1, 0.25), ("ratio", 32.0, 10.0),
                      ("lr_decay", 2.6, 2.0))],
    ("pretrain.discriminative", False, True),
    ("finetune_lm.discriminative", True, False),
    ("model.embed_p", 0.02, 0.1), ("model.input_p", 0.25, 0.3), ("model.weight_p", 0.2, 0.5),
    ("model.hidden_p", 0.15, 0.2), ("model.output_p", 0.1, 0.3),
    ("model.drop_mult", 1.0, 0.5), ("classifier.drop_mult", 0.5, 0.3),
    ("corpus.synthetic.seed", 0, 3),
]


def _toml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


@pytest.mark.parametrize("dotted, default, value", ULMFIT_KEYS, ids=[k for k, _, _ in ULMFIT_KEYS])
def test_ulmfit_keys_are_settable_from_a_recipe_and_with_set(tmp_path, dotted, default, value):
    assert section(Config(), dotted) == default
    by_set = load_recipe(write(tmp_path, TINY), "smoke", [f"{dotted}={_toml(value)}"])
    table, key = dotted.rsplit(".", 1)
    line = f"{key} = {_toml(value)}\n"
    text = TINY.replace("emb_size = 32\n", "emb_size = 32\n" + line) if table == "model" else TINY + f"\n[{table}]\n{line}"
    by_file = load_recipe(write(tmp_path, text, "file.toml"), "smoke")
    for cfg in (by_set, by_file):
        got = section(cfg, dotted)
        assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("classifier.betas=[0.9]", r"'classifier\.betas' is \[0\.9\]; expected two numbers in \[0, 1\)"),
        ("pretrain.betas=[0.9, 1.0]", r"'pretrain\.betas' is \[0\.9, 1\.0\]; expected two numbers in \[0, 1\)"),
        ("finetune_lm.betas=[-0.1, 0.9]", r"'finetune_lm\.betas'.*two numbers in \[0, 1\)"),
        ("classifier.betas=0.9", r"'classifier\.betas' must be a list of float"),
        ("pretrain.betas=['a', 0.9]", r"'pretrain\.betas\[0\]' must be a number"),
        ("classifier.cut_frac=0", r"'classifier\.cut_frac' is 0\.0; expected a number in \(0, 1\)"),
        ("finetune_lm.cut_frac=1", r"'finetune_lm\.cut_frac' is 1\.0; expected a number in \(0, 1\)"),
        ("pretrain.cut_frac='a'", r"'pretrain\.cut_frac' must be a number"),
        ("classifier.ratio=1", r"'classifier\.ratio' is 1\.0; expected a number > 1"),
        ("finetune_lm.ratio=0.5", r"'finetune_lm\.ratio' is 0\.5; expected a number > 1"),
        ("classifier.lr_decay=0.9", r"'classifier\.lr_decay' is 0\.9; expected a number >= 1"),
        ("finetune_lm.lr_decay=true", r"'finetune_lm\.lr_decay' must be a number"),
        ("pretrain.discriminative=1", r"'pretrain\.discriminative' must be true or false"),
        ("model.drop_mult=-0.5", r"'model\.drop_mult' is -0\.5; expected a number >= 0"),
        ("classifier.drop_mult=-1", r"'classifier\.drop_mult' is -1\.0; expected a number >= 0"),
        ("model.embed_p=1", r"'model\.embed_p' is 1\.0; expected a probability in \[0, 1\)"),
        ("model.hidden_p=-0.1", r"'model\.hidden_p' is -0\.1; expected a probability in \[0, 1\)"),
        ("model.input_p=0.6", r"'model\.input_p' is 0\.6; expected a value that stays below 1 times model\.drop_mult \(2\)"),
        ("corpus.synthetic.seed=1.5", r"'corpus\.synthetic\.seed' must be an integer"),
    ],
)
def test_ulmfit_keys_wrong_values_name_file_and_key(tmp_path, override, expected):
    path = write(tmp_path, TINY)
    extra = ["model.drop_mult=2"] if override.startswith("model.input_p") else []
    with pytest.raises(RecipeError, match=expected) as e:
        load_recipe(path, "smoke", [override, *extra])
    assert str(path) in str(e.value)


def test_ulmfit_keys_at_their_defaults_leave_fingerprints_unchanged(tmp_path):
    from ulmfit_multi.pipeline import STAGES
    from ulmfit_multi.stages import compute_fingerprints

    path = write(tmp_path, TINY)
    base = compute_fingerprints(STAGES, load_recipe(path, "smoke"))
    # the default written out explicitly hashes like the key left out (as in runs cached before it existed)
    spelled = [f"{dotted}={_toml(default)}" for dotted, default, _ in ULMFIT_KEYS
               if dotted not in ("model.drop_mult", "classifier.drop_mult")]
    assert compute_fingerprints(STAGES, load_recipe(path, "smoke", spelled)) == base
    for name, keys in [("model", {"emb_size", "hidden_size", "n_layers", "drop_mult", "bptt"}),
                       ("classifier", {"epochs", "batch_size", "lr", "wd", "clip", "drop_mult", "max_len",
                                       "gradual_unfreezing", "class_weights", "subword_sampling",
                                       "max_batches_per_epoch", "checkpoint_minutes", "calibrate"})]:
        assert set(section(load_recipe(path, "smoke"), name, for_fingerprint=True)) == keys  # the keys hashed before
    # set to anything else, a key is hashed: its stage and the stages after it rerun, the ones before do not
    changed = compute_fingerprints(STAGES, load_recipe(path, "smoke", ["classifier.cut_frac=0.2"]))
    assert [s for s in base if changed[s] != base[s]] == ["classifier", "evaluate", "table", "curves"]
    changed = compute_fingerprints(STAGES, load_recipe(path, "smoke", ["finetune_lm.discriminative=false"]))
    assert [s for s in base if changed[s] != base[s]] == ["finetune_lm", "classifier", "evaluate", "table", "curves"]
    changed = compute_fingerprints(STAGES, load_recipe(path, "smoke", ["model.weight_p=0.3"]))
    assert [s for s in base if changed[s] != base[s]] == ["pretrain", "finetune_lm", "classifier", "evaluate", "table",
                                                          "curves"]
    changed = compute_fingerprints(STAGES, load_recipe(path, "smoke", ["corpus.synthetic.seed=1"]))
    assert changed["corpus"] != base["corpus"] and changed["fetch"] == base["fetch"]


def test_fidelity_options_are_recipe_keys_and_validated() -> None:
    from ulmfit_multi.config import load_recipe

    cfg = load_recipe("mr", "smoke")
    assert (cfg.corpus.normalization, cfg.encode.doc_boundary, cfg.finetune_lm.shuffle_docs) == ("shared", "eos", False)
    cfg = load_recipe("mr", "smoke", ['corpus.normalization="legacy"', 'encode.doc_boundary="none"',
                                      "finetune_lm.shuffle_docs=true"])
    assert (cfg.corpus.normalization, cfg.encode.doc_boundary, cfg.finetune_lm.shuffle_docs) == ("legacy", "none", True)
    with pytest.raises(RecipeError, match="corpus.normalization"):
        load_recipe("mr", "smoke", ['corpus.normalization="nfkc"'])
    with pytest.raises(RecipeError, match="encode.doc_boundary"):
        load_recipe("mr", "smoke", ['encode.doc_boundary="bos"'])


def test_shuffle_docs_needs_the_offsets(tmp_path) -> None:
    import numpy as np

    from ulmfit_multi.config import load_recipe
    from ulmfit_multi.jobs import finetune_direction

    cfg = load_recipe("mr", "smoke", ["finetune_lm.shuffle_docs=true"])
    with pytest.raises(ValueError, match="offsets"):
        finetune_direction(cfg, np.arange(5000) % 50, 50, tmp_path / "none.pt", "fwd", tmp_path, device="cpu",
                           progress=False)


@pytest.mark.parametrize("item", ["classifier.alpha=-1", "pretrain.beta=-0.5"])
def test_ar_tar_weights_must_not_be_negative(item) -> None:
    from ulmfit_multi.config import load_recipe

    with pytest.raises(RecipeError, match=item.split("=")[0]):
        load_recipe("mr", "smoke", [item])
