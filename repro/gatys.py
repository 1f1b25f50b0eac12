"""Optimization-based style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using
Convolutional Neural Networks"): the pixels of one image are optimized to minimise the
perceptual loss of eq. 5 (``repro.losses.PerceptualLoss``), with L-BFGS (as in the paper and
jcjohnson/neural-style) or Adam.

Choices (and how they differ from the paper):

- **Parametrization.** Raw RGB pixels (units of [0, 1]) are optimized and projected back onto
  [0, 1] (clamped in place, without grad) after every step. neural-style instead optimizes
  unconstrained and clamps once when deprocessing, which leaves the returned image far from
  the optimum (the few pixels outside [0, 1] carry much of the relu1_1 Gram term; numbers in
  shared/reference/cpu-notes.md). The projection moves the iterate behind L-BFGS's back (its
  last curvature pair is then slightly off), which costs little in practice; a sigmoid
  parametrization would change the landscape instead.
- **Steps.** ``steps`` counts iterations, and every iteration costs exactly one loss
  evaluation (forward + backward) for both optimizers: L-BFGS runs with ``max_iter=1`` per
  ``.step`` and no line search (fixed step ``lr``, 1 by default, as neural-style), its
  history kept across calls. So ``history`` has one entry per step, the losses *at* that
  iterate, before its update; ``final`` holds the losses of the returned image.
  L-BFGS stops early when it reports convergence (gradient below ``tolerance_grad``).
- **Init.** ``"content"`` (the default: far fewer steps than noise, which CPU budgets need) or
  ``"noise"`` (uniform white noise in [0, 1], Gatys et al.'s choice, seeded by ``seed``), or a
  ``(3, H, W)`` tensor.
- **Style size.** With ``size`` set, both images are resized so their shorter side is
  ``size`` (``style_size`` overrides it for the style); the stroke scale follows the style
  image's size (cpu-notes.md), as with neural-style's ``style_scale=1``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from os import PathLike
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from repro import budget, images
from repro.losses import PerceptualLoss
from repro.precision import resolve_device
from repro.vgg import layer_names

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05}


@dataclass
class GatysResult:
    """Output of :func:`stylize`.

    image: the stylized image ``(3, H, W)`` in [0, 1], on the CPU.
    history: one dict per step with the float terms ``total``/``content``/``style``/``tv``
        (weighted, as they enter the total) and the per-layer entries.
    final: the same terms for the returned image.
    seconds: wall time of the optimization loop (loading and target computation excluded).
    steps: iterations actually run (fewer than requested only if L-BFGS converged or the
        callback asked to stop).
    """
    image: torch.Tensor
    history: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0


def _load(name: str, img, size) -> torch.Tensor:
    """(3, H, W) in [0, 1] from a path, tensor, numpy array or PIL image (``images.as_image``),
    its shorter side resized to ``size``; extreme aspect ratios are refused before resizing."""
    if isinstance(img, (str, PathLike)):
        label, img = str(img), images.load_image(img)
    else:
        label, img = name, images.as_image(img, name)
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3:
        raise ValueError(f"{name} must be one (3, H, W) image, got {tuple(img.shape)}")
    if size is not None:
        images.check_resize_shorter(img.shape, size, label)
        img = images.resize_shorter(img, size)
    return img


def _check_min_side(label: str, img: torch.Tensor, layers) -> None:
    """VGG halves the image at each pool before the deepest layer used: it needs that many px."""
    names = layer_names("vgg19")
    deepest = max((names.index(l) for l in layers if l in names), default=0)
    need = 2 ** sum(1 for n in names[:deepest] if n.startswith("pool"))
    if min(img.shape[-2:]) < need:
        raise ValueError(f"{label} is {img.shape[-1]}x{img.shape[-2]} pixels; the loss network "
                         f"(to {names[deepest]}) needs at least {need} px on each side")


def _device_of(module: torch.nn.Module) -> torch.device | None:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return None


def stylize(content, style, *, steps: int = 200, optimizer: str = "lbfgs",
            init="content", lr: float | None = None,
            content_layers: Sequence[str] = ("relu3_1",),
            style_layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1"),
            content_weight: float = 1.0, style_weight: float = 1e3, tv_weight: float = 0.0,
            loss: PerceptualLoss | None = None, size: int | None = None,
            style_size: int | None = None, seed: int = 0,
            callback: Callable[[int, torch.Tensor, dict], bool | None] | None = None,
            progress: bool | None = False, history_size: int = 50,
            device: str | torch.device | None = None,
            network_weights: str = "auto") -> GatysResult:
    """Gatys et al. (2016) stylization of ``content`` in the style of ``style``.

    Args:
        content, style: ``(3, H, W)`` RGB tensors in [0, 1], or image paths.
        steps: iterations (= loss evaluations), >= 1.
        optimizer: ``"lbfgs"`` (default) or ``"adam"``.
        init: ``"content"``, ``"noise"`` (seeded by ``seed``) or a ``(3, H, W)`` tensor of the
            content's (resized) size.
        lr: step size; default 1.0 for L-BFGS (no line search), 0.05 for Adam (pixels in
            [0, 1]; tubingen / starry_night at 256 px, 200 steps: total loss 18.6 / 13.5 / 12.7
            for lr 0.02 / 0.05 / 0.1, against 8.9 with L-BFGS).
        content_layers ... tv_weight: build the ``PerceptualLoss`` (Gram style statistic) when
            ``loss`` is None; **ignored** when ``loss`` is given.
        loss: a ``PerceptualLoss`` to reuse (its network, layers and weights); its stored style
            targets are replaced by ``style``'s.
        size: shorter side to resize content (and style) to; ``style_size`` for the style alone.
        callback: ``callback(step, image, losses)`` after each step with a copy of the
            (projected) iterate (3, H, W) and the float losses of the step; returning True
            stops the optimization.
        progress: show a tqdm progress bar (None: when stderr is a terminal).
        history_size: L-BFGS memory (curvature pairs kept).
        device: where to optimize; default the device of ``loss``, else CUDA when available.
        network_weights: ``weights`` of the loss network built when ``loss`` is None.

    Returns a :class:`GatysResult`.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if not isinstance(init, torch.Tensor) and init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)} or a tensor, got {init!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(history_size, int) or history_size < 1:
        raise ValueError(f"history_size must be an int >= 1, got {history_size!r}")

    content_img = _load("content", content, size)
    style_img = _load("style", style, style_size if style_size is not None else size)

    layers = (list(loss.content_layers) + list(loss.style_layers) if loss is not None
              else list(content_layers) + list(style_layers))
    for label, img, src in (("content", content_img, content), ("style", style_img, style)):
        _check_min_side(str(src) if isinstance(src, (str, PathLike)) else label, img, layers)
    if device is None:
        device = (_device_of(loss) if loss is not None else None) or \
            torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = resolve_device(device)
    budget.check(budget.gatys_bytes(content_img[0].numel(), style_img[0].numel(),
                                    history_size if optimizer == "lbfgs" else 0),
                 f"Gatys et al. on {content if isinstance(content, (str, PathLike)) else 'content'} "
                 f"({content_img.shape[-1]}x{content_img.shape[-2]} px)",
                 "use a smaller --size (Gatys et al. optimize the whole image at once)", device)
    if loss is None:
        loss = PerceptualLoss(content_layers, style_layers, content_weight=content_weight,
                              style_weight=style_weight, tv_weight=tv_weight,
                              network_weights=network_weights)
    loss = loss.to(device)

    content_b = content_img.unsqueeze(0).to(device)
    loss.set_style(style_img.unsqueeze(0).to(device))
    # Content targets are fixed: one loss-network pass here instead of one per step.
    content_feats = ({l: f for l, f in loss.features(content_b).items() if l in loss.content_layers}
                     if loss.content_layers else None)

    if isinstance(init, torch.Tensor):
        x0 = init.detach().float()
        x0 = x0.unsqueeze(0) if x0.dim() == 3 else x0
        if x0.shape != content_b.shape:
            raise ValueError(f"init tensor has shape {tuple(init.shape)}, expected "
                             f"{tuple(content_b.shape[1:])} (the content's size)")
        x0 = x0.to(device)
    elif init == "content":
        x0 = content_b.clone()
    else:
        g = torch.Generator().manual_seed(seed)
        x0 = torch.rand(content_b.shape, generator=g).to(device)
    # The iterate lives in the feasible set from the start, as after every projected step.
    x = x0.clamp(0.0, 1.0).requires_grad_(True)

    lr = float(lr) if lr is not None else DEFAULT_LR[optimizer]
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=history_size,
                                line_search_fn=None)
    else:
        opt = torch.optim.Adam([x], lr=lr)

    last: dict = {}

    def closure():
        opt.zero_grad()
        terms = loss(x, content_feats=content_feats)
        terms["total"].backward()
        last["terms"] = terms
        return terms["total"]

    history: list[dict] = []
    bar = None
    if progress is None or progress:  # None: a bar only when stderr is a terminal (disable=None)
        bar = tqdm(total=steps, desc=f"gatys {optimizer}", disable=None if progress is None else False)
    t0 = time.perf_counter()
    for step in range(steps):
        if optimizer == "lbfgs":
            n_before = opt.state[x].get("n_iter", 0) if x in opt.state else 0
            opt.step(closure)
            converged = opt.state[x]["n_iter"] == n_before
        else:
            closure()
            opt.step()
            converged = False
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
        record = {k: float(v.detach()) for k, v in last["terms"].items()}
        if not math.isfinite(record["total"]):
            raise FloatingPointError(f"the loss became {record['total']} at step {step}; "
                                     f"lower lr (now {lr}) or the weights")
        history.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(total=f"{record['total']:.4g}")
        stop = False
        if callback is not None:
            stop = bool(callback(step, x.detach()[0].cpu().clone(), record))
        if converged or stop:
            break
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()

    with torch.no_grad():
        image = x.detach().clone()
        final = {k: float(v) for k, v in loss(image, content_feats=content_feats).items()}
    return GatysResult(image=image[0].cpu(), history=history, final=final, seconds=seconds,
                       steps=len(history))
