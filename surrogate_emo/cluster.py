"""Where true evaluations run: this machine (joblib's processes, ``n_jobs``) or a dask cluster
(``dask_scheduler``), through joblib's dask backend.

The search, the study and the model cache stay in the process that runs the search; the cluster's workers only
fine-tune. A worker reloads the data set by name (`Evaluator.data_source`), so it needs the package and the data
set installed, nothing shipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from surrogate_emo.errors import ClusterError, ConfigError

CONNECT_SECONDS = 10  # how long to try to reach a scheduler before saying it cannot be reached


@contextmanager
def evaluation_backend(n_jobs: int, dask_scheduler: str | None = None) -> Iterator[int]:
    """Inside it, joblib runs the runner's evaluations where the configuration says; yields the ``n_jobs`` to
    give the runner.

    Without ``dask_scheduler``: nothing changes, ``n_jobs`` as given. With it: a client connects to the
    scheduler, joblib's ``dask`` backend is active for the block, and the runner gets ``n_jobs = -1`` (the
    backend's width is the cluster's worker threads; the runner parallelises any batch of two or more). The
    client is closed at the end.

    Example:
        >>> with evaluation_backend(4) as n_jobs:
        ...     n_jobs
        4

    Raises:
        ConfigError: ``distributed`` is not installed (the ``dask`` extra).
        ClusterError: the scheduler cannot be reached, or has no worker.
    """
    if dask_scheduler is None:
        yield n_jobs
        return
    try:
        from distributed import Client
    except ImportError as error:
        raise ConfigError("--dask-scheduler needs the dask extra: pip install -e '.[dask]'") from error
    from joblib import parallel_config

    try:
        client = Client(dask_scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot reach the dask scheduler at {dask_scheduler!r} within {CONNECT_SECONDS} s "
                           f"(expected an address such as tcp://HOST:8786 of a running 'dask scheduler'): "
                           f"{' '.join(str(error).split())}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise ClusterError(f"the dask scheduler at {dask_scheduler!r} has no worker after {CONNECT_SECONDS} s; "
                               f"start some with 'dask worker {dask_scheduler}'") from None
        with parallel_config(backend="dask", client=client):
            yield -1
    finally:
        client.close()
