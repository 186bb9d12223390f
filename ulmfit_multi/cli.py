"""The `ulmfit-multi` command: a thin typed shell over the Python API.

    ulmfit-multi langs | recipes
    ulmfit-multi recipe mr --preset smoke --mirror ../shared/data
    ulmfit-multi pretrain mr --preset cpu            # one stage (and what it needs)
    ulmfit-multi status mr --preset smoke
    ulmfit-multi status work/runs/mr-smoke            # a run's stages; results so far while classifiers train
    ulmfit-multi table mr | table RUN_DIR ...         # the table stage of a recipe, or gather run folders
    ulmfit-multi trial RUN_DIR TASK --set classifier.epochs=12   # screen a classifier setting
    ulmfit-multi predict RUN_DIR "text" ...
    ulmfit-multi compare BASE_RUN OTHER_RUN           # an ablation, seed by seed
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import UlmfitError

app = typer.Typer(name="ulmfit-multi", no_args_is_help=True, add_completion=False,
                  help="ULMFiT for low-resource and code-mixed Indic text classification.")

PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Recipe preset: smoke, cpu, paper (or base).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config key: --set pretrain.epochs=2")]
MirrorOpt = Annotated[Optional[str], typer.Option(help="Read-only mirror folder or URI (s3://bucket/mirror), looked in first.", envvar="ULMFIT_MULTI_MIRROR")]
DataOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where downloads land.", envvar="ULMFIT_MULTI_DATA")]
WorkOpt = Annotated[Optional[str], typer.Option("--work-dir", help="Store and runs folder, or a URI: s3://bucket/prefix.",  # a str: Path("s3://b") is s3:/b
                                                envvar="ULMFIT_MULTI_WORK", callback=lambda v: v if v is None or "://" in v else Path(v))]
DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu, cuda or auto (default: the recipe's runtime.device).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute the selected stages even if finished.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def user_errors(fn):
    """Turn user errors (bad recipe, bad data) into one red line and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UlmfitError as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None
    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ulmfit-multi {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    recipes_dir: Annotated[Optional[list[Path]], typer.Option("--recipes", help="A folder of your own recipes, looked "
                                                              "in first (also $ULMFIT_MULTI_RECIPES).")] = None,
    langs_dir: Annotated[Optional[list[Path]], typer.Option("--langs-dir", help="A folder of your own language specs, "
                                                            "looked in first (also $ULMFIT_MULTI_LANGS).")] = None,
) -> None:
    """ULMFiT for low-resource and code-mixed Indic text classification."""
    from .resources import add_dirs

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", force=True)
    add_dirs("recipes", recipes_dir or [])
    add_dirs("langs", langs_dir or [])


@app.command()
@user_errors
def langs() -> None:
    """List the language specs (--langs-dir, $ULMFIT_MULTI_LANGS, ./langs, built-in) and where each came from."""
    from .langs import lang_sources, load_lang

    typer.echo(f"{'code':<5} {'name':<10} {'scripts':<10} {'wiki':<8} {'task text':<10} {'vocab':>6}  from")
    for found in lang_sources():
        spec = load_lang(found.name)
        typer.echo(f"{spec.code:<5} {spec.name:<10} {','.join(spec.scripts):<10} {spec.wiki:<8} "
                   f"{spec.task_text:<10} {spec.vocab_size:>6}  {found.origin}: {found.path}")


@app.command()
@user_errors
def recipes() -> None:
    """List the recipes (--recipes, $ULMFIT_MULTI_RECIPES, ./recipes, built-in): languages, presets, tasks, origin."""
    from .config import read_toml, recipe_sources

    for found in recipe_sources():
        raw = read_toml(found.path)
        langs_ = ",".join(raw.get("recipe", {}).get("langs", []))
        tasks = ",".join(t.get("name", "?") for t in raw.get("tasks", []))
        presets = ",".join(raw.get("preset", {}))
        typer.echo(f"{found.name:<6} langs={langs_:<8} presets={presets:<16} tasks={tasks}  [{found.origin}: {found.path}]")


@app.command()
@user_errors
def recipe(
    name: Annotated[str, typer.Argument(help="Recipe name (recipes/<name>.toml) or path.")],
    preset: PresetOpt = "smoke",
    set_: SetOpt = None,
    from_stage: Annotated[Optional[str], typer.Option("--from", help="Rerun from this stage on.")] = None,
    only: Annotated[Optional[str], typer.Option(help="Run only this stage (its inputs must exist).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Stop after this stage.")] = None,
    force: ForceOpt = False,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a recipe end to end; finished stages are skipped."""
    from .pipeline import run_recipe

    result = run_recipe(name, preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir,
                        work_dir=work_dir, from_stage=from_stage, only=only, until=until, force=force,
                        device=device, progress=not quiet)
    _print_run(result)


def _print_run(result) -> None:
    for st in result.stages:
        typer.echo(f"  {st.name:<12} {st.status:<8} {st.fingerprint[:12]}  {st.seconds:8.1f}s")
    typer.echo(f"run folder: {result.run_dir}")
    table = next((Path(st.path) for st in result.stages if st.name == "table" and st.status in ("ran", "skipped")),
                 None)
    if table is not None and (table / "results.md").exists():  # its footnotes end with the run's notes
        typer.echo((table / "results.md").read_text(encoding="utf-8"))
        return
    _print_notes(result.run_dir)


def _print_notes(run_dir: Path) -> None:
    """What the run skipped, dropped, truncated or could not get (notes.py), when it has no table yet."""
    from .notes import notes_of_run

    try:
        notes = notes_of_run(run_dir)
    except (UlmfitError, OSError, ValueError):
        return
    for note in notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)


def _stage_command(stage_name: str, doc: str):
    def command(
        name: Annotated[str, typer.Argument(help="Recipe name or path.")],
        preset: PresetOpt = "smoke",
        set_: SetOpt = None,
        force: ForceOpt = False,
        mirror: MirrorOpt = None,
        data_dir: DataOpt = None,
        work_dir: WorkOpt = None,
        device: DeviceOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        from .pipeline import run_recipe

        if force:  # finish what it needs first, then recompute this stage alone
            run_recipe(name, preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir,
                       work_dir=work_dir, until=stage_name, device=device, progress=not quiet)
            result = run_recipe(name, preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir,
                                work_dir=work_dir, only=stage_name, force=True, device=device, progress=not quiet)
        else:
            result = run_recipe(name, preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir,
                                work_dir=work_dir, until=stage_name, device=device, progress=not quiet)
        _print_run(result)

    command = user_errors(command)
    command.__doc__ = f"{doc} (recipe stage '{stage_name}', runs missing upstream stages first)"
    return command


def _register_stage_commands() -> None:
    from .pipeline import STAGES

    for st in STAGES:
        cli_name = st.name.replace("_", "-")
        if cli_name in ("pretrain", "table", "curves"):
            continue  # these have richer commands (curves: cli_curves.py)
        app.command(name=cli_name)(_stage_command(st.name, st.doc))
        if st.name == "classifier":
            app.command(name="train-classifier", hidden=True)(_stage_command(st.name, st.doc))


@app.command()
@user_errors
def pretrain(
    name: Annotated[Optional[str], typer.Argument(help="Recipe name (omit with --langs).")] = None,
    langs_: Annotated[Optional[str], typer.Option("--langs", help="Comma-separated languages, spread over Ray.")] = None,
    preset: PresetOpt = "smoke",
    set_: SetOpt = None,
    force: ForceOpt = False,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
    device: DeviceOpt = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray).")] = None,
    gpus_per_lang: Annotated[float, typer.Option(help="GPUs per language (0 on CPU-only clusters).")] = 1.0,
    max_retries: Annotated[int, typer.Option(help="Retries for a failed or lost worker.")] = 2,
    quiet: QuietOpt = False,
) -> None:
    """Pretrain the LMs of one recipe, or of several languages at once on Ray (--langs)."""
    if langs_:
        from .distributed import pretrain_many

        summary = pretrain_many([c.strip() for c in langs_.split(",") if c.strip()], preset=preset,
                                overrides=set_ or [], mirror=mirror, data_dir=data_dir, work_dir=work_dir,
                                address=address, gpus_per_lang=gpus_per_lang, max_retries=max_retries)
        failed = [r for r in summary if r["status"] != "ok"]
        raise typer.Exit(code=1 if failed else 0)
    if not name:
        raise typer.BadParameter("give a recipe name or --langs")
    _stage_command("pretrain", "Pretrain")(name, preset, set_, force, mirror, data_dir, work_dir, device, quiet)


def _is_recipe_target(target: str | Path) -> bool:
    """A recipe name (no folder part) or a .toml file, not a folder: `table` and `status` run or show a recipe."""
    p = Path(target)
    return not p.is_dir() and (p.suffix == ".toml" or len(p.parts) == 1)


@app.command()
@user_errors
def check(
    name: Annotated[str, typer.Argument(help="Recipe name (recipes/<name>.toml) or path.")],
    preset: PresetOpt = "smoke",
    set_: SetOpt = None,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
) -> None:
    """Check a recipe and its task files in seconds, downloading nothing: columns, labels, encoding, bad rows.

    Every task file found in the mirror or the data root is read once; the first one that cannot be used
    fails with its file and line (exit code 2). Duplicate texts and texts two splits share are listed."""
    from .check import check_recipe, format_check
    from .config import load_recipe
    from .paths import Paths

    cfg = load_recipe(name, preset, set_ or [])
    report = check_recipe(cfg, Paths.resolve(data_dir, mirror, work_dir))
    for line in format_check(report):
        typer.echo(line)
    typer.echo(f"{cfg.recipe.name} ({cfg.preset}): task files ok")


@app.command()
@user_errors
def status(
    name: Annotated[str, typer.Argument(help="Recipe name or path, or a run folder (work/runs/<recipe>-<preset>).")],
    preset: PresetOpt = "smoke",
    set_: SetOpt = None,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
    task: Annotated[Optional[list[str]], typer.Option(help="Run folder: partial results of these tasks only.")] = None,
) -> None:
    """Stages of a recipe (done, partial, missing) or of a run folder, with results so far while it trains.

    For a run folder: its stages as run.json records them (status, seconds, output folder) and, when its
    classifier stage is running or finished but evaluate has not run, the classifiers finished so far scored
    the way evaluate will (mean ± sd over the finished seeds)."""
    if not _is_recipe_target(name):
        _run_folder_status(Path(name), task or [])
        return
    from .config import load_recipe
    from .inputs import InputFiles, hash_cache
    from .paths import Paths
    from .pipeline import STAGES
    from .resolve import resolve_inputs
    from .stages import stage_status

    cfg = load_recipe(name, preset, set_ or [])
    paths = Paths.resolve(data_dir, mirror, work_dir)  # the input files are part of the fingerprints
    resolve_inputs(cfg, paths, download=False)  # a source's full or offline version, the pretrain.from bundle
    identities = InputFiles(cfg, paths, hash_cache(paths, writable=False)).identities()  # status only looks
    for stage, state, fp in stage_status(STAGES, cfg, paths, identities):
        typer.echo(f"  {stage:<12} {state:<15} {fp}")


def _run_folder_status(path: Path, tasks: list[str]) -> None:
    from .errors import StageError
    from .partial import partial_table
    from .runfolder import RunFolder

    run = RunFolder(path)
    entries = run.stages()
    if not run.run_json():
        typer.echo(f"{path}: no run.json; the stage outputs it links to:")
    for e in entries:
        typer.echo(f"  {e['name']:<12} {e['status']:<8} {e.get('seconds', 0.0):9.1f}s  {e['path']}")
    clf = next((e for e in entries if e["name"] == "classifier"), None)
    if clf is not None and run.find_stage("evaluate") is None:
        typer.echo(f"\nevaluate has not run: the classifiers finished so far ({clf['status']} classifier stage)\n")
        try:
            typer.echo(partial_table(run.path, tasks=tasks), nl=False)
        except StageError as e:
            typer.echo(f"no partial results: {e}")


@app.command()
@user_errors
def table(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (work/runs/<recipe>-<preset>) to gather, or one "
                                                     "recipe name or .toml path to run up to its table stage.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("results"),
    title: Annotated[str, typer.Option(help="Table title.")] = "ULMFiT results",
    preset: PresetOpt = "smoke",
    set_: SetOpt = None,
    force: ForceOpt = False,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Gather run folders into Markdown, CSV, JSON and LaTeX tables, or run a recipe up to its table stage.

    Given run folders (each with config.resolved.toml), gather their results into --out; given one recipe name
    or .toml path, run the recipe's stages up to `table` (the recipe options apply then, as for any stage)."""
    if len(runs) == 1 and _is_recipe_target(runs[0]):
        _stage_command("table", "Results tables")(str(runs[0]), preset, set_, force, mirror, data_dir, work_dir,
                                                   device, quiet)
        return
    from .tables_gather import gather_runs

    written = gather_runs(runs, out, title=title)
    for kind, path in written.items():
        typer.echo(f"{kind}: {path}")


@app.command("results-page")
@user_errors
def results_page_cmd(
    results: Annotated[Path, typer.Argument(help="Results folder: index.toml and the result files it names.")] = Path(
        "docs/results"),
    out: Annotated[Path, typer.Option(help="The page to write.")] = Path("docs/BENCHMARKS.md"),
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if OUT differs from the render.")] = False,
) -> None:
    """Render docs/BENCHMARKS.md from the result files in docs/results/ (index.toml lists the sections)."""
    from .results_page import render_page, write_page

    if check:
        same = out.is_file() and out.read_text(encoding="utf-8") == render_page(results)
        typer.echo(f"{out}: {'up to date' if same else f'differs from the render of {results}'}")
        raise typer.Exit(code=0 if same else 1)
    typer.echo(f"written: {write_page(results, out)}")


@app.command()
@user_errors
def compare(
    base: Annotated[Path, typer.Argument(help="The reference run folder (work/runs/<recipe>-<preset>...).")],
    other: Annotated[Path, typer.Argument(help="The run to compare with it, e.g. an ablation.")],
    out: Annotated[Optional[Path], typer.Option(help="Also write the report here: Markdown, or a results-page table if it ends in .json.")] = None,
) -> None:
    """Compare two runs seed by seed (a run still training: its finished classifiers): config and score differences."""
    from .compare import compare_runs, write_comparison

    comparison = compare_runs(base, other)
    typer.echo(comparison.to_markdown(), nl=False)
    if out is not None:
        typer.echo(f"written: {write_comparison(comparison, out)}")


@app.command()
@user_errors
def trial(
    run: Annotated[Path, typer.Argument(help="A run folder (work/runs/<recipe>-<preset>) with its LMs fine-tuned.")],
    task: Annotated[str, typer.Argument(help="Task name.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="Override a classifier setting: --set classifier.epochs=12")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    direction: Annotated[str, typer.Option(help="fwd, bwd or both (both: also their ensemble).")] = "fwd",
    out: Annotated[Optional[Path], typer.Option(help="Keep the trained classifiers and trial.json here "
                                                     "(default: a temporary folder, removed).")] = None,
    device: DeviceOpt = None,
    random_encoder: Annotated[bool, typer.Option("--random-encoder", help="Start from a random encoder, "
                                                                          "not the fine-tuned LM.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON line.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Screen a classifier setting: train one task's classifier from a run's fine-tuned LM, print its scores.

    Classifier settings come from the run, with --set classifier.KEY=VALUE overrides; valid and test scores
    are in the task's metric. The run folder is left untouched (training happens in a temporary folder or
    --out)."""
    import json

    from .trial import classifier_trial, format_trial

    def on_epoch(d: str, rec: dict) -> None:
        if not quiet:
            valid = "-" if rec.get("valid_score") is None else f"{rec['valid_score']:.4f}"
            typer.echo(f"{d} epoch {rec['epoch']}: train accuracy {rec['train_accuracy']:.3f}, valid {valid}",
                       err=True)

    result = classifier_trial(run, task, overrides=set_ or [], seed=seed, direction=direction, out=out,
                              device=device, random_encoder=random_encoder, progress=not quiet, on_epoch=on_epoch)
    typer.echo(json.dumps(result) if as_json else format_trial(result), nl=as_json)


@app.command()
@user_errors
def probe(
    run: Annotated[Path, typer.Argument(help="Run folder (work/runs/<recipe>-<preset>) with its LMs trained.")],
    task: Annotated[str, typer.Argument(help="Task name.")],
    direction: Annotated[str, typer.Option(help="fwd or bwd.")] = "fwd",
    max_train: Annotated[int, typer.Option(help="Train documents used to fit the probe (0: all).")] = 6000,
) -> None:
    """Linear probe: valid scores of a logistic regression on random, pretrained and fine-tuned LM features."""
    from .probe import format_probe, probe_run

    rows = probe_run(run, task, direction=direction, max_train=max_train or None)
    typer.echo(f"{run} {task} {direction}: probe fitted on {rows[0]['n_train']} train documents, "
               f"scored on {rows[0]['n_valid']} valid documents")
    typer.echo(format_probe(rows))


@app.command()
@user_errors
def overlap(
    name: Annotated[str, typer.Argument(help="Recipe name or path.")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Recipe preset (cpu: the full task files).")] = "cpu",
    set_: SetOpt = None,
    mirror: MirrorOpt = None,
    data_dir: DataOpt = None,
    work_dir: WorkOpt = None,
) -> None:
    """Texts shared between task splits: how many of each test split's texts are in each other split."""
    from .overlap import format_overlap, recipe_overlap

    rows = recipe_overlap(name, preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir,
                          work_dir=work_dir)
    typer.echo(format_overlap(rows))


@app.command()
@user_errors
def lid(texts: Annotated[list[str], typer.Argument(help="Texts to identify.")],
        lang: Annotated[str, typer.Option(help="Expected language, for token tags.")] = "ta") -> None:
    """Language ID per text (fastText lid.176) and per token (script + romanized tags)."""
    from .corpus.lid import LanguageIdentifier
    from .corpus.script import tag_languages

    ident = LanguageIdentifier()
    for text, (code, prob) in zip(texts, ident.predict(list(texts))):
        tags = " ".join(f"{tok}/{tag}" for tok, tag in tag_languages(text, lang))
        typer.echo(f"{code}\t{prob:.2f}\t{tags}")


bench_app = typer.Typer(help="Speed benchmarks (print figures; never part of the tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("lm")
@user_errors
def bench_lm_cmd(
    vocab: int = 8000, emb: int = 256, hidden: int = 512, layers: int = 3, bptt: int = 70, bs: int = 32,
    steps: int = 20, device: str = "cpu", warmup: int = 3, threads: int = 2,
    impls: Annotated[str, typer.Option(help="Comma-separated: ulmfit_multi, nn_lstm (fastai's AWD_LSTM too: "
                                            "python bench/bench_lm.py).")] = "ulmfit_multi,nn_lstm",
    precision: Annotated[str, typer.Option(help="Comma-separated, each impl at each: fp32, bf16, auto (bf16 on CUDA "
                                                "and CPUs with native bf16), cuda-bf16 (bf16 on CUDA only).")] = "cuda-bf16",
) -> None:
    """LM training tokens/s (forward, backward, optimizer) and peak memory vs a plain nn.LSTM stack."""
    from .bench import BUILDERS, bench_lm
    from .precision import PRECISIONS

    chosen, precs = (tuple(i.strip() for i in v.split(",") if i.strip()) for v in (impls, precision))
    for given, known, what in ((chosen, BUILDERS, "implementation"), (precs, PRECISIONS, "precision")):
        if unknown := [i for i in given if i not in known]:
            raise typer.BadParameter(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}",
                                     param_hint="--impls" if what == "implementation" else "--precision")
    bench_lm(vocab=vocab, emb=emb, hidden=hidden, layers=layers, bptt=bptt, bs=bs, steps=steps, device=device,
             warmup=warmup, threads=threads, impls=chosen, precisions=precs)


def main() -> None:
    """Console entry point."""
    app()


def _register_module_commands() -> None:
    from .cli_curves import register as register_curves  # curves
    from .cli_models import register  # export, predict, new-recipe, bench predict

    register(app, bench_app, user_errors)
    register_curves(app, user_errors)


_register_stage_commands()
_register_module_commands()
