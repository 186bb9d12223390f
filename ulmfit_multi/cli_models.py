"""The commands for what a run trained, used elsewhere: export, predict, new-recipe, bench predict.

    ulmfit-multi export work/runs/mr-cpu --task mahasent-gt --out gt.zip      # a classifier bundle
    ulmfit-multi export work/runs/mr-cpu --lm --out mr-lm.zip                 # the pretrained LMs
    ulmfit-multi predict gt.zip "खूप छान" "वाईट"                              # a bundle or a run folder
    ulmfit-multi predict gt.zip --input texts.csv --column text --output predictions.csv [--quantize int8]
    ulmfit-multi new-recipe --lang mr --train a.csv --valid b.csv --test c.csv --text review --label stars
    ulmfit-multi bench predict gt.zip --texts test.csv --column text --label label

`register(app, bench_app, user_errors)` adds them to the `ulmfit-multi` app (cli.py), which keeps its own
commands; this module never imports cli.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer


def export(
    run: Annotated[Path, typer.Argument(help="Run folder (work/runs/<recipe>-<preset>).")],
    out: Annotated[str, typer.Option("--out", "-o", help="The bundle to write: a folder, a file ending in .zip, "
                                                         "or an object-storage URI (s3://bucket/gt.zip).")],
    task: Annotated[Optional[str], typer.Option(help="Classifier bundle: the task (default: the first).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Classifier bundle: which seed (default: the first).")] = None,
    lm: Annotated[bool, typer.Option("--lm", help="Export the language models instead of a classifier.")] = False,
    fine_tuned: Annotated[Optional[str], typer.Option(
        help="With --lm: the LMs fine-tuned on this task (default: the pretrained ones).")] = None,
) -> None:
    """Write a self-contained bundle: a task's classifiers (for predict) or the LMs (for a recipe's pretrain.from)."""
    from .export import export_classifier, export_lm

    if fine_tuned and not lm:
        raise typer.BadParameter("--fine-tuned goes with --lm", param_hint="--fine-tuned")
    if lm:
        if task or seed is not None:
            raise typer.BadParameter("--task and --seed choose a classifier; --lm exports language models")
        result = export_lm(run, out, fine_tuned=fine_tuned)
        typer.echo(f"written: {result.path} (language models)\nsha256: {result.sha256}")
        where = f'url = "{result.path}"' if isinstance(result.path, str) else f'path = "{Path(result.path).resolve()}"'
        typer.echo(f'use it in a recipe: [pretrain]\nfrom = {{ {where}, sha256 = "{result.sha256}" }}')
        return
    result = export_classifier(run, out, task=task, seed=seed)
    typer.echo(f"written: {result.path} (classifier)\nsha256: {result.sha256}")
    typer.echo(f"use it: ulmfit-multi predict {result.path} \"a text\"")


def predict(
    model: Annotated[str, typer.Argument(help="A classifier bundle (ulmfit-multi export; a path or an "
                                              "s3:// URI) or a run folder.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify (or --input).")] = None,
    input_: Annotated[Optional[str], typer.Option("--input", "-i", help="A .txt, .csv, .tsv or .jsonl file of "
                                                                         "texts; '-' reads stdin.")] = None,
    column: Annotated[Optional[str], typer.Option(help=".csv/.tsv: the text column (default: 'text').")] = None,
    field: Annotated[Optional[str], typer.Option(help=".jsonl: the text field (default: 'text').")] = None,
    id_key: Annotated[Optional[str], typer.Option("--id", help="Column or field holding each text's id "
                                                               "(default: its line or row number).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Input format when the suffix does not say "
                                                                "(stdin): txt, csv, tsv, jsonl.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Predictions file: .csv, .tsv or .jsonl "
                                                                          "(default: CSV on stdout).")] = None,
    task: Annotated[Optional[str], typer.Option(help="Run folder: the task (default: the first).")] = None,
    seed: Annotated[int, typer.Option(help="Run folder: which seed's classifiers.")] = 0,
    quantize: Annotated[Optional[str], typer.Option(help="'int8': dynamic int8 quantization (CPU).")] = None,
    precision: Annotated[str, typer.Option(help="Forward pass: fp32, bf16, auto (bf16 on CUDA and on CPUs with "
                                                "native bf16), cuda-bf16 (bf16 on CUDA only).")] = "cuda-bf16",
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Classify texts with a bundle or a run's forward+backward ensemble: arguments, or a file / stdin streamed
    in length-sorted batches to --output (id, label, per-class probabilities, flag)."""
    from .bench_predict import load_predictor
    from .predict_io import PredictionWriter, count_lines, predict_stream, read_texts

    if quantize not in (None, "int8"):
        raise typer.BadParameter(f"{quantize!r}; the one quantization is int8", param_hint="--quantize")
    if not texts and input_ is None:
        raise typer.BadParameter("give texts to classify, or --input FILE (or --input - for stdin)")
    if texts and input_ is not None:
        raise typer.BadParameter("give texts or --input, not both")
    predictor = load_predictor(model, task=task, seed=seed, quantize=quantize, precision=precision)
    if texts:
        for text, reason in zip(texts, predictor.flags(texts)):
            if reason:
                typer.secho(f"warning: {text!r}: {reason}; its label means little", fg=typer.colors.YELLOW, err=True)
        for text, (label, prob) in zip(texts, predictor.predict(texts)):
            typer.echo(f"{label}\t{prob:.3f}\t{text}")
        return
    items = read_texts(input_, column=column, field=field, id_key=id_key, fmt=fmt)
    writer = PredictionWriter(output, predictor.classes)
    stats = predict_stream(predictor, items, writer, batch_size=batch_size, progress=not quiet,
                           total=count_lines(input_) if input_ else None)
    flagged = ", ".join(f"{n} {reason}" for reason, n in stats["flagged"].items()) or "none"
    typer.echo(f"{stats['documents']} documents in {stats['seconds']:.1f} s: {stats['documents_per_second']:.1f} "
               f"documents/s ({quantize or predictor.precision}); flagged: {flagged}"
               + (f"; written: {output}" if output else ""), err=True)


def new_recipe_cmd(
    lang: Annotated[str, typer.Option(help="Language code (a spec in langs/: mr, ta, ... or your own).")],
    train: Annotated[Path, typer.Option(help="Labelled train file (.csv or .tsv with a header row).")],
    text: Annotated[str, typer.Option(help="The column holding the text.")],
    label: Annotated[str, typer.Option(help="The column holding the label.")],
    valid: Annotated[Optional[Path], typer.Option(help="Labelled validation file (picks the best epoch).")] = None,
    test: Annotated[Optional[Path], typer.Option(help="Labelled test file (the table's scores).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Recipe file to write (default: recipes/<name>.toml).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Task and recipe name (default: from --out, or my-task).")] = None,
    lm: Annotated[Optional[Path], typer.Option(help="Start from this LM bundle (ulmfit-multi export RUN --lm): "
                                                    "no corpus or pretraining.")] = None,
    metric: Annotated[str, typer.Option(help="accuracy, weighted_f1 or macro_f1 (imbalanced classes: F1).")] = "accuracy",
) -> None:
    """Write a recipe for your own labelled CSV/TSV files, validated by loading it."""
    from .scaffold import new_recipe, scaffold_summary

    path = new_recipe(lang=lang, train=train, valid=valid, test=test, text=text, label=label, out=out, name=name,
                      lm=lm, metric=metric)
    s = scaffold_summary(path)
    typer.echo(f"written: {path} (task {s['task']}: classes {', '.join(s['classes'])}; splits {', '.join(s['splits'])}"
               + (f"; from the LM bundle {s['from_bundle']}" if s["from_bundle"] else "") + ")")
    typer.echo(f"rename the classes in its `labels`, then: ulmfit-multi recipe {path} --preset smoke")


def bench_predict_cmd(
    model: Annotated[Path, typer.Argument(help="A classifier bundle or a run folder.")],
    texts: Annotated[Path, typer.Option("--texts", help="Texts: .txt, .csv, .tsv or .jsonl.")],
    column: Annotated[Optional[str], typer.Option(help=".csv/.tsv: the text column.")] = None,
    field: Annotated[Optional[str], typer.Option(help=".jsonl: the text field.")] = None,
    label: Annotated[Optional[str], typer.Option(help="The gold-label column or field (for the accuracy change).")] = None,
    task: Annotated[Optional[str], typer.Option(help="Run folder: the task.")] = None,
    seed: Annotated[int, typer.Option(help="Run folder: the seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 64,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    max_texts: Annotated[int, typer.Option(help="Use the first N texts (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON line.")] = False,
) -> None:
    """Prediction documents/s, fp32 against int8 dynamic quantization, and int8's accuracy change."""
    import json

    from .bench_predict import bench_predict, format_bench_predict

    result = bench_predict(model, texts, column=column, field=field, label_key=label, task=task, seed=seed,
                           batch_size=batch_size, threads=threads, max_texts=max_texts)
    typer.echo(json.dumps(result) if as_json else format_bench_predict(result))


def register(app: typer.Typer, bench_app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Add export, predict, new-recipe and bench predict to the CLI."""
    app.command()(user_errors(export))
    app.command()(user_errors(predict))
    app.command("new-recipe")(user_errors(new_recipe_cmd))
    bench_app.command("predict")(user_errors(bench_predict_cmd))

