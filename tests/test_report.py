"""The run report's plots: every point inside the axes, infinite ratios and failures accounted for."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from surrogate_emo.evaluate import Evaluation
from surrogate_emo.report import _plot_front, front_plot_limits


def _inside(values, limits) -> bool:
    return bool(np.all((limits[0] < np.asarray(values)) & (np.asarray(values) < limits[1])))


@pytest.mark.parametrize("x, y, yscale", [
    ([0.6, 2.0, 100.0], [2.8, 5.0, 90.0], "log"),        # errors over more than a decade
    ([1.5, 3.0], [2.0, 4.0], "linear"),
    ([1.0, 50.0], [0.0, 3.0, 60.0], "symlog"),           # a perfect model beside bad ones
    ([4.0], [7.0], "linear"),                            # one point
    ([2.0, np.inf], [3.0, 90.0], "log"),                 # nothing kept: drawn inside the right edge
])
def test_the_front_plot_limits_hold_every_point(x, y, yscale):
    limits = front_plot_limits(x, y)
    assert limits["yscale"] == yscale
    drawn = [limits["inf_x"] if np.isinf(v) else v for v in x]
    assert _inside(drawn, limits["xlim"]) and _inside(y, limits["ylim"])
    assert (limits["inf_x"] is None) == (not np.isinf(x).any())
    if limits["inf_x"] is not None:
        assert limits["inf_x"] > max(v for v in x if np.isfinite(v))


def test_the_pareto_plot_shows_every_evaluation_and_front_model(tmp_path):
    rng = np.random.default_rng(0)
    ratios = 10 ** rng.uniform(-2.2, 0.2, 40)  # compressions from 0.6x to 160x
    evaluations = [Evaluation(np.zeros(2), float(e), {"params": float(r)})
                   for r, e in zip(ratios, rng.uniform(0.02, 0.9, 40))]
    evaluations.append(Evaluation(np.zeros(2), 0.9, {"params": 0.0}))  # nothing kept
    evaluations.append(Evaluation(np.zeros(2), float("nan"), {"params": 0.5}, status="failed"))
    front = [{"compression": 1 / e.ratios["params"] if e.ratios["params"] else float("inf"),
              "val_error": e.error, "test_error": e.error * 1.3} for e in evaluations[-2:-1] + evaluations[:3]]
    setup = SimpleNamespace(dense_test_error=0.03, evaluator=SimpleNamespace(objective_names=("error", "params")))
    config = SimpleNamespace(model="mlp", dataset="digits", search="nsga2")
    limits = _plot_front(tmp_path / "front.png", evaluations, front, setup, config)
    assert (tmp_path / "front.png").stat().st_size > 0
    assert _inside(1 / ratios, limits["xlim"]) and _inside([limits["inf_x"]], limits["xlim"])
    errors = [100 * e.error for e in evaluations if e.ok] + [100 * r["test_error"] for r in front] + [3.0]
    assert _inside(errors, limits["ylim"]) and limits["yscale"] == "log"
