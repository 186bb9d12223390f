"""`ulmfit-multi new-recipe`: a recipe for your own labelled CSV/TSV files, written and validated.

    ulmfit-multi new-recipe --lang mr --train a.csv --valid b.csv --test c.csv --text review --label stars
    ulmfit-multi new-recipe --lang mr --train a.csv --test c.csv --text review --label stars --lm mr-lm.zip

The files are read once: the text and label columns must exist, and every label value found becomes a class
(`labels = { "<value in the file>" = "<class name>" }`; rename the classes in the file afterwards). Splits are
written as absolute paths with their sha256 (so a changed file is noticed). Without `--lm`, the LM corpus
(sources, cleaning, tokenizer settings) is copied from the recipe of that language when there is one (the
built-in `mr`, `ta`, ...), else a Wikipedia dump named by the language spec; with `--lm BUNDLE` the recipe starts
from that pretrained-LM bundle (`pretrain.from`) and takes its model sizes. The written file is loaded with
each of its presets before this returns; a recipe that does not load is not left behind.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .atomic import sha256_file
from .errors import DataError, RecipeError
from .schema import read_toml, to_toml

MAX_CLASSES = 50
SMALL_MODEL = {"emb_size": 64, "hidden_size": 128, "n_layers": 3, "bptt": 40}
CPU_MODEL = {"emb_size": 256, "hidden_size": 512, "n_layers": 3}


def _q(value: str) -> str:
    """A TOML basic string."""
    return json.dumps(value, ensure_ascii=False)


def read_columns(path: Path, delimiter: str, text: str, label: str | None) -> tuple[list[str], list[str]]:
    """The header of a task file, checked for the text (and label) column, and the label values in it."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        for col in (text, label):
            if col is not None and col not in header:
                raise DataError(f"{path}: no column {col!r} (columns: {', '.join(header) or 'none'})")
        if label is None:
            return header, []
        i = header.index(label)
        values = {row[i].strip() for row in reader if len(row) > i and row[i].strip()}
    if len(values) > MAX_CLASSES:
        raise DataError(f"{path}: column {label!r} has {len(values)} different values; is it the label column?")
    return header, sorted(values)


def class_of_values(values: set[str]) -> dict[str, str]:
    """Label value -> class name: values the task reader takes as one ("Pos", "pos ") name one class."""
    from .corpus.tasks import normalize_label

    first: dict[str, str] = {}
    return {v: first.setdefault(normalize_label(v), v) for v in sorted(values)}


def _corpus_tables(lang: str) -> tuple[str, dict[str, str], str]:
    """The `[corpus]`, `[tokenizer]` and `data.remotes` TOML of the language's own recipe (or a Wikipedia dump
    source from its spec), the checksums of its corpus files, and the cpu preset's corpus cap lines."""
    from .langs import load_lang
    from .resources import find

    found = find("recipes", lang)
    raw = read_toml(found.path) if found else {}
    if raw.get("recipe", {}).get("langs", [None])[0] != lang:
        raw = {}
    corpus, tokenizer = dict(raw.get("corpus", {})), dict(raw.get("tokenizer", {}))
    if not corpus.get("sources"):
        wiki = load_lang(lang).wiki or f"{lang}wiki"
        corpus["sources"] = [{"name": wiki, "format": "mediawiki-xml",
                              "path": f"{lang}/wiki/{wiki}-latest-pages-articles-multistream.xml.bz2",
                              "url": f"https://dumps.wikimedia.org/{wiki}/latest/"
                                     f"{wiki}-latest-pages-articles-multistream.xml.bz2"}]
    wanted = {s.get("path") for s in corpus["sources"]} | {s.get("offline") for s in corpus["sources"]}
    sha = {k: v for k, v in raw.get("data", {}).get("sha256", {}).items() if k in wanted}
    remotes = [r for r in raw.get("data", {}).get("remotes", []) if any(str(p).startswith(r.get("prefix", "~"))
                                                                        for p in wanted if p)]
    cap = raw.get("preset", {}).get("cpu", {}).get("corpus", {})
    tables = {**({"data": {"remotes": remotes}} if remotes else {}), "corpus": corpus,
              **({"tokenizer": tokenizer} if tokenizer else {})}
    text = f"# LM corpus: copied from {found.path if raw else f'the language spec ({lang})'}\n" + to_toml(tables)
    cap_lines = "".join(f"corpus.{k} = {v}\n" for k, v in cap.items() if k in ("max_docs_per_source", "max_dump_docs"))
    return text, sha, cap_lines


def _lm_tables(lm: Path) -> tuple[str, dict[str, str], str]:
    """`[pretrain] from` and the bundle's model sizes (and normalization), for a recipe that starts from it."""
    from .bundle import Bundle

    with Bundle.open(lm) as bundle:
        m, checksum = bundle.manifest, bundle.checksum
    if m["kind"] != "lm":
        raise RecipeError(f"{lm}: a {m['kind']!r} bundle; --lm needs language models (ulmfit-multi export RUN --lm)")
    sizes = "\n".join(f"{k} = {m['model'][k]}" for k in ("emb_size", "hidden_size", "n_layers", "bptt"))
    norm = m["text"]["normalization"]
    text = (f"# the language models (and tokenizer) come from this bundle: no corpus, tokenizer or pretraining\n"
            f"[pretrain]\nfrom = {{ path = {_q(str(lm.resolve()))}, sha256 = {_q(checksum)} }}\n"
            f"directions = {json.dumps(m['directions'])}\n\n"
            f"[model]      # the bundle's sizes (they must match its weights)\n{sizes}\n")
    if norm != "shared":
        text += f"\n[corpus]\nnormalization = {_q(norm)}\n"
    return text, {}, ""


def new_recipe(*, lang: str, train: Path, test: Path | None = None, valid: Path | None = None, text: str,
               label: str, out: Path | None = None, name: str | None = None, lm: Path | None = None,
               metric: str = "accuracy") -> Path:
    """Write a recipe for one task from labelled files; returns its path (validated by loading every preset)."""
    from .config import PRESETS, load_recipe
    from .langs import load_lang

    spec = load_lang(lang)
    name = name or (out.stem if out else "my-task")
    out = Path(out) if out else Path("recipes") / f"{name}.toml"
    if out.exists():
        raise RecipeError(f"{out}: already exists; choose another --out or remove it")
    fmt = "tsv" if Path(train).suffix.lower() == ".tsv" else "csv"
    splits = {role: Path(p).resolve() for role, p in (("train", train), ("valid", valid), ("test", test)) if p}
    values: set[str] = set()
    for role, path in splits.items():
        if not path.is_file():
            raise DataError(f"--{role} {path}: no such file")
        values |= set(read_columns(path, "\t" if fmt == "tsv" else ",", text, label)[1])
    if len(values) < 2:
        raise DataError(f"{train}: column {label!r} has {len(values)} label value(s); a classifier needs two or more")
    body, corpus_sha, cap = _lm_tables(Path(lm)) if lm else _corpus_tables(lang)
    labels = ", ".join(f"{_q(v)} = {_q(name)}" for v, name in class_of_values(values).items())
    split_tbl = ", ".join(f"{role} = {_q(str(p))}" for role, p in splits.items())
    sha = {**corpus_sha, **{str(p): sha256_file(p) for p in splits.values()}}
    sha_lines = "".join(f"{_q(k)} = {_q(v)}\n" for k, v in sha.items())
    sizes_smoke = "" if lm else "".join(f"model.{k} = {v}\n" for k, v in SMALL_MODEL.items()) + \
        "tokenizer.vocab_size = 4000\ncorpus.max_docs_per_source = 400\npretrain.epochs = 1\n"
    sizes_cpu = "" if lm else "".join(f"model.{k} = {v}\n" for k, v in CPU_MODEL.items()) + \
        f"tokenizer.vocab_size = {spec.vocab_size}\npretrain.epochs = 6\n" + cap
    recipe = f"""# {out.name}: {name}, {spec.name} text classification, written by `ulmfit-multi new-recipe`.
#
# Run:      ulmfit-multi recipe {out} --preset smoke     (minutes: a quick check that everything runs)
#           ulmfit-multi recipe {out} --preset cpu       (hours on a CPU{'; minutes with --lm' if lm else ''})
# Then:     ulmfit-multi export work/runs/{name}-cpu --task {name} --out {name}.zip
#           ulmfit-multi predict {name}.zip --input new.csv --column {text} --output predictions.csv
# Every [[tasks]] field is explained in the README ("Bring your own dataset").

[recipe]
description = {_q(f"{name}: {spec.name} text classification")}
langs = [{_q(lang)}]

{body}
[data.sha256]      # the files as they were when the recipe was written
{sha_lines}
[[tasks]]
name = {_q(name)}
format = {_q(fmt)}
text = {_q(text)}
label = {_q(label)}
labels = {{ {labels} }}
splits = {{ {split_tbl} }}
metric = {_q(metric)}
on_bad_row = "skip"   # rows with an empty text or an unknown label are counted and reported, not fatal

[evaluate]
baselines = ["majority", "tfidf-lr", "fasttext"]

[preset.smoke]
data.max_task_rows = 1000
{sizes_smoke}finetune_lm.epochs = 1
classifier.epochs = 2
evaluate.seeds = [0]

[preset.cpu]
{sizes_cpu}finetune_lm.epochs = 3
classifier.epochs = 5
evaluate.seeds = [0, 1, 2]

[preset.paper]
pretrain.epochs = 10
finetune_lm.epochs = 10
classifier.epochs = 8
evaluate.seeds = [0, 1, 2]
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(recipe, encoding="utf-8")
    try:
        for preset in ("base", *PRESETS):
            load_recipe(out, preset)
    except BaseException:
        out.unlink()
        raise
    return out


def scaffold_summary(path: Path) -> dict[str, Any]:
    """What a written recipe holds (for the command's message)."""
    from .config import load_recipe

    cfg = load_recipe(path, "base")
    task = cfg.tasks[0]
    return {"recipe": str(path), "task": task.name, "classes": list(dict.fromkeys(task.labels.values())),
            "splits": list(task.splits), "from_bundle": cfg.pretrain.from_.path}
