"""True evaluations on a dask cluster (``--dask-scheduler``): a `LocalCluster` of two worker processes on the
loopback gives the very archive of a run on one core, cold or warm-started (the study and the model cache stay in
the process that runs the search; the workers only fine-tune)."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate_emo.errors import ClusterError, ConfigError
from surrogate_emo.pipeline import run
from tests.tiny import tiny_config

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def _archive(result) -> tuple[list[int], np.ndarray, list[float], list[str]]:
    evaluations = result.evaluations
    return ([e.trial for e in evaluations], np.array([e.genome for e in evaluations]),
            [e.error for e in evaluations], [e.source for e in evaluations])


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_search_through_a_cluster_gives_the_archive_of_one_core(tmp_path, cluster, warm_start):
    options = dict(budget=12, pop_size=6, warm_start=warm_start)  # warm starts from the second batch on
    local = run(tiny_config(tmp_path, name="local", n_jobs=1, **options))
    remote = run(tiny_config(tmp_path, name="cluster", dask_scheduler=cluster.scheduler_address, **options))
    trials, genomes, errors, sources = _archive(remote)
    assert trials == _archive(local)[0] == list(range(12))
    assert np.array_equal(genomes, _archive(local)[1])
    assert errors == _archive(local)[2]
    assert sources == _archive(local)[3]
    assert any(source.startswith("cache:") for source in sources) == warm_start
    assert remote.summary["evaluated_now"] == 12
    assert any("_evaluate_one" in prefix for prefix in cluster.scheduler.task_prefixes)  # the workers did them


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("surrogate_emo.cluster.CONNECT_SECONDS", 1)
    with pytest.raises(ClusterError, match="cannot reach the dask scheduler at 'tcp://127.0.0.1:9'"):
        run(tiny_config(tmp_path, dask_scheduler="tcp://127.0.0.1:9", problem="zdt1"))


def test_without_distributed_the_option_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[dask\]'"):
        run(tiny_config(tmp_path, dask_scheduler="tcp://127.0.0.1:8786", problem="zdt1"))
