"""Feed-forward generators: ``multiscale`` (Ulyanov et al. 2016, Texture Networks) and
``residual`` (Johnson et al. 2016), both with switchable normalization and padding.

    model = build_generator("residual", norm="instance", padding="reflect", width=0.5)
    y = model(x)                      # x, y: (N, 3, H, W) RGB in [0, 1], any H, W
    clone = build_generator(**model.config)
"""
from __future__ import annotations

import inspect

from torch import nn

from repro.norms import NORM_KINDS

from ._common import OUTPUTS, PADDINGS, Generator, check_choice
from .multiscale import MultiscaleGenerator
from .residual import ResidualBlock, ResidualGenerator

__all__ = [
    "ARCHS",
    "NORMS",
    "OUTPUTS",
    "PADDINGS",
    "build_generator",
    "Generator",
    "MultiscaleGenerator",
    "ResidualGenerator",
    "ResidualBlock",
]

_ARCH_CLASSES = {"multiscale": MultiscaleGenerator, "residual": ResidualGenerator}
ARCHS = tuple(_ARCH_CLASSES)
NORMS = NORM_KINDS


def build_generator(arch: str, norm: str = "instance", padding: str = "reflect", **kw) -> nn.Module:
    """Generator ``arch`` ("multiscale" | "residual") with ``norm`` ("batch" | "instance" | "none" |
    "conditional_instance", the latter with ``n_styles=``) and ``padding`` ("zero" | "reflect" |
    "replicate"). Further keywords go to the class: ``width``, ``output`` ("sigmoid" | "linear"),
    ``n_styles``; residual: ``upsample`` ("nearest" | "transposed"); multiscale: ``n_scales``,
    ``activation`` ("relu" | "leaky_relu"), ``noise_channels``.
    """
    check_choice("arch", arch, ARCHS)
    check_choice("norm", norm, NORMS)
    check_choice("padding", padding, tuple(PADDINGS))
    cls = _ARCH_CLASSES[arch]
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("norm", "padding")]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for arch={arch!r}; allowed: {allowed}")
    return cls(norm=norm, padding=padding, **kw)
