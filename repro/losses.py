"""Perceptual losses: content, Gram style, mean/std style, total variation.

Conventions (chosen so that the numbers in ``../shared/reference/cpu-notes.md`` transfer):

- **Gram matrix** ``G = F F^T / (H W)`` by default (``normalize="hw"``), with ``F`` the
  ``(C, H*W)`` feature matrix. ``normalize="chw"`` divides by ``C H W`` instead, as
  texture_nets and fast-neural-style do; the ``cpu`` and ``smoke`` profiles use ``"hw"``. The
  division by ``H W`` makes the statistic independent of the image size, so a style image and
  an output of different sizes have comparable Grams.
- **Gram style loss** per layer: the mean over the ``C x C`` entries (and the batch) of the
  squared difference of the Grams, i.e. ``||G(x) - G(s)||_F^2 / C^2``. Gatys et al. (2016,
  eq. 4) write ``1 / (4 N^2 M^2)`` times the summed squared difference of *unnormalised*
  Grams; with the ``H W = M`` normalisation here that is our loss divided by 4, a constant
  folded into the style weight. With this convention, ``style_weight=1e3`` on the normalised
  VGG-19 gives a convincing Gatys stylization (cpu-notes.md).
- **Content loss** per layer: the MSE (mean over ``N C H W``) of the features (Gatys et al.
  eq. 1 up to the constant 1/2 and the mean instead of the sum).
- **Mean/std style loss** per layer (Huang & Belongie 2017, eq. 12): per sample,
  ``||mu(x) - mu(s)||_2 + ||sigma(x) - sigma(s)||_2`` over channels, averaged over the
  batch (``reduction="norm"``, the paper's form and the default). ``reduction="mse"`` is the
  public PyTorch AdaIN code's variant: the MSE of the means plus the MSE of the stds. sigma is
  ``sqrt(biased variance + eps)``, the same statistic instance normalisation and ``adain`` use.
- **Total variation**: the mean of the squared differences of vertically and horizontally
  adjacent pixels (all pairs pooled), computed on the [0, 1] image. Natural photos give about
  0.003 at 256 px. Johnson et al. (2016) use the same squared differences summed instead
  of averaged, so their ``tv_weight`` corresponds to ours divided by the number of pairs.
- Layers are summed (each with its ``style_layer_weights`` entry, 1 by default), as in
  texture_nets, fast-neural-style and AdaIN; Gatys et al.'s ``w_l = 1/L`` is a rescaling of
  the style weight.

Every loss is computed in float32 (the Gram with autocast disabled) so that bf16 autocast in
the trainer changes the speed of the loss network, not the precision of the statistics.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from repro.choices import check_choice
from repro.norms import mean_std
from repro.vgg import LossNetwork

GRAM_NORMALIZATIONS = ("hw", "chw")
STYLE_STATS = ("gram", "meanstd")
MEANSTD_REDUCTIONS = ("norm", "mse")


def _check_features(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be an (N, C, H, W) tensor, got {shape}")


def gram(features: torch.Tensor, normalize: str = "hw") -> torch.Tensor:
    """Gram matrix of feature maps (Gatys et al. 2016, eq. 3), ``(N, C, H, W) -> (N, C, C)``.

    ``G_ij = sum_k F_ik F_jk / Z`` with ``F`` the ``(C, H*W)`` feature matrix of one sample and
    ``Z = H*W`` (``normalize="hw"``, the default, used by the profiles) or ``Z = C*H*W``
    (``"chw"``, the texture_nets / fast-neural-style convention).
    """
    _check_features("features", features)
    check_choice("normalize", normalize, GRAM_NORMALIZATIONS)
    n, c, h, w = features.shape
    z = h * w if normalize == "hw" else c * h * w
    # bf16 Grams lose ~3 significant digits on sums over 65k positions; keep them in fp32.
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / z


def _stats_rows(features: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The instance statistics of :func:`repro.norms.mean_std` (IN eq. 3, AdaIN eq. 5-6: biased
    variance, eps inside the root) as ``(N, C)`` rows, in float32, for the style distances."""
    _check_features("features", features)
    mu, sigma = mean_std(features.float(), eps)
    return mu.flatten(1), sigma.flatten(1)


def content_loss(x_feat: torch.Tensor, y_feat: torch.Tensor) -> torch.Tensor:
    """Content (feature reconstruction) loss, Gatys et al. 2016 eq. 1 / Johnson et al. 2016:
    the mean squared difference of the two feature maps (mean over N, C, H, W)."""
    _check_features("x_feat", x_feat)
    if x_feat.shape[1:] != y_feat.shape[1:] or y_feat.shape[0] not in (1, x_feat.shape[0]):
        raise ValueError(f"content features differ in shape: {tuple(x_feat.shape)} vs "
                         f"{tuple(y_feat.shape)}")
    x, y = x_feat.float(), y_feat.float()
    return F.mse_loss(x, y.expand_as(x))


def _broadcast_target(name: str, target: torch.Tensor, n: int) -> torch.Tensor:
    if target.shape[0] == n:
        return target
    if target.shape[0] == 1:
        return target.expand(n, *target.shape[1:])
    raise ValueError(f"{name} has batch size {target.shape[0]}; it must be 1 (shared by the "
                     f"batch) or equal the output's batch size {n}")


def gram_style_loss(x_feat: torch.Tensor, target_gram: torch.Tensor,
                    normalize: str = "hw") -> torch.Tensor:
    """Gram style loss of one layer (Gatys et al. 2016, eq. 4, up to a constant factor).

    The mean over the batch and the ``C x C`` entries of ``(G(x) - target)^2``, i.e.
    ``||G(x) - G(s)||_F^2 / C^2`` averaged over samples. ``target_gram`` is ``(C, C)``,
    ``(1, C, C)`` (shared by the batch) or ``(N, C, C)`` (one style per sample) and must have
    been computed with the same ``normalize``.
    """
    g = gram(x_feat, normalize)
    t = target_gram.float()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[1:] != g.shape[1:]:
        raise ValueError(f"target_gram has shape {tuple(target_gram.shape)}, expected "
                         f"(C, C), (1, C, C) or (N, C, C) with C={g.shape[1]}")
    t = _broadcast_target("target_gram", t, g.shape[0])
    return F.mse_loss(g, t)


def meanstd_distance(mu_x: torch.Tensor, sigma_x: torch.Tensor, mu_y: torch.Tensor,
                     sigma_y: torch.Tensor, reduction: str = "norm") -> torch.Tensor:
    """The AdaIN style distance between statistics ``(N, C)`` (targets ``(1|N, C)``).

    ``"norm"``: Huang & Belongie 2017 eq. 12 per layer, ``||mu_x - mu_y||_2 +
    ||sigma_x - sigma_y||_2`` per sample, averaged over the batch. ``"mse"``: the public
    PyTorch AdaIN code's ``mse(mu) + mse(sigma)``.
    """
    check_choice("reduction", reduction, MEANSTD_REDUCTIONS)
    n = mu_x.shape[0]
    mu_y = _broadcast_target("target mean", mu_y.float(), n)
    sigma_y = _broadcast_target("target std", sigma_y.float(), n)
    if mu_y.shape != mu_x.shape or sigma_y.shape != sigma_x.shape:
        raise ValueError(f"statistics differ in shape: {tuple(mu_x.shape)} vs {tuple(mu_y.shape)}")
    if reduction == "mse":
        return F.mse_loss(mu_x, mu_y) + F.mse_loss(sigma_x, sigma_y)
    # linalg.vector_norm has a zero (sub)gradient at 0, so identical statistics give no NaN.
    d_mu = torch.linalg.vector_norm(mu_x - mu_y, dim=1)
    d_sigma = torch.linalg.vector_norm(sigma_x - sigma_y, dim=1)
    return (d_mu + d_sigma).mean()


def meanstd_style_loss(x_feat: torch.Tensor, y_feat: torch.Tensor, eps: float = 1e-5,
                       reduction: str = "norm") -> torch.Tensor:
    """Mean/std ("IN statistics") style loss of one layer, Huang & Belongie 2017 eq. 12.

    ``||mu(x) - mu(y)||_2 + ||sigma(x) - sigma(y)||_2`` per sample (``reduction="norm"``, the
    paper's form, default), averaged over the batch; ``reduction="mse"`` gives the public
    PyTorch code's ``mse(mu) + mse(sigma)``. ``y_feat`` has batch size 1 or N; its spatial size
    may differ from ``x_feat``'s.
    """
    _check_features("y_feat", y_feat)
    mu_x, sigma_x = _stats_rows(x_feat, eps)
    mu_y, sigma_y = _stats_rows(y_feat, eps)
    return meanstd_distance(mu_x, sigma_x, mu_y, sigma_y, reduction)


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Total variation regulariser (Johnson et al. 2016, sec. 3.3, squared-difference form).

    The mean, over all vertically and horizontally adjacent pixel pairs of every channel and
    sample, of their squared difference. Zero for a constant image; about 0.003 for a natural
    photo in [0, 1] at 256 px.
    """
    _check_features("img", img)
    x = img.float()
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2)
    pairs = dh.numel() + dw.numel()
    if pairs == 0:
        return x.sum() * 0.0
    return (dh.sum() + dw.sum()) / pairs


def _layer_weights(style_layers: Sequence[str], weights) -> dict[str, float]:
    if weights is None:
        return {l: 1.0 for l in style_layers}
    if isinstance(weights, Mapping):
        extra = set(weights) - set(style_layers)
        if extra:
            raise ValueError(f"style_layer_weights names layers that are not style layers: "
                             f"{sorted(extra)}")
        return {l: float(weights.get(l, 1.0)) for l in style_layers}
    weights = list(weights)
    if len(weights) != len(style_layers):
        raise ValueError(f"style_layer_weights has {len(weights)} entries for "
                         f"{len(style_layers)} style layers")
    return {l: float(w) for l, w in zip(style_layers, weights)}


def _as_batch(name: str, img: torch.Tensor) -> torch.Tensor:
    if img.dim() == 3:
        img = img.unsqueeze(0)
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"{name} must be a (3, H, W) or (N, 3, H, W) RGB tensor, "
                         f"got {tuple(img.shape)}")
    return img


class PerceptualLoss(nn.Module):
    """Content + style + total-variation loss on a frozen VGG (Gatys et al. 2016 eq. 5;
    Johnson et al. 2016; Ulyanov et al. 2016; Huang & Belongie 2017 eq. 11 with ``meanstd``).

    ``total = content_weight * sum_l content_l + style_weight * sum_l w_l * style_l
    + tv_weight * tv``, with the per-layer losses of this module (``content_loss``,
    ``gram_style_loss`` or ``meanstd_style_loss``, ``tv_loss``).

    Args:
        content_layers: loss-network layers of the content loss (may be empty).
        style_layers: layers of the style loss (may be empty).
        content_weight, style_weight, tv_weight: the global weights above.
        style_stat: ``"gram"`` (Gatys / Johnson / Ulyanov) or ``"meanstd"`` (AdaIN eq. 12).
        style_layer_weights: ``None`` (1 per layer), a sequence aligned with ``style_layers``
            or a ``{layer: weight}`` mapping (missing layers weigh 1).
        loss_network: a ``repro.vgg.LossNetwork`` covering every layer used; built when None
            as ``LossNetwork(union of layers, weights=network_weights)``.
        gram_normalize: ``"hw"`` (default) or ``"chw"``, see :func:`gram`.
        meanstd_reduction: ``"norm"`` (the paper's, default) or ``"mse"``.
        eps: added to the variance in the mean/std statistics.
        network_weights: the ``weights`` argument of the loss network built when
            ``loss_network`` is None (``"auto"``, or ``"random"`` in tests).

    Style targets come from :meth:`set_style` (one style for every sample, or one per sample)
    or per call (``style=``, ``style_feats=``, ``style_targets=`` in :meth:`forward`).
    Targets are constants: they are computed without grad and detached.
    """

    def __init__(self, content_layers: Sequence[str], style_layers: Sequence[str],
                 content_weight: float = 1.0, style_weight: float = 1e3, tv_weight: float = 0.0,
                 style_stat: str = "gram", style_layer_weights=None,
                 loss_network: nn.Module | None = None, gram_normalize: str = "hw",
                 meanstd_reduction: str = "norm", eps: float = 1e-5,
                 network_weights: str = "auto"):
        super().__init__()
        check_choice("style_stat", style_stat, STYLE_STATS)
        check_choice("gram_normalize", gram_normalize, GRAM_NORMALIZATIONS)
        check_choice("meanstd_reduction", meanstd_reduction, MEANSTD_REDUCTIONS)
        content_layers = [content_layers] if isinstance(content_layers, str) else content_layers
        style_layers = [style_layers] if isinstance(style_layers, str) else style_layers
        self.content_layers = list(dict.fromkeys(content_layers))
        self.style_layers = list(dict.fromkeys(style_layers))
        if not self.content_layers and not self.style_layers:
            raise ValueError("content_layers and style_layers are both empty")
        for name, w in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("tv_weight", tv_weight)):
            if not float(w) >= 0.0:
                raise ValueError(f"{name} must be a non-negative number, got {w!r}")
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.style_stat = style_stat
        self.gram_normalize = gram_normalize
        self.meanstd_reduction = meanstd_reduction
        self.eps = float(eps)
        self.style_layer_weights = _layer_weights(self.style_layers, style_layer_weights)

        needed = list(dict.fromkeys(self.content_layers + self.style_layers))
        if loss_network is None:
            loss_network = LossNetwork(needed, weights=network_weights)
        else:
            have = set(getattr(loss_network, "layers", needed))
            missing = [l for l in needed if l not in have]
            if missing:
                raise ValueError(f"loss_network does not return layer(s) {missing} "
                                 f"(it has {sorted(have)})")
        self.loss_network = loss_network
        self._has_style = False

    # -- style targets ---------------------------------------------------------------------
    def _stats(self, feat: torch.Tensor):
        if self.style_stat == "gram":
            return gram(feat, self.gram_normalize)
        return _stats_rows(feat, self.eps)

    @torch.no_grad()
    def features(self, image: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Loss-network activations of ``image`` ((3,H,W) or (N,3,H,W)), without grad; only
        ``layers`` (and only as deep as they need) when given."""
        image = _as_batch("image", image)
        if layers is None:
            return self.loss_network(image)
        if isinstance(self.loss_network, LossNetwork):
            return self.loss_network(image, layers)
        feats = self.loss_network(image)  # any other module: all of its layers, then pick
        return {l: feats[l] for l in layers}

    @torch.no_grad()
    def compute_style_targets(self, style: torch.Tensor | None = None, *,
                              style_feats: Mapping[str, torch.Tensor] | None = None) -> dict:
        """Per-layer style targets from a style image batch or its loss-network features.

        Returns ``{layer: gram (B, C, C)}`` or ``{layer: (mean (B, C), std (B, C))}`` with B the
        style batch size (1: shared by every sample; N: one style per sample).
        """
        if (style is None) == (style_feats is None):
            raise ValueError("give exactly one of style (an image) or style_feats")
        if style_feats is None:
            style_feats = self.features(style)
        missing = [l for l in self.style_layers if l not in style_feats]
        if missing:
            raise ValueError(f"style_feats lacks style layer(s) {missing}")
        out = {}
        for l in self.style_layers:
            s = self._stats(style_feats[l].detach())
            out[l] = s.detach() if isinstance(s, torch.Tensor) else tuple(t.detach() for t in s)
        return out

    def set_style(self, style_image: torch.Tensor) -> "PerceptualLoss":
        """Precompute and store the style targets of ``style_image`` ((3,H,W) or (B,3,H,W)).

        With B = 1 the targets are shared by every sample of a batch; with B = N sample i is
        compared with style i. Stored as non-persistent buffers (they follow ``.to(device)``
        and stay out of state dicts).
        """
        targets = self.compute_style_targets(style_image)
        for l, t in targets.items():
            if self.style_stat == "gram":
                self.register_buffer(f"_style_gram_{l}", t, persistent=False)
            else:
                self.register_buffer(f"_style_mean_{l}", t[0], persistent=False)
                self.register_buffer(f"_style_std_{l}", t[1], persistent=False)
        self._has_style = True
        return self

    @property
    def style_targets(self) -> dict:
        """The targets stored by :meth:`set_style` (empty before it is called)."""
        if not self._has_style:
            return {}
        if self.style_stat == "gram":
            return {l: getattr(self, f"_style_gram_{l}") for l in self.style_layers}
        return {l: (getattr(self, f"_style_mean_{l}"), getattr(self, f"_style_std_{l}"))
                for l in self.style_layers}

    # -- the loss ----------------------------------------------------------------------------
    def _style_term(self, feat: torch.Tensor, target) -> torch.Tensor:
        if self.style_stat == "gram":
            return gram_style_loss(feat, target, self.gram_normalize)
        mu, sigma = _stats_rows(feat, self.eps)
        return meanstd_distance(mu, sigma, target[0], target[1], self.meanstd_reduction)

    def forward(self, output: torch.Tensor, content: torch.Tensor | None = None, *,
                content_feats: Mapping[str, torch.Tensor] | None = None,
                style: torch.Tensor | None = None,
                style_feats: Mapping[str, torch.Tensor] | None = None,
                style_targets: Mapping | None = None,
                weighted: bool = True) -> dict[str, torch.Tensor]:
        """Loss terms of ``output`` (N,3,H,W), RGB in [0, 1].

        Content target: ``content`` (an image batch of size N or 1, run through the loss
        network without grad) or ``content_feats`` (``{layer: (N|1,C,H,W)}``, e.g. precomputed
        once for Gatys, or AdaIN's ``t``); one is required when there are content layers.

        Style target, first given of: ``style_targets`` (as returned by
        :meth:`compute_style_targets`), ``style_feats`` (features of N or 1 style images),
        ``style`` (style images, N or 1), else the targets stored by :meth:`set_style`.

        Returns scalar tensors ``"total"``, ``"content"``, ``"style"``, ``"tv"`` and per layer
        ``"content/<layer>"``, ``"style/<layer>"``. With ``weighted=True`` (default) every
        entry is the term *as it enters the total* (global weight, and the layer weight for
        style layers, applied), so the per-layer entries sum to ``"content"``/``"style"`` and
        ``total = content + style + tv``. With ``weighted=False`` the global weights are left
        out (layer weights kept, as part of the style loss's definition) and ``"total"`` is
        the plain sum: the raw losses to report and compare across runs.
        """
        output = _as_batch("output", output)
        given = [k for k, v in (("style_targets", style_targets), ("style_feats", style_feats),
                                ("style", style)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of style_targets, style_feats, style (got {given})")
        if content is not None and content_feats is not None:
            raise ValueError("give content or content_feats, not both")

        if self.style_layers:
            if style_targets is not None:
                targets = style_targets
            elif style_feats is not None:
                targets = self.compute_style_targets(style_feats=style_feats)
            elif style is not None:
                targets = self.compute_style_targets(style)
            elif self._has_style:
                targets = self.style_targets
            else:
                raise ValueError("no style target: call set_style(image) first, or pass "
                                 "style=, style_feats= or style_targets=")
        if self.content_layers:
            if content is not None:
                content_feats = self.features(content, self.content_layers)
            elif content_feats is None:
                raise ValueError("the content loss needs content= (an image) or content_feats=")
            missing = [l for l in self.content_layers if l not in content_feats]
            if missing:
                raise ValueError(f"content_feats lacks content layer(s) {missing}")

        feats = self.loss_network(output)
        cw = self.content_weight if weighted else 1.0
        sw = self.style_weight if weighted else 1.0
        tw = self.tv_weight if weighted else 1.0

        terms: dict[str, torch.Tensor] = {}
        zero = output.new_zeros((), dtype=torch.float32)
        content_total = zero
        for l in self.content_layers:
            t = cw * content_loss(feats[l], content_feats[l].detach())
            terms[f"content/{l}"] = t
            content_total = content_total + t
        style_total = zero
        for l in self.style_layers:
            if l not in targets:
                raise ValueError(f"style targets lack layer {l!r}")
            t = sw * self.style_layer_weights[l] * self._style_term(feats[l], targets[l])
            terms[f"style/{l}"] = t
            style_total = style_total + t
        tv = tw * tv_loss(output)
        return {"total": content_total + style_total + tv, "content": content_total,
                "style": style_total, "tv": tv, **terms}


@torch.no_grad()
def style_content_losses(image: torch.Tensor, content: torch.Tensor | None,
                         style: torch.Tensor | None, loss_fn: PerceptualLoss) -> dict[str, float]:
    """Raw (unweighted) content and style losses of a stylization, as floats, for reporting.

    ``image`` and ``content`` are (3,H,W) or (N,3,H,W); ``style`` is a (3,H,W) or (1|N,3,H,W)
    style image, or None to use the targets stored in ``loss_fn`` by ``set_style`` (the stored
    targets are never modified). The layers, style statistic and per-layer style weights are
    ``loss_fn``'s; its global content/style/tv weights are not applied, so numbers from runs
    with different weights compare directly (AdaIN Fig. 3 style comparisons). Batches are
    averaged. Keys as in :meth:`PerceptualLoss.forward`.
    """
    image = _as_batch("image", image)
    if content is None and loss_fn.content_layers:
        raise ValueError("content is required: loss_fn has content layers")
    kw = {} if style is None else {"style": style}
    terms = loss_fn(image, content, weighted=False, **kw)
    return {k: float(v) for k, v in terms.items()}
