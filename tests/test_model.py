"""AWD-LSTM and ULMFiT classifier: regularizers, shapes, state, groups, pooling, vocab transfer."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from ulmfit_multi.model import (
    CLASSIFIER_DROPOUTS,
    AWDLSTM,
    EmbeddingDropout,
    RNNDropout,
    WeightDropout,
    build_classifier,
    build_language_model,
    classifier_layer_groups,
    decoder_cross_entropy,
    dropout_mask,
    lm_layer_groups,
    load_encoder_into_classifier,
    masked_concat_pool,
)
from ulmfit_multi.config import ModelSection

torch.set_num_threads(1)


V = 40  # vocabulary size


def cfg(**kw) -> ModelSection:
    return ModelSection(**{"emb_size": 8, "hidden_size": 12, "n_layers": 3, **kw})


def _is_mask(t: torch.Tensor, p: float) -> bool:
    vals = torch.unique(t)
    return len(vals) == 2 and vals[0] == 0 and abs(vals[1].item() - 1 / (1 - p)) < 1e-6


def test_dropout_mask_values():
    torch.manual_seed(0)
    m = dropout_mask(torch.zeros(1), (200, 50), 0.3)
    assert m.shape == (200, 50) and _is_mask(m, 0.3)
    assert 0.25 < (m == 0).float().mean() < 0.35


def test_rnn_dropout_constant_along_sequence():
    dp = RNNDropout(0.5)
    x = torch.ones(6, 9, 5)
    y = dp(x)
    assert _is_mask(y, 0.5)
    assert torch.equal(y, y[:, :1].expand_as(y))  # same mask at every time step
    dp.eval()
    assert torch.equal(dp(x), x)


def test_weight_dropout_fused_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(10, 20, 1, batch_first=True)
    wd = WeightDropout(lstm, 0.5)
    raw = lstm.weight_hh_l0.detach().clone()
    dropped = wd.dropped_weights()["weight_hh_l0"]
    frac = (dropped == 0).float().mean().item()
    assert 0.4 < frac < 0.6
    nz = dropped != 0
    torch.testing.assert_close(dropped[nz], raw[nz] * 2)
    x = torch.randn(3, 7, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no non-contiguous-weights warning, no deprecation noise
        out, _ = wd(x)
        out.sum().backward()
    assert torch.equal(lstm.weight_hh_l0.detach(), raw)  # raw weight kept as the Parameter
    g = lstm.weight_hh_l0.grad
    assert g is not None and g.abs().sum() > 0
    assert [n for n, _ in wd.named_parameters()].count("module.weight_hh_l0") == 1
    wd.train()
    o1, o2 = wd(x)[0], wd(x)[0]
    assert not torch.allclose(o1, o2)  # a fresh DropConnect sample per forward
    wd.eval()
    torch.testing.assert_close(wd(x)[0], lstm(x)[0])
    torch.testing.assert_close(wd(x)[0], wd(x)[0])


def test_weight_dropout_zero_grad_where_dropped():
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 6, 1, batch_first=True)
    wd = WeightDropout(lstm, 0.5)
    x = torch.randn(2, 5, 4)
    torch.manual_seed(7)
    mask_w = wd.dropped_weights()["weight_hh_l0"]
    torch.manual_seed(7)
    out, _ = wd(x)  # same RNG draw -> same mask
    out.sum().backward()
    assert torch.all(lstm.weight_hh_l0.grad[mask_w == 0] == 0)


def test_embedding_dropout_whole_rows():
    torch.manual_seed(0)
    emb = nn.Embedding(100, 6)
    ed = EmbeddingDropout(emb, 0.5)
    words = torch.arange(100)[None]
    out = ed(words)[0]  # (100, 6)
    dropped = (out == 0).all(1)
    assert 20 < dropped.sum() < 80
    torch.testing.assert_close(out[~dropped], emb.weight[~dropped] * 2)
    ed.eval()
    torch.testing.assert_close(ed(words)[0], emb.weight)


def _decoder_case(vocab: int, n: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, 16, generator=g, dtype=dtype)
    w = torch.randn(vocab, 16, generator=g, dtype=dtype) * 0.3
    b = torch.randn(vocab, generator=g, dtype=dtype) * 0.1
    return [t.requires_grad_() for t in (h, w, b)], torch.randint(0, vocab, (n,), generator=g)


def _value_and_grads(fn, tensors):
    loss = fn(*tensors)
    loss.backward()
    out = [loss.detach()] + [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


@pytest.mark.parametrize("vocab", [50, 30000])  # one chunk; many chunks of rows (2**19 // 30000 = 17 rows)
def test_decoder_cross_entropy_matches_logits_then_cross_entropy(vocab):
    tensors, y = _decoder_case(vocab, 100, torch.float64)  # float64: equal up to summation order
    ours = _value_and_grads(lambda h, w, b: decoder_cross_entropy(h, w, b, y), tensors)
    ref = _value_and_grads(lambda h, w, b: nn.functional.cross_entropy(h @ w.t() + b, y, reduction="sum"), tensors)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r)


def test_decoder_cross_entropy_under_bf16_autocast_matches_the_autocast_reference():
    tensors, y = _decoder_case(30000, 100)

    def ref(h, w, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = nn.functional.linear(h, w, b)
        return nn.functional.cross_entropy(logits.float(), y, reduction="sum")

    def ours(h, w, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return decoder_cross_entropy(h, w, b, y)

    got, want = _value_and_grads(ours, tensors), _value_and_grads(ref, tensors)
    assert got[0].dtype == torch.float32 and all(g.dtype == torch.float32 for g in got[1:])
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-3)
    for a, r in zip(got[1:], want[1:]):  # both products in bf16 with fp32 accumulation
        torch.testing.assert_close(a, r, rtol=2e-2, atol=2e-3)


def test_lm_loss_from_targets_equals_the_cross_entropy_of_its_logits():
    lm = build_language_model(cfg(), V).eval()
    x, y = torch.randint(0, V, (4, 7)), torch.randint(0, V, (4, 7))
    lm.reset()
    out = lm(x, y)
    assert out.logits is None and out.raw.shape == (4, 7, 8)
    lm.reset()
    logits = lm(x).logits
    want = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
    torch.testing.assert_close(out.loss, want)


def test_lm_shapes_tying_eval_deterministic():
    lm = build_language_model(cfg(), V)
    assert lm.decoder.decoder.weight is lm.encoder.encoder.weight
    x = torch.randint(0, 40, (4, 7))
    out = lm(x)
    assert out.logits.shape == (4, 7, 40) and out.raw.shape == out.dropped.shape == (4, 7, 8)
    assert [r.module.hidden_size for r in lm.encoder.rnns] == [12, 12, 8]
    lm.eval()
    lm.reset()
    a = lm(x).logits
    lm.reset()
    torch.testing.assert_close(lm(x).logits, a)


def test_hidden_state_carried_detached_and_reset():
    torch.manual_seed(0)
    enc = AWDLSTM(cfg(), V)
    enc.eval()
    x = torch.randint(0, 40, (2, 10))
    full, _, _ = enc(x)
    enc.reset()
    a, _, _ = enc(x[:, :6])
    assert all(not h.requires_grad and not c.requires_grad for h, c in enc.hidden)
    b, _, _ = enc(x[:, 6:])  # continues from the carried state
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    enc.reset()
    assert enc.hidden is None
    c, _, _ = enc(x[:, 6:])
    assert not torch.allclose(c, b)


def test_training_backward_does_not_reach_previous_batch():
    enc = AWDLSTM(cfg(), V)
    x = torch.randint(0, 40, (2, 5))
    enc(x)[0].sum().backward()
    enc(x)[0].sum().backward()  # would raise "backward through the graph a second time" if not detached


def test_batch_size_change():
    enc = AWDLSTM(cfg(), V)
    enc.eval()
    enc(torch.randint(0, 40, (4, 5)))
    h4 = [h.clone() for h, _ in enc.hidden]
    out, _, _ = enc(torch.randint(0, 40, (2, 5)))
    assert out.shape == (2, 5, 8) and enc.hidden[0][0].shape == (1, 2, 12)
    torch.testing.assert_close(enc.hidden[0][0], enc.hidden[0][0])
    enc.reset()
    enc(torch.randint(0, 40, (4, 5)))
    out, _, _ = enc(torch.randint(0, 40, (6, 5)))
    assert out.shape == (6, 5, 8) and enc.hidden[-1][0].shape == (1, 6, 8)
    assert len(h4) == 3


def _ids(groups):
    return [id(p) for g in groups for p in g]


def test_lm_layer_groups_cover_every_param_once():
    lm = build_language_model(cfg(), V)
    groups = lm_layer_groups(lm)
    assert len(groups) == 4
    ids = _ids(groups)
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in lm.parameters()}
    assert id(lm.encoder.encoder.weight) in {id(p) for p in groups[-1]}  # tied embedding with the decoder


def test_classifier_layer_groups_cover_every_param_once():
    clf = build_classifier(cfg(), V, 3)
    groups = classifier_layer_groups(clf)
    assert len(groups) == 5
    ids = _ids(groups)
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in clf.parameters()}
    assert [id(p) for p in groups[0]] == [id(clf.encoder.module.encoder.weight)]
    assert {id(p) for p in groups[-1]} == {id(p) for p in clf.head.parameters()}


def test_classifier_dropouts_and_head():
    clf = build_classifier(cfg(drop_mult=0.5), V, 3)
    enc = clf.encoder.module
    assert enc.encoder_dp.embed_p == pytest.approx(CLASSIFIER_DROPOUTS["embed_p"] * 0.5)
    assert enc.rnns[0].weight_p == pytest.approx(0.25) and enc.input_dp.p == pytest.approx(0.2)
    drops = [m.p for m in clf.head.layers if isinstance(m, nn.Dropout)]
    assert drops == pytest.approx([0.4 * 0.5, 0.1])  # fastai get_text_classifier ps
    lm_like = build_classifier(cfg(), V, 3, clas_dropouts=False)
    assert lm_like.encoder.module.rnns[0].weight_p == pytest.approx(0.2)


def test_dropouts_come_from_the_model_section_scaled_by_drop_mult():
    lm = build_language_model(cfg(embed_p=0.1, input_p=0.3, weight_p=0.4, hidden_p=0.2, output_p=0.5, drop_mult=0.5), V)
    enc = lm.encoder
    assert enc.encoder_dp.embed_p == pytest.approx(0.05) and enc.input_dp.p == pytest.approx(0.15)
    assert [r.weight_p for r in enc.rnns] == pytest.approx([0.2] * 3)
    assert [d.p for d in enc.hidden_dps] == pytest.approx([0.1] * 3)
    assert lm.decoder.output_dp.p == pytest.approx(0.25)
    default = build_language_model(cfg(), V).encoder  # fastai's awd_lstm_lm_config
    assert (default.encoder_dp.embed_p, default.input_dp.p, default.rnns[0].weight_p) == pytest.approx((0.02, 0.25, 0.2))
    assert build_classifier(cfg(output_p=0.9), V, 2).head.layers[1].p == pytest.approx(0.4)  # CLASSIFIER_DROPOUTS win


def test_a_scaled_dropout_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="weight_p = 0.5 times drop_mult 2 is 1"):
        build_classifier(cfg(drop_mult=2.0), V, 2)  # CLASSIFIER_DROPOUTS' weight_p 0.5, scaled to 1.0
    build_classifier(cfg(drop_mult=1.9), V, 2)


def test_masked_concat_pool_values():
    out = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    pooled = masked_concat_pool(out, mask)
    assert pooled.shape == (2, 6)
    torch.testing.assert_close(pooled[0], torch.tensor([4.0, 5.0, 4.0, 5.0, 2.0, 3.0]))
    torch.testing.assert_close(pooled[1], torch.tensor([8.0, 9.0, 8.0, 9.0, 8.0, 9.0]))


@pytest.mark.parametrize("max_len", [1400, 9])
def test_padding_does_not_change_classifier_output(max_len):
    torch.manual_seed(0)
    clf = build_classifier(cfg(bptt=4), V, 3, max_len=max_len)
    clf.eval()
    doc = torch.randint(1, 40, (1, 11))
    alone = clf(doc, torch.tensor([11]))
    others = torch.randint(1, 40, (3, 23))
    batch = torch.zeros(4, 23, dtype=torch.long)  # right-padded with pad_id 0
    batch[0, :11] = doc[0]
    batch[1:] = others
    lengths = torch.tensor([11, 23, 5, 17])
    batch[2, 5:] = 0
    batch[3, 17:] = 0
    logits = clf(batch, lengths)
    torch.testing.assert_close(logits[0], alone[0], atol=1e-5, rtol=1e-5)
    shuffled = clf(batch[[2, 0, 3, 1]], lengths[[2, 0, 3, 1]])  # row order doesn't matter
    torch.testing.assert_close(shuffled[1], alone[0], atol=1e-5, rtol=1e-5)


def test_sentence_encoder_keeps_last_max_len_tokens():
    clf = build_classifier(cfg(bptt=4), V, 2, max_len=6)
    clf.eval()
    x = torch.randint(1, 40, (3, 14))
    lengths = torch.tensor([14, 3, 9])
    out, mask = clf.encoder(x, lengths)
    assert out.shape[0] == 3 and mask.shape == out.shape[:2]
    assert mask.sum(1).tolist() == [6, 3, 6]
    train_out = clf.train()(x, lengths)
    assert train_out.shape == (3, 2)
    train_out.sum().backward()  # gradients flow through the kept chunks


def test_load_encoder_into_classifier():
    lm, clf = build_language_model(cfg(), V), build_classifier(cfg(), V, 2)
    load_encoder_into_classifier(clf, lm)
    for (k, a), b in zip(lm.encoder.state_dict().items(), clf.encoder.module.state_dict().values()):
        assert torch.equal(a, b), k

