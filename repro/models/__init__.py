"""Feed-forward generators: ``multiscale`` (Ulyanov et al. 2016, Texture Networks) and
``residual`` (Johnson et al. 2016), both with switchable normalization and padding.

    model = build_generator("residual", norm="instance", padding="reflect", width=0.5)
    y = model(x)                      # x, y: (N, 3, H, W) RGB in [0, 1], any H, W
    clone = build_generator(**model.config)
"""
from __future__ import annotations

import inspect

from torch import nn

from repro.choices import check_choice
from repro.norms import NORM_KINDS

from ._common import OUTPUTS, PADDINGS, Generator
from .adain import AdaINNet
from .multiscale import MultiscaleGenerator
from .residual import ResidualBlock, ResidualGenerator

__all__ = [
    "AdaINNet",
    "ARCHS",
    "OUTPUTS",
    "PADDINGS",
    "build_generator",
    "Generator",
    "MultiscaleGenerator",
    "ResidualGenerator",
    "ResidualBlock",
]

_ARCH_CLASSES = {"multiscale": MultiscaleGenerator, "residual": ResidualGenerator}
ARCHS = (*_ARCH_CLASSES, "adain")


def build_generator(arch: str, norm: str | None = None, padding: str | None = None, **kw) -> nn.Module:
    """Generator ``arch`` ("multiscale" | "residual") with ``norm`` ("batch" | "instance" (default) |
    "none" | "conditional_instance", the latter with ``n_styles=``) and ``padding`` ("zero" |
    "reflect" (default) | "replicate"). Further keywords go to the class: ``width``, ``output``
    ("sigmoid" | "linear"), ``n_styles``; residual: ``upsample`` ("nearest" | "bilinear" | "transposed" | "antialiased"),
    ``downsample`` ("strided" | "antialiased");
    multiscale: ``n_scales``, ``activation`` ("relu" | "leaky_relu"), ``noise_channels``.

    ``arch="adain"`` builds :class:`AdaINNet` (``encoder_layer``, ``vgg_weights``,
    ``vgg_arch``); its decoder has reflection padding and no normalization by design.
    """
    check_choice("arch", arch, ARCHS)
    if arch == "adain":
        if norm not in (None, "none") or padding not in (None, "reflect"):
            raise ValueError("arch='adain' has a fixed decoder (reflection padding, no normalization); "
                             f"got norm={norm!r}, padding={padding!r}")
        cls, norm_kw = AdaINNet, {}
    else:
        norm, padding = norm or "instance", padding or "reflect"
        check_choice("norm", norm, NORM_KINDS)
        check_choice("padding", padding, tuple(PADDINGS))
        cls, norm_kw = _ARCH_CLASSES[arch], dict(norm=norm, padding=padding)
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("norm", "padding")]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for arch={arch!r}; allowed: {allowed}")
    return cls(**norm_kw, **kw)
