"""Magnitude masks: which weights are kept (ties), DNS hysteresis and thresholds by hand, fixed vs recovery training."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from surrogate_emo.compress.masks import (MaskedConv2d, MaskedLinear, effective_state, keep_count, kept,
                                          mask_model, threshold_for_crate, threshold_for_keep, top_magnitude_mask)
from surrogate_emo.data import Split
from surrogate_emo.errors import ConfigError
from surrogate_emo.train import fit

# |w| = 1, 3, 2 / 2, 0.5, 2: three entries tie at 2 (flat positions 2, 3, 5)
W = torch.tensor([[1.0, -3.0, 2.0], [2.0, 0.5, -2.0]])


def linear_with(weight: torch.Tensor, bias: bool = True) -> nn.Linear:
    """A ``Linear`` with weight ``weight`` (2 rows) and bias [0.1, -0.2]."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias:
            layer.bias.copy_(torch.tensor([0.1, -0.2]))
    return layer


def tiny_problem() -> tuple[nn.Module, Split]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()  # three classes
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), Split(x, y)


def loss_of(model: nn.Module, data: Split) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(data.x), data.y))


# ---------------------------------------------------------------- which weights are kept


@pytest.mark.parametrize("keep, expected", [
    (2, [[0, 1, 1], [0, 0, 0]]),    # 3, then the first of the three 2s (position 2)
    (4, [[0, 1, 1], [1, 0, 1]]),    # 3 and all three 2s
    (0.5, [[0, 1, 1], [1, 0, 0]]),  # floor(0.5 * 6) = 3: 3, then the 2s at positions 2 and 3 (not 5)
    (0, [[0, 0, 0], [0, 0, 0]]),
    (1.0, [[1, 1, 1], [1, 1, 1]]),
    (1, [[0, 1, 0], [0, 0, 0]]),    # the int 1 is one weight, not all of them
])
def test_keep_largest_magnitudes_ties_by_position(keep, expected):
    assert top_magnitude_mask(W, keep).int().tolist() == expected
    layer = MaskedLinear.from_dense(linear_with(W), keep)
    assert layer.mask.int().tolist() == expected
    assert layer.kept == sum(map(sum, expected))
    # fixed mode stores the pruned weights as zeros, the kept ones unchanged
    assert torch.equal(layer.weight.detach(), W * torch.tensor(expected))


def test_fraction_floors_like_the_compression_spaces():
    assert [keep_count(f, 100) for f in (0.1, 0.29, 0.999, 0.0)] == [10, 29, 99, 0]
    assert keep_count(0.5, 7) == 3


def test_forward_computes_with_the_masked_weight():
    dense = linear_with(W)
    layer = MaskedLinear.from_dense(dense, 2, recovery=True)
    x = torch.tensor([[1.0, 1.0, 1.0]])
    # kept: -3 at (0, 1) and 2 at (0, 2); row 1 keeps nothing: outputs -3 + 2 + 0.1 and -0.2
    torch.testing.assert_close(layer(x), torch.tensor([[-0.9, -0.2]]))
    assert torch.equal(layer.weight.detach(), W)  # recovery keeps the masked values


# ---------------------------------------------------------------- DNS hysteresis and thresholds


@pytest.mark.parametrize("recovery", [True, False])
def test_hysteresis_at_threshold_one(recovery):
    # row 0 starts unmasked, row 1 masked; with t = 1: drop at |w| <= 0.9, splice back at |w| > 1.1
    values = torch.tensor([0.85, -0.95, 1.05, -1.15, 0.9, -1.1])
    weight = torch.stack([values, values])
    mask = torch.tensor([[True] * 6, [False] * 6])
    layer = MaskedLinear(weight, mask, None, recovery=recovery)
    assert layer.update_mask(1.0) == layer.kept
    if recovery:
        # unmasked: 0.85 and 0.9 (<= 0.9) are dropped, the rest stay; masked: only 1.15 (> 1.1) comes back
        assert layer.mask.int().tolist() == [[0, 1, 1, 1, 0, 1], [0, 0, 0, 1, 0, 0]]
        assert torch.equal(layer.weight.detach(), weight)  # the mask changes, never the weights
    else:
        # fixed mode: masked weights are zero and stay masked; newly dropped ones are zeroed
        assert layer.mask.int().tolist() == [[0, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0]]
        assert layer.weight.detach()[0].tolist() == pytest.approx([0.0, -0.95, 1.05, -1.15, 0.0, -1.1])
        assert not layer.weight.detach()[1].any()


def test_crate_threshold_by_hand():
    w = torch.tensor([0.0, 1.0, -2.0, 3.0, -4.0])  # |w|: mean 2, population variance (4+1+0+1+4)/5 = 2
    assert threshold_for_crate(w, 1.0) == pytest.approx(2.0 + math.sqrt(2.0))
    assert threshold_for_crate(w, 0.0) == pytest.approx(2.0)
    assert threshold_for_crate(w, -1.0) == pytest.approx(2.0 - math.sqrt(2.0))
    assert threshold_for_crate(w, -2.0) == 0.0  # 2 - 2 sqrt(2) < 0: clipped
    assert threshold_for_crate(torch.tensor([1.0, -3.0]), 1.0) == pytest.approx(3.0)


def test_keep_threshold_by_hand():
    w = torch.tensor([0.5, -3.0, 2.0, 1.0])
    assert threshold_for_keep(w, 2) == 1.0       # |w| > 1 keeps 3 and 2
    assert threshold_for_keep(w, 0.5) == 1.0
    assert threshold_for_keep(w, 0) == 3.0       # nothing exceeds the largest
    assert threshold_for_keep(w, 4) == 0.0       # all kept
    assert int((w.abs() > threshold_for_keep(w, 3)).sum()) == 3


# ---------------------------------------------------------------- training: fixed vs recovery


def test_fixed_mask_weights_stay_exactly_zero_while_the_loss_falls():
    model, data = tiny_problem()
    masked = mask_model(model, {"0": 0.5, "2": 6})
    before = {name: layer.weight.detach().clone() for name, layer in masked.named_modules()
              if isinstance(layer, MaskedLinear)}
    loss_before = loss_of(masked, data)
    fit(masked, data, steps=40, lr=0.03, batch_size=16)
    assert loss_of(masked, data) < loss_before - 0.05
    for name, start in before.items():
        layer = masked.get_submodule(name)
        off = ~layer.mask
        assert torch.equal(layer.weight.detach()[off], start[off]) and not start[off].any()  # exactly zero, unchanged
        assert not torch.equal(layer.weight.detach()[~off], start[~off])  # the kept ones did train
    assert kept(masked) == {"0": 16, "2": 6}
    # decoupled weight decay and momentum cannot move them either: their gradient is zero from the first step
    optimizer = torch.optim.AdamW(masked.parameters(), lr=0.03, weight_decay=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.cross_entropy(masked(data.x), data.y).backward()
        optimizer.step()
    assert all(not layer.weight.detach()[~layer.mask].any() for layer in (masked[0], masked[2]))


def test_recovery_masked_weights_train():
    model, data = tiny_problem()
    masked = mask_model(model, {"0": 0.5, "2": 0.5}, recovery=True)
    starts = {name: (masked.get_submodule(name).weight.detach().clone(), masked.get_submodule(name).mask.clone())
              for name in ("0", "2")}
    fit(masked, data, steps=20, lr=0.03, batch_size=16)
    exported = effective_state(masked)
    for name, (start, mask) in starts.items():
        layer, off = masked.get_submodule(name), ~mask
        assert torch.equal(layer.mask, mask)  # the mask moves only through update_mask
        # masked weights train wherever the gradient reaches them (not below dead ReLU units)
        assert int((layer.weight.detach()[off] != start[off]).sum()) >= 5
        assert not exported[f"{name}.weight"][off].any()  # still pruned in what is exported
    # switching to a fixed mask for the last phase (OLMP) zeroes the masked weights; the outputs do not change
    outputs = masked(data.x)
    for name in starts:
        masked.get_submodule(name).recovery = False
    assert not masked[0].weight.detach()[~masked[0].mask].any() and not masked[0].recovery
    torch.testing.assert_close(masked(data.x), outputs, rtol=0, atol=0)


@pytest.mark.parametrize("recovery", [True, False])
def test_a_masked_weight_pushed_above_1_1_t_is_spliced_back(recovery):
    # y = w0 x0 + w1 x1 with w = [1.0, 0.1], w1 masked; loss -y with x = [0, 1]: d loss / d w_eff = [0, -1]
    layer = MaskedLinear(torch.tensor([[1.0, 0.1]]), torch.tensor([[True, False]]), None, recovery=recovery)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.25)
    x = torch.tensor([[0.0, 1.0]])
    seen = []
    for _ in range(2):
        optimizer.zero_grad()
        (-layer(x).sum()).backward()
        optimizer.step()
        seen.append(layer.update_mask(0.5))  # splice back above 0.55, drop at or below 0.45
    if recovery:
        # w1: 0.1 -> 0.35 (still masked) -> 0.6 (> 0.55: spliced back); w0 = 1 stays kept
        assert seen == [1, 2]
        torch.testing.assert_close(layer.weight.detach(), torch.tensor([[1.0, 0.6]]))
        assert layer.mask.tolist() == [[True, True]]
    else:
        assert seen == [1, 1]
        assert layer.weight.detach().tolist() == [[1.0, 0.0]]


def conv_pair(recovery: bool) -> tuple[MaskedConv2d, nn.Conv2d]:
    torch.manual_seed(1)
    dense = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2).double()
    layer = MaskedConv2d.from_dense(dense, 0.3, recovery=recovery)
    reference = copy.deepcopy(dense)
    with torch.no_grad():
        reference.weight.copy_(layer.weight * layer.mask)  # the dense layer at the effective weight
    return layer, reference


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("recovery", [True, False])
def test_gradients_equal_the_dense_layers_at_the_effective_weight(kind, recovery):
    torch.manual_seed(0)
    if kind == "linear":
        dense = nn.Linear(5, 3).double()
        layer = MaskedLinear.from_dense(dense, 0.4, recovery=recovery)
        reference = copy.deepcopy(dense)
        with torch.no_grad():
            reference.weight.copy_(layer.weight * layer.mask)
        x = torch.randn(7, 5, dtype=torch.float64)
    else:
        layer, reference = conv_pair(recovery)
        x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    target = torch.randn_like(reference(x))
    x_masked, x_dense = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = layer(x_masked)
    torch.testing.assert_close(out, reference(x_dense))
    ((out - target) ** 2).sum().backward()
    ((reference(x_dense) - target) ** 2).sum().backward()
    torch.testing.assert_close(x_masked.grad, x_dense.grad)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad)
    # recovery: every entry, masked or not, gets the dense gradient; fixed: the masked ones get exactly zero
    expected = reference.weight.grad if recovery else reference.weight.grad * layer.mask
    torch.testing.assert_close(layer.weight.grad, expected, rtol=0, atol=0)
    assert recovery == bool(layer.weight.grad[~layer.mask].abs().sum() > 0)


# ---------------------------------------------------------------- models


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Sequential(nn.Linear(4 * 5 * 5, 6), nn.ReLU()), nn.Linear(6, 2))


def test_mask_model_leaves_the_input_untouched_and_exports_dense():
    net = small_net()
    state = copy.deepcopy(net.state_dict())
    masked = mask_model(net, {"0": 10, "3.0": 0.25}, recovery=True)  # 3.0 is 6 x 100: keeps 150
    assert isinstance(net[0], nn.Conv2d) and isinstance(net[3][0], nn.Linear)
    assert all(torch.equal(state[key], value) for key, value in net.state_dict().items())
    assert isinstance(masked[0], MaskedConv2d) and isinstance(masked[3][0], MaskedLinear)
    assert isinstance(masked[4], nn.Linear)  # not named: stays dense
    with torch.no_grad():
        masked[0].weight.add_(1.0)
    assert torch.equal(net[0].weight, state["0.weight"])  # no shared storage
    assert kept(masked) == {"0": 10, "3.0": 150}

    exported = effective_state(masked)
    assert not any(key.endswith("mask") for key in exported)
    assert int((exported["0.weight"] != 0).sum()) == 10
    dense = copy.deepcopy(net)
    dense.load_state_dict(exported)
    x = torch.randn(3, 1, 5, 5)
    torch.testing.assert_close(dense(x), masked(x))


def test_a_bare_layer_is_masked_under_the_empty_name():
    dense = linear_with(W)
    masked = mask_model(dense, {"": 2})
    assert isinstance(masked, MaskedLinear) and kept(masked) == {"": 2} and isinstance(dense, nn.Linear)
    assert effective_state(masked)["weight"].tolist() == [[0.0, -3.0, 2.0], [0.0, 0.0, 0.0]]


def test_errors_say_expected_and_got():
    net = small_net()
    with pytest.raises(ConfigError, match=r"\['1', '9'\].*compressible layers: \['0', '3.0', '4'\]") as caught:
        mask_model(net, {"1": 0.5, "9": 0.5})
    assert isinstance(caught.value, ValueError)
    for keep, message in [(1.5, r"fraction must be in \[0, 1\], got 1.5"), (-1, r"count must be in \[0, 36\]"),
                          (37, r"got 37"), (True, "got True"), ("half", "got 'half'"), (math.nan, "got nan")]:
        with pytest.raises(ConfigError, match=message):
            mask_model(net, {"0": keep})
    with pytest.raises(ConfigError, match="layer '0'"):
        mask_model(net, {"0": 2.0})
    layer = MaskedLinear.from_dense(linear_with(W), 2)
    with pytest.raises(ConfigError, match="threshold must be a finite number >= 0, got -1"):
        layer.update_mask(-1.0)
    with pytest.raises(ConfigError, match="drop <= splice"):
        layer.update_mask(1.0, drop=1.2, splice=1.1)
    with pytest.raises(ConfigError, match="must be finite, got 1 NaN"):
        top_magnitude_mask(torch.tensor([1.0, math.nan]), 1)
    with pytest.raises(ConfigError, match="padding_mode='reflect'"):
        MaskedConv2d.from_dense(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), 0.5)
    with pytest.raises(ConfigError, match="expects an nn.Linear, got Conv2d"):
        MaskedLinear.from_dense(nn.Conv2d(1, 1, 3), 0.5)
    with pytest.raises(ConfigError, match="crate must be a finite number"):
        threshold_for_crate(W, math.inf)
