"""Recipe configuration: typed defaults in code, differences in TOML.

Resolution order, later wins:
    code defaults (the dataclasses below) -> language spec (tokenizer defaults)
    -> recipe base tables -> `[preset.<name>]` -> `--set key=value` overrides.

Every key is validated: an unknown key or a wrong type raises `RecipeError`
naming the file, the dotted key and what was expected (with a "did you mean").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .curves_config import CurvesConfig, check_curves
from .errors import RecipeError
from .langs import load_lang
from .precision import PRECISIONS
from .pretrained_ref import PretrainedLM, check_pretrained, path_near
from .resources import RECIPES_DIR, list_recipes, recipe_path, recipe_sources  # noqa: F401 (the recipe lookup: API)
from .schema import (  # noqa: F401 (to_toml: API)
    added_later, as_data, deep_merge, fingerprint_data, from_dict, parse_override, read_toml, suggest, to_toml,
)
PRESETS = ("smoke", "cpu", "paper")


@dataclass
class RecipeMeta:
    """What the recipe is and which languages it covers."""

    name: str = ""
    description: str = ""
    langs: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # run only these tasks (empty = every task)


@dataclass
class Remote:
    """Where files under a data-root prefix are downloaded from in normal use."""

    prefix: str = ""  # e.g. "mr/mahasent-md/"
    url: str = ""  # URL that replaces the prefix


@dataclass
class DataConfig:
    """Download locations and checksums of every file the recipe reads."""

    remotes: list[Remote] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    max_task_rows: int = 0  # 0 = every row; >0 = first N rows of each split (smoke runs)


@dataclass
class Source:
    """One pretraining text source under the data root."""

    name: str = ""
    path: str = ""  # relative to the data root; a file or a folder
    format: str = "text"  # "mediawiki-xml" | "text" | "wikiextractor"
    url: str = ""  # explicit URL (otherwise derived from data.remotes)
    lang: str = ""  # defaults to the recipe's first language
    optional: bool = False  # missing offline -> skipped, not an error
    # a smaller copy (the mirror's sample of a dump), read when `path` is not local but this is; decided before the
    # stages run, which then see exactly `{path = offline}` (resolve.py), so offline runs keep their fingerprints
    offline: str = added_later("")
    max_docs: int = added_later(0)  # documents read from this source (0 = all); set from corpus.max_dump_docs


@dataclass
class SyntheticMix:
    """Synthetic romanized / code-mixed text made from the native corpus (code-mixed recipes)."""

    enabled: bool = False
    romanized_share: float = 0.5
    scheme: str = "casual"
    english_mix: float = 0.0
    token_switch_prob: float = 0.0
    seed: int = added_later(0)  # seeds the one random generator behind every choice


@dataclass
class CorpusConfig:
    """Corpus stage: dumps and raw text to clean sentences."""

    sources: list[Source] = field(default_factory=list)
    lid: bool = True
    lid_threshold: float = 0.5
    min_chars: int = 20
    dedupe: bool = True
    max_docs_per_source: int = 0  # 0 = all
    # documents read from a full dump (a source with an `offline` copy; 0: all); resolve.py makes it its `max_docs`
    max_dump_docs: int = added_later(0)
    keep_truncated: bool = False
    task_text: bool = False  # add the tasks' train + unlabeled text (never test) to the LM corpus
    # "shared": corpus and task text go through the same normalization (corpus/normalize.py); "legacy": task text
    # gets NFC + social rules only and corpus text no social rules (the behaviour before they were one; ablations)
    normalization: str = "shared"
    synthetic: SyntheticMix = field(default_factory=SyntheticMix)


@dataclass
class TokenizerConfig:
    """SentencePiece settings; zero/empty values take the language spec's defaults."""

    vocab_size: int = 0
    model_type: str = ""
    character_coverage: float = 0.0
    max_sentences: int = 1_000_000
    task_text: bool = True  # also train on the tasks' train text
    seed: int = 0
    # share of the sentence sample per corpus part: a language code ("ta"), "synthetic" or "task"
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class EncodeConfig:
    """Encoding of the LM corpus and the task texts."""

    valid_frac: float = 0.05
    # what starts each task document: "eos", the separator the LM saw after every pretraining sentence (so
    # LM fine-tuning sees separated documents, and a backward document ends on it); "none": nothing (ablations)
    doc_boundary: str = "eos"


@dataclass
class ModelSection:
    """The AWD-LSTM (ULMFiT paper sizes, fastai's awd_lstm_lm_config dropouts); model.py builds from this.

    The five dropouts are the language models'; the classifier uses model.CLASSIFIER_DROPOUTS instead,
    scaled by `classifier.drop_mult`.
    """

    emb_size: int = 400
    hidden_size: int = 1152  # fastai's 1152 (the paper's 1150 rounded to a multiple of 8)
    n_layers: int = 3
    drop_mult: float = 1.0  # scales every *_p below
    bptt: int = 70
    embed_p: float = added_later(0.02)  # whole embedding rows (words) dropped
    input_p: float = added_later(0.25)  # on the embedding output, same mask at every time step
    weight_p: float = added_later(0.2)  # DropConnect on the hidden-to-hidden LSTM weights
    hidden_p: float = added_later(0.15)  # between LSTM layers
    output_p: float = added_later(0.1)  # on the last LSTM output, before the decoder / pooling head
    precision: str = added_later("cuda-bf16")  # "cuda-bf16" | "auto" | "fp32" | "bf16" (precision.py)


DROPOUTS = ("embed_p", "input_p", "weight_p", "hidden_p", "output_p")


@dataclass
class Schedule:
    """ULMFiT's optimizer and learning-rate schedule (Howard & Ruder 2018, section 3), the same keys in
    `pretrain`, `finetune_lm` and `classifier`."""

    betas: list[float] = added_later([0.7, 0.99])  # Adam's (beta1, beta2)
    cut_frac: float = added_later(0.1)  # STLR: share of a cycle's steps over which the lr rises
    ratio: float = added_later(32.0)  # STLR: peak lr / lowest lr
    lr_decay: float = added_later(2.6)  # discriminative lrs: the group k below the top gets lr / lr_decay**k


@dataclass
class LMSection(Schedule):
    """Language-model training (pretraining or fine-tuning)."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3  # peak lr of the top layer group
    wd: float = 0.01  # decoupled weight decay (AdamW)
    clip: float = 0.4  # max gradient norm
    alpha: float = 2.0  # AR: activation regularization on the dropped last-layer output
    beta: float = 1.0  # TAR: temporal activation regularization on the raw last-layer output
    max_batches_per_epoch: int = 0  # 0 = all
    checkpoint_minutes: float = 10.0  # 0 = every step
    keep_best: bool = added_later(False)  # keep the epoch of lowest valid perplexity, not the last
    discriminative: bool = added_later(False)  # per-group lrs (lr_decay); off: every group at `lr`


@dataclass
class PretrainConfig(LMSection):
    """General-domain LM pretraining."""

    epochs: int = 10
    lr: float = 3e-3
    directions: list[str] = field(default_factory=lambda: ["fwd", "bwd"])
    workers: int = 1  # > 1: data-parallel (DDP) over that many Ray Train workers, one GPU each when there are GPUs
    from_: PretrainedLM = added_later(PretrainedLM(), key="from")  # TOML: pretrain.from = { path = ... }


@dataclass
class FinetuneLMConfig(LMSection):
    """Target-task LM fine-tuning (discriminative LRs + STLR)."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 4e-3
    keep_best: bool = True  # keep the epoch of lowest valid perplexity on the task text, not the last
    discriminative: bool = added_later(True)  # ULMFiT's discriminative fine-tuning
    shuffle_docs: bool = added_later(False)  # a new order of the task documents every epoch (fastai's LM loader)


@dataclass
class ClassifierConfig(Schedule):
    """Classifier training with the full ULMFiT schedule."""

    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-2  # peak lr of the top layer group (the paper's 0.01)
    wd: float = 0.01
    clip: float = 0.4
    drop_mult: float = 0.5  # scales model.CLASSIFIER_DROPOUTS (fastai's awd_lstm_clas_config)
    max_len: int = 1400
    gradual_unfreezing: bool = True
    class_weights: bool = False  # inverse-frequency ("balanced") cross-entropy weights
    subword_sampling: bool = False
    max_batches_per_epoch: int = 0
    checkpoint_minutes: float = 10.0
    calibrate: bool = False  # also report ULMFiT with per-class offsets tuned on the valid split for the task metric
    # peak lr of the top group in each gradual-unfreezing stage (the last value for the later ones); empty: `lr`
    # in every stage. fastai's ULMFiT notebooks halve it as layers thaw: [2e-2, 1e-2, 5e-3, 1e-3]
    stage_lrs: list[float] = added_later([])
    # AR and TAR on the encoder's outputs, as fastai's text classifier learner adds them (0: off)
    alpha: float = added_later(0.0)
    beta: float = added_later(0.0)


@dataclass
class EvaluateConfig:
    """Seeds, baselines, and which baselines to fuse with ULMFiT."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    baselines: list[str] = field(default_factory=lambda: ["majority", "tfidf-lr", "fasttext"])
    # extra rows "ULMFiT ensemble + <baseline>": each seed's ensemble averaged with that baseline's class
    # probabilities, the weight fitted on the valid split (late fusion)
    fuse_with: list[str] = added_later([])


@dataclass
class Task:
    """A classification task declared by the recipe."""

    name: str = ""
    lang: str = ""
    format: str = "csv"
    text: str = "text"
    label: str = "label"
    labels: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    quoting: str = "minimal"
    on_bad_row: str = "error"  # "skip": rows that cannot be used (also undecodable ones) are counted and reported
    metric: str = "accuracy"
    note: str = ""
    encoding: str = added_later("utf-8")  # how the task's files are decoded (any Python codec name)


@dataclass
class Reference:
    """A published number to print next to ours."""

    task: str = ""
    system: str = ""
    metric: str = "accuracy"
    value: float = 0.0  # fraction (0..1)
    cite: str = ""


@dataclass
class Runtime:
    """Knobs that do not change results; never part of a stage fingerprint."""

    device: str = "auto"  # "auto" | "cpu" | "cuda"
    workers: int = 0
    progress: bool = True
    # what resolve.py decided before the stages ran (source name -> "full: <path>" / "offline copy: <path>")
    source_choice: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    """A fully resolved recipe."""

    recipe: RecipeMeta = field(default_factory=RecipeMeta)
    data: DataConfig = field(default_factory=DataConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    model: ModelSection = field(default_factory=ModelSection)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune_lm: FinetuneLMConfig = field(default_factory=FinetuneLMConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    curves: CurvesConfig = field(default_factory=CurvesConfig)  # label-efficiency curves (curves_config.py)
    tasks: list[Task] = field(default_factory=list)
    reference: list[Reference] = field(default_factory=list)
    runtime: Runtime = field(default_factory=Runtime)
    preset: str = "base"
    source_file: str = ""
    overrides: list[str] = field(default_factory=list)  # the --set items, recorded for the run folder name

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able), keyed as in TOML (`pretrain.from`)."""
        return as_data(self)


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved config a run folder (work/runs/<recipe>-<preset>) was made with."""
    path = Path(run_dir) / "config.resolved.toml"
    return from_dict(Config, read_toml(path), str(path))


def load_recipe(name_or_path: str | Path, preset: str | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load, merge and validate a recipe: defaults -> lang spec -> recipe -> preset -> overrides."""
    path = recipe_path(name_or_path)
    raw = read_toml(path)
    presets = raw.pop("preset", {})
    if not isinstance(presets, dict):
        raise RecipeError(f"{path}: 'preset' must be a table of tables")
    # the file as written, before any preset or --set replaces a value: a wrong type or name in the base
    # tables is an error even when the preset in use overrides that key
    from_dict(Config, raw, str(path), "")
    for pname, ptable in presets.items():
        if not isinstance(ptable, dict):
            raise RecipeError(f"{path}: 'preset.{pname}' must be a table")
        # validate each preset on its own so a typo in an unused preset is still reported
        from_dict(Config, deep_merge(raw, ptable), str(path), "")
    merged = raw
    if preset and preset != "base":
        if preset not in presets:
            raise RecipeError(f"{path}: no preset '{preset}'{suggest(preset, list(presets) or ['(none)'])}")
        merged = deep_merge(raw, presets[preset])
    if isinstance(overrides, dict):
        merged = deep_merge(merged, overrides)
    else:
        for item in overrides or []:
            merged = deep_merge(merged, parse_override(item))
    cfg: Config = from_dict(Config, merged, str(path) if not overrides else f"{path} (with --set)", "")
    cfg.preset = preset or "base"
    cfg.source_file = str(path)
    cfg.overrides = sorted(overrides) if isinstance(overrides, list) else (
        [json.dumps(overrides, sort_keys=True)] if overrides else [])
    if not cfg.recipe.name:
        cfg.recipe.name = path.stem
    if not cfg.recipe.langs:
        raise RecipeError(f"{path}: 'recipe.langs' must name at least one language")
    specs = [load_lang(code, where=f"{path}: recipe.langs") for code in cfg.recipe.langs]
    main = specs[0]
    cfg.tokenizer.vocab_size = cfg.tokenizer.vocab_size or main.vocab_size
    cfg.tokenizer.model_type = cfg.tokenizer.model_type or main.model_type
    cfg.tokenizer.character_coverage = cfg.tokenizer.character_coverage or main.character_coverage
    if cfg.recipe.tasks:
        known = [t.name for t in cfg.tasks]
        for name in cfg.recipe.tasks:
            if name not in known:
                raise RecipeError(f"{path}: recipe.tasks names unknown task '{name}'{suggest(name, known)}")
        cfg.tasks = [t for t in cfg.tasks if t.name in cfg.recipe.tasks]
        cfg.reference = [r for r in cfg.reference if r.task in cfg.recipe.tasks]
    for task in cfg.tasks:
        task.lang = task.lang or main.code
        load_lang(task.lang, where=f"{path}: task '{task.name}' lang")
    for src in cfg.corpus.sources:
        src.lang = src.lang or main.code
    if cfg.pretrain.from_.path:  # relative: to the recipe's folder (else to the current directory)
        cfg.pretrain.from_.path = path_near(path, cfg.pretrain.from_.path)
    _check_values(cfg, path)
    return cfg


def _check_values(cfg: Config, path: Path) -> None:
    """Checks beyond types: enumerations and cross references."""
    def one_of(value: str, options: tuple[str, ...], where: str) -> None:
        if value not in options:
            raise RecipeError(f"{path}: '{where}' is {value!r}; expected one of {', '.join(options)}")

    for i, src in enumerate(cfg.corpus.sources):
        one_of(src.format, ("mediawiki-xml", "text", "wikiextractor"), f"corpus.sources[{i}].format")
        if src.max_docs < 0:
            raise RecipeError(f"{path}: 'corpus.sources[{i}].max_docs' is {src.max_docs}; expected a number >= 0")
    if cfg.corpus.max_dump_docs < 0:
        raise RecipeError(f"{path}: 'corpus.max_dump_docs' is {cfg.corpus.max_dump_docs}; expected a number >= 0")
    check_pretrained(cfg.pretrain.from_, path)
    one_of(cfg.tokenizer.model_type, ("unigram", "bpe"), "tokenizer.model_type")
    one_of(cfg.corpus.normalization, ("shared", "legacy"), "corpus.normalization")
    one_of(cfg.encode.doc_boundary, ("eos", "none"), "encode.doc_boundary")
    for d in cfg.pretrain.directions:
        one_of(d, ("fwd", "bwd"), "pretrain.directions")
    if cfg.pretrain.workers < 1 or cfg.pretrain.batch_size % cfg.pretrain.workers:
        raise RecipeError(f"{path}: 'pretrain.workers' is {cfg.pretrain.workers}; expected a number >= 1 that "
                          f"divides pretrain.batch_size ({cfg.pretrain.batch_size})")
    check_training_values(cfg, path)
    names = set()
    for task in cfg.tasks:
        if not task.name:
            raise RecipeError(f"{path}: every [[tasks]] needs a name")
        if task.name in names:
            raise RecipeError(f"{path}: task '{task.name}' is declared twice")
        names.add(task.name)
        one_of(task.format, ("csv", "tsv"), f"tasks.{task.name}.format")
        one_of(task.quoting, ("minimal", "none"), f"tasks.{task.name}.quoting")
        one_of(task.on_bad_row, ("error", "skip"), f"tasks.{task.name}.on_bad_row")
        one_of(task.metric, ("accuracy", "weighted_f1", "macro_f1"), f"tasks.{task.name}.metric")
        for role in task.splits:
            one_of(role, ("train", "valid", "test", "unlabeled"), f"tasks.{task.name}.splits")
        if task.splits and "train" not in task.splits:
            raise RecipeError(f"{path}: task '{task.name}' has no train split")
    for ref in cfg.reference:
        if ref.task not in names:
            raise RecipeError(f"{path}: reference '{ref.system}' names unknown task '{ref.task}'")
    one_of(cfg.runtime.device, ("auto", "cpu", "cuda"), "runtime.device")
    one_of(cfg.model.precision, PRECISIONS, "model.precision")
    for name in cfg.evaluate.baselines:
        one_of(name, ("majority", "tfidf-lr", "fasttext"), "evaluate.baselines")
    for name in cfg.evaluate.fuse_with:
        one_of(name, tuple(b for b in cfg.evaluate.baselines if b != "majority"), "evaluate.fuse_with")
    check_curves(cfg.curves, {t.name: len(set(t.labels.values())) for t in cfg.tasks}, path)


def check_training_values(cfg: Config, path: str | Path) -> None:
    """Ranges of the model's dropouts and drop_mult and of the training sections' optimizer and schedule keys
    (a `RecipeError` naming `path` and the key); `load_recipe` runs it, and so can code that changes a
    resolved config."""
    def check(ok: bool, where: str, value: Any, expected: str) -> None:
        if not ok:
            raise RecipeError(f"{path}: '{where}' is {value!r}; expected {expected}")

    m = cfg.model
    for where, mult in (("model.drop_mult", m.drop_mult), ("classifier.drop_mult", cfg.classifier.drop_mult)):
        check(mult >= 0, where, mult, "a number >= 0")
    for name in DROPOUTS:
        p = getattr(m, name)
        check(0 <= p < 1, f"model.{name}", p, "a probability in [0, 1)")
        # a scaled probability of 1 drops every unit (and its 1/(1-p) rescaling divides by zero)
        check(p * m.drop_mult < 1, f"model.{name}", p,
              f"a value that stays below 1 times model.drop_mult ({m.drop_mult:g})")
    for name in ("pretrain", "finetune_lm", "classifier"):
        s: Schedule = getattr(cfg, name)
        check(len(s.betas) == 2 and all(0 <= b < 1 for b in s.betas), f"{name}.betas", s.betas,
              "two numbers in [0, 1), Adam's [beta1, beta2]")
        check(0 < s.cut_frac < 1, f"{name}.cut_frac", s.cut_frac, "a number in (0, 1)")
        check(s.ratio > 1, f"{name}.ratio", s.ratio, "a number > 1")
        check(s.lr_decay >= 1, f"{name}.lr_decay", s.lr_decay, "a number >= 1")
    check(all(lr > 0 for lr in cfg.classifier.stage_lrs), "classifier.stage_lrs", cfg.classifier.stage_lrs,
          "positive learning rates")
    for where in ("pretrain.alpha", "pretrain.beta", "finetune_lm.alpha", "finetune_lm.beta", "classifier.alpha",
                  "classifier.beta"):
        section_name, key = where.split(".")
        value = getattr(getattr(cfg, section_name), key)
        check(value >= 0, where, value, "a number >= 0 (0: off)")


def section(cfg: Config, dotted: str, *, for_fingerprint: bool = False) -> Any:
    """The config value at a dotted path, as plain data; `for_fingerprint` leaves out `added_later` defaults.

    The pseudo-section "langs" is the content of the recipe's language specs, so that editing
    langs/<code>.toml reruns the stages that depend on it.
    """
    if dotted == "langs":
        return [dataclasses.asdict(load_lang(code)) for code in cfg.recipe.langs]
    node: Any = fingerprint_data(cfg) if for_fingerprint else cfg.to_dict()
    for part in dotted.split("."):
        node = node[part]
    return node
