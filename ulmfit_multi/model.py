"""The AWD-LSTM language model and the ULMFiT classifier, in one file.

Reads top to bottom in dependency order: dropout settings -> dropouts -> AWDLSTM -> LanguageModel ->
SentenceEncoder -> pooling -> PoolingClassifier -> Classifier -> builders, layer groups, vocab mapping.
Every module is built from the recipe's `[model]` section (`config.ModelSection`: sizes, dropouts,
drop_mult, bptt) plus the vocabulary size.

References: Merity et al. 2017 (AWD-LSTM, arXiv 1708.02182), Howard & Ruder 2018 (ULMFiT,
arXiv 1801.06146), and fastai `text/models/{awdlstm,core}.py`, whose module structure and
dropout defaults this follows. Differences from fastai: WeightDropout swaps the dropped weight
in with `torch.func.functional_call` (no Parameter deletion, `flatten_parameters` keeps working)
and classifier batches are RIGHT-padded (outputs at real positions never see padding, because
the LSTM is causal), so SentenceEncoder masks per document instead of relying on left padding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .config import ModelSection
from .tokenizer import PAD_ID

# fastai awd_lstm_clas_config: stronger dropouts for the classifier (all scaled by drop_mult)
CLASSIFIER_DROPOUTS = dict(embed_p=0.05, input_p=0.4, weight_p=0.5, hidden_p=0.3, output_p=0.4)


def scaled_p(cfg: ModelSection, name: str) -> float:
    """Dropout `name` (e.g. 'embed_p') times drop_mult; it must stay below 1 (1 would drop every unit)."""
    p = getattr(cfg, name) * cfg.drop_mult
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout {name} = {getattr(cfg, name):g} times drop_mult {cfg.drop_mult:g} is {p:g}; "
                         f"expected a probability in [0, 1)")
    return p


def with_classifier_dropouts(cfg: ModelSection) -> ModelSection:
    """Copy of `cfg` with fastai's classifier dropouts (awd_lstm_clas_config); drop_mult kept."""
    return dataclasses.replace(cfg, **CLASSIFIER_DROPOUTS)


# ---------------------------------------------------------------------------------------------
# Regularizers


def dropout_mask(x: Tensor, size: tuple[int, ...], p: float) -> Tensor:
    """Bernoulli(1-p) mask of `size`, like `x`, with kept values scaled to 1/(1-p)."""
    return x.new_empty(*size).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(nn.Module):
    """Dropout with probability `p`, the same mask at every time step (variational dropout)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:  # (bs, T, d)
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x.detach(), (x.size(0), 1, *x.shape[2:]), self.p)


class WeightDropout(nn.Module):
    """DropConnect on `layer_names` of a wrapped module (fused LSTM kernel, no per-step loop).

    The wrapped module keeps its Parameter (the raw weight); in training each forward calls the
    module with a dropped copy swapped in through `functional_call`, so gradients reach the raw
    weight and the cuDNN/oneDNN fused kernel still runs the whole sequence.
    """

    def __init__(self, module: nn.Module, weight_p: float, layer_names: tuple[str, ...] = ("weight_hh_l0",)):
        super().__init__()
        self.module, self.weight_p, self.layer_names = module, weight_p, layer_names

    def dropped_weights(self) -> dict[str, Tensor]:
        """A fresh DropConnect sample of each raw weight."""
        return {n: F.dropout(getattr(self.module, n), self.weight_p, training=True) for n in self.layer_names}

    def forward(self, *args):
        if not self.training or self.weight_p == 0.0:
            return self.module(*args)
        with warnings.catch_warnings():
            # cuDNN compacts the (new) dropped weight into its flat buffer: expected, once per call
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            return functional_call(self.module, self.dropped_weights(), args)


class EmbeddingDropout(nn.Module):
    """Drops whole rows (words) of an embedding matrix with probability `embed_p`."""

    def __init__(self, emb: nn.Embedding, embed_p: float):
        super().__init__()
        self.emb, self.embed_p = emb, embed_p

    def forward(self, words: Tensor) -> Tensor:  # (bs, T) -> (bs, T, emb)
        w = self.emb.weight
        out = F.embedding(words, w, self.emb.padding_idx)
        if self.training and self.embed_p != 0.0:
            # same as embedding (weight * row_mask), but scales only the looked-up rows, not all vocab rows
            row_mask = dropout_mask(w.detach(), (w.size(0), 1), self.embed_p)
            out = out * F.embedding(words, row_mask)
        return out


# ---------------------------------------------------------------------------------------------
# Encoder


class AWDLSTM(nn.Module):
    """AWD-LSTM encoder: embedding + n single-layer LSTMs; hidden state kept (detached) across calls."""

    def __init__(self, cfg: ModelSection, vocab_size: int):
        super().__init__()
        self.cfg, self.bs = cfg, 1
        self.encoder = nn.Embedding(vocab_size, cfg.emb_size, padding_idx=PAD_ID)
        self.encoder.weight.data.uniform_(-0.1, 0.1)
        self.encoder_dp = EmbeddingDropout(self.encoder, scaled_p(cfg, "embed_p"))
        # sizes emb -> hid -> ... -> hid -> emb, so the last layer's output can be tied to the embedding
        sizes = [cfg.emb_size] + [cfg.hidden_size] * (cfg.n_layers - 1) + [cfg.emb_size]
        self.rnns = nn.ModuleList(
            [WeightDropout(nn.LSTM(sizes[i], sizes[i + 1], 1, batch_first=True), scaled_p(cfg, "weight_p"))
             for i in range(cfg.n_layers)]
        )
        self.input_dp = RNNDropout(scaled_p(cfg, "input_p"))
        self.hidden_dps = nn.ModuleList([RNNDropout(scaled_p(cfg, "hidden_p")) for _ in range(cfg.n_layers)])
        self.hidden: list[tuple[Tensor, Tensor]] | None = None

    def reset(self) -> None:
        """Forget the hidden state (start of an epoch or a new document batch)."""
        self.hidden = None

    def _init_hidden(self, bs: int, ref: Tensor) -> list[tuple[Tensor, Tensor]]:
        sizes = [r.module.hidden_size for r in self.rnns]
        return [(ref.new_zeros(1, bs, n), ref.new_zeros(1, bs, n)) for n in sizes]

    def _change_hidden(self, bs: int, ref: Tensor) -> None:
        """Keep the first `bs` rows of the state, zero-padding new rows (as fastai `_change_hidden`)."""
        if self.hidden is None:
            self.hidden = self._init_hidden(bs, ref)
            return
        old = self.hidden[0][0].size(1)
        if bs < old:
            self.hidden = [(h[:, :bs], c[:, :bs]) for h, c in self.hidden]
        elif bs > old:
            zeros = self._init_hidden(bs - old, ref)
            self.hidden = [(torch.cat([h, zh], 1), torch.cat([c, zc], 1)) for (h, c), (zh, zc) in zip(self.hidden, zeros)]

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """(bs, T) ids -> (last layer output (bs, T, emb), raw outputs per layer, dropped outputs per layer)."""
        bs = x.size(0)
        emb = self.encoder.weight
        self._change_hidden(bs, emb)
        out = self.input_dp(self.encoder_dp(x))  # (bs, T, emb)
        raw_outputs, outputs, new_hidden = [], [], []
        # Under CUDA autocast the fused LSTM would run in float16 (even when bf16 is asked for), and
        # fp16 without loss scaling underflows; the LSTMs run in fp32, the decoder in bf16. CPU autocast runs
        # the fused LSTM (oneDNN's mkldnn_rnn_layer) in bf16 too.
        no_amp = torch.autocast("cuda", enabled=False) if x.is_cuda and torch.is_autocast_enabled("cuda") else contextlib.nullcontext()
        out = out.float()
        for i, (rnn, hid_dp) in enumerate(zip(self.rnns, self.hidden_dps)):
            with no_amp:
                out, h = rnn(out, self.hidden[i])  # (bs, T, size_i)
            new_hidden.append(h)
            raw_outputs.append(out)
            if i != len(self.rnns) - 1:
                out = hid_dp(out)
            outputs.append(out)
        # truncated BPTT: the next call starts from this state but does not backprop into it; kept in fp32
        # (CPU bf16 autocast runs the fused LSTM in bf16 and returns its state in bf16)
        self.hidden = [(h.detach().float(), c.detach().float()) for h, c in new_hidden]
        return out, raw_outputs, outputs


# ---------------------------------------------------------------------------------------------
# Language model


class LMOutput(NamedTuple):
    """Language model output: logits (or the loss, when targets were given) plus what AR/TAR need."""

    logits: Tensor | None  # (bs, T, vocab); None when the loss was computed from targets
    raw: Tensor  # (bs, T, emb) last LSTM layer, before output dropout (TAR)
    dropped: Tensor  # (bs, T, emb) after output dropout (AR)
    loss: Tensor | None = None  # summed cross-entropy over the targets (fp32)


class _DecoderCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of `h @ weight.T + bias` against `target`, without fp32 logits for every token.

    On a CPU the plain path (logits, their fp32 copy, log-softmax, its gradient: each tokens x vocab floats,
    134 MB for 2,240 tokens and 15,000 pieces) spends more time moving memory than in the decoder's matrix
    products. Here the logits are made once in the compute dtype and reduced to log-sum-exps a few rows
    at a time (small enough to stay in cache); the backward pass turns those same rows into the gradient
    in place. Same value and gradients as `F.cross_entropy(F.linear(h, weight, bias).float(), target,
    reduction="sum")` under the same autocast (bench_lm: decoder and loss 2.4x faster at the cpu sizes).
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor, target: Tensor, dtype: torch.dtype) -> Tensor:
        with torch.autocast(h.device.type, enabled=False):
            hc, wc = h.to(dtype), weight.to(dtype)
            logits = torch.addmm(bias.to(dtype), hc, wc.t())  # (n, vocab) in the compute dtype
            rows = logits.size(0) if h.is_cuda else max(8, 2**19 // logits.size(1))
            acc = torch.promote_types(dtype, torch.float32)  # the loss in fp32 (or fp64 for fp64 inputs)
            lse = torch.empty(logits.size(0), dtype=acc, device=h.device)
            total = torch.zeros((), dtype=acc, device=h.device)
            for s in range(0, logits.size(0), rows):
                chunk = logits[s:s + rows].to(acc)
                lse[s:s + rows] = torch.logsumexp(chunk, 1)
                total += (lse[s:s + rows] - chunk.gather(1, target[s:s + rows, None]).squeeze(1)).sum()
        ctx.save_for_backward(hc, wc, logits, target, lse)
        ctx.rows, ctx.dtypes = rows, (h.dtype, weight.dtype, bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        hc, wc, logits, target, lse = ctx.saved_tensors
        rows = ctx.rows
        with torch.autocast(hc.device.type, enabled=False):
            grad_bias = torch.zeros(logits.size(1), dtype=lse.dtype, device=hc.device)
            for s in range(0, logits.size(0), rows):  # softmax - one-hot, written over the saved logits
                p = logits[s:s + rows].to(lse.dtype).sub_(lse[s:s + rows, None]).exp_()
                p[torch.arange(p.size(0), device=p.device), target[s:s + rows]] -= 1
                p.mul_(grad)
                grad_bias += p.sum(0)
                logits[s:s + rows] = p
            grad_h, grad_w = logits @ wc, logits.t() @ hc
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        return grad_h.to(h_dtype), grad_w.to(w_dtype), grad_bias.to(b_dtype), None, None


def decoder_cross_entropy(h: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:
    """Summed cross-entropy of the linear decoder's logits (rows of `h`) against `target`, in fp32; the
    product runs in the autocast dtype when autocast is on (see `_DecoderCrossEntropy`)."""
    kind = h.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype
    return _DecoderCrossEntropy.apply(h.flatten(0, -2), weight, bias, target.flatten().long(), dtype)


class LinearDecoder(nn.Module):
    """Output dropout + linear layer to the vocabulary, its weight tied to the embedding."""

    def __init__(self, cfg: ModelSection, tie_to: nn.Embedding):
        super().__init__()
        self.decoder = nn.Linear(cfg.emb_size, tie_to.num_embeddings)
        self.decoder.weight = tie_to.weight  # weight tying (Press & Wolf 2017)
        nn.init.zeros_(self.decoder.bias)
        self.output_dp = RNNDropout(scaled_p(cfg, "output_p"))

    def forward(self, raw: Tensor, target: Tensor | None = None) -> LMOutput:
        """Logits, or with `target` ((bs, T) next ids) the summed loss and no logits."""
        dropped = self.output_dp(raw)
        if target is None:
            return LMOutput(self.decoder(dropped), raw, dropped)
        loss = decoder_cross_entropy(dropped, self.decoder.weight, self.decoder.bias, target)
        return LMOutput(None, raw, dropped, loss)


class LanguageModel(nn.Module):
    """AWDLSTM encoder + tied LinearDecoder."""

    def __init__(self, cfg: ModelSection, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = AWDLSTM(cfg, vocab_size)
        self.decoder = LinearDecoder(cfg, self.encoder.encoder)

    def reset(self) -> None:
        """Forget the hidden state."""
        self.encoder.reset()

    def forward(self, x: Tensor, target: Tensor | None = None) -> LMOutput:
        """(bs, T) ids -> LMOutput(logits (bs, T, vocab), raw, dropped); with `target` ((bs, T) next ids)
        the summed cross-entropy in `loss` instead of the logits (faster, less memory)."""
        out, _, _ = self.encoder(x)
        return self.decoder(out, target)


# ---------------------------------------------------------------------------------------------
# Classifier


class SentenceEncoder(nn.Module):
    """Runs the encoder over RIGHT-padded documents in `bptt` chunks, carrying the state across chunks.

    Keeps outputs (with gradients) only for each document's last `max_len` real tokens; other chunks
    run without autograd, since the state between chunks is detached anyway (fastai semantics).
    Rows are sorted by length so that a chunk only runs the rows that still have real tokens.
    """

    def __init__(self, module: AWDLSTM, bptt: int = 70, max_len: int = 1400):
        super().__init__()
        self.module, self.bptt, self.max_len = module, bptt, max_len

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(bs, T) ids, (bs,) lengths -> (outputs (bs, L, emb), mask (bs, L) True at kept real tokens)."""
        bs = x.size(0)
        lengths = lengths.to(x.device)
        order = lengths.argsort(descending=True)
        x, lens = x[order], lengths[order]
        T = int(lens[0])
        self.module.reset()
        outs, masks = [], []
        pos = torch.arange(T, device=x.device)
        keep = (pos[None] < lens[:, None]) & (pos[None] >= lens[:, None] - self.max_len)  # (bs, T)
        for i in range(0, T, self.bptt):
            j = min(i + self.bptt, T)
            real_bs = int((lens > i).sum())  # lens sorted: rows [:real_bs] still have tokens
            needed = bool(keep[:, i:j].any())
            with torch.set_grad_enabled(needed and torch.is_grad_enabled()):
                o, _, _ = self.module(x[:real_bs, i:j])  # (real_bs, j-i, emb)
            if needed:
                outs.append(F.pad(o, (0, 0, 0, 0, 0, bs - real_bs)))
                masks.append(keep[:, i:j])
        out, mask = torch.cat(outs, 1), torch.cat(masks, 1)
        inv = order.argsort()
        return out[inv], mask[inv]


def masked_concat_pool(outputs: Tensor, mask: Tensor) -> Tensor:
    """Concat pooling over real tokens: [last real output, max, mean] -> (bs, 3*emb); mask True = real."""
    m = mask.unsqueeze(-1)  # (bs, L, 1)
    n = m.sum(1).clamp(min=1)  # (bs, 1)
    last_idx = (mask.long() * torch.arange(mask.size(1), device=mask.device)).argmax(1)  # last True per row
    last = outputs[torch.arange(outputs.size(0), device=outputs.device), last_idx]  # (bs, emb)
    mx = outputs.masked_fill(~m, float("-inf")).max(1).values
    mean = (outputs * m).sum(1) / n
    return torch.cat([last, mx, mean], 1)


class PoolingClassifier(nn.Module):
    """Concat pooling then two blocks BatchNorm1d -> Dropout -> Linear (-> ReLU on the first).

    Dropouts as fastai get_text_classifier: ps = [output_p * drop_mult, 0.1] for lin_ftrs = [hidden].
    """

    def __init__(self, emb_size: int, n_classes: int, hidden: int = 50, ps: tuple[float, float] = (0.4, 0.1)):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(3 * emb_size), nn.Dropout(ps[0]), nn.Linear(3 * emb_size, hidden), nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden), nn.Dropout(ps[1]), nn.Linear(hidden, n_classes),
        )  # fmt: skip

    def forward(self, outputs: Tensor, mask: Tensor) -> Tensor:
        """(bs, L, emb), (bs, L) -> logits (bs, n_classes)."""
        return self.layers(masked_concat_pool(outputs, mask).float())


class Classifier(nn.Module):
    """SentenceEncoder (chunks of `cfg.bptt` tokens) + PoolingClassifier."""

    def __init__(self, cfg: ModelSection, vocab_size: int, n_classes: int, max_len: int = 1400, head_hidden: int = 50):
        super().__init__()
        self.cfg = cfg
        self.encoder = SentenceEncoder(AWDLSTM(cfg, vocab_size), cfg.bptt, max_len)
        self.head = PoolingClassifier(cfg.emb_size, n_classes, head_hidden, (scaled_p(cfg, "output_p"), 0.1))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(bs, T) right-padded ids, (bs,) lengths -> logits (bs, n_classes)."""
        return self.head(*self.encoder(x, lengths))


# ---------------------------------------------------------------------------------------------
# Builders, layer groups, transfer


def build_language_model(cfg: ModelSection, vocab_size: int) -> LanguageModel:
    """AWD-LSTM language model with tied weights."""
    return LanguageModel(cfg, vocab_size)


def build_classifier(
    cfg: ModelSection, vocab_size: int, n_classes: int, *, max_len: int = 1400, head_hidden: int = 50,
    clas_dropouts: bool = True,
) -> Classifier:
    """ULMFiT classifier; `clas_dropouts` swaps in CLASSIFIER_DROPOUTS (fastai awd_lstm_clas_config) for the
    section's dropouts, scaled by the section's drop_mult (the caller sets it to `classifier.drop_mult`)."""
    return Classifier(with_classifier_dropouts(cfg) if clas_dropouts else cfg, vocab_size, n_classes, max_len, head_hidden)


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def lm_layer_groups(model: LanguageModel) -> list[list[nn.Parameter]]:
    """fastai awd_lstm_lm_split: [rnn0], [rnn1], ..., [embedding = tied decoder weight + decoder bias]."""
    enc = model.encoder
    return [_params(r) for r in enc.rnns] + [_params(enc.encoder, model.decoder)]


def classifier_layer_groups(model: Classifier) -> list[list[nn.Parameter]]:
    """fastai awd_lstm_clas_split: [embedding], [rnn0], ..., [rnn_{n-1}], [head]."""
    enc = model.encoder.module
    return [_params(enc.encoder)] + [_params(r) for r in enc.rnns] + [_params(model.head)]


def load_encoder_into_classifier(clf: Classifier, lm: LanguageModel) -> None:
    """Copy the (fine-tuned) LM encoder weights into the classifier's encoder."""
    clf.encoder.module.load_state_dict(lm.encoder.state_dict())

