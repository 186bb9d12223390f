"""The `curves` command: a recipe run up to its label-efficiency curves, or the curves of a finished run.

    ulmfit-multi curves mr --preset cpu --mirror ../shared/data --set 'curves.budgets=[100, 300, 1000, "all"]'
    ulmfit-multi curves work/runs/mr-cpu-1a2b3c4d        # print the curves tables a run wrote, name its plots

`register(app, user_errors)` adds it to the `ulmfit-multi` app (cli.py), in place of the plain stage command;
this module never imports cli.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer


def show_curves(run_dir: Path) -> None:
    """Print the curves tables of a run folder's finished `curves` stage and name their plots."""
    from .curves import curve_tables
    from .errors import StageError
    from .runfolder import RunFolder

    run = RunFolder(run_dir)
    found = run.find_stage("curves")
    if found is None:
        raise StageError(f"{run.path}: the curves stage has not finished in this run; run "
                         f"`ulmfit-multi curves RECIPE --set 'curves.budgets=[100, 300, \"all\"]'` (same preset, "
                         f"--set items and folders as the run)")
    tables = curve_tables(found)
    if not tables:
        typer.echo(f"{run.path}: no label budgets in this run (curves.budgets is empty), so no curves")
        return
    for md in tables:
        typer.echo(md.read_text(encoding="utf-8"))
        typer.echo(f"plot: {found / 'plots' / (md.stem + '.png')}\n")


def curves_cmd(
    target: Annotated[str, typer.Argument(help="Recipe name or path (runs up to the curves stage), or a run folder "
                                               "(shows its curves).")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Recipe preset: smoke, cpu, paper (or base).")] = "smoke",
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="Override a config key: --set 'curves.budgets=[100, 300, \"all\"]'")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute the curves stage even if finished.")] = False,
    mirror: Annotated[Optional[str], typer.Option(help="Read-only mirror folder or URI, looked in first.",
                                                   envvar="ULMFIT_MULTI_MIRROR")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where downloads land.",
                                                     envvar="ULMFIT_MULTI_DATA")] = None,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="Store and runs folder.",
                                                     envvar="ULMFIT_MULTI_WORK")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or auto (default: the recipe's runtime.device).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Label-efficiency curves: classifiers and baselines trained on nested subsets of the labels (recipe stage
    'curves', runs missing upstream stages first; the budgets are curves.budgets), or a run folder's curves."""
    path = Path(target)
    if path.is_dir() and (path / "config.resolved.toml").exists():
        show_curves(path)
        return
    from .pipeline import STAGE_NAMES, run_recipe

    kw: dict[str, Any] = dict(preset=preset, overrides=set_ or [], mirror=mirror, data_dir=data_dir, work_dir=work_dir,
                              device=device, progress=not quiet)
    if force:  # finish what it needs first, then recompute the curves stage alone
        run_recipe(target, until=STAGE_NAMES[STAGE_NAMES.index("curves") - 1], **kw)
        result = run_recipe(target, only="curves", force=True, **kw)
    else:
        result = run_recipe(target, until="curves", **kw)
    for st in result.stages:
        typer.echo(f"  {st.name:<12} {st.status:<8} {st.fingerprint[:12]}  {st.seconds:8.1f}s")
    typer.echo(f"run folder: {result.run_dir}")
    show_curves(result.run_dir)


def register(app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Add the curves command to the CLI."""
    app.command("curves")(user_errors(curves_cmd))
