"""The ``robustkit`` command line: plugins, datasets, train and eval.

User errors (RobustkitError) print one line and exit with status 2, no traceback.
Progress bars show only on a terminal; output files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import RobustkitError
from .params import parse_spec

_MODEL_OPTIONS = ("epochs", "batch_size", "lr", "pca", "noise_std", "hidden", "lam")


class UserError(click.ClickException):
    """A RobustkitError shown as ``Error: ...`` with exit status 2."""

    exit_code = 2


class RobustkitGroup(click.Group):
    """A click group that turns RobustkitError into a one-line error, exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RobustkitError as exc:
            raise UserError(str(exc)) from None


class FiniteFloat(click.ParamType):
    """A finite number greater than (or equal to) a minimum; NaN and infinities are refused."""

    name = "number"

    def __init__(self, minimum: float = 0.0, *, open_: bool = True) -> None:
        self.minimum, self.open = minimum, open_

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        bad = number <= self.minimum if self.open else number < self.minimum
        if not math.isfinite(number) or bad:
            relation = ">" if self.open else ">="
            self.fail(f"{value!r} must be a finite number {relation} {self.minimum:g}", param, ctx)
        return number


def check_output(path: str | None) -> Path | None:
    """Fail before any work if ``path`` cannot be written (missing folder, no permission)."""
    if path is None:
        return None
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise RobustkitError(f"cannot write {target}: it is a folder")
    if not folder.is_dir():
        raise RobustkitError(f"cannot write {target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise RobustkitError(f"cannot write {target}: permission denied")
    return target


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """``update(item, done, total)`` drawing a click progress bar on a terminal only."""
    state: dict[str, Any] = {}
    visible = sys.stderr.isatty()

    def update(item: str, done: int, total: int) -> None:
        if not visible:
            return
        if "bar" not in state:
            state["bar"] = click.progressbar(
                length=total,
                label=label,
                file=sys.stderr,
                item_show_func=lambda _: state.get("item"),
            )
            state["bar"].__enter__()
        state["item"] = item
        state["bar"].update(done - state["bar"].pos)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


@click.group(cls=RobustkitGroup)
@click.version_option(__version__, prog_name="robustkit")
def cli() -> None:
    """robustkit: train small networks, attack them, and evaluate defenses."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: what each registers, from which distribution, load errors."""
    from tabulate import tabulate

    from .plugins import get_plugin_host, interpreter, registry
    from .registry import KINDS

    host = get_plugin_host()
    items = [
        {
            "name": entry.name,
            "kind": kind,
            "plugin": entry.source.plugin,
            "distribution": entry.source.distribution,
            "version": entry.source.version,
            "summary": entry.summary,
        }
        for kind in KINDS
        for entry in registry(kind).entries()
    ]
    failed = [
        {
            "name": info.name,
            "kind": None,
            "plugin": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "error": info.error,
        }
        for info in host.infos.values()
        if info.error
    ]
    if as_json:
        click.echo(json.dumps(items + failed, indent=2))
        return
    columns = ("kind", "name", "plugin", "distribution", "version", "summary")
    click.echo(tabulate([[item[c] for c in columns] for item in items], headers=columns))
    for item in failed:
        click.echo(
            f"\nfailed: plugin {item['name']!r} from {item['distribution']} "
            f"{item['version']}: {item['error']}"
        )
    click.echo(f"\ninterpreter: {interpreter()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def datasets(as_json: bool) -> None:
    """List the data sets that plugins provide."""
    from tabulate import tabulate

    from .plugins import registry

    items = [
        {
            "name": e.name,
            "description": getattr(e.cls, "description", "") or e.summary,
            "distribution": e.source.distribution,
        }
        for e in registry("dataset").entries()
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        click.echo(tabulate([list(i.values()) for i in items], headers=list(items[0])))


@cli.command()
@click.option(
    "--model",
    "model_spec",
    default="hinge",
    show_default=True,
    help="Model name, optionally with parameters: rbf:lam=100,hidden=200.",
)
@click.option(
    "--dataset",
    "dataset_spec",
    default="digits",
    show_default=True,
    help="Data set name (see `robustkit datasets`).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Root folder with one sub-folder per data set (else $ROBUSTKIT_DATA_DIR).",
)
@click.option("--pca", type=click.IntRange(min=1), help="Reduce inputs to K PCA components.")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Minibatch size (1 = SGD).")
@click.option("--lr", type=FiniteFloat(0.0), help="Learning rate (> 0).")
@click.option("--hidden", type=click.IntRange(min=1), help="Hidden units.")
@click.option("--lam", type=FiniteFloat(0.0), help="λ of the RBF loss and reject threshold.")
@click.option(
    "--noise-std",
    type=FiniteFloat(0.0, open_=False),
    help="Gaussian noise added to training inputs (fraction of the input range).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of every random choice.",
)
@click.option("--save", type=click.Path(dir_okay=False), help="Save the model (.npz).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Plot accuracy and loss (.png).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Write results and history as JSON.",
)
def train(
    model_spec: str,
    dataset_spec: str,
    data_dir: str | None,
    seed: int,
    save: str | None,
    plot: str | None,
    json_path: str | None,
    **options: Any,
) -> None:
    """Train one model and report per-epoch and final accuracy."""
    from .persistence import atomic_write, save_model
    from .plotting import plot_training
    from .tables import epoch_table, training_table
    from .training import train as train_model

    outputs = [check_output(p) for p in (save, plot, json_path)]
    name, params = parse_spec(model_spec)
    params.update({k: v for k, v in options.items() if v is not None and k in _MODEL_OPTIONS})
    with progress_bar(f"training {name}") as update:
        epochs: dict[str, int] = {}

        def on_epoch(record: dict[str, float]) -> None:
            done = int(record["epoch"])
            update(f"test {record.get('test_accuracy', 0):.1%}", done, epochs.get("n", done))

        run = train_model(
            (name, params),
            dataset_spec,
            data_dir=data_dir,
            seed=seed,
            callback=on_epoch,
            on_start=lambda model: epochs.update(n=model.get_params().get("epochs") or 0),
        )
    summary = {**run.summary(), "seed": seed}
    click.echo(epoch_table(summary["history"]))
    click.echo()
    click.echo(training_table([summary]))
    save_path, plot_path, json_file = outputs
    if save_path:
        save_model(save_path, run.recipe, run.model, {"dataset": run.dataset})
    if plot_path:
        plot_training(summary["history"], plot_path, title=f"{name} on {run.dataset}")
    if json_file:
        with atomic_write(json_file) as handle:
            json.dump(summary, handle, indent=2, default=str)
            handle.write("\n")


@cli.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
def info(model_file: str) -> None:
    """Check a saved model file and show its recipe, metadata and accuracy per epoch."""
    from .persistence import read_model_file, restore_model
    from .tables import epoch_table

    meta, state = read_model_file(model_file)
    recipe, model = restore_model(meta, state, model_file)
    click.echo(f"model:     {recipe.model} {json.dumps(recipe.model_params, sort_keys=True)}")
    if recipe.defense:
        click.echo(
            f"defense:   {recipe.defense} {json.dumps(recipe.defense_params, sort_keys=True)}"
        )
    click.echo(f"saved by:  robustkit {meta['robustkit_version']}")
    for key, value in sorted(meta.get("extra", {}).items()):
        click.echo(f"{key + ':':<10} {value}")
    click.echo(f"classes:   {', '.join(map(str, model.classes_))}")
    if getattr(model, "history_", None):
        click.echo()
        click.echo(epoch_table(model.history_))


@cli.command(name="eval")
@click.option("--model", multiple=True, help="Model spec, repeatable: rbf:lr=0.05,epochs=10.")
@click.option("--defense", multiple=True, help="Defense spec, repeatable: reject:n_noise=200.")
@click.option("--attack", multiple=True, help="Attack spec, repeatable: pgd:steps=20.")
@click.option("--eps", help="Budgets as fractions of the input range: 0.05,0.1,0.3.")
@click.option("--lam", help="λ values to sweep (reject defense / RBF): 50,100,400.")
@click.option(
    "--eps-unit",
    type=click.Choice(["range", "absolute"]),
    help="ε as a fraction of the input range (default) or in input units.",
)
@click.option("--dataset", help="Data set spec (default digits).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Root folder with one sub-folder per data set (else $ROBUSTKIT_DATA_DIR).",
)
@click.option(
    "--n-samples",
    type=click.IntRange(min=1),
    help="Attack the first N correctly classified test samples (default 100).",
)
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every random choice (0).")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel jobs (default 1).")
@click.option(
    "--certify",
    type=click.Choice(["ibp", "crown"]),
    help="Add certified accuracy (a sound lower bound) to every row, by IBP or CROWN.",
)
@click.option("--config", type=click.Path(dir_okay=False), help="A grid.toml with the grid.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    envvar="ROBUSTKIT_MODEL_CACHE",
    help="Where trained models are cached [default: user cache].",
)
@click.option("--no-cache", is_flag=True, help="Train everything anew and cache nothing.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write CSV.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Plot success against ε (.png).")
def eval_command(
    model: tuple[str, ...],
    defense: tuple[str, ...],
    attack: tuple[str, ...],
    config: str | None,
    cache_dir: str | None,
    no_cache: bool,
    json_path: str | None,
    csv_path: str | None,
    plot: str | None,
    **options: Any,
) -> None:
    """Train, attack and report a grid of models × defenses × attacks × ε (× λ)."""
    from .cache import ModelCache
    from .download import cache_dir as user_cache_dir
    from .grid import Grid, as_list
    from .harness import Harness

    outputs = [check_output(p) for p in (json_path, csv_path, plot)]
    values = {
        "model": as_list(model),
        "defense": as_list(defense),
        "attack": as_list(attack),
        **options,
    }
    grid = Grid.from_toml(config, **values) if config else Grid.build(**values)
    cache = (
        None
        if no_cache
        else ModelCache(Path(cache_dir) if cache_dir else user_cache_dir() / "models")
    )
    with progress_bar("evaluating") as update:
        result = Harness(grid, cache=cache, progress=update).run()
    click.echo(result.tables())
    json_file, csv_file, plot_file = outputs
    if json_file:
        result.write_json(json_file)
    if csv_file:
        result.write_csv(csv_file)
    if plot_file:
        result.plot(plot_file)


def main() -> None:
    """Entry point of the ``robustkit`` command: add plugin commands, then run."""
    from .plugins import get_plugin_manager

    try:
        get_plugin_manager().hook.register_commands(cli=cli)
    except RobustkitError as exc:  # strict plugin loading failed
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    cli()
