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
         padding: str = "reflect") -> nn.Conv2d:
    """Size-preserving (stride 1) or halving (stride 2, even input) conv with the chosen border."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2,
                     padding_mode=PADDINGS[padding])


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
    raw last conv, and clamping at inference is then the caller's job.
    """

    multiple = 1
    min_size = 1

    def __init__(self, config: dict):
        super().__init__()
        check_choice("norm", config["norm"], NORM_KINDS)
        check_choice("padding", config["padding"], tuple(PADDINGS))
        check_choice("output", config["output"], OUTPUTS)
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
