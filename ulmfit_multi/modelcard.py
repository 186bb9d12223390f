"""MODEL.md of a bundle: what the model is, what it was trained on, how good it is, and the commands that made it.

Written from the bundle's manifest alone (export.py builds it), so the card and bundle.json never disagree.
"""

from __future__ import annotations

import statistics
from typing import Any

from .bundle import FORMAT_VERSION

METRIC_NAMES = {"accuracy": "accuracy", "weighted_f1": "weighted F1", "macro_f1": "macro F1"}


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def score_rows(records: list[dict[str, Any]], metric: str, seed: int) -> list[tuple[str, str, str]]:
    """(system, this seed's score, mean ± sd over the seeds) per system, ULMFiT systems first."""
    by_system: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_system.setdefault(r["system"], []).append(r)
    rows = []
    for system in sorted(by_system, key=lambda s: (not s.startswith("ULMFiT"), s)):
        rs = by_system[system]
        values = [r["metrics"][metric] for r in rs if metric in r.get("metrics", {})]
        if not values:
            continue
        this = next((r["metrics"][metric] for r in rs if r.get("seed") == seed), None)
        spread = (f"{_pct(statistics.fmean(values))} ± {_pct(statistics.stdev(values))} ({len(values)} seeds)"
                  if len(values) > 1 else _pct(values[0]))
        rows.append((system, _pct(this), spread))
    return rows


def _versions(m: dict[str, Any]) -> list[str]:
    code, trained = m.get("code", {}), m.get("code", {}).get("trained_with", {})
    return [
        f"- bundle format {m.get('format_version', FORMAT_VERSION)}, exported by ulmfit_multi {code.get('ulmfit_multi')} "
        f"({code.get('git_commit') or 'no git'}), torch {code.get('torch', '?')}",
        f"- trained by ulmfit_multi {trained.get('ulmfit_multi', '?')} ({trained.get('git_commit') or 'no git'}), "
        f"torch {trained.get('torch', '?')}, on {trained.get('cuda') or 'CPU'} ({trained.get('platform', '?')})",
    ]


def _text_section(m: dict[str, Any]) -> list[str]:
    t = m["text"]
    return [
        f"Texts are {t.get('lang_name', t['lang'])} (`{t['lang']}`, scripts {', '.join(t.get('scripts', []))}). "
        f"Each text is normalized (`{t['normalization']}` normalization, indic-nlp normalizer "
        f"`{t.get('normalizer') or 'none'}`), split into SentencePiece pieces (vocab {m['vocab_size']:,}) and "
        f"started with document boundary `{t['doc_boundary']}`, exactly as the run's encode stage did.",
    ]


def _model_line(m: dict[str, Any]) -> str:
    s = m["model"]
    return (f"AWD-LSTM, embedding {s['emb_size']}, hidden {s['hidden_size']}, {s['n_layers']} layers, directions "
            f"{' + '.join(m['directions'])}")


def _corpus_lines(lm: dict[str, Any]) -> list[str]:
    lines = []
    if lm.get("from_bundle"):
        lines.append(f"- language model: taken from the LM bundle {lm['from_bundle']}")
    for code, c in (lm.get("corpus") or {}).items():
        sources = ", ".join(f"{n} ({s.get('documents')} documents)" for n, s in c.get("sources", {}).items())
        lines.append(f"- LM pretraining corpus `{code}`: {c.get('documents')} documents, {c.get('sentences')} "
                     f"sentences ({sources})")
    if lm.get("tokens"):
        lines.append(f"- {lm['tokens']:,} LM tokens")
    return lines


def classifier_card(m: dict[str, Any]) -> str:
    """The model card of a classifier bundle."""
    task, made = m["task"], m["made_from"]
    metric = task["metric"]
    out = [f"# {task['name']}: ULMFiT text classifier ({m['text'].get('lang_name', m['text']['lang'])})", "",
           f"`{m['name']}`: the forward and backward classifiers of seed {task['seed']}, their class probabilities "
           f"averaged. Classes: {', '.join(task['classes'])}.", ""]
    out += _text_section(m) + ["", f"Model: {_model_line(m)}.", ""]
    out += ["## Trained on", "", f"Recipe `{made['recipe']}` ({made.get('description') or 'no description'}), "
            f"preset `{made['preset']}`" + (f", with `--set {' '.join(made['overrides'])}`" if made.get("overrides")
                                            else "") + ".", "",
            "| split | file | rows | sha256 |", "| --- | --- | ---: | --- |"]
    for role, s in m["data"]["splits"].items():
        rows = s.get("rows") if s.get("rows") is not None else f"unavailable ({s.get('unavailable')})"
        out.append(f"| {role} | `{s['file']}` | {rows} | `{(s.get('sha256') or '')[:16]}` |")
    if m["data"].get("max_task_rows"):
        out.append(f"\nEach split was sampled to at most {m['data']['max_task_rows']} rows (`data.max_task_rows`).")
    out += [""] + _corpus_lines(m.get("lm", {})) + ["", f"## Test scores ({METRIC_NAMES.get(metric, metric)}, %)", ""]
    rows = score_rows(m["scores"]["records"], metric, task["seed"])
    if rows:
        out += [f"| system | seed {task['seed']} | over the run's seeds |", "| --- | ---: | ---: |"]
        out += [f"| {system} | {this} | {spread} |" for system, this, spread in rows]
    else:
        out.append("Not evaluated: the run's evaluate stage had not finished (or the task has no test split).")
    refs = [r for r in m["scores"].get("references", []) if r.get("metric") == metric]
    if refs:
        out += ["", "Published references:", ""]
        out += [f"- {r['system']}: {_pct(r['value'])} ({r.get('cite', '')})" for r in refs]
    out += ["", "## How it was made", "", "```bash", m["commands"]["run"], m["commands"]["export"], "```", "",
            "## Use", "", "```bash", 'ulmfit-multi predict BUNDLE "a text" ...',
            "ulmfit-multi predict BUNDLE --input texts.csv --column text --output predictions.csv", "```", "",
            "```python", "from ulmfit_multi import Predictor", "",
            'Predictor.load("BUNDLE").predict(["a text"])   # [(label, probability)]', "```", "",
            "## Versions", ""] + _versions(m) + [""]
    return "\n".join(out)


def lm_card(m: dict[str, Any]) -> str:
    """The model card of a language-model bundle."""
    made, lm = m["made_from"], m["lm"]
    what = f"fine-tuned on the text of task `{lm['fine_tuned_on']}`" if lm.get("fine_tuned_on") else "pretrained"
    out = [f"# {m['name']}: ULMFiT language models ({m['text'].get('lang_name', m['text']['lang'])})", "",
           f"Forward and backward AWD-LSTM language models, {what}, with their SentencePiece tokenizer. A recipe "
           "starts from them with `pretrain.from = { path = \"THIS BUNDLE\" }`: its corpus, tokenizer and "
           "pretraining stages then take this bundle's tokenizer and weights.", ""]
    out += _text_section(m) + ["", f"Model: {_model_line(m)}.", "",
                               "## Trained on", "", f"Recipe `{made['recipe']}`, preset `{made['preset']}`.", ""]
    out += _corpus_lines(lm)
    out += ["", "| direction | epochs | valid perplexity |", "| --- | ---: | ---: |"]
    for d, r in lm.get("results", {}).items():
        ppl = r.get("valid_ppl")
        out.append(f"| {d} | {r.get('epochs', '')} | {'' if ppl is None else f'{ppl:.1f}'} |")
    out += ["", "## How it was made", "", "```bash", m["commands"]["run"], m["commands"]["export"], "```", "",
            "## Versions", ""] + _versions(m) + [""]
    return "\n".join(out)
