"""Normalization layers of the paper and its two follow-ups.

- :class:`InstanceNorm`: eq. 3 of Ulyanov, Vedaldi & Lempitsky 2016 ("Instance Normalization: the
  missing ingredient for fast stylization"), used identically at training and test time.
- batch norm: ``nn.BatchNorm2d`` (the layer IN replaces; running statistics at eval time).
- :class:`ConditionalInstanceNorm`: Dumoulin, Shlens & Kudlur 2017 ("A learned representation for
  artistic style"): one (gamma, beta) pair per style, selectable per sample and mixable.
- :func:`adain`: eq. 8 of Huang & Belongie 2017 ("Arbitrary style transfer in real-time with
  adaptive instance normalization").

All statistics are per image and per channel over (H, W) with the *biased* variance and ``eps``
added to the variance before the square root, so constant feature maps give finite outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.choices import check_choice

__all__ = [
    "NORM_KINDS",
    "InstanceNorm",
    "ConditionalInstanceNorm",
    "adain",
    "mean_std",
    "make_norm",
]

NORM_KINDS = ("batch", "instance", "none", "conditional_instance")


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and ``sqrt(biased var + eps)`` over H, W of an (N, C, H, W) map.

    These are mu(x) and sigma(x) of Huang & Belongie 2017 (instance statistics, with eps inside the
    square root for numerical safety), both shaped (N, C, 1, 1) to broadcast against ``feat``.
    """
    if feat.dim() != 4:
        raise ValueError(f"feat must be (N, C, H, W), got shape {tuple(feat.shape)}")
    var, mean = _var_mean(feat)
    return mean, torch.sqrt(var + eps)


def _var_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # half-precision sums over large H*W lose too much precision (and can overflow): the
    # statistics are taken in float32, like PyTorch's own norm kernels do
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)


def _normalize(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """``(x - mu) / sqrt(var + eps)`` per image and channel, then ``* weight + bias`` if given."""
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if x.shape[2] * x.shape[3] > 1:
        # PyTorch's fused instance-norm kernel computes exactly eq. 3 (biased variance, eps inside
        # the square root, float32 statistics for half-precision input) in one pass over memory;
        # written out with var_mean it was the slowest part of the generator (benchmarks in bench/).
        half = (torch.float16, torch.bfloat16)
        if x.dtype in half and (weight is None or weight.dtype in half):
            # without float32 affine parameters (a module cast with .bfloat16(), or no affine)
            # the kernel folds in half precision too (errors ~0.07 measured); under autocast the
            # parameters stay float32 and the kernel is accurate to the output's rounding
            return F.instance_norm(x.float(), eps=eps,
                                   weight=None if weight is None else weight.float(),
                                   bias=None if bias is None else bias.float()).to(x.dtype)
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    # A 1x1 map (which the fused kernel refuses): its variance is 0 and (x - mu) exactly 0, so
    # rsqrt(var + eps) gives 0 rather than the NaN that std + eps-free division would.
    var, mean = _var_mean(x)
    y = ((x - mean) * torch.rsqrt(var + eps)).to(x.dtype)
    if weight is not None:
        y = y * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    return y


class InstanceNorm(nn.Module):
    """Instance normalization, eq. 3 of Ulyanov et al. 2016.

    ``y_tijk = (x_tijk - mu_ti) / sqrt(sigma_ti^2 + eps) * gamma_i + beta_i`` with ``mu_ti`` and
    ``sigma_ti^2`` the mean and biased variance of image t, channel i over all (j, k).

    There are deliberately no running statistics: the layer computes the same function in
    ``train()`` and ``eval()`` mode, which is the point of the paper (a network trained with IN is
    applied with IN at test time). Compare ``nn.InstanceNorm2d(track_running_stats=True)``, which
    switches to frozen statistics in eval mode.

    The affine weight starts at 1 and the bias at 0 (PyTorch's convention); texture_nets draws the
    weight from U(0, 1) instead, which only changes the starting point of training.
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _normalize(x, self.eps, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, affine={self.affine}"


class ConditionalInstanceNorm(nn.Module):
    """Conditional instance normalization (Dumoulin, Shlens & Kudlur 2017).

    ``y = gamma_s * (x - mu(x)) / sigma(x) + beta_s``: the normalization of :class:`InstanceNorm`
    followed by one of ``n_styles`` learned (gamma, beta) pairs. ``forward(x, style)`` takes

    - a LongTensor of style indices, shape (N,) (one per sample), shape () or a Python int (the
      same style for the whole batch);
    - a floating tensor of mixing weights, shape (N, n_styles) or (n_styles,), which gives
      ``gamma = w @ gammas`` and ``beta = w @ betas`` (Dumoulin et al.'s style interpolation).
      The weights are used as given, so convex combinations are the caller's choice.
    """

    takes_style = True

    def __init__(self, channels: int, n_styles: int, eps: float = 1e-5):
        super().__init__()
        if n_styles < 1:
            raise ValueError(f"n_styles must be >= 1, got {n_styles}")
        self.channels = channels
        self.n_styles = n_styles
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))

    def style_params(self, style) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) for ``style``, each shaped (N or 1, C)."""
        if style is None:
            raise ValueError("ConditionalInstanceNorm needs a style (indices or mixing weights)")
        if not torch.is_tensor(style):
            style = torch.tensor(style)
        style = style.to(self.weight.device)
        if style.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            idx = style.reshape(-1).long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n_styles):
                raise ValueError(f"style index {idx.tolist()} out of range: this network has "
                                 f"{self.n_styles} styles (0..{self.n_styles - 1})")
            return self.weight[idx], self.bias[idx]
        if style.is_floating_point():
            w = style.to(self.weight.dtype)
            if w.dim() == 1:
                w = w.unsqueeze(0)
            if w.dim() != 2 or w.shape[1] != self.n_styles:
                raise ValueError(
                    f"style weights must have shape (N, {self.n_styles}) or ({self.n_styles},), "
                    f"got {tuple(style.shape)}"
                )
            # elementwise rather than a matmul, which autocast would round to bf16: weights
            # (1, 0, ...) then give style 0's parameters exactly, under autocast too
            return ((w[:, :, None] * self.weight).sum(1), (w[:, :, None] * self.bias).sum(1))
        raise ValueError(f"style must be integer indices or float mixing weights, got "
                         f"{style.dtype}")

    def forward(self, x: torch.Tensor, style) -> torch.Tensor:
        gamma, beta = self.style_params(style)
        if gamma.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"got {gamma.shape[0]} styles for a batch of {x.shape[0]} images")
        y = _normalize(x, self.eps)  # per-sample gamma/beta: the fused kernel takes one per channel
        return y * gamma[:, :, None, None] + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.channels}, n_styles={self.n_styles}, eps={self.eps}"


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor, eps: float = 1e-5,
          content_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Adaptive instance normalization, eq. 8 of Huang & Belongie 2017.

    ``AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)`` with per-sample, per-channel
    statistics over H, W from :func:`mean_std` (biased variance, ``sqrt(var + eps)``: finite on
    constant maps). ``style_feat`` may have other H, W than ``content_feat``, and a batch of 1 is
    broadcast over the content batch. ``content_stats``: (mu(x), sigma(x)) to use instead of
    ``content_feat``'s own, each (N or 1, C, 1, 1): the whole image's when ``content_feat`` is
    one tile of it (``repro.tiling``).
    """
    if content_feat.shape[1] != style_feat.shape[1]:
        raise ValueError(
            f"content and style features need the same channels, got {content_feat.shape[1]} "
            f"and {style_feat.shape[1]}"
        )
    c_mean, c_std = mean_std(content_feat, eps) if content_stats is None else content_stats
    s_mean, s_std = mean_std(style_feat, eps)
    return (s_std * (content_feat - c_mean) / c_std + s_mean).to(content_feat.dtype)


def make_norm(kind: str, channels: int, *, eps: float = 1e-5, affine: bool = True,
              n_styles: int | None = None) -> nn.Module:
    """The normalization layer named ``kind`` for ``channels`` channels.

    ``"batch"`` -> ``nn.BatchNorm2d`` (running statistics at eval),
    ``"instance"`` -> :class:`InstanceNorm` (eq. 3), ``"none"`` -> ``nn.Identity``,
    ``"conditional_instance"`` -> :class:`ConditionalInstanceNorm` (needs ``n_styles``).
    """
    check_choice("kind", kind, NORM_KINDS)
    if kind != "conditional_instance" and n_styles is not None:
        raise ValueError(f"n_styles is only used with kind='conditional_instance', not {kind!r}")
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=eps, affine=affine)
    if kind == "instance":
        return InstanceNorm(channels, eps=eps, affine=affine)
    if kind == "none":
        return nn.Identity()
    if n_styles is None:
        raise ValueError("kind='conditional_instance' needs n_styles")
    if not affine:
        raise ValueError("kind='conditional_instance' is affine by definition (affine=False given)")
    return ConditionalInstanceNorm(channels, n_styles, eps=eps)
