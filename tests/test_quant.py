"""Per-channel symmetric quantisation, the straight-through estimator and the quantised layers, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from surrogate_emo.compress.coding import layer_coding
from surrogate_emo.compress.quant import (
    QuantConv2d,
    QuantLinear,
    dequantize,
    fake_quantize,
    quantize_model,
    quantize_per_channel,
)
from surrogate_emo.errors import ConfigError

# Two output channels of three weights; channel maxima |w| are 0.9 and 2.0. No value lands on a rounding tie.
W = torch.tensor([[0.9, -0.3, 0.5], [-2.0, 1.1, 0.2]])

HAND = {
    # 2 bits: top level 2^1 - 1 = 1; scales 0.9 and 2.0.
    # w / s: [1, -0.333, 0.556], [-1, 0.55, 0.1] -> [1, 0, 1], [-1, 1, 0]; dequantised [0.9, 0, 0.9], [-2, 2, 0].
    2: ([0.9 / 1, 2.0 / 1], [[1, 0, 1], [-1, 1, 0]]),
    # 4 bits: top 7; scales 0.9/7 = 0.128571, 2/7 = 0.285714.
    # w / s: [7, -2.333, 3.889], [-7, 3.85, 0.7] -> [7, -2, 4], [-7, 4, 1];
    # dequantised [0.9, -0.257143, 0.514286], [-2, 1.142857, 0.285714].
    4: ([0.9 / 7, 2.0 / 7], [[7, -2, 4], [-7, 4, 1]]),
    # 8 bits: top 127; scales 0.9/127 = 0.0070866, 2/127 = 0.0157480.
    # w / s: [127, -42.333, 70.556], [-127, 69.85, 12.7] -> [127, -42, 71], [-127, 70, 13];
    # dequantised [0.9, -0.297638, 0.503150], [-2, 1.102362, 0.204724].
    8: ([0.9 / 127, 2.0 / 127], [[127, -42, 71], [-127, 70, 13]]),
}
DEQUANTISED = {
    2: [[0.9, 0.0, 0.9], [-2.0, 2.0, 0.0]],
    4: [[0.9, -0.257143, 0.514286], [-2.0, 1.142857, 0.285714]],
    8: [[0.9, -0.297638, 0.503150], [-2.0, 1.102362, 0.204724]],
}


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_a_2x3_weight_by_hand(bits):
    scales, integers = HAND[bits]
    q_int, scale = quantize_per_channel(W, bits)
    assert q_int.dtype == torch.int8
    assert q_int.tolist() == integers
    assert torch.allclose(scale, torch.tensor(scales), rtol=1e-6)
    assert torch.allclose(dequantize(q_int, scale), torch.tensor(DEQUANTISED[bits]), atol=1e-6)
    assert torch.allclose(fake_quantize(W, bits), torch.tensor(DEQUANTISED[bits]), atol=1e-6)


def test_integers_stay_within_the_symmetric_range_and_widen_past_8_bits():
    weight = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    q_int, _ = quantize_per_channel(weight, 12)
    assert q_int.dtype == torch.int16
    assert q_int.abs().max().item() == 2 ** 11 - 1  # each channel's max maps to +-2047; nothing beyond
    assert quantize_per_channel(weight, 16)[0].abs().max().item() == 32767


def test_an_all_zero_channel_has_scale_0_and_stays_0():
    # Channel 0 all zeros: scale 0, integers 0, no NaN. Channel 1 at 4 bits: scale 1/7;
    # w / s = [7, -2.8, 1.75] -> [7, -3, 2]; dequantised [1, -0.428571, 0.285714].
    weight = torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.4, 0.25]], requires_grad=True)
    q_int, scale = quantize_per_channel(weight, 4)
    assert q_int.tolist() == [[0, 0, 0], [7, -3, 2]]
    assert torch.allclose(scale, torch.tensor([0.0, 1 / 7]))
    out = fake_quantize(weight, 4)
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.428571, 0.285714]]), atol=1e-6)
    out.sum().backward()
    assert torch.isfinite(weight.grad).all() and torch.equal(weight.grad, torch.ones_like(weight))


def test_conv_weight_has_one_scale_per_output_channel():
    weight = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    q_int, scale = quantize_per_channel(weight, 4)
    assert q_int.shape == weight.shape and scale.shape == (3,)
    assert torch.allclose(scale, weight.abs().amax(dim=(1, 2, 3)) / 7)


def test_ste_gradient_is_the_float_layers_gradient_at_the_dequantised_weight():
    torch.manual_seed(0)
    dense = nn.Linear(3, 2)
    with torch.no_grad():
        dense.weight.copy_(W)
    quant = QuantLinear.from_dense(dense, 4)
    x = torch.randn(5, 3)
    target = torch.randn(5, 2)
    F.mse_loss(quant(x), target).backward()
    # The float layer evaluated at the dequantised weight, differentiated by autograd.
    reference = nn.Linear(3, 2)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(DEQUANTISED[4]))
        reference.bias.copy_(dense.bias)
    F.mse_loss(reference(x), target).backward()
    assert torch.allclose(quant.weight.grad, reference.weight.grad, atol=1e-6)
    assert torch.allclose(quant.bias.grad, reference.bias.grad, atol=1e-6)
    assert quant.weight.grad.abs().sum() > 0  # plain rounding would have given zero


def test_quant_conv2d_equals_f_conv2d_with_the_dequantised_weight():
    torch.manual_seed(0)
    dense = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    quant = QuantConv2d.from_dense(dense, 3)
    assert (quant.stride, quant.padding, quant.dilation, quant.groups) == ((2, 2), (1, 1), (1, 1), 2)
    state = quant.export_state()
    x = torch.randn(2, 4, 7, 7)
    expected = F.conv2d(x, dequantize(state["weight"], state["scale"]), dense.bias, 2, 1, 1, 2)
    assert torch.allclose(quant(x), expected, atol=1e-6)


def test_export_state_holds_integers_scales_and_bias():
    dense = nn.Linear(3, 2)
    with torch.no_grad():
        dense.weight.copy_(W)
    state = QuantLinear.from_dense(dense, 8).export_state()
    assert state["weight"].dtype == torch.int8 and state["weight"].tolist() == HAND[8][1]
    assert state["scale"].dtype == torch.float32 and state["bits"] == 8
    assert torch.equal(state["bias"], dense.bias.detach())
    assert QuantLinear.from_dense(dense, 9).export_state()["weight"].dtype == torch.int16
    assert QuantLinear.from_dense(nn.Linear(3, 2, bias=False), 4).export_state()["bias"] is None


def test_stored_bits_by_hand():
    # Conv2d(2 -> 3, 3x3) with bias at 4 bits: 54 weights x 4 = 216, 3 scales x 32 = 96, 3 biases x 32 = 96.
    assert QuantConv2d.from_dense(nn.Conv2d(2, 3, 3), 4).stored_bits() == 216 + 96 + 96
    # Linear(3 -> 2) without bias at 2 bits: 6 x 2 = 12, 2 scales x 32 = 64.
    assert QuantLinear.from_dense(nn.Linear(3, 2, bias=False), 2).stored_bits() == 76


def test_a_layer_gives_the_coding_module_what_it_needs():
    # W at 2 bits: integers [1, 0, 1], [-1, 1, 0] -> 4 of 6 kept. COO: 4 x (2 + ceil(log2 6) = 3) = 20,
    # plus 2 scales x 32 = 64.
    dense = nn.Linear(3, 2)
    with torch.no_grad():
        dense.weight.copy_(W)
    layer = QuantLinear.from_dense(dense, 2)
    assert layer.kept_mask().tolist() == [True, False, True, True, True, False]
    coding = layer_coding(layer.n_weights, layer.kept_mask(), layer.bits, "coo", scales=layer.out_channels)
    assert coding.bits == 20 + 64


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 8), nn.ReLU(),
                         nn.Linear(8, 3))


def test_quantize_model_leaves_the_input_untouched_and_replaces_only_the_named_layers():
    model = _net()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    quantized = quantize_model(model, {"0": 4, "5": 2})
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert [type(m) for m in quantized] == [QuantConv2d, nn.ReLU, nn.Flatten, nn.Linear, nn.ReLU, QuantLinear]
    assert (quantized[0].bits, quantized[5].bits) == (4, 2)
    assert quantized[0].weight.data_ptr() != model[0].weight.data_ptr()
    assert torch.equal(quantized[3].weight, model[3].weight) and quantized[3].weight is not model[3].weight
    assert quantized(torch.randn(2, 1, 6, 6)).shape == (2, 3)


def test_fine_tuning_with_adam_reduces_the_loss_and_keeps_the_forward_quantised():
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    target = x @ torch.randn(6, 3) + 0.1
    layer = QuantLinear.from_dense(nn.Linear(6, 3), 3)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.mse_loss(layer(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    used = layer.quantized_weight().detach()
    assert all(row.unique().numel() <= 2 ** 3 - 1 for row in used)  # 3 bits: levels -3..3, at most 7 values
    assert torch.allclose(layer(x), x @ used.t() + layer.bias, atol=1e-5)


@pytest.mark.parametrize("bits", [1, 17, 4.0, True, "4", None])
def test_bits_outside_2_to_16_or_not_an_integer_are_rejected(bits):
    with pytest.raises(ConfigError, match=r"bits must be an integer in \[2, 16\], got"):
        quantize_per_channel(W, bits)
    with pytest.raises(ConfigError, match=r"\[2, 16\]"):
        QuantLinear.from_dense(nn.Linear(3, 2), bits)


def test_errors_name_what_was_expected():
    with pytest.raises(ConfigError, match=r"quantizable layers: \['0', '3', '5'\]"):
        quantize_model(_net(), {"1": 4})
    with pytest.raises(ConfigError, match=r"layer '3': bits must be an integer in \[2, 16\], got 20"):
        quantize_model(_net(), {"3": 20})
    with pytest.raises(ConfigError, match="expected an nn.Linear, got Conv2d"):
        QuantLinear.from_dense(nn.Conv2d(1, 1, 1), 4)
    with pytest.raises(ConfigError, match="expected padding_mode 'zeros', got 'reflect'"):
        QuantConv2d.from_dense(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), 4)
    assert np.isfinite(fake_quantize(torch.zeros(2, 2), 2).numpy()).all()
