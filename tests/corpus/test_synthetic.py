import dataclasses

import pytest

from ulmfit_multi.corpus.script import script_mix
from ulmfit_multi.config import SyntheticMix
from ulmfit_multi.corpus.synthetic import synthesize, synthesize_files
from ulmfit_multi.errors import RecipeError

SENTS = ["இது ஒரு நல்ல படம்", "நான் நாளை வருவேன்", "அவர் சென்னையில் வசிக்கிறார்", "தமிழ் ஒரு பழமையான மொழி"]


def corpus(n_docs=60):
    lines = []
    for d in range(n_docs):
        lines += [SENTS[(d + i) % 4] for i in range(3)] + [""]
    return lines


def test_deterministic_for_seed():
    cfg = SyntheticMix(romanized_share=0.5, english_mix=0.2, token_switch_prob=0.2, seed=3)
    a = list(synthesize(corpus(), "ta", cfg))
    assert a == list(synthesize(corpus(), "ta", cfg))
    assert a != list(synthesize(corpus(), "ta", SyntheticMix(romanized_share=0.5, english_mix=0.2,
                                                              token_switch_prob=0.2, seed=4)))


@pytest.mark.parametrize("share", [0.0, 0.3, 0.7, 1.0])
def test_share_near_configured(share):
    lines = [ln for ln in corpus(200) if ln]
    out = list(synthesize(lines, "ta", SyntheticMix(romanized_share=share)))
    latin = sum(script_mix([o]).get("Latn", 0) == 1 for o in out) / len(out)
    assert abs(latin - share) < 0.05


def test_blank_lines_kept(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(corpus(3)[:-1]) + "\n", encoding="utf-8")  # no trailing blank line
    b.write_text("\n".join(corpus(2)), encoding="utf-8")
    out = tmp_path / "out" / "syn.txt"
    stats = synthesize_files([a, b], out, "ta", SyntheticMix(romanized_share=0.6, seed=1))
    got = out.read_text(encoding="utf-8").split("\n")[:-1]
    want = corpus(3) + corpus(2)[:-1]
    assert [g == "" for g in got] == [w == "" for w in want]
    assert stats["lines_in"] == stats["lines_out"] == len(want)
    assert stats["sentences"] == 15 and 0 <= stats["romanized_share"] <= 1
    assert stats["script_mix_before"]["Taml"] == 1.0
    assert stats["script_mix_after"]["Latn"] == pytest.approx(stats["romanized_share"], abs=0.2)
    assert not list(out.parent.glob(".*.tmp"))


def test_english_mixing_from_source(tmp_path):
    en = tmp_path / "en.txt"
    en.write_text("zebra quokka\n\nquokka zebra\n", encoding="utf-8")
    out = tmp_path / "syn.txt"
    cfg = SyntheticMix(romanized_share=0.0, english_mix=0.5, seed=0)
    synthesize_files_stats = synthesize_files([_write(tmp_path, corpus(20))], out, "ta", cfg, english_files=[en])
    text = out.read_text(encoding="utf-8")
    assert "zebra" in text or "quokka" in text
    assert synthesize_files_stats["english_lines"] == 2
    latin_tokens = script_mix(text.splitlines()).get("Latn", 0)
    assert 0.2 < latin_tokens < 0.5  # about one inserted word per two native tokens


def test_builtin_english_and_token_switching():
    cfg = SyntheticMix(romanized_share=0.0, english_mix=0.3, seed=0)
    out = list(synthesize(SENTS * 20, "ta", cfg))
    assert all(o.startswith(s.split()[0]) for o, s in zip(out, SENTS * 20))
    assert script_mix(out)["Latn"] > 0.1
    switched = list(synthesize(SENTS * 20, "ta", SyntheticMix(romanized_share=0.0, token_switch_prob=0.5)))
    mixed = [o for o in switched if 0 < script_mix([o]).get("Latn", 0) < 1]
    assert len(mixed) > 20  # intra-sentence mixing


def test_the_corpus_synthetic_table_of_a_recipe_is_the_config():
    from ulmfit_multi.config import load_recipe

    mix = load_recipe("ta", "smoke", ["corpus.synthetic.seed=7", "corpus.synthetic.romanized_share=0.4"]).corpus.synthetic
    assert isinstance(mix, SyntheticMix) and (mix.seed, mix.romanized_share) == (7, 0.4)
    out = list(synthesize(corpus(), "ta", mix))
    assert out == list(synthesize(corpus(), "ta", mix))
    assert out != list(synthesize(corpus(), "ta", dataclasses.replace(mix, seed=0)))  # the seed reaches the generator


def test_bad_config():
    with pytest.raises(RecipeError):
        list(synthesize(["x"], "ta", SyntheticMix(romanized_share=1.5)))
    with pytest.raises(RecipeError):
        list(synthesize(["x"], "ta", SyntheticMix(scheme="hk")))


def _write(tmp_path, lines):
    p = tmp_path / "in.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p
