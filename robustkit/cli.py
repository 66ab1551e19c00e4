"""The ``robustkit`` command line: plugins, datasets, train and eval.

User errors (RobustkitError) print one line and exit with status 2; plugin bugs
(PluginFault) and any other exception print one line naming the plugin and exit 1.
No traceback is shown unless ``--debug`` (or ``ROBUSTKIT_DEBUG=1``) asks for it.
Progress bars show only on a terminal; output files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import PluginFault, RobustkitError
from .params import parse_spec

_MODEL_OPTIONS = ("epochs", "batch_size", "lr", "pca", "noise_std", "hidden", "lam")


class UserError(click.ClickException):
    """A RobustkitError shown as ``Error: ...`` with exit status 2."""

    exit_code = 2


class PluginBug(click.ClickException):
    """A PluginFault (or any unexpected exception) shown as ``Error: ...``, exit status 1."""

    exit_code = 1


DEBUG_HINT = " (run with --debug or ROBUSTKIT_DEBUG=1 for the traceback)"


def debug_requested(ctx: click.Context | None = None) -> bool:
    """True with ``--debug`` or ``ROBUSTKIT_DEBUG`` set to anything but empty/0."""
    flag = bool(ctx is not None and ctx.params.get("debug"))
    return flag or os.environ.get("ROBUSTKIT_DEBUG", "") not in ("", "0")


def one_line_error(exc: BaseException) -> click.ClickException:
    """The click error for ``exc``: a user error (exit 2) or a plugin bug (exit 1)."""
    from .faults import fault_message

    if isinstance(exc, RobustkitError):
        return UserError(str(exc))
    if isinstance(exc, PluginFault):
        return PluginBug(str(exc) + DEBUG_HINT)
    return PluginBug(fault_message(exc, "robustkit") + DEBUG_HINT)


class RobustkitGroup(click.Group):
    """A click group that turns every exception into a one-line error (exit 2 or 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:  # Ctrl-C: workers are ended on the way out
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Terminated:
            click.echo("Terminated.", err=True)
            raise click.exceptions.Exit(EXIT_TERMINATED) from None
        except Exception as exc:
            if debug_requested(ctx):
                raise
            raise one_line_error(exc) from None


class Terminated(BaseException):
    """Raised in the main process on SIGTERM, so cleanup runs as for Ctrl-C."""


#: Exit statuses of a run ended by SIGINT (Ctrl-C) and SIGTERM, as shells report them.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt cleanup
    raise Terminated()


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


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """``update(item, done, total)`` drawing a click progress bar on a terminal only."""
    state: dict[str, Any] = {}
    visible = sys.stderr.isatty()

    def update(item: str, done: int, total: int) -> None:
        if not visible:
            return
        state["item"] = item
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
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an error (also: ROBUSTKIT_DEBUG=1).",
)
def cli(debug: bool) -> None:
    """robustkit: train small networks, attack them, and evaluate defenses."""


def _parameters(cls: type) -> list[dict[str, Any]]:
    """Each ``__init__`` parameter of ``cls``: name, type and default (JSON-ready)."""
    from .params import parameter_types, type_name

    out = []
    for name, (declared, default) in parameter_types(cls).items():
        if not isinstance(default, (bool, int, float, str, type(None))):
            default = list(default) if isinstance(default, tuple) else repr(default)
        out.append({"name": name, "type": type_name(declared), "default": default})
    return out


def _format_parameters(params: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['name']}: {p['type']} = {p['default']!r}" for p in params) or "-"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--params", "with_params", is_flag=True, help="Show each plugin's parameters.")
def plugins(as_json: bool, with_params: bool) -> None:
    """List installed plugins: what each registers, from which distribution, load errors.

    Plugins that failed to load and refused registrations (bad names, wrong classes,
    names already taken) are listed too; the command still exits 0.
    """
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
            "params": _parameters(entry.cls),
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
    refused = [
        {
            "name": problem.name,
            "kind": problem.kind,
            "plugin": problem.source.plugin,
            "distribution": problem.source.distribution,
            "version": problem.source.version,
            "error": problem.message,
        }
        for problem in host.problems()
    ]
    if as_json:
        click.echo(json.dumps(items + failed + refused, indent=2))
        return
    columns = ["kind", "name", "plugin", "distribution", "version", "summary"]
    rows = [[item[c] for c in columns] for item in items]
    if with_params:
        columns.append("parameters")
        for row, item in zip(rows, items, strict=True):
            row.append(_format_parameters(item["params"]))
    click.echo(tabulate(rows, headers=columns))
    for item in failed:
        click.echo(
            f"\nfailed: plugin {item['name']!r} from {item['distribution']} "
            f"{item['version']}: {item['error']}"
        )
    for item in refused:
        click.echo(f"\nrefused: {item['error']}")
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
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Plot accuracy and loss (.png, .pdf, .svg)."
)
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
    from .outputs import atomic_write, check_outputs
    from .persistence import save_model
    from .plotting import check_plot_path, plot_training
    from .tables import epoch_table, training_table
    from .training import train as train_model

    check_plot_path(plot)
    check_outputs({"--save": save, "--plot": plot, "--json": json_path})
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
            on_start=lambda model: (
                epochs.update(n=model.get_params().get("epochs") or 1),
                update("starting", 0, epochs["n"]),  # the bar shows before the first epoch
            ),
        )
    summary = {**run.summary(), "seed": seed}
    click.echo(epoch_table(summary["history"]))
    click.echo()
    click.echo(training_table([summary]))
    if save:
        save_model(save, run.recipe, run.model, {"dataset": run.dataset})
    if plot:
        plot_training(summary["history"], plot, title=f"{name} on {run.dataset}")
    if json_path:
        with atomic_write(json_path) as handle:
            json.dump(summary, handle, indent=2, default=str)
            handle.write("\n")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
def info(file: str) -> None:
    """Check a saved model or sample file and describe it: recipe, metadata and accuracy per
    epoch, or the cells of a sample file."""
    from .samples import describe_samples, is_samples_file

    if is_samples_file(file):
        click.echo(describe_samples(file))
        return
    show_model_file(file)


def show_model_file(path: str) -> None:
    """Describe a robustkit model file, or fail with one line saying why it is not one."""
    from .persistence import read_model_file, restore_model
    from .tables import epoch_table

    meta, state = read_model_file(path)
    recipe, model = restore_model(meta, state, path)
    click.echo(f"model:     {recipe.model} {json.dumps(recipe.model_params, sort_keys=True)}")
    if recipe.defense:
        click.echo(
            f"defense:   {recipe.defense} {json.dumps(recipe.defense_params, sort_keys=True)}"
        )
    click.echo(f"saved by:  robustkit {meta['robustkit_version']}")
    for key, value in sorted(meta["extra"].items()):
        click.echo(f"{key + ':':<10} {value}")
    click.echo(f"classes:   {', '.join(map(str, model.classes_))}")
    if getattr(model, "history_", None):
        click.echo()
        click.echo(epoch_table(model.history_))


@cli.group()
def cache() -> None:
    """Inspect or empty the model cache that ``eval`` trains into."""


def _cache_option(command: Callable) -> Callable:
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        envvar="ROBUSTKIT_MODEL_CACHE",
        help="The model cache folder [default: user cache].",
    )(command)


def _open_cache(cache_dir: str | None) -> Any:
    from .cache import ModelCache, default_folder

    return ModelCache(Path(cache_dir) if cache_dir else default_folder())


@cache.command(name="list")
@_cache_option
def cache_list(cache_dir: str | None) -> None:
    """One line per cached model: key, model, defense, data set, size (or why unusable)."""
    from tabulate import tabulate

    entries = _open_cache(cache_dir).entries()
    rows = [
        [e.key, e.model, e.defense or "none", e.dataset, e.size, e.error or "ok"] for e in entries
    ]
    click.echo(tabulate(rows, headers=["key", "model", "defense", "dataset", "bytes", "status"]))


@cache.command(name="info")
@_cache_option
def cache_info(cache_dir: str | None) -> None:
    """Where the cache is, how many models it holds and their total size."""
    store = _open_cache(cache_dir)
    entries = store.entries() if store.folder.is_dir() else []
    broken = sum(e.error is not None for e in entries)
    click.echo(f"folder:    {store.folder}")
    click.echo(f"models:    {len(entries) - broken} ({broken} unusable)")
    click.echo(f"size:      {sum(e.size for e in entries)} bytes")


@cache.command(name="clear")
@_cache_option
def cache_clear(cache_dir: str | None) -> None:
    """Delete every cached model."""
    store = _open_cache(cache_dir)
    removed = store.clear() if store.folder.is_dir() else 0
    click.echo(f"removed {removed} files from {store.folder}")


@cli.command(name="eval")
@click.option("--model", multiple=True, help="Model spec, repeatable: rbf:lr=0.05,epochs=10.")
@click.option("--defense", multiple=True, help="Defense spec, repeatable: reject:n_noise=200.")
@click.option("--attack", multiple=True, help="Attack spec, repeatable: pgd:steps=20.")
@click.option("--eps", multiple=True, help="Budgets as fractions of the input range: 0.05,0.1,0.3.")
@click.option("--lam", multiple=True, help="λ values to sweep (reject defense / RBF): 50,100.")
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
    help="Size N of the sample set (default 100).",
)
@click.option(
    "--samples",
    help="Sample set: 'first' (default: the first N test samples, the same for every "
    "model) or 'correct' (the first N each model classifies correctly, as the study).",
)
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every random choice (0).")
@click.option("--jobs", type=int, help="Parallel jobs (default 1; -1: all cores).")
@click.option(
    "--backend",
    type=click.Choice(["local", "dask"]),
    help="Where cells run: local processes (default) or a Dask cluster (the dask extra).",
)
@click.option(
    "--scheduler",
    help="Dask scheduler address (tcp://host:8786) for --backend dask; else a local cluster.",
)
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
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Plot success against ε (.png, .pdf, .svg)."
)
@click.option(
    "--save-samples",
    type=click.Path(dir_okay=False),
    help="Write per-sample indices, predictions, norms and success flags (.npz).",
)
@click.option(
    "--save-adversarials",
    is_flag=True,
    help="Also write every adversarial input to the --save-samples file.",
)
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
    save_samples: str | None,
    save_adversarials: bool,
    **options: Any,
) -> None:
    """Train, attack and report a grid of models × defenses × attacks × ε (× λ)."""
    from .cache import ModelCache, default_folder
    from .grid import Grid, as_list
    from .harness import Harness
    from .outputs import check_outputs
    from .plotting import check_plot_path

    if save_adversarials and not save_samples:
        raise RobustkitError("--save-adversarials needs --save-samples FILE.npz")
    check_plot_path(plot)
    check_outputs(
        {"--json": json_path, "--csv": csv_path, "--plot": plot, "--save-samples": save_samples},
        {"--config": config},
    )
    values = {
        "model": as_list(model),
        "defense": as_list(defense),
        "attack": as_list(attack),
        **options,
        "eps": as_list(options["eps"]),
        "lam": as_list(options["lam"]),
    }
    grid = Grid.from_toml(config, **values) if config else Grid.build(**values)
    cache = None if no_cache else ModelCache(Path(cache_dir) if cache_dir else default_folder())
    with progress_bar("evaluating") as update:
        result = Harness(
            grid, cache=cache, progress=update, keep_adversarials=save_adversarials
        ).run()
    click.echo(result.tables())
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    if plot:
        result.plot(plot)
    if save_samples:
        result.write_samples(save_samples)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, *args: Any) -> str:
    return f"Warning: {message}\n"


def main() -> None:
    """Entry point of the ``robustkit`` command: add plugin commands, then run.

    Warnings print as one ``Warning: ...`` line; a failure while loading plugins (strict
    mode) is a one-line error like any other; SIGTERM ends the run like Ctrl-C.
    """
    from .plugins import get_plugin_host

    warnings.formatwarning = _show_warning
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        get_plugin_host().add_commands(cli)
    except Exception as exc:
        if debug_requested() or "--debug" in sys.argv[1:]:
            raise
        error = one_line_error(exc)
        error.show()
        sys.exit(error.exit_code)
    cli()
