"""The residual generator of Johnson, Alahi & Fei-Fei 2016 ("Perceptual losses for real-time style
transfer", supplementary material), compared in Fig. 5 of the IN paper and adopted for its Fig. 4.

    c9s1-32, d64, d128, R128 x 5, u64, u32, c9s1-3

Every conv except the last is followed by normalization and ReLU; residual blocks are
conv-norm-ReLU-conv-norm plus identity. Upsampling is nearest x2 followed by a 3x3 conv by default
(no checkerboard; as pytorch/examples), bilinear x2 followed by the same conv
(``upsample="bilinear"``; not in the papers: it leaves the period-4 hatch of issue 18 as it is),
nearest x2 with a fixed blur after the block's ReLU (``upsample="antialiased"``; not in the
papers: it did not remove the hatch either, bench/README.md), a sub-pixel conv (a 3x3 conv to
four times the channels at the lower resolution, then ``PixelShuffle(2)``, ICNR-initialised:
Shi et al. 2016, Aitken et al. 2017; ``upsample="subpixel"``, not in the papers, tried against
the hatch) or a 3x3 stride-2 transposed conv
(``upsample="transposed"``, as the original). A transposed conv has no padding mode: its implicit border is always zero.
Downsampling is a stride-2 conv (as the original), or the same conv at stride 1 followed by
the norm, the ReLU and Zhang's BlurPool (``downsample="antialiased"``; not in the papers: tried
against the hatch of issue 18, bench/README.md).
Deviations from the original: 9x9 output conv without the ``150 * tanh`` (output mapping see
:class:`~repro.models._common.Generator`); the original pads with zeros, our default is reflection.
"""
from __future__ import annotations

import torch
from torch import nn

from repro.norms import make_norm

from repro.choices import check_choice

from ._common import Blur, Generator, StyledSequential, conv, scaled

UPSAMPLES = ("nearest", "bilinear", "transposed", "antialiased", "subpixel")
DOWNSAMPLES = ("strided", "antialiased")


@torch.no_grad()
def icnr(layer: nn.Conv2d) -> nn.Conv2d:
    """Aitken et al. 2017's ICNR initialisation of a sub-pixel conv (the conv before
    ``nn.PixelShuffle(2)``): the four outputs that land on one 2x2 block start as copies of one
    kernel, so at initialisation the layer is that conv followed by nearest x2, free of any
    phase-dependent (checkerboard) pattern."""
    if layer.out_channels % 4:
        raise ValueError(f"icnr: a sub-pixel conv for PixelShuffle(2) needs a multiple of 4 output "
                         f"channels, got {layer.out_channels}")
    n = layer.out_channels // 4
    layer.weight.copy_(layer.weight[:n].repeat_interleave(4, dim=0))
    if layer.bias is not None:
        layer.bias.copy_(layer.bias[:n].repeat_interleave(4))
    return layer


class ResidualBlock(nn.Module):
    """conv3x3-norm-ReLU-conv3x3-norm with an identity shortcut (Johnson et al., supp. Fig. 1)."""

    takes_style = True

    def __init__(self, channels: int, norm: str, padding: str, **norm_kw):
        super().__init__()
        self.body = StyledSequential(
            conv(channels, channels, 3, padding=padding), make_norm(norm, channels, **norm_kw),
            nn.ReLU(),
            conv(channels, channels, 3, padding=padding), make_norm(norm, channels, **norm_kw),
        )

    def forward(self, x, style=None):
        return x + self.body(x, style)


class ResidualGenerator(Generator):
    """Johnson et al. 2016 image transformation network; ``width`` scales 32/64/128 channels."""

    multiple = 4  # two stride-2 convs (or BlurPools)
    min_size = 8  # the 1/4-resolution maps must be >= 2 px to reflect-pad a 3x3 conv

    def __init__(self, norm: str = "instance", padding: str = "reflect", width: float = 1.0,
                 upsample: str = "nearest", output: str = "sigmoid", n_styles: int | None = None,
                 equalized_output: bool = False, downsample: str = "strided"):
        super().__init__(dict(arch="residual", norm=norm, padding=padding, width=width,
                              upsample=upsample, output=output, n_styles=n_styles,
                              equalized_output=equalized_output, downsample=downsample))
        check_choice("upsample", upsample, UPSAMPLES)
        check_choice("downsample", downsample, DOWNSAMPLES)
        c1, c2, c3 = (scaled(c, width) for c in (32, 64, 128))
        kw = self.norm_kw()

        def conv_norm_relu(cin, cout, kernel, stride=1):
            return [conv(cin, cout, kernel, stride, padding), make_norm(norm, cout, **kw),
                    nn.ReLU()]

        def down(cin, cout):
            if downsample == "strided":
                return conv_norm_relu(cin, cout, 3, stride=2)
            return conv_norm_relu(cin, cout, 3) + [Blur(cout, stride=2)]

        def up(cin, cout):
            if upsample in ("nearest", "bilinear", "antialiased"):
                mode = "bilinear" if upsample == "bilinear" else "nearest"
                layers = [nn.Upsample(scale_factor=2, mode=mode), conv(cin, cout, 3, 1, padding)]
            elif upsample == "subpixel":
                layers = [icnr(conv(cin, 4 * cout, 3, 1, padding)), nn.PixelShuffle(2)]
            else:
                layers = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
            layers += [make_norm(norm, cout, **kw), nn.ReLU()]
            # the ReLU turns the upsampled conv's small phase dependence into a strong period-2
            # pattern (+4.5 -> +26 dB, python -m bench.hatch); blurring after it removes that
            return layers + [Blur(cout)] if upsample == "antialiased" else layers

        self.net = StyledSequential(
            *conv_norm_relu(3, c1, 9),
            *down(c1, c2),
            *down(c2, c3),
            *(ResidualBlock(c3, norm, padding, **kw) for _ in range(5)),
            *up(c3, c2),
            *up(c2, c1),
            conv(c1, 3, 9, padding=padding, equalized=equalized_output),
        )

    def body(self, x, style):
        h = self.net[:-1](x, style)
        if h.device.type == "cpu":
            # the 3-channel 9x9 output conv's input gradient is ~4x faster in NHWC on oneDNN (a
            # fifth of a cpu training step in NCHW; bench/README.md); the output stays NCHW
            return self.net[-1](h.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.net[-1](h)
