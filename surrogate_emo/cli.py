"""Command line: ``surrogate-emo run [--config FILE] [--option VALUE ...]`` and ``surrogate-emo experiment FILE``."""

from __future__ import annotations

import argparse
import json
import sys

from surrogate_emo.config import add_config_arguments, config_from_dict, load_config_file
from surrogate_emo.errors import SurrogateEMOError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surrogate-emo", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run or resume a compression search",
        description="Run (or resume, with the same command) a compression search. With no option: the quickstart "
                    "on the bundled digits. Options override the config file's keys one to one.")
    run.add_argument("--config", help="TOML or YAML file whose keys are the options below (underscores or dashes)")
    add_config_arguments(run)
    experiment = commands.add_parser(
        "experiment", help="run or resume every method x seed of an experiment file, then write its report",
        description="Run every method x seed (x problem) of an experiment file, skipping finished runs and "
                    "resuming interrupted ones, then write tables and plots under <output_dir>/<name>/.")
    experiment.add_argument("file", help="experiment file (TOML or YAML), e.g. experiments/synthetic.toml")
    experiment.add_argument("--jobs", type=int, help="runs at a time (default: the file's jobs, else 1)")
    experiment.add_argument("--report-only", action="store_true", help="write the report from the studies as they are")
    experiment.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _experiment(args: argparse.Namespace) -> int:
    from surrogate_emo.experiment import Experiment, run_experiment
    from surrogate_emo.experiment_report import write_experiment_report

    experiment = Experiment.from_file(args.file)
    if args.report_only:
        write_experiment_report(experiment)
    else:
        outcomes = run_experiment(experiment, jobs=args.jobs, progress=args.progress)
        for outcome in outcomes:
            if outcome["status"] != "ran" and not outcome["status"].startswith("skipped"):
                print(f"{outcome['run']}: {outcome['status']}", file=sys.stderr)
    print(f"report written to {experiment.out_dir}/summary.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "experiment":
            return _experiment(args)
        values = load_config_file(args.config) if args.config else {}
        values.update({key: value for key, value in vars(args).items()
                       if value is not None and key not in ("command", "config")})
        config = config_from_dict(values)
        from surrogate_emo.pipeline import run  # heavy imports only once the arguments are known to be good

        result = run(config)
    except SurrogateEMOError as error:
        print(f"surrogate-emo: error: {error}", file=sys.stderr)
        return 2
    summary = result.summary
    print(json.dumps({key: summary[key] for key in (
        "true_evaluations", "failed", "final_hypervolume_val", "dense_test_error",
        "best_compression_within_1pt_test", "best_compression_within_2pt_test", "wall_seconds_this_session")},
        indent=2))
    if summary["replayed_from_study"]:
        print(f"resumed: {summary['replayed_from_study']} evaluations came from the study in {result.run_dir}/, "
              f"{summary['evaluated_now']} were run now (another --name starts afresh)")
    print(f"outputs written to {result.run_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
