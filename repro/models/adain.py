"""The AdaIN style-transfer network of Huang & Belongie (2017), Fig. 2 / eqs. 8-10.

    net = AdaINNet(encoder_layer="relu3_1")
    y = net(content, style)                        # any style, even one never seen in training
    y = net(content, style, alpha=0.5)             # content-style trade-off (eq. 14)
    y = net(content, [s1, s2], style_weights=[0.7, 0.3])   # style interpolation

- Encoder f: the frozen VGG-19 (``repro.vgg.LossNetwork``, the normalised weights the paper
  uses) up to ``encoder_layer``; relu4_1 in the paper, relu3_1 with the local weights file.
- ``t = AdaIN(f(c), f(s))`` (eq. 9) and, for the trade-off, ``t = alpha t + (1 - alpha) f(c)``.
- Decoder g: the encoder mirrored. Each convolution of the encoder becomes one with the channel
  counts reversed, each max pooling a 2x nearest upsampling ("to reduce checkerboard effects"),
  reflection padding everywhere ("to avoid border artifacts"), and no normalization layers (IN
  or BN in the decoder hurt, the paper's Fig. 6). For relu4_1 this is exactly the paper's
  decoder (512-256, up, 256x3, 256-128, up, 128, 128-64, up, 64, 64-3).

The output is the decoder's linear output: training uses it unclipped, ``stylize`` clamps to
[0, 1] as the paper does at test time.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from repro.norms import adain
from repro.vgg import LossNetwork, layer_names

ENCODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def decoder_for(encoder_layer: str, arch: str = "vgg19") -> nn.Sequential:
    """The decoder mirroring ``vgg.features`` up to ``encoder_layer`` (module docstring)."""
    if encoder_layer not in ENCODER_LAYERS:
        raise ValueError(f"encoder_layer must be one of {ENCODER_LAYERS}, got {encoder_layer!r}")
    names = layer_names(arch)
    channels, convs = 3, []           # the encoder's convolutions and poolings, in order
    for name in names[: names.index(encoder_layer) + 1]:
        if name.startswith("conv"):
            block = int(name[4])
            out = (64, 128, 256, 512, 512)[block - 1]
            convs.append((channels, out))
            channels = out
        elif name.startswith("pool"):
            convs.append("pool")
    layers: list[nn.Module] = []
    for i, item in enumerate(reversed(convs)):
        if item == "pool":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        c_in, c_out = item
        layers.append(nn.Conv2d(c_out, c_in, 3, padding=1, padding_mode="reflect"))
        if i < len(convs) - 1:        # no ReLU after the last convolution: RGB out
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _drop_encoder(module, state_dict, prefix, local_metadata):
    for k in [k for k in state_dict if k.startswith(prefix + "encoder.")]:
        del state_dict[k]


def _fill_encoder(module, state_dict, prefix, *args):
    for k, v in module.encoder.state_dict(prefix=prefix + "encoder.").items():
        state_dict.setdefault(k, v)


def _as_styles(style) -> list[torch.Tensor]:
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    out = []
    for s in styles:
        if not isinstance(s, torch.Tensor) or s.dim() not in (3, 4) or s.shape[-3] != 3:
            raise ValueError("each style must be an RGB tensor (3, H, W) or (N, 3, H, W), got "
                             f"{type(s).__name__} {tuple(getattr(s, 'shape', ()))}")
        out.append(s[None] if s.dim() == 3 else s)
    return out


class AdaINNet(nn.Module):
    """Encoder (frozen VGG) -> AdaIN -> decoder; arbitrary style in one forward pass.

    Args:
        encoder_layer: the bottleneck, ``"relu4_1"`` in the paper; ``"relu3_1"`` is the deepest
            the local normalised weights reach.
        vgg_weights: ``LossNetwork`` weights (``"auto"``, ``"normalised"``, ``"imagenet"``,
            ``"random"`` for tests).
    """

    def __init__(self, encoder_layer: str = "relu3_1", vgg_weights: str = "auto", vgg_arch: str = "vgg19"):
        super().__init__()
        self.encoder = LossNetwork([encoder_layer], arch=vgg_arch, weights=vgg_weights, padding="reflect")
        self.decoder = decoder_for(encoder_layer, vgg_arch)
        self.encoder_layer = encoder_layer
        # the resolved weights ("auto" -> what was found), so a checkpoint's decoder is always
        # rebuilt on the encoder it was trained with
        self.config = dict(arch="adain", encoder_layer=encoder_layer, vgg_weights=self.encoder.weights,
                           vgg_arch=vgg_arch)
        self.down = 2 ** sum(1 for n in layer_names(vgg_arch)[: layer_names(vgg_arch).index(encoder_layer)]
                             if n.startswith("pool"))

        # the encoder is fixed VGG: checkpoints hold the decoder only (and stay small); loading
        # fills the encoder's entries from the module itself
        self.register_state_dict_post_hook(_drop_encoder)
        self.register_load_state_dict_pre_hook(_fill_encoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[self.encoder_layer]

    def target(self, content_feat: torch.Tensor, style_feats: Sequence[torch.Tensor],
               weights: Sequence[float] | torch.Tensor | None = None, alpha: float = 1.0,
               content_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``t`` of eq. 9, mixed over styles (``sum_k w_k AdaIN(f(c), f(s_k))``, the paper's style
        interpolation) and blended with the content features by ``alpha`` (eq. 14).
        ``content_stats``: the whole image's (mean, std) when ``content_feat`` is a tile of it."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if weights is None:
            weights = [1.0 / len(style_feats)] * len(style_feats)
        weights = torch.as_tensor(weights, dtype=torch.float32).flatten()
        if (len(weights) != len(style_feats) or not bool(torch.isfinite(weights).all())
                or (weights < 0).any() or float(weights.sum()) <= 0):
            raise ValueError(f"style_weights must be {len(style_feats)} non-negative numbers with a "
                             f"positive sum, got {weights.tolist()}")
        weights = weights / weights.sum()
        t = sum(float(w) * adain(content_feat, f, content_stats=content_stats)
                for w, f in zip(weights, style_feats))
        return alpha * t + (1 - alpha) * content_feat if alpha < 1 else t

    def forward(self, content: torch.Tensor, style=None, *, alpha: float = 1.0, style_weights=None,
                return_target: bool = False, style_feat: torch.Tensor | None = None):
        """Stylize ``content`` (N, 3, H, W) with ``style`` (an image batch of 1 or N, or a list of
        them to interpolate with ``style_weights``). ``return_target`` also returns ``t``
        (detached), the content target of the training loss (eq. 12); it matches the output's
        encoder features only when H and W are multiples of ``self.down``. ``style_feat``: f(s)
        of one style, in place of ``style``, when the caller has computed it already."""
        if (style is None) == (style_feat is None):
            raise ValueError("give exactly one of style (images) or style_feat (their encoder features)")
        h, w = content.shape[-2:]
        m = self.down
        # the decoder upsamples back by the same factor: pad to a multiple, crop back after
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            content = nn.functional.pad(content, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        fc = self.encode(content)
        fs = [style_feat] if style_feat is not None else [self.encode(s) for s in _as_styles(style)]
        t = self.target(fc, fs, style_weights, alpha)
        y = self.decoder(t)
        if ph or pw:
            y = y[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]
        return (y, t.detach()) if return_target else y
