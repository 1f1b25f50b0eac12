"""Pieces both generators share: padded convolutions, style threading, any-size input handling."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.choices import check_choice
from repro.norms import NORM_KINDS

# user-facing name -> nn.Conv2d padding_mode
PADDINGS = {"zero": "zeros", "reflect": "reflect", "replicate": "replicate"}
OUTPUTS = ("sigmoid", "linear")


def scaled(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1,
         padding: str = "reflect", equalized: bool = False) -> nn.Conv2d:
    """Size-preserving (stride 1) or halving (stride 2, even input) conv with the chosen border;
    ``equalized``: an :class:`EqualizedConv2d`."""
    cls = EqualizedConv2d if equalized else nn.Conv2d
    return cls(in_ch, out_ch, kernel, stride, padding=kernel // 2, padding_mode=PADDINGS[padding])


class Blur(nn.Module):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass per channel (the binomial filter of Zhang 2019,
    "Making convolutional networks shift-invariant again"), size-preserving with a reflected
    border, or with ``stride=2`` Zhang's BlurPool (the low-pass, then every second pixel). It removes the period-2 pattern of its input (zero response at 0.5 cycles/px)."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride  # 2: Zhang's BlurPool (blur, then keep every second pixel)
        k = torch.tensor([1.0, 2.0, 1.0])
        # not persistent: a fixed filter, so checkpoints hold nothing new
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).clone(),
                             persistent=False)

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel.to(x.dtype), groups=x.shape[1],
                        stride=self.stride)


class EqualizedConv2d(nn.Conv2d):
    """A conv with the equalized learning rate of Karras et al. 2018 (ProGAN, sec. 4.1): the
    weight is stored divided by ``c = 1 / sqrt(fan_in)`` and multiplied by it in ``forward``.

    It computes the same function from the same initialisation; what changes is training. Adam
    moves every stored weight by about ``lr`` a step whatever the gradient's scale, so a conv
    whose inputs are all non-negative (after a ReLU) moves its output by about
    ``lr * fan_in * mean(x)`` a step; stored at 1/c, by ``c`` times that. For the residual
    generator's 9x9 output conv (fan_in 2592 at width 1) this is a 51x smaller step.
    """

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        self.scale = fan_in ** -0.5
        with torch.no_grad():
            self.weight.div_(self.scale)

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.scale, self.bias)


def call(module: nn.Module, x: torch.Tensor, style):
    # Explicit threading instead of a global "current style": a module declares that it wants the
    # style, everything else is called as usual.
    return module(x, style) if getattr(module, "takes_style", False) else module(x)


class StyledSequential(nn.Sequential):
    """``nn.Sequential`` that hands ``style`` to the children that take one (CIN layers)."""

    takes_style = True

    def forward(self, x, style=None):
        for module in self:
            x = call(module, x, style)
        return x


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int):
    """Pad H, W symmetrically up to a multiple of ``multiple`` that is at least ``min_size``.

    Reflection keeps image statistics near the border; replicate takes over when a side is too
    short to reflect the needed amount. Returns the padded tensor and (top, left) of the original.
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, -(-min_size // multiple) * multiple)
    tw = max(-(-w // multiple) * multiple, -(-min_size // multiple) * multiple)
    top, left = (th - h) // 2, (tw - w) // 2
    pads = (left, tw - w - left, top, th - h - top)
    if th == h and tw == w:
        return x, (0, 0)
    reflectable = max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h
    return F.pad(x, pads, mode="reflect" if reflectable else "replicate"), (top, left)


class Generator(nn.Module):
    """Base of the feed-forward generators: RGB [0, 1] in, RGB out, any H and W.

    Subclasses set ``multiple`` (what H and W must be divisible by), ``min_size`` (smallest padded
    side that every reflect/replicate conv padding can handle) and implement ``body(x, style)``.
    ``output="sigmoid"`` maps to [0, 1] (as magenta's CIN network); ``output="linear"`` returns the
    raw last conv, and clamping at inference is then the caller's job. ``equalized_output``: the
    last conv is an :class:`EqualizedConv2d` (not in the papers; it keeps Adam from saturating the
    sigmoid at high learning rates, issue 18).
    """

    multiple = 1
    min_size = 1

    def __init__(self, config: dict):
        super().__init__()
        check_choice("norm", config["norm"], NORM_KINDS)
        check_choice("padding", config["padding"], tuple(PADDINGS))
        check_choice("output", config["output"], OUTPUTS)
        if not isinstance(config.get("equalized_output", False), bool):
            raise ValueError(f"equalized_output must be True or False, got {config['equalized_output']!r}")
        if not config["width"] > 0:
            raise ValueError(f"width must be > 0, got width={config['width']!r}")
        conditional = config["norm"] == "conditional_instance"
        if conditional and config.get("n_styles") is None:
            raise ValueError("norm='conditional_instance' needs n_styles")
        if not conditional and config.get("n_styles") is not None:
            raise ValueError(f"n_styles is only used with norm='conditional_instance', not "
                             f"norm={config['norm']!r}")
        # plain JSON-able dict: build_generator(**model.config) rebuilds the same architecture
        self.config = dict(config)
        self.conditional = conditional

    def norm_kw(self) -> dict:
        return {"n_styles": self.config["n_styles"]} if self.conditional else {}

    def body(self, x: torch.Tensor, style) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, style=None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (N, 3, H, W), got shape {tuple(x.shape)}")
        if self.conditional and style is None:
            raise ValueError("this generator uses conditional instance norm: call it as "
                             "model(x, style) with style indices or mixing weights")
        if not self.conditional and style is not None:
            raise ValueError(f"style given, but this generator has norm={self.config['norm']!r}; "
                             "only norm='conditional_instance' takes a style")
        h, w = x.shape[-2:]
        xp, (top, left) = pad_to_multiple(x, self.multiple, self.min_size)
        y = self.body(xp, style)[..., top:top + h, left:left + w]
        return torch.sigmoid(y) if self.config["output"] == "sigmoid" else y
