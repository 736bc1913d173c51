from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread, as runs use by default: multi-threaded LAPACK SVD slows 100-fold when the CPUs are shared
    with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    """A small MLP (64 -> 32 -> 10) trained briefly on digits, with the digits splits: what the recipes' tests
    prune."""
    from torch import nn

    from surrogate_emo.data import load_dataset
    from surrogate_emo.train import fit

    data = load_dataset("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    fit(net, data.train, 150, seed=0)
    return net, data
