"""The stages of a recipe that starts from a pretrained-LM bundle (`pretrain.from`; resolve.py finds the bundle).

Each of these stages still runs (so the run folder has every stage and the fingerprints chain as always), but
does in a moment what the bundle already holds:

    corpus      builds no corpus; records what the bundle's language models were trained on
    tokenizer   the bundle's SentencePiece files
    encode      the task splits as always; the LM corpus store is empty (nothing to encode) but carries the
                tokenizer's checksum, which LM fine-tuning checks the task text against
    pretrain    the bundle's forward and backward weights, with the results the bundle recorded

LM fine-tuning, the classifiers, evaluation and the table then run as in any recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic import write_json
from .bundle import Bundle
from .errors import StageError
from .resolve import bundle_source
from .stages import StageContext

TOKENIZER_FILES = ("spm.model", "spm.vocab", "tokenizer.json")


def open_bundle(ctx: StageContext) -> Bundle:
    """The recipe's bundle, opened and verified: an absolute path, else under the mirror or the data root."""
    rel = bundle_source(ctx.cfg).path
    for root in (ctx.paths.mirror, ctx.paths.data_dir, None):
        path = Path(rel) if root is None else root / rel
        if path.exists():
            return Bundle.open(path)
    raise StageError(f"LM bundle {rel}: not found (run the fetch stage first)")


def _summary(bundle: Bundle) -> dict[str, Any]:
    m = bundle.manifest
    return {"from_bundle": str(bundle.path), "bundle_sha256": bundle.checksum, "bundle": m.get("name"),
            "made_from": m.get("made_from", {}).get("run")}


def corpus_from_bundle(ctx: StageContext) -> dict[str, Any]:
    """The corpus stage with an LM bundle: no corpus; the summary says what the bundle was trained on."""
    with open_bundle(ctx) as bundle:
        return {**_summary(bundle), "skipped": "pretrain.from: the language models come from the bundle",
                "bundle_corpus": bundle.manifest.get("lm", {}).get("corpus", {})}


def tokenizer_from_bundle(ctx: StageContext) -> dict[str, Any]:
    """The tokenizer stage with an LM bundle: the bundle's SentencePiece files."""
    from .tokenizer import Tokenizer

    with open_bundle(ctx) as bundle:
        for name in TOKENIZER_FILES:
            if f"tokenizer/{name}" in bundle.names():
                bundle.copy(f"tokenizer/{name}", ctx.out / name)
        summary = _summary(bundle)
    tok = Tokenizer.load(ctx.out)
    return {**summary, "model": str(ctx.out / "spm.model"), "vocab_size": tok.vocab_size}


def empty_lm_store(out: Path, tok: Any) -> dict[str, Any]:
    """The encode stage's LM corpus with an LM bundle: an empty token store that names the tokenizer."""
    from .tokens import write_token_store

    write_token_store([], out, vocab_size=tok.vocab_size, meta={"tokenizer_sha256": tok.checksum,
                                                                "note": "no corpus: the LMs come from an LM bundle"})
    return {"documents": 0, "tokens": 0, "vocab_size": tok.vocab_size, "tokenizer_sha256": tok.checksum}


def pretrain_from_bundle(ctx: StageContext) -> dict[str, Any]:
    """The pretrain stage with an LM bundle: its weights of each direction, checked against the encode stage's
    tokenizer."""
    from .tokens import TokenStore

    lm_meta = TokenStore.open(ctx.input("encode") / "lm").meta
    with open_bundle(ctx) as bundle:
        if lm_meta.get("tokenizer_sha256") != bundle.manifest["text"]["tokenizer_sha256"]:
            raise StageError(f"{bundle.path}: the encode stage used another tokenizer than the bundle's; rerun from "
                             "the tokenizer stage")
        results = bundle.manifest.get("lm", {}).get("results", {})
        summary: dict[str, Any] = {}
        for direction in ctx.cfg.pretrain.directions:
            out = ctx.out / direction
            out.mkdir(parents=True, exist_ok=True)
            bundle.copy(f"{direction}/model.pt", out / "model.pt")
            done = {**results.get(direction, {}), **_summary(bundle), "epochs_here": 0}
            write_json(out / "done.json", done)
            summary[direction] = done
    return summary

