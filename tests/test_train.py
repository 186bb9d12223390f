"""Training loops: learning, schedules seen by the optimizer, artifacts, exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ulmfit_multi.config import ClassifierConfig, LMSection, ModelSection, load_recipe
from ulmfit_multi.model import Classifier, LanguageModel, build_classifier, build_language_model, classifier_layer_groups
from ulmfit_multi.schedule import discriminative_lrs, stlr
from ulmfit_multi.train import evaluate_lm, train_lm
from ulmfit_multi.train_classifier import predict_proba, train_classifier

torch.set_num_threads(1)


class FakeLMStream:
    """Stand-in for tokens.LMStream: bs contiguous rows, AWD-LSTM variable bptt seeded by epoch."""

    def __init__(self, tokens: torch.Tensor, bs: int = 8, bptt: int = 12, seed: int = 0, variable: bool = True):
        n = tokens.numel() // bs
        self.data = tokens[: n * bs].view(bs, n)
        self.bptt, self.seed, self.variable = bptt, seed, variable

    def _lens(self, epoch: int) -> list[int]:
        rng = np.random.default_rng(self.seed * 1000 + epoch)
        lens, i, L = [], 0, self.data.size(1) - 1
        while i < L:
            b = self.bptt if (not self.variable or rng.random() < 0.95) else self.bptt / 2
            sl = max(3, int(rng.normal(b, 2))) if self.variable else self.bptt
            sl = min(sl, L - i)
            lens.append(sl)
            i += sl
        return lens

    def batches(self, epoch: int, start: int = 0):
        i = 0
        for k, sl in enumerate(self._lens(epoch)):
            if k >= start:
                yield self.data[:, i : i + sl], self.data[:, i + 1 : i + 1 + sl]
            i += sl

    def num_batches(self, epoch: int) -> int:
        return len(self._lens(epoch))


class FakeClassifierBatches:
    """Stand-in for tokens.ClassifierBatches: right-padded, shuffled per epoch (seeded), idx = doc index."""

    def __init__(self, docs: list[list[int]], labels: list[int] | None, bs: int = 4, shuffle: bool = True, pad_id: int = 0):
        self.docs, self.labels, self.bs, self.shuffle, self.pad_id = docs, labels, bs, shuffle, pad_id

    def __len__(self) -> int:
        return math.ceil(len(self.docs) / self.bs)

    def batches(self, epoch: int):
        order = np.random.default_rng(epoch).permutation(len(self.docs)) if self.shuffle else np.arange(len(self.docs))
        for s in range(0, len(order), self.bs):
            idx = order[s : s + self.bs]
            lens = torch.tensor([len(self.docs[i]) for i in idx])
            x = torch.full((len(idx), int(lens.max())), self.pad_id, dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, : lens[r]] = torch.tensor(self.docs[i])
            y = torch.tensor([self.labels[i] for i in idx]) if self.labels is not None else None
            yield x, lens, y, torch.as_tensor(idx)


def grammar_tokens(n_tokens: int, seed: int, vocab: int = 50) -> torch.Tensor:
    """Text from a tiny grammar: 8 fixed 'phrases' (ids 10..49) joined by random separators (1..9)."""
    rng = np.random.default_rng(123)  # the grammar itself is fixed; `seed` only draws the text
    phrases = [rng.integers(10, vocab, size=rng.integers(4, 8)).tolist() for _ in range(8)]
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < n_tokens:
        out += phrases[rng.integers(len(phrases))] + [int(rng.integers(1, 10))]
    return torch.tensor(out[:n_tokens])


def tiny_model(**kw) -> ModelSection:
    return ModelSection(**{"emb_size": 16, "hidden_size": 32, "n_layers": 2, **kw})


def tiny_lm(**kw) -> LanguageModel:
    """A 2-layer LM over the grammar's 50 ids."""
    return build_language_model(tiny_model(**kw), 50)


def tiny_clf(**kw) -> Classifier:
    """A 2-class classifier over clf_data's 30 ids, in chunks of 8 tokens."""
    return build_classifier(tiny_model(bptt=8, **kw), 30, 2, max_len=16)


def test_lm_learns_structure_beyond_unigram(tmp_path):
    torch.manual_seed(0)
    train, valid = grammar_tokens(12_000, seed=1), grammar_tokens(3_000, seed=2)
    counts = torch.bincount(train, minlength=50).float() + 1
    probs = counts / counts.sum()
    unigram_ppl = math.exp(-probs[valid].log().mean().item())
    model = tiny_lm(drop_mult=0.3)
    cfg = LMSection(epochs=3, lr=3e-2, checkpoint_minutes=1e9)
    s = train_lm(model, FakeLMStream(train, bs=16, bptt=20), FakeLMStream(valid, bs=16, bptt=20), cfg, tmp_path, progress=False)
    assert s["valid_ppl"] < unigram_ppl / 5, (s["valid_ppl"], unigram_ppl)
    assert s["train_tokens"] > 0 and s["tokens_per_second"] > 0
    assert math.isclose(evaluate_lm(model, FakeLMStream(valid, bs=16, bptt=20)), s["valid_loss"], rel_tol=1e-5)


def test_lm_artifacts_and_history(tmp_path):
    model = tiny_lm()
    cfg = LMSection(epochs=2, checkpoint_minutes=1e9, max_batches_per_epoch=5)
    s = train_lm(model, FakeLMStream(grammar_tokens(3000, 1)), FakeLMStream(grammar_tokens(600, 2)), cfg, tmp_path, progress=False)
    for name in ("model.pt", "history.jsonl", "learning_curve.png", "ckpt/last.pt"):
        assert (tmp_path / name).exists(), name
    recs = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1] and epochs[-1]["step"] == 10 == s["steps"]
    assert all({"train_loss", "valid_loss", "valid_ppl", "tokens_per_second", "lr"} <= r.keys() for r in epochs)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    tiny_lm().load_state_dict(state)


def test_lm_lr_schedule_stlr_bptt_scaled_and_discriminative(tmp_path):
    seen = []
    stream = FakeLMStream(grammar_tokens(4000, 1), bs=4, bptt=12)
    cfg = LMSection(epochs=1, lr=1e-2, discriminative=True, checkpoint_minutes=1e9)
    n = stream.num_batches(0)
    lens = stream._lens(0)

    def hook(info):
        seen.append([g["lr"] for g in info["optimizer"].param_groups])

    train_lm(tiny_lm(), stream, None, cfg, tmp_path, progress=False, on_step=hook)
    base = discriminative_lrs(1e-2, 3)
    for t, lrs in enumerate(seen):
        expect = [b * stlr(t, n, 1.0) * lens[t] / 12 for b in base]  # lr scaled by seq_len / the stream's bptt
        assert lrs == pytest.approx(expect, rel=1e-9)


SCHEDULE_SETS = ["cut_frac=0.3", "ratio=8", "lr_decay=2", "betas=[0.8, 0.95]"]


@pytest.mark.parametrize("section, sets, flat", [
    ("pretrain", [], True),  # pretraining: every group at lr
    ("finetune_lm", [], False),  # fine-tuning: discriminative, lr / 2.6**k
    ("finetune_lm", SCHEDULE_SETS, False),
    ("finetune_lm", ["discriminative=false"], True),
    ("pretrain", ["discriminative=true", *SCHEDULE_SETS], False),
])
def test_lm_schedule_keys_set_in_a_recipe_reach_the_optimizer(tmp_path, section, sets, flat):
    cfg = load_recipe("mr", "smoke", [f"{section}.{item}" for item in ["epochs=1", "lr=0.01", *sets]])
    lm = getattr(cfg, section)
    stream = FakeLMStream(grammar_tokens(2000, 1), bs=4, bptt=12)
    n, lens, seen = stream.num_batches(0), stream._lens(0), []
    train_lm(tiny_lm(), stream, None, lm, tmp_path, progress=False,
             on_step=lambda info: seen.append([(g["lr"], g["betas"]) for g in info["optimizer"].param_groups]))
    base = [0.01] * 3 if flat else [0.01 / lm.lr_decay**2, 0.01 / lm.lr_decay, 0.01]
    assert len(seen) == n
    for t, groups in enumerate(seen):
        expect = [b * stlr(t, n, 1.0, lm.cut_frac, lm.ratio) * lens[t] / 12 for b in base]
        assert [lr for lr, _ in groups] == pytest.approx(expect, rel=1e-9)
        assert all(betas == tuple(lm.betas) for _, betas in groups)
    if sets == SCHEDULE_SETS:
        assert (lm.cut_frac, lm.ratio, lm.lr_decay, lm.betas) == (0.3, 8.0, 2.0, [0.8, 0.95])


def _interrupt_at(k):
    def hook(info):
        if info["step"] == k:
            raise KeyboardInterrupt

    return hook


def test_lm_resume_equals_uninterrupted(tmp_path):
    make = lambda: FakeLMStream(grammar_tokens(3000, 1), bs=4, bptt=12)  # noqa: E731
    valid = FakeLMStream(grammar_tokens(500, 2), bs=4, bptt=12)
    cfg = LMSection(epochs=2, checkpoint_minutes=0, max_batches_per_epoch=12)
    torch.manual_seed(5)
    ref = tiny_lm()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    s_ref = train_lm(ref, make(), valid, cfg, tmp_path / "a", seed=3, progress=False)

    def fresh():
        m = tiny_lm()
        m.load_state_dict(init)
        return m

    with pytest.raises(KeyboardInterrupt):  # mid-epoch 0, hidden state carried: must be restored
        train_lm(fresh(), make(), valid, cfg, tmp_path / "b", seed=3, progress=False, on_step=_interrupt_at(7))
    with pytest.raises(KeyboardInterrupt):  # mid-epoch 1
        train_lm(fresh(), make(), valid, cfg, tmp_path / "b", seed=3, progress=False, on_step=_interrupt_at(17))
    s_res = train_lm(fresh(), make(), valid, cfg, tmp_path / "b", seed=3, progress=False)
    assert s_res["valid_loss"] == pytest.approx(s_ref["valid_loss"], rel=1e-6)
    assert s_res["steps"] == s_ref["steps"] == 24
    for (k, a), b in zip(ref.state_dict().items(), torch.load(tmp_path / "b" / "model.pt").values()):
        torch.testing.assert_close(a, b, msg=k)
    ha = [json.loads(x) for x in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    hb = [json.loads(x) for x in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in ha] == pytest.approx([r["train_loss"] for r in hb], rel=1e-6)


def test_lm_keep_best_keeps_the_epoch_of_lowest_valid_loss(tmp_path, monkeypatch):
    """keep_best: model.pt holds the weights after the epoch with the lowest valid loss, also across a resume."""
    import ulmfit_multi.train as train_mod

    losses, states = [3.0, 1.0, 2.0], []  # the second epoch (epoch 1) is best

    def fake_eval(model, stream, **kw):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return losses[len(states) - 1]

    monkeypatch.setattr(train_mod, "evaluate_lm", fake_eval)
    valid = FakeLMStream(grammar_tokens(500, 2), bs=4, bptt=12)
    cfg = LMSection(epochs=3, checkpoint_minutes=0, max_batches_per_epoch=6, keep_best=True)
    make = lambda: FakeLMStream(grammar_tokens(3000, 1), bs=4, bptt=12)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):  # stop in the last epoch, after the best one was recorded
        train_lm(tiny_lm(), make(), valid, cfg, tmp_path, seed=0, progress=False,
                 on_step=_interrupt_at(15))
    s = train_lm(tiny_lm(), make(), valid, cfg, tmp_path, seed=0, progress=False)
    assert s["kept_epoch"] == 1 and s["valid_loss"] == 1.0 and s["valid_ppl"] == pytest.approx(math.e)
    assert s["last_valid_ppl"] == pytest.approx(math.exp(2.0))
    kept = torch.load(tmp_path / "model.pt")
    for k, v in states[1].items():
        torch.testing.assert_close(kept[k], v, msg=k)
    assert any(not torch.equal(kept[k], v) for k, v in states[2].items())  # not the last epoch's weights

    states.clear()  # without keep_best the last epoch is kept, as before
    s = train_lm(tiny_lm(), make(), valid, LMSection(epochs=3, max_batches_per_epoch=6),
                 tmp_path / "last", seed=0, progress=False)
    assert s["kept_epoch"] == 2 and s["valid_loss"] == 2.0


def clf_data(n: int, seed: int, vocab: int = 30):
    """Label = whether token 5 occurs; lengths 3..25 so batches mix padding."""
    rng = np.random.default_rng(seed)
    docs, labels = [], []
    for _ in range(n):
        doc = rng.integers(6, vocab, size=rng.integers(3, 26)).tolist()
        lab = int(rng.random() < 0.5)
        if lab:
            doc[rng.integers(len(doc))] = 5
        docs.append(doc)
        labels.append(lab)
    return docs, labels


def test_classifier_schedule_seen_by_optimizer(tmp_path):
    docs, labels = clf_data(40, 0)
    train = FakeClassifierBatches(docs, labels, bs=4)
    model = tiny_clf()
    groups = classifier_layer_groups(model)  # [emb, rnn0, rnn1, head]
    cfg = ClassifierConfig(epochs=5, lr=1e-2, checkpoint_minutes=1e9)
    seen = []

    def hook(info):
        opt = info["optimizer"]
        trainable = [all(p.requires_grad for p in g) for g in info["groups"]]
        assert all(all(p.requires_grad for p in g) or not any(p.requires_grad for p in g) for g in info["groups"])
        seen.append((info["epoch"], info["batch"], trainable, [g["lr"] for g in opt.param_groups]))

    s = train_classifier(model, train, None, cfg, tmp_path, n_classes=2, progress=False, on_step=hook)
    assert s["plan"] == [1, 2, 3, 4, 4]
    base = [1e-2 / 2.6**3, 1e-2 / 2.6**2, 1e-2 / 2.6, 1e-2]
    for epoch, batch, trainable, lrs in seen:
        k = s["plan"][epoch]
        assert trainable == [i >= 4 - k for i in range(4)], (epoch, trainable)
        # fresh STLR cycle per stage: epochs 3 and 4 (all groups) form one stage of 20 steps
        t, total = (batch - 1, 10) if epoch < 3 else ((epoch - 3) * 10 + batch - 1, 20)
        assert lrs == pytest.approx([b * stlr(t, total, 1.0) for b in base], rel=1e-9)
    assert len(seen) == 50
    # frozen groups really don't move: the embedding only trains in the last stage
    assert len(groups) == 4


@pytest.mark.parametrize("sets", [[], SCHEDULE_SETS])
def test_classifier_schedule_keys_set_in_a_recipe_reach_the_optimizer(tmp_path, sets):
    docs, labels = clf_data(40, 0)
    c = load_recipe("mr", "smoke", [f"classifier.{item}" for item in ["epochs=3", "lr=0.01", *sets]]).classifier
    seen = []
    s = train_classifier(tiny_clf(), FakeClassifierBatches(docs, labels, bs=4), None, c, tmp_path, n_classes=2,
                         progress=False, on_step=lambda info: seen.append(
                             (info["epoch"], info["batch"], [(g["lr"], g["betas"]) for g in info["optimizer"].param_groups])))
    assert s["plan"] == [1, 2, 4] and len(seen) == 30
    base = [0.01 / c.lr_decay**k for k in (3, 2, 1, 0)]
    for epoch, batch, groups in seen:  # one STLR cycle of 10 steps per unfreezing stage
        expect = [b * stlr(batch - 1, 10, 1.0, c.cut_frac, c.ratio) for b in base]
        assert [lr for lr, _ in groups] == pytest.approx(expect, rel=1e-9), epoch
        assert all(betas == tuple(c.betas) for _, betas in groups)
    if sets:
        assert (c.cut_frac, c.ratio, c.lr_decay, c.betas) == (0.3, 8.0, 2.0, [0.8, 0.95])


def test_classifier_stage_lrs_set_each_stages_peak(tmp_path):
    docs, labels = clf_data(40, 0)
    model = tiny_clf()
    cfg = ClassifierConfig(epochs=5, lr=1e-2, stage_lrs=[2e-2, 1e-2, 5e-3], checkpoint_minutes=1e9)
    seen = []
    train_classifier(model, FakeClassifierBatches(docs, labels, bs=4), None, cfg, tmp_path, n_classes=2,
                     progress=False, on_step=lambda info: seen.append((info["epoch"], info["batch"],
                                                                       info["optimizer"].param_groups[-1]["lr"],
                                                                       info["optimizer"].param_groups[0]["lr"])))
    # plan [1, 2, 3, 4, 4]: stages get 2e-2, 1e-2, 5e-3 and the fourth (epochs 3 and 4) repeats 5e-3
    peaks = {e: max(top for ep, _, top, _ in seen if ep == e) for e in range(5)}
    assert peaks[0] == pytest.approx(2e-2) and peaks[1] == pytest.approx(1e-2)
    assert peaks[2] == pytest.approx(5e-3) and max(peaks[3], peaks[4]) == pytest.approx(5e-3)
    for _, _, top, bottom in seen:  # discriminative factor unchanged within each stage
        assert bottom == pytest.approx(top / 2.6**3)


def test_frozen_groups_unchanged(tmp_path):
    docs, labels = clf_data(24, 1)
    model = tiny_clf()
    emb0 = model.encoder.module.encoder.weight.detach().clone()
    head0 = model.head.layers[2].weight.detach().clone()
    checked = []

    def hook(info):  # epoch 0 trains the head only (no weight decay on frozen groups either)
        if info["epoch"] == 0:
            assert torch.equal(model.encoder.module.encoder.weight, emb0)
            assert not torch.equal(model.head.layers[2].weight, head0)
            checked.append(info["step"])

    cfg = ClassifierConfig(epochs=2, checkpoint_minutes=1e9)
    train_classifier(model, FakeClassifierBatches(docs, labels), None, cfg, tmp_path, n_classes=2, progress=False, on_step=hook)
    assert checked == list(range(1, 7))
    assert not torch.equal(model.encoder.module.encoder.weight, emb0)  # last epoch: all groups


def test_classifier_learns_and_predicts_in_original_order(tmp_path):
    torch.manual_seed(0)
    docs, labels = clf_data(160, 0)
    vdocs, vlabels = clf_data(60, 1)
    model = tiny_clf(drop_mult=0.2)
    cfg = ClassifierConfig(epochs=10, lr=5e-2, checkpoint_minutes=1e9, gradual_unfreezing=False, class_weights=True)
    s = train_classifier(model, FakeClassifierBatches(docs, labels, bs=16), FakeClassifierBatches(vdocs, vlabels, bs=16, shuffle=False),
                         cfg, tmp_path, n_classes=2, progress=False)  # fmt: skip
    assert s["valid_accuracy"] > 0.85, s
    shuffled = FakeClassifierBatches(vdocs, None, bs=7, shuffle=True)
    p = predict_proba(model, shuffled)
    p_in_order = predict_proba(model, FakeClassifierBatches(vdocs, None, bs=60, shuffle=False))
    assert p.shape == (60, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(p, p_in_order, atol=1e-5)
    assert (p.argmax(1) == np.array(vlabels)).mean() == pytest.approx(s["valid_accuracy"])
    assert (tmp_path / "learning_curve.png").exists() and (tmp_path / "model.pt").exists()


def test_classifier_resume_equals_uninterrupted(tmp_path):
    docs, labels = clf_data(32, 0)
    vdocs, vlabels = clf_data(12, 1)
    cfg = ClassifierConfig(epochs=3, checkpoint_minutes=0)
    torch.manual_seed(1)
    ref = tiny_clf()
    init = {k: v.clone() for k, v in ref.state_dict().items()}

    def fresh():
        m = tiny_clf()
        m.load_state_dict(init)
        return m

    run = lambda m, d, **kw: train_classifier(  # noqa: E731
        m, FakeClassifierBatches(docs, labels), FakeClassifierBatches(vdocs, vlabels, shuffle=False), cfg, tmp_path / d,
        n_classes=2, seed=4, progress=False, **kw)  # fmt: skip
    s_ref = run(ref, "a")
    with pytest.raises(KeyboardInterrupt):
        run(fresh(), "b", on_step=_interrupt_at(13))  # mid-epoch 1 (8 steps per epoch)
    res = fresh()
    s_res = run(res, "b")
    assert s_res["valid_accuracy"] == s_ref["valid_accuracy"] and s_res["best_epoch"] == s_ref["best_epoch"]
    for (k, a), b in zip(ref.state_dict().items(), res.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_classifier_keeps_the_epoch_with_the_best_task_score(tmp_path):
    docs, labels = clf_data(32, 0)
    vdocs, vlabels = clf_data(12, 1)
    scores = iter([0.2, 0.9, 0.4])  # epoch 1 is best by the task metric, whatever its accuracy
    seen = []

    def score(y, pred):
        assert len(y) == len(pred) == 12 and sorted(y.tolist()) == sorted(vlabels)
        seen.append(1)
        return next(scores)

    model = tiny_clf()
    cfg = ClassifierConfig(epochs=3, checkpoint_minutes=1e9)
    s = train_classifier(model, FakeClassifierBatches(docs, labels), FakeClassifierBatches(vdocs, vlabels, shuffle=False),
                         cfg, tmp_path, n_classes=2, progress=False, score=score)  # fmt: skip
    assert len(seen) == 3
    assert s["best_epoch"] == 1 and s["valid_score"] == 0.9
    history = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["valid_score"] for r in history if r["kind"] == "epoch"] == [0.2, 0.9, 0.4]


def test_on_epoch_gets_each_finished_epoch_with_epochs_total(tmp_path):
    lm_seen, clf_seen = [], []
    cfg = LMSection(epochs=3, checkpoint_minutes=1e9, max_batches_per_epoch=4)
    s = train_lm(tiny_lm(), FakeLMStream(grammar_tokens(3000, 1)),
                 FakeLMStream(grammar_tokens(600, 2)), cfg, tmp_path / "lm", progress=False, on_epoch=lm_seen.append)
    assert [r["epoch"] for r in lm_seen] == [0, 1, 2] and all(r["epochs_total"] == 3 for r in lm_seen)
    history = [json.loads(x) for x in (tmp_path / "lm" / "history.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "epochs_total"} for r in lm_seen] == [
        r for r in history if r["kind"] == "epoch"]  # the logged epoch record, plus epochs_total
    assert {"tokens_per_second", "valid_ppl", "train_loss"} <= lm_seen[-1].keys()
    assert lm_seen[-1]["valid_ppl"] == pytest.approx(s["valid_ppl"])
    assert "epochs_total" not in history[-1]  # the callback got a copy

    docs, labels = clf_data(24, 0)
    vdocs, vlabels = clf_data(8, 1)
    train_classifier(tiny_clf(), FakeClassifierBatches(docs, labels),
                     FakeClassifierBatches(vdocs, vlabels, shuffle=False),
                     ClassifierConfig(epochs=2, checkpoint_minutes=1e9), tmp_path / "clf", n_classes=2,
                     progress=False, on_epoch=clf_seen.append)
    assert [(r["epoch"], r["epochs_total"]) for r in clf_seen] == [(0, 2), (1, 2)]
    assert {"valid_score", "valid_accuracy", "trainable_groups"} <= clf_seen[0].keys()


def test_on_epoch_after_a_resume_reports_only_the_epochs_it_finishes(tmp_path):
    seen = []
    cfg = LMSection(epochs=3, checkpoint_minutes=0, max_batches_per_epoch=4)
    make = lambda: FakeLMStream(grammar_tokens(3000, 1), bs=4, bptt=12)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):  # in epoch 1, after epoch 0 finished
        train_lm(tiny_lm(), make(), None, cfg, tmp_path, progress=False,
                 on_step=_interrupt_at(6), on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [0]
    train_lm(tiny_lm(), make(), None, cfg, tmp_path, progress=False, on_epoch=seen.append)
    assert [(r["epoch"], r["epochs_total"]) for r in seen] == [(0, 3), (1, 3), (2, 3)]


def test_encoder_ar_tar_counts_real_tokens_only() -> None:
    from ulmfit_multi.train_classifier import encoder_ar_tar

    out = torch.zeros(2, 3, 4)
    out[0, 0], out[0, 1] = 1.0, 3.0  # row 0: two real tokens; row 1: one real token, then padding
    out[1, 0], out[1, 2] = 2.0, 100.0  # the padding position's value must not count
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert float(encoder_ar_tar(out, mask, 0.0, 0.0)) == 0.0
    ar = float(encoder_ar_tar(out, mask, 1.0, 0.0))
    assert ar == pytest.approx((4 * 1 + 4 * 9 + 4 * 4) / (3 * 4))  # mean square over 3 real tokens x 4 dims
    tar = float(encoder_ar_tar(out, mask, 0.0, 1.0))
    assert tar == pytest.approx(4 * (3 - 1) ** 2 / (1 * 4))  # one pair of consecutive real tokens


def test_classifier_ar_tar_set_in_the_recipe_reach_the_loss(tmp_path):
    docs, labels = clf_data(48, 0)

    def first_loss(**kw) -> float:
        torch.manual_seed(0)
        cfg = ClassifierConfig(epochs=1, lr=1e-2, checkpoint_minutes=1e9, gradual_unfreezing=False, **kw)
        out = tmp_path / "_".join(f"{k}{v}" for k, v in kw.items())
        train_classifier(tiny_clf(), FakeClassifierBatches(docs, labels, bs=16, shuffle=False), None, cfg, out,
                         n_classes=2, progress=False)
        return next(json.loads(l) for l in (out / "history.jsonl").read_text().splitlines()
                    if json.loads(l)["kind"] == "step")["train_loss"]

    plain = first_loss()
    assert first_loss(alpha=0.0, beta=0.0) == plain
    assert first_loss(alpha=2.0, beta=1.0) > plain  # the regularizer adds to the same first-batch loss
