"""The multi-scale generator of Ulyanov, Lebedev, Vedaldi & Lempitsky 2016 ("Texture networks",
ICML), in the form of texture_nets' ``pyramid`` model that the IN paper trains (its Fig. 3 and 5).

The input is average-pooled to K scales (ratios 2**(K-1), ..., 2, 1; 32 ... 1 for the default
K = 6). Each scale goes through a conv block (3x3, 3x3, 1x1 convs, 8 channels, each followed by
norm + activation). From the coarsest scale up, the running result is upsampled (nearest x2), both
it and the next scale's block output are normalized, concatenated along channels and passed through
a conv block of 8*i channels (i = scales joined so far). A final 1x1 conv maps 8*K channels to RGB.

``activation="relu"`` follows texture_nets master (the IN paper's code), ``"leaky_relu"`` (slope
0.01) the Texture Networks v1 code; ``noise_channels > 0`` concatenates that many U(0, 1) noise
channels to every scale's input, as v1 does (fresh noise at each call, also in eval mode).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.norms import make_norm

from repro.choices import check_choice

from ._common import EqualizedConv2d, Generator, StyledSequential, call, conv, scaled

ACTIVATIONS = ("relu", "leaky_relu")


class Join(nn.Module):
    """Upsample the coarse path, normalize both inputs, concatenate, conv block (TN ``pyramid``)."""

    takes_style = True

    def __init__(self, coarse_norm: nn.Module, fine_norm: nn.Module, block: StyledSequential):
        super().__init__()
        self.coarse_norm, self.fine_norm, self.block = coarse_norm, fine_norm, block

    def forward(self, coarse, fine, style=None):
        coarse = F.interpolate(coarse, scale_factor=2, mode="nearest")
        x = torch.cat([call(self.coarse_norm, coarse, style), call(self.fine_norm, fine, style)], 1)
        return self.block(x, style)


class MultiscaleGenerator(Generator):
    """Texture-network generator with ``n_scales`` scales; ``width`` scales the 8-channel base."""

    def __init__(self, norm: str = "instance", padding: str = "reflect", width: float = 1.0,
                 n_scales: int = 6, activation: str = "relu", noise_channels: int = 0,
                 output: str = "sigmoid", n_styles: int | None = None, equalized_output: bool = False):
        super().__init__(dict(arch="multiscale", norm=norm, padding=padding, width=width,
                              n_scales=n_scales, activation=activation,
                              noise_channels=noise_channels, output=output, n_styles=n_styles,
                              equalized_output=equalized_output))
        check_choice("activation", activation, ACTIVATIONS)
        if not (isinstance(n_scales, int) and n_scales >= 1):
            raise ValueError(f"n_scales must be an int >= 1, got n_scales={n_scales!r}")
        if not (isinstance(noise_channels, int) and noise_channels >= 0):
            raise ValueError(f"noise_channels must be an int >= 0, got {noise_channels!r}")
        self.multiple = 2 ** (n_scales - 1)
        # the coarsest scale must be >= 2 px so its 3x3 convs can reflect-pad
        self.min_size = 2 * self.multiple
        c = scaled(8, width)
        kw = self.norm_kw()

        def block(cin, cout):
            layers = []
            for k, i in ((3, cin), (3, cout), (1, cout)):
                act = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.01)
                layers += [conv(i, cout, k, padding=padding), make_norm(norm, cout, **kw), act]
            return StyledSequential(*layers)

        # index 0 is the coarsest scale
        self.branches = nn.ModuleList(block(3 + noise_channels, c) for _ in range(n_scales))
        self.joins = nn.ModuleList(
            Join(make_norm(norm, c * i, **kw), make_norm(norm, c, **kw),
                 block(c * (i + 1), c * (i + 1)))
            for i in range(1, n_scales)
        )
        self.to_rgb = (EqualizedConv2d if equalized_output else nn.Conv2d)(c * n_scales, 3, 1)

    def body(self, x, style):
        n_scales, noise = self.config["n_scales"], self.config["noise_channels"]
        y = None
        for k, branch in enumerate(self.branches):
            ratio = 2 ** (n_scales - 1 - k)
            xs = F.avg_pool2d(x, ratio) if ratio > 1 else x
            if noise:
                n, _, h, w = xs.shape
                xs = torch.cat([xs, torch.rand(n, noise, h, w, device=x.device, dtype=x.dtype)], 1)
            # The branches read the raw image pyramid. Under bf16 autocast their rounding, which
            # the coarse scales' normalization then amplifies, cost the trained cpu model ~10 dB
            # of PSNR against fp32 (36 dB; 47 dB with these blocks in fp32, for a few % of the
            # FLOPs): they always run in fp32. Outside autocast this is a no-op.
            with torch.autocast(x.device.type, enabled=False):
                fine = branch(xs, style)  # xs is the float input, pooled
            y = fine if y is None else self.joins[k - 1](y, fine, style)
        return self.to_rgb(y)
