"""Reference networks, built by name, or any user ``nn.Module`` factory by import path."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from surrogate_emo.errors import ConfigError
from surrogate_emo.registry import resolve


def mlp(input_shape: tuple[int, ...], n_classes: int, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    """A small ReLU MLP, the default for the 8x8 digits."""
    sizes = [int(torch.tensor(input_shape).prod())] + list(hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_classes))
    return nn.Sequential(*layers)


def lenet_300_100(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with ReLU."""
    return mlp(input_shape, n_classes, hidden=(300, 100))


def lenet_5(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """LeNet-5 as in Caffe's example: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, ReLU, fc."""
    channels, height, width = input_shape
    if height < 16 or width < 16:
        raise ConfigError(f"lenet-5 needs inputs of at least 16x16 pixels (28x28 intended), got {height}x{width}")
    features = nn.Sequential(nn.Conv2d(channels, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2))
    with torch.no_grad():
        flat = features(torch.zeros(1, *input_shape)).numel()
    return nn.Sequential(*features, nn.Flatten(), nn.Linear(flat, 500), nn.ReLU(), nn.Linear(500, n_classes))


def vgg_small(input_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] = (32, 64, 128),
              hidden: int = 256) -> nn.Module:
    """A small VGG with batch normalisation (Simonyan & Zisserman 2015; Ioffe & Szegedy 2015) for 28x28 or 32x32.

    One block per width: two ``Conv2d`` 3x3 (padding 1, no bias: the ``BatchNorm2d`` after each has one), each
    followed by ``BatchNorm2d`` and ReLU, then ``MaxPool2d(2)``; then ``Flatten``, ``Linear(flat, hidden)``, ReLU,
    ``Linear(hidden, n_classes)``. With the defaults the blocks are 32-32 / 64-64 / 128-128 and a 28x28 input
    leaves 128 x 3 x 3 = 1152 features (32x32: 128 x 4 x 4 = 2048). Parameters: 584,618 for `1 x 28 x 28` inputs
    and 10 classes (convolutions 285,984, batch norms 896, classifier 297,738); 814,570 for `3 x 32 x 32`.
    Compression acts on the six ``Conv2d`` and two ``Linear`` layers; the batch norms are kept as they are.

    Raises:
        ConfigError: the input is not `C x H x W`, or is smaller than the ``2**len(widths)`` pixels a side the
            pools need (8x8 with the defaults).

    Example:
        >>> model = vgg_small((3, 32, 32), 10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if len(input_shape) != 3:
        raise ConfigError(f"vgg-small needs image inputs C x H x W, got shape {tuple(input_shape)}")
    channels, height, width = input_shape
    side = 2 ** len(widths)
    if height < side or width < side:
        raise ConfigError(f"vgg-small needs inputs of at least {side}x{side} pixels (28x28 or 32x32 intended), "
                          f"got {height}x{width}")
    layers: list[nn.Module] = []
    for out_channels in widths:
        for _ in range(2):
            layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                       nn.ReLU()]
            channels = out_channels
        layers.append(nn.MaxPool2d(2))
    flat = channels * (height // side) * (width // side)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "lenet-300-100": lenet_300_100, "lenet-5": lenet_5,
                                               "vgg-small": vgg_small}


_FACTORY = "callable as factory(input_shape, n_classes) -> torch.nn.Module"


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory ``name`` stands for (a built-in name or ``package.module:factory``), without calling it.

    Raises:
        ConfigError: the name is unknown, or names neither a function nor an ``nn.Module`` subclass.
    """
    factory = resolve(name, MODELS, kind="model")
    if (isinstance(factory, type) and not issubclass(factory, nn.Module)) or not callable(factory):
        raise ConfigError(f"model factory {name!r} must be {_FACTORY}; got {factory!r}")
    return factory


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Build a reference model by name, or call a user factory ``package.module:factory(input_shape, n_classes)``."""
    factory = model_factory(name)
    try:
        model = factory(tuple(input_shape), n_classes)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of a user's factory is reported as a bad --model
        raise ConfigError(f"model factory {name!r} must be {_FACTORY}; calling it with ({tuple(input_shape)}, "
                          f"{n_classes}) raised {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {name!r} must be {_FACTORY}; it returned {type(model).__name__}")
    return model
