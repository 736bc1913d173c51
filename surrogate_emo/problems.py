"""Synthetic expensive problems: any pymoo test problem, or a user's own, evaluated as if each call cost a
fine-tuning.

They run through the same `TrialRunner`, study and searches as compression, with every objective modelled
(none is cheap), so the loop can be checked against a known Pareto front, and a user's expensive function goes
through the same loop and harness. A problem is named by a spec: ``"dtlz7 n_obj=3"`` (pymoo's
``get_problem(name, **options)``) or ``"package.module:factory n_var=8"`` (``factory(**options)`` returning a
``pymoo.core.problem.Problem``); the option ``ref_point`` (a number, or one per objective) sets the hypervolume
reference point, and ``lower_bounds`` (likewise) what the objectives can never go below, which the surrogate
loop's acquisitions are told (``"zdt1 lower_bounds=0"``).
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Mapping

import numpy as np
from pymoo.core.problem import Problem
from pymoo.problems import get_problem
from pymoo.util.ref_dirs import get_reference_directions

from surrogate_emo.config import problem_text
from surrogate_emo.errors import ConfigError
from surrogate_emo.evaluate import Evaluation, objective_vector
from surrogate_emo.front import pareto_indices
from surrogate_emo.registry import resolve

# name: (pymoo keyword arguments, hypervolume reference point). The reference points are fixed and documented
# in results/README.md; each is slightly beyond the nadir of the true front, as is usual for these problems.
SYNTHETIC_PROBLEMS: dict[str, tuple[dict, tuple[float, ...]]] = {
    "zdt1": ({"n_var": 6}, (1.1, 1.1)),
    "zdt2": ({"n_var": 6}, (1.1, 1.1)),
    "zdt3": ({"n_var": 6}, (1.1, 1.1)),
    "dtlz2": ({"n_var": 6, "n_obj": 3}, (1.1, 1.1, 1.1)),
}

PYMOO_EXAMPLES = ("zdt1 ... zdt6, dtlz1 ... dtlz7, wfg1 ... wfg9, convex_dtlz2, kursawe, "
                  "and the rest of pymoo.problems.get_problem")


def parse_problem(spec: str | Mapping) -> tuple[str, dict]:
    """``(name, options)`` of a problem spec: ``"name key=value ..."`` or a table ``{name = ..., key = value}``.

    Values are read as int, float, true/false or text; a comma list (``1.1,1.1``) becomes a list.

    Example:
        >>> parse_problem("dtlz7 n_obj=3 ref_point=1,1,7.5")
        ('dtlz7', {'n_obj': 3, 'ref_point': [1, 1, 7.5]})
    """
    if isinstance(spec, Mapping):
        spec = problem_text(spec)  # one parser for both forms: a table says exactly what its text says
    if not isinstance(spec, str) or not spec.split():
        raise ConfigError(f"a problem must be a spec such as 'zdt1' or 'dtlz7 n_obj=3', got {spec!r}")
    name, *pairs = spec.split()
    name = name if ":" in name else name.lower()  # pymoo's names are case-blind
    options = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.isidentifier() or not value:
            raise ConfigError(f"problem {spec!r}: expected key=value options after the name, got {pair!r}")
        if key in options:
            raise ConfigError(f"problem {spec!r}: option {key!r} given twice")
        options[key] = [_value(v) for v in value.split(",") if v] if "," in value else _value(value)
    return name, options


def _value(text: str) -> int | float | bool | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def problem_label(spec: str | Mapping) -> str:
    """The spec written one way (options sorted): the problem's name in studies, summaries and reports.

    Example:
        >>> problem_label({"name": "dtlz7", "n_var": 8, "n_obj": 3})
        'dtlz7 n_obj=3 n_var=8'
    """
    name, options = parse_problem(spec)
    return problem_text({"name": name, **dict(sorted(options.items()))})


def problem_folder(spec: str | Mapping) -> str:
    """A folder name for a problem: ``"dtlz7 n_obj=3"`` -> ``dtlz7-n_obj-3``; a plain name stays as it is."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", problem_label(spec)).strip("-")


def load_problem(spec: str | Mapping) -> tuple[Problem, np.ndarray]:
    """The pymoo problem a spec names and its hypervolume reference point.

    The reference point is the option ``ref_point`` when given; else the documented one of `SYNTHETIC_PROBLEMS`
    (1.1 per objective); else the nadir of pymoo's known Pareto front plus 10% of the front's range.

    Raises:
        ConfigError: unknown name, options the problem does not take, a factory that returns no `Problem`, a
            problem with constraints, fewer than two objectives or unbounded variables, or no reference point.
    """
    name, options = parse_problem(spec)
    ref_option = options.pop("ref_point", None)
    options.pop("lower_bounds", None)  # the loop's, not the problem's (`problem_lower_bounds`)
    if ":" in name:
        factory = resolve(name, {}, kind="problem")
        try:
            problem = factory(**options)
        except TypeError as error:
            raise ConfigError(f"calling problem factory {name!r} with the options {options} failed: {error}") from None
        if not isinstance(problem, Problem):
            raise ConfigError(f"problem factory {name!r} must return a pymoo.core.problem.Problem, "
                              f"got {type(problem).__name__}")
    else:
        defaults = SYNTHETIC_PROBLEMS[name][0] if name in SYNTHETIC_PROBLEMS else {}
        try:
            problem = get_problem(name, **{**defaults, **options})
        except TypeError as error:
            raise ConfigError(f"pymoo problem {name!r} does not take the options {options}: {error}") from None
        except Exception as error:  # noqa: BLE001 - pymoo says "Problem not found." with a bare Exception
            if str(error) != "Problem not found.":
                raise ConfigError(f"pymoo problem {name!r} with options {options} failed to build: "
                                  f"{type(error).__name__}: {error}") from None
            raise ConfigError(f"unknown problem {name!r}; expected a pymoo test problem ({PYMOO_EXAMPLES}) "
                              "or your own as 'package.module:factory' returning a pymoo Problem") from None
        _check_options(name, problem, options)
    label = problem_label(spec)
    _check_problem(label, problem)
    return problem, _ref_point(label, name in SYNTHETIC_PROBLEMS, problem, ref_option)


def _check_options(name: str, problem: Problem, options: dict) -> None:
    """pymoo's problems pass unknown keywords on to `Problem`, which drops them: a misspelt option would be
    ignored. Each must be a named parameter of some ``__init__`` in the problem's classes."""
    def named(classes) -> set[str]:
        return {parameter.name for cls in classes if "__init__" in vars(cls)
                for parameter in inspect.signature(vars(cls)["__init__"]).parameters.values()
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) and parameter.name != "self"}

    mro = type(problem).__mro__
    unknown = sorted(set(options) - named(mro))
    if unknown:
        own = sorted(named(mro[: mro.index(Problem)]) | {"ref_point", "lower_bounds"})  # not Problem's internals
        raise ConfigError(f"pymoo problem {name!r} has no options {unknown}; expected some of {own}")


def _check_problem(name: str, problem: Problem) -> None:
    if problem.n_ieq_constr + problem.n_eq_constr:
        raise ConfigError(f"problem {name!r} has {problem.n_ieq_constr} inequality and {problem.n_eq_constr} "
                          "equality constraints; constrained problems are not supported yet, expected none")
    if problem.n_obj < 2:
        raise ConfigError(f"problem {name!r} has {problem.n_obj} objective; expected a multi-objective problem "
                          "(2 or more)")
    bounded = problem.xl is not None and problem.xu is not None
    if not bounded or not (np.all(np.isfinite(problem.xl)) and np.all(np.isfinite(problem.xu))):
        raise ConfigError(f"problem {name!r} must have finite bounds xl and xu (genomes map the unit cube onto "
                          f"them), got xl={problem.xl!r}, xu={problem.xu!r}")


def _known_front(problem: Problem) -> np.ndarray | None:
    """pymoo's Pareto front at its default size, None where the problem has none or it cannot be had (pymoo
    downloads some fronts: offline, they are unknown)."""
    try:
        front = problem.pareto_front(use_cache=False)
    except Exception:  # noqa: BLE001 - a user's problem or pymoo's download may fail in any way
        return None
    return None if front is None or not np.size(front) else np.asarray(front, dtype=np.float64)


def _per_objective(name: str, key: str, n_obj: int, option, example: str) -> np.ndarray:
    values = option if isinstance(option, list) else [option] * n_obj
    if len(values) != n_obj or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"problem {name!r}: {key} must be a number or {n_obj} numbers (one per objective, e.g. "
                          f"{key}={','.join([example] * n_obj)}), got {option!r}")
    return np.array(values, dtype=np.float64)


def problem_lower_bounds(spec: str | Mapping, n_obj: int) -> np.ndarray | None:
    """The option ``lower_bounds`` of a problem spec, one per objective, or None where it is not given."""
    option = parse_problem(spec)[1].get("lower_bounds")
    return None if option is None else _per_objective(problem_label(spec), "lower_bounds", n_obj, option, "0")


def _ref_point(name: str, documented: bool, problem: Problem, option) -> np.ndarray:
    n_obj = problem.n_obj
    if option is not None:
        return _per_objective(name, "ref_point", n_obj, option, "1.1")
    if documented:
        return np.full(n_obj, 1.1)  # the documented reference point, whatever the options
    front = _known_front(problem)
    if front is None:
        raise ConfigError(f"problem {name!r} has no Pareto front known here to place the hypervolume reference "
                          f"point; give it as an option, e.g. '{name} ref_point={','.join(['1.1'] * n_obj)}'")
    front = front[pareto_indices(front)]
    nadir, ideal = front.max(axis=0), front.min(axis=0)
    return nadir + 0.1 * (nadir - ideal)


class SyntheticEvaluator:
    """Evaluator of a pymoo test problem, with the interface `TrialRunner` uses.

    ``spec`` names the problem (see the module docstring). The first objective is stored as the evaluation's
    ``error``, the others under ``ratios`` as ``f2``, ``f3``, ..., so studies and reports read them as they read
    compression runs. Genomes live in the unit cube and map linearly onto the problem's bounds ``xl``, ``xu``.

    Example:
        >>> evaluator = SyntheticEvaluator("zdt1")
        >>> evaluation = evaluator(np.zeros(6), seed=0)
        >>> evaluator.objectives(evaluation).tolist()
        [0.0, 1.0]
    """

    def __init__(self, spec: str | Mapping) -> None:
        self.name = problem_label(spec)  # the spec written one way: "zdt1", "dtlz7 n_obj=3"
        self.problem, self.ref_point = load_problem(spec)
        self.dim, self.n_obj = self.problem.n_var, self.problem.n_obj
        self.lower_bounds = problem_lower_bounds(spec, self.n_obj)
        if self.lower_bounds is not None and not np.all(self.lower_bounds < self.ref_point):  # NaN fails too
            raise ConfigError(f"problem {self.name!r}: lower_bounds must lie below the reference point "
                              f"{self.ref_point.tolist()}, got {self.lower_bounds.tolist()}")
        self.objective_names = ("f1",) + tuple(f"f{i}" for i in range(2, self.n_obj + 1))
        self.n_evaluations = 0

    def to_problem(self, genome: np.ndarray) -> np.ndarray:
        """The problem's variables of a genome in the unit cube."""
        low, high = self.problem.xl, self.problem.xu  # genomes live in the unit cube, as everywhere
        return low + np.asarray(genome, dtype=np.float64) * (high - low)

    def __call__(self, genome: np.ndarray, seed: int) -> Evaluation:
        started = time.perf_counter()
        values = np.asarray(self.problem.evaluate(self.to_problem(genome)[None, :]), dtype=np.float64)[0]
        self.n_evaluations += 1
        return Evaluation(np.asarray(genome, dtype=np.float64), float(values[0]),
                          {name: float(v) for name, v in zip(self.objective_names[1:], values[1:])},
                          seconds=time.perf_counter() - started, seed=seed, source="none")

    def evaluate(self, genome: np.ndarray, seed: int, start=None) -> Evaluation:
        """What the runner calls; ``start`` (a warm start) means nothing to a test function."""
        return self(genome, seed)

    def objectives(self, evaluation: Evaluation) -> np.ndarray:
        return objective_vector(evaluation, self.objective_names[1:])

    def true_front(self) -> np.ndarray | None:
        """Points of the known Pareto front (pymoo's), for IGD and the hypervolume limit: 1,000 on a 2-objective
        front, 5,151 (a Das-Dennis grid of 100 partitions) on a 3-objective one where the problem takes that
        many, else as many as it gives; None where it has none (or cannot fetch it)."""
        try:
            if self.n_obj == 2:
                front = self.problem.pareto_front(1000, use_cache=False)
            else:  # 100 partitions for 3 objectives; fewer beyond, to stay near 5,151 points
                partitions = max(p for p in range(1, 101) if math.comb(p + self.n_obj - 1, self.n_obj - 1) <= 5151)
                directions = get_reference_directions("das-dennis", self.n_obj, n_partitions=partitions)
                front = self.problem.pareto_front(ref_dirs=directions, use_cache=False)
        except TypeError:  # a front computed without a number of points or reference directions
            front = _known_front(self.problem)
        except Exception:  # noqa: BLE001 - a user's problem or pymoo's download may fail in any way
            front = None
        return None if front is None else np.asarray(front, dtype=np.float64)
