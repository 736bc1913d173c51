"""Command line: ``surrogate-emo run [--config FILE] [--option VALUE ...]``, ``surrogate-emo experiment FILE`` and
``surrogate-emo export RUN_DIR --trial N | --within POINTS``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version

from surrogate_emo.config import add_config_arguments, config_from_dict, load_config_file
from surrogate_emo.errors import RunInterrupted, SurrogateEMOError, SurrogateEMOWarning


EXPERIMENT_DESCRIPTION = """\
Run every method x seed (x problem) of an experiment file, skipping finished runs and
resuming interrupted ones, then write tables and plots under <output_dir>/<name>/.

The experiment file (TOML or YAML) has these keys:
  name        the experiment's name: its runs and report go under <output_dir>/<name>/
  seeds       the seeds every method runs, e.g. [0, 1, 2]
  methods     one table per method, [methods.<method>]: run options (see surrogate-emo
              run --help; underscores or dashes) over [base]; a method may set its own seeds
  base        run options shared by every method
  problems    synthetic problems, every objective expensive, each as --problem takes it:
              a pymoo test problem with options ("zdt1", "dtlz7 n_obj=3 ref_point=1,1,7"),
              a table {name = "dtlz7", n_obj = 3}, or "package.module:factory";
              leave out for the compression problem that [base] describes
  baselines   methods every other method is rank-sum tested against
  jobs        runs at a time (default 1; --jobs overrides it)
  quality     a table: one seed's fronts re-scored on test beside global magnitude
              pruning (methods, seed, final_finetune_epochs, min_compression, max_models)
  recipes     one table per published method, [recipes.<name>]: recipe = "olmp" (or
              "emomc", "de", "smoea") and its settings (see surrogate-emo recipe); run
              for every seed on the model [base] describes, beside global pruning
  also: description (free text), output_dir (the folder that receives <name>/)

Example:
  name = "mine"
  seeds = [0, 1, 2]
  problems = ["zdt1"]
  baselines = ["nsga2"]
  [base]
  budget = 100
  [methods.surrogate_gp]
  search = "surrogate"
  [methods.nsga2]
  search = "nsga2"
  pop_size = 20

More in README.md, section "Experiments".
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: the problem and where to read more."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _round_floats(value, digits: int = 4):
    """``value`` with every float (in nested dicts and lists too) rounded to ``digits`` significant digits, for
    what is printed; the files keep full precision.

    Example:
        >>> _round_floats({"hv": 0.16752929111, "n": 12, "ratios": [8.6543219, float("inf")]})
        {'hv': 0.1675, 'n': 12, 'ratios': [8.654, inf]}
    """
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {key: _round_floats(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_floats(item, digits) for item in value]
    return value


@contextlib.contextmanager
def _warnings_in_one_line():
    """Inside: each of our warnings is one line on stderr, ``surrogate-emo: warning: <message>``, with no source
    line echoed; other warnings are shown as Python shows them."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, SurrogateEMOWarning):
                print(f"surrogate-emo: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = one_line
        yield


def _version() -> str:
    try:
        return version("surrogate-emo")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="surrogate-emo", description="Surrogate-assisted evolutionary multi-objective compression "
                     "of neural networks: compression searches, and experiments of many of them.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,experiment,recipe,export}")
    run = commands.add_parser(
        "run", help="run or resume a compression search", usage="%(prog)s [--config FILE] [--option VALUE ...]",
        description="Run (or resume, with the same command) a compression search. With no option: the quickstart "
                    "on the bundled digits. Each option is also a key of the config file (underscores or dashes); "
                    "options given here override the file.")
    run.add_argument("--config", metavar="FILE", help="TOML or YAML file whose keys are the options below")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_config_arguments(run)
    experiment = commands.add_parser(
        "experiment", help="run or resume every method x seed of an experiment file, then write its report",
        description=EXPERIMENT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    experiment.add_argument("file", help="experiment file (TOML or YAML), e.g. experiments/synthetic.toml")
    experiment.add_argument("--jobs", type=int, metavar="N", help="runs at a time (default: the file's jobs, else 1)")
    experiment.add_argument("--report-only", action="store_true", help="write the report from the studies as they are")
    experiment.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    experiment.add_argument("--output-dir", metavar="DIR",
                            help="folder that receives <name>/ (default: the file's output_dir, else runs; "
                                 "--output-dir results extends the committed experiments)")
    experiment.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    recipe = commands.add_parser(
        "recipe", help="run or resume a published method from its recipe file (OLMP, ...), beside global pruning",
        description="Run (or resume, with the same command) one published compression method from a recipe file "
                    "(recipe = \"olmp\", a [base] table of run options and the method's own table), then global "
                    "magnitude pruning with the same training steps; writes <output_dir>/<name>/summary.md. "
                    "Example: surrogate-emo recipe experiments/olmp_lenet300.toml")
    recipe.add_argument("file", help="recipe file (TOML or YAML), e.g. experiments/olmp_lenet300.toml")
    recipe.add_argument("--output-dir", metavar="DIR",
                        help="folder that receives <name>/ (default: the file's output_dir, else runs)")
    recipe.add_argument("--no-progress", dest="progress", action="store_false", help="no progress lines")
    recipe.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    export = commands.add_parser(
        "export", help="write one model of a finished run as files that load without this package",
        description="Write one model of a finished run (model.pt2: torch.export, loaded by torch.export.load; "
                    "model.safetensors: the packed tensors; model.onnx where the exporter is installed), check that "
                    "the loaded file reproduces its test error, and measure bytes on disk and CPU latency beside "
                    "the dense base model (deployment.md). Example: surrogate-emo export runs/quickstart --within 1")
    export.add_argument("run_dir", help="the run's folder, e.g. runs/quickstart")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, metavar="N", help="the trial to export")
    which.add_argument("--within", type=float, metavar="POINTS",
                       help="the most compressed front model whose test error is at most POINTS above the dense one")
    export.add_argument("--out", metavar="DIR", help="folder for the files (default: RUN_DIR/export/trial-N)")
    export.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX file")
    export.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _export(args: argparse.Namespace) -> int:
    from surrogate_emo.exporting import export_run

    with _warnings_in_one_line():
        exported = export_run(args.run_dir, trial=args.trial, within=args.within, out=args.out, onnx=args.onnx)
    print(f"trial {exported.trial}: test error {100 * exported.test_error:.2f}%, "
          f"the loaded model.pt2 {100 * exported.loaded_test_error:.2f}%"
          + (f", model.onnx under ONNX Runtime {100 * exported.table[-1]['test_error']:.2f}%"
             if "onnx" in exported.files else ""))
    for row in exported.table:
        print(f"  {row['model']}: {row['bytes_counted']} bytes counted, {row['safetensors_bytes']} in safetensors, "
              f"batch 1: {row['ms_batch1_threads1']:.3f} ms, batch 256: {row['ms_batch256_threads1']:.2f} ms "
              "(one thread)")
    print(f"files written to {exported.folder}/: {', '.join(sorted(p.name for p in exported.files.values()))}, "
          "deployment.md")
    why = exported.folder / "model.onnx.txt"
    if args.onnx and "onnx" not in exported.files and why.is_file():
        print(" ".join(why.read_text().split()))
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from surrogate_emo.experiment import Experiment, run_experiment
    from surrogate_emo.experiment_report import write_experiment_report

    experiment = Experiment.from_file(args.file)
    if args.output_dir is not None:
        experiment.output_dir = args.output_dir
    if args.report_only:
        write_experiment_report(experiment)
    else:
        with _warnings_in_one_line():
            outcomes = run_experiment(experiment, jobs=args.jobs, progress=args.progress)
        for outcome in outcomes:
            if outcome["status"] != "ran" and not outcome["status"].startswith("skipped"):
                print(f"{outcome['run']}: {outcome['status']}", file=sys.stderr)
    print(f"report written to {experiment.out_dir}/summary.md")
    return 0


def _recipe(args: argparse.Namespace) -> int:
    from surrogate_emo.recipes import RECIPES
    from surrogate_emo.recipes.base import RecipeFile

    file = RecipeFile.from_file(args.file)
    if args.output_dir is not None:
        file.output_dir = args.output_dir
    with _warnings_in_one_line():
        best = RECIPES[file.recipe].run(file, progress=args.progress)
    print(json.dumps(_round_floats(best), indent=2))
    print(f"report written to {file.out_dir}/summary.md")
    return 0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input or an output that cannot be written (one line on stderr: what was expected,
    what was given), 1 an unexpected error (one line; ``--debug`` shows its traceback)."""
    args = build_parser().parse_args(argv)
    received = [signal.SIGINT]

    def terminate(signum, _frame):  # SIGTERM stops a run as Ctrl-C does: cleanly, resumable
        received[0] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if args.command == "experiment":
            return _experiment(args)
        if args.command == "export":
            return _export(args)
        if args.command == "recipe":
            return _recipe(args)
        return _run(args)
    except KeyboardInterrupt as interrupt:
        if args.debug:
            raise
        done = f" after {interrupt.evaluated} evaluations" if isinstance(interrupt, RunInterrupted) else ""
        print(f"surrogate-emo: interrupted{done}; rerun the same command to resume", file=sys.stderr)
        return 128 + int(received[0])  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    except SurrogateEMOError as error:
        if args.debug:
            raise
        print(f"surrogate-emo: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - whatever reaches the command line is one line, not a traceback
        if args.debug:
            raise
        print(f"surrogate-emo: error: {type(error).__name__}: {_one_line(error)} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    values = load_config_file(args.config) if args.config else {}
    values.update({key: value for key, value in vars(args).items()
                   if value is not None and key not in ("command", "config", "debug")})
    config = config_from_dict(values)
    from surrogate_emo.pipeline import run  # heavy imports only once the arguments are known to be good

    with _warnings_in_one_line():
        result = run(config)
    summary = result.summary
    keys = (("problem", "true_evaluations", "failed", "final_hypervolume", "true_front_hypervolume", "front_size",
             "wall_seconds_this_session") if config.problem is not None else
            ("true_evaluations", "failed", "final_hypervolume_val", "dense_test_error",
             "best_compression_within_1pt_test", "best_compression_within_2pt_test", "wall_seconds_this_session"))
    print(json.dumps(_round_floats({key: summary[key] for key in keys}), indent=2))
    if summary["replayed_from_study"]:
        print(f"resumed: {summary['replayed_from_study']} evaluations came from the study in {result.run_dir}/, "
              f"{summary['evaluated_now']} were run now (another --name starts afresh)")
    print(f"outputs written to {result.run_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
