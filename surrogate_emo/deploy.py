"""What a user takes away: a compressed model packed as it is stored, written as files that load without this
package, and its CPU latency measured.

`pack` turns the training-time layers into packed ones that hold only what is stored:

- a masked layer (``prune``): the kept float32 values and their flat int32 positions;
- a quantised layer (``quant``, ``prune-quant``): int8 (int16 above 8 bits) integers, one float32 scale per output
  channel, and the positions when pruned too;
- in either, where positions would cost more than the zeros they skip (more than half the float32 weights kept,
  or a fifth of the int8 ones), every value, zeros included, and no positions;
- everything else (dense layers, filter-pruned layers, low rank + sparse, BatchNorm) as it is.

A packed layer rebuilds its dense weight in every forward pass (a scatter and a multiply: cheap beside the product
at a batch of 256, not at a batch of 1), so the exported file is small and needs nothing but torch to run.
`unpack` gives the runtime form a deployment would use instead: dense weights rebuilt once, or, for a pruned
``Linear``, a ``torch.sparse`` CSR weight where that is faster (`choose_kernels` measures it per layer).

Files (`export`): ``model.pt2`` (``torch.export``: structure and packed tensors; ``torch.export.load(path)
.module()`` runs it), ``model.safetensors`` (the packed tensors with a JSON description of each layer in its
metadata), and ``model.onnx`` where the ONNX exporter is installed (the ``export`` extra).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from surrogate_emo.compress.masks import MaskedLayer
from surrogate_emo.compress.quant import QuantLayer
from surrogate_emo.errors import ConfigError
from surrogate_emo.surgery import replace_layer


class PackedLayer(nn.Module):
    """A ``Linear`` or ``Conv2d`` whose weight is stored packed: ``values`` (float32, or integers with ``scale``) at
    flat row-major ``indices`` of the weight (all positions when ``indices`` is empty), rebuilt in the forward pass.
    """

    def __init__(self, shape: tuple[int, ...], values: torch.Tensor, indices: torch.Tensor | None,
                 scale: torch.Tensor | None, bias: torch.Tensor | None, conv: dict | None = None) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.register_buffer("values", values.detach().clone())
        self.register_buffer("indices", (indices if indices is not None else torch.zeros(0, dtype=torch.int32))
                             .detach().to(torch.int32).clone())
        self.register_buffer("scale", (scale if scale is not None else torch.zeros(0)).detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone() if bias is not None else torch.zeros(0))
        self.conv = dict(conv) if conv is not None else None

    def weight(self) -> torch.Tensor:
        """The dense float32 weight the layer computes with."""
        values = self.values.float()
        if self.indices.numel() or self.values.numel() != int(np.prod(self.shape)):
            values = torch.zeros(int(np.prod(self.shape)), dtype=torch.float32,
                                 device=values.device).index_put((self.indices.long(),), values)
        weight = values.view(self.shape)
        if self.scale.numel():
            weight = weight * self.scale.view(-1, *([1] * (len(self.shape) - 1)))
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias if self.bias.numel() else None
        if self.conv is None:
            return F.linear(x, self.weight(), bias)
        return F.conv2d(x, self.weight(), bias, **self.conv)

    def describe(self) -> dict:
        """What is stored, for the safetensors metadata and the deployment table."""
        return {"shape": list(self.shape), "values": str(self.values.dtype).replace("torch.", ""),
                "kept": int(self.values.numel()), "indices": int(self.indices.numel()),
                "scales": int(self.scale.numel()), "conv": self.conv}

    def extra_repr(self) -> str:
        return f"shape={self.shape}, kept={self.values.numel()}, dtype={self.values.dtype}"


def _conv_args(layer: nn.Module) -> dict | None:
    if layer.weight.dim() != 4:
        return None
    return {"stride": tuple(layer.stride), "padding": layer.padding if isinstance(layer.padding, str)
            else tuple(layer.padding), "dilation": tuple(layer.dilation), "groups": int(layer.groups)}


def _sparse_or_dense(flat: torch.Tensor, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The kept values and their int32 positions, or every value (zeros included) and no positions where that is
    smaller: a kept entry costs its value plus 4 bytes of position, a dense one its value alone."""
    kept = int(mask.sum())
    if kept * (flat.element_size() + 4) >= flat.numel() * flat.element_size():
        return flat * torch.from_numpy(mask).to(flat.dtype), None
    indices = torch.from_numpy(np.flatnonzero(mask).astype(np.int32))
    return flat[indices.long()], indices


def _packed(layer: nn.Module) -> PackedLayer:
    if isinstance(layer, QuantLayer):
        state = layer.export_state()
        values, indices = _sparse_or_dense(state["weight"].flatten(), layer.structure_mask())
        return PackedLayer(layer.weight.shape, values, indices, state["scale"], layer.bias, _conv_args(layer))
    # a masked layer: float32 values
    values, indices = _sparse_or_dense(layer.weight.detach().flatten().float(), layer.mask.flatten().cpu().numpy())
    return PackedLayer(layer.weight.shape, values, indices, None, layer.bias, _conv_args(layer))


def pack(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (left untouched) whose masked and quantised layers hold only what is stored.

    Example:
        >>> from surrogate_emo.compress.masks import mask_model
        >>> net = mask_model(nn.Sequential(nn.Linear(4, 3)), {"0": 5})
        >>> packed = pack(net)
        >>> packed[0].values.numel(), torch.allclose(packed(torch.ones(1, 4)), net(torch.ones(1, 4)))
        (5, True)
    """
    packed = copy.deepcopy(model).eval()
    for name, module in list(packed.named_modules()):
        if isinstance(module, (MaskedLayer, QuantLayer)):
            packed = replace_layer(packed, name, _packed(module))
    return packed


class CsrLinear(nn.Module):
    """A linear layer computing with a ``torch.sparse`` CSR weight (the runtime form of a pruned ``Linear``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta": we measure it, and use it only if faster
            self.weight = weight.to_sparse_csr()
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.sparse.mm(self.weight, x.reshape(-1, x.shape[-1]).t()).t()
        return out + self.bias if self.bias is not None else out


def unpack(model: nn.Module, kernels: dict[str, str] | None = None) -> nn.Module:
    """The runtime form of a packed model: each packed layer's weight rebuilt once as a plain ``Linear``/``Conv2d``
    (kernel ``"dense"``), or a `CsrLinear` (kernel ``"csr"``, linear layers only) where ``kernels`` says so."""
    kernels = kernels or {}
    plain = copy.deepcopy(model).eval()
    for name, module in list(plain.named_modules()):
        if not isinstance(module, PackedLayer):
            continue
        with torch.no_grad():
            weight = module.weight()
            bias = module.bias if module.bias.numel() else None
            if kernels.get(name, "dense") == "csr":
                if module.conv is not None:
                    raise ConfigError(f"layer {name!r}: the csr kernel is for linear layers only")
                layer = CsrLinear(weight, bias)
            elif module.conv is None:
                layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            else:
                layer = nn.Conv2d(weight.shape[1] * module.conv["groups"], weight.shape[0], weight.shape[2:],
                                  bias=bias is not None, **module.conv)
            if not isinstance(layer, CsrLinear):
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
        plain = replace_layer(plain, name, layer)
    return plain


def latency(model, example: torch.Tensor, threads: int, repeats: int = 30, warmup: int = 5) -> float:
    """Median seconds of one forward pass of ``example`` with ``threads`` torch threads (no gradient); ``model`` is
    an ``nn.Module`` or any callable (an `OnnxModel` sets its own threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(example)
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                model(example)
                times.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def choose_kernels(packed: nn.Module, example: torch.Tensor, threads: int = 1) -> dict[str, str]:
    """For each packed ``Linear``, ``"csr"`` where a torch.sparse CSR product of its weight is faster than the dense
    one on ``example``'s batch at that layer's input width, else ``"dense"`` (convolutions: always dense)."""
    chosen = {}
    batch = example.shape[0]
    for name, module in packed.named_modules():
        if not isinstance(module, PackedLayer) or module.conv is not None:
            continue
        with torch.no_grad():
            weight = module.weight()
        bias = module.bias if module.bias.numel() else None
        x = torch.randn(batch, weight.shape[1])
        dense = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            dense.weight.copy_(weight)
        sparse = CsrLinear(weight, bias)
        chosen[name] = "csr" if latency(sparse, x, threads) < latency(dense, x, threads) else "dense"
    return chosen


def export(model: nn.Module, example: torch.Tensor, folder: Path, onnx: bool = True) -> dict[str, Path]:
    """Write ``model`` (packed first) to ``folder``: ``model.pt2``, ``model.safetensors`` and, where the exporter is
    installed and the operators allow, ``model.onnx``. Returns the paths written by format."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    packed = pack(model)
    example = example.detach().clone()  # the file keeps the example: not the whole data set a slice is a view of
    written = {}
    batch = {0: torch.export.Dim("batch")}  # any batch size (the example needs 2 or more: 1 would be fixed)
    program = torch.export.export(packed, (example,), dynamic_shapes=(batch,))
    with warnings.catch_warnings():  # torch notes how it groups the CPU tensors it writes: nothing to act on
        warnings.simplefilter("ignore", UserWarning)
        torch.export.save(program, folder / "model.pt2")
    written["pt2"] = folder / "model.pt2"
    layers = {name: module.describe() for name, module in packed.named_modules() if isinstance(module, PackedLayer)}
    tensors = {key: value.contiguous() for key, value in packed.state_dict().items()}
    save_file(tensors, folder / "model.safetensors", metadata={"packed_layers": json.dumps(layers)})
    written["safetensors"] = folder / "model.safetensors"
    if onnx:
        try:  # the exporter reports its steps on stdout and warns freely: keep them out of the user's terminal
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_logging():
                warnings.simplefilter("ignore")
                torch.onnx.export(packed, (example,), folder / "model.onnx", dynamo=True, dynamic_shapes=(batch,),
                                  external_data=False, optimize=False,  # folding would store dense weights
                                  verbose=False)
            _strip_onnx_metadata(folder / "model.onnx")
            written["onnx"] = folder / "model.onnx"
        except ModuleNotFoundError as error:  # the export extra is not installed
            (folder / "model.onnx.txt").write_text(f"no model.onnx: {error.name} is not installed (the export "
                                                   "extra: pip install -e '.[export]')\n")
        except Exception as error:  # noqa: BLE001 - the exporter's errors are many; ONNX is optional
            (folder / "model.onnx.txt").write_text(f"no model.onnx: {type(error).__name__}: {error}\n")
    return written


def _strip_onnx_metadata(path: Path) -> None:
    """Drop the exporter's per-node metadata (source locations, names): two thirds of a small model's file."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet_logging():
    """Silence the ONNX exporter's log lines (torch and onnx-ir log warnings about operators we do not use)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class OnnxModel:
    """A ``model.onnx`` run by ONNX Runtime on the CPU with ``threads`` intra-op threads, called like a module."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its constant-folding notes are not the user's business
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input: x.numpy()})[0])


class _Loaded(nn.Module):
    """An exported program's module behind a plain ``nn.Module``: ``eval()`` and ``train()`` reach the wrapper only
    (an exported module refuses them; it was exported in evaluation mode)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.__dict__["program"] = module  # not a submodule: train()/eval() must not reach it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load(path: Path) -> nn.Module:
    """The model of a ``model.pt2`` file, as any torch user loads it (``torch.export.load(path).module()``)."""
    with warnings.catch_warnings():  # torch warns about how it regroups CPU tensors it loads: nothing to act on
        warnings.simplefilter("ignore", UserWarning)
        return _Loaded(torch.export.load(str(path)).module())
