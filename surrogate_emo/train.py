"""Fit, fine-tune and score models on in-memory splits; train the dense base model once and cache it."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from surrogate_emo.data import DataSplits, Split
from surrogate_emo.errors import ConfigError, FineTuneDiverged, OutputError, SurrogateEMOWarning


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (the current GPU) or ``auto`` (a GPU where torch sees one, else the CPU).

    Raises:
        ConfigError: ``cuda`` is asked for where torch sees no GPU, or the name is none of the three.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if name == "cpu":
        return torch.device("cpu")
    if name in ("cuda", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if name == "auto":
            return torch.device("cpu")
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU (torch "
                          f"{torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu or auto")
    raise ConfigError(f"device must be cpu, cuda or auto, got {name!r}")


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def fit(model: nn.Module, data: Split, steps: int, lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
        progress: Callable[[int], None] | None = None, on_step: Callable[[int], None] | None = None) -> int:
    """Train ``model`` in place with Adam for ``steps`` minibatch steps; returns the steps taken.

    ``progress``, if given, is called with the steps taken so far: after the first step, about every 1% of
    ``steps``, and at the end. ``on_step``, if given, is called after every step with the steps taken so far
    (a compression scheme's mask updates).

    Raises:
        FineTuneDiverged: the loss became NaN or infinite.
    """
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same batches on every device
    device = model_device(model)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    taken, every = 0, max(1, math.ceil(steps / 100))
    while taken < steps:
        # Index in-memory tensors directly: a DataLoader would collate sample by sample, several times slower here.
        for batch in torch.randperm(len(data), generator=generator).split(batch_size):
            if taken == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(data.x[batch].to(device)), data.y[batch].to(device))
            if not torch.isfinite(loss):
                raise FineTuneDiverged(f"loss became {loss.item()} at step {taken} of {steps}")
            loss.backward()
            optimizer.step()
            taken += 1
            if on_step is not None:
                on_step(taken)
            if progress is not None and (taken % every == 0 or taken in (1, steps)):
                progress(taken)
    model.eval()
    return taken


def steps_for(epochs: float, n_samples: int, batch_size: int) -> int:
    """Number of minibatch steps in ``epochs`` passes over ``n_samples``."""
    return max(1, math.ceil(epochs * n_samples / batch_size))


@torch.no_grad()
def error_rate(model: nn.Module, data: Split, batch_size: int = 4096) -> float:
    """Fraction of misclassified samples; NaN outputs count as errors."""
    model.eval()
    device = model_device(model)
    wrong = 0
    for start in range(0, len(data), batch_size):
        logits = model(data.x[start:start + batch_size].to(device))
        wrong += int((logits.argmax(dim=1).cpu() != data.y[start:start + batch_size]).sum())
    return wrong / len(data)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """A short SHA-256 of a state dict (names, dtypes, shapes, bytes): two runs with the same digest compress the
    very same dense model. A base model retrained elsewhere differs in its last bits and gets another digest."""
    digest = hashlib.sha256()
    for name, value in sorted(state.items()):
        if not isinstance(value, torch.Tensor) or value.is_sparse:  # a module's extra state, a sparse buffer
            digest.update(f"{name}:{value!r}".encode())
            continue
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        flat = value.detach().cpu().resolve_conj().contiguous().reshape(-1)  # strided views hash as their values
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def base_model(model: nn.Module, data: DataSplits, epochs: float, lr: float, batch_size: int, seed: int,
               cache_dir: str | Path | None, key: dict, progress: str | None = None) -> tuple[nn.Module, bool]:
    """Train ``model`` densely, or load its weights if a run with the same ``key`` already trained it.

    Returns the trained model and whether it came from the cache. Weights are loaded with
    ``weights_only=True``: no arbitrary object is unpickled. With ``progress`` (what to call the model, e.g.
    ``lenet-300-100``), stderr says which of the two happens, with a bar over the training steps.
    """
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = Path(cache_dir).expanduser() / "base" / f"{digest}.pt"
        if path.exists():
            fresh = copy.deepcopy(model.state_dict())
            try:
                model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
                model.eval()
                if progress:
                    print(f"dense base model loaded from the cache ({path})", file=sys.stderr, flush=True)
                return model, True
            except Exception as error:  # noqa: BLE001 - unpickling garbage raises anything (EOFError, IndexError...)
                model.load_state_dict(fresh)  # a partial load must not leak into the training below
                reason = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}".rstrip(": ")
                warnings.warn(f"base model cache file {path} is unreadable ({reason}); training it again",
                              SurrogateEMOWarning, stacklevel=2)
    steps = steps_for(epochs, len(data.train), batch_size)
    if progress:
        print(f"training the dense base model: {progress}, {epochs:g} epochs ({steps} steps)", file=sys.stderr,
              flush=True)
    bar = tqdm(total=steps, desc="base model", unit="step", file=sys.stderr, disable=not progress)

    def advance(taken: int) -> None:
        if taken == 1:  # the first step pays torch's one-time warm-up: the clock starts after it, the estimate is sane
            bar.reset()
        bar.update(taken - bar.n)

    try:
        fit(model, data.train, steps, lr=lr, batch_size=batch_size, seed=seed, progress=advance if progress else None)
    except FineTuneDiverged as error:
        raise FineTuneDiverged(f"training the dense base model diverged ({error}); lower lr (given {lr})") from error
    finally:
        bar.close()
    if path is not None:
        # one partial file per process: an experiment's runs of one seed may train the same base at once
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, partial)
            if path.is_dir():  # replace() cannot put a file over a folder
                raise IsADirectoryError(21, "Is a directory", str(path))
            partial.replace(path)  # atomic: a crash never leaves half a file under the final name
        except OSError as error:
            raise OutputError.writing(error.filename or path.parent, error) from error
    return model, False
