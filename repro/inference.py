"""Stylization with a trained generator (``repro.stylize``, ``repro.Stylizer``).

``stylize`` applies a generator in inference mode, batch norm in eval mode (running
statistics; the way a user applies a BN model), instance norm as always with per-image
statistics. The networks are fully convolutional: any H and W, memory grows with pixels only.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from PIL import Image

from repro import budget, tiling
from repro import precision as precision_mod
from repro.checkpoint import load_generator
from repro.images import as_image, check_resize_shorter, load_image, match_color, resize_shorter
from repro.models import AdaINNet
from repro.precision import resolve_device


def _as_style(style, device) -> torch.Tensor | None:
    if style is None:
        return None
    if isinstance(style, int):
        return torch.tensor([style], device=device)
    t = torch.as_tensor(style, device=device)
    if t.dtype.is_floating_point:
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"style mixing weights must be finite numbers, got {t.tolist()}")
        return t.float().reshape(1, -1)
    return t.reshape(-1)


def check_style_options(model, style=None, *, alpha: float = 1.0, style_weights=None,
                        preserve_color: bool = False) -> None:
    """Refuse style arguments that do not fit ``model``, before any image is read or pixel
    computed (the network would otherwise refuse them only when it runs: after a compilation,
    or a video's first batch): a conditional-IN style index out of range or mixing weights of
    the wrong length; AdaIN without a style, ``alpha`` outside [0, 1], ``style_weights`` that
    are not one non-negative number per style; a style for a single-style generator."""
    if isinstance(model, AdaINNet):
        if style is None or (isinstance(style, (list, tuple)) and not style):
            raise ValueError("an AdaIN model needs style= (a style image path or tensor, or a list of them)")
        try:
            a = None if isinstance(alpha, bool) else float(alpha)  # numpy and 0-d tensors too
        except (TypeError, ValueError, RuntimeError):
            a = None
        if a is None or not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if style_weights is not None:
            n = len(style) if isinstance(style, (list, tuple)) else 1
            w = torch.as_tensor(style_weights, dtype=torch.float32).flatten()
            if (len(w) != n or not bool(torch.isfinite(w).all()) or bool((w < 0).any())
                    or float(w.sum()) <= 0):
                raise ValueError(f"style_weights must be {n} non-negative numbers with a positive "
                                 f"sum (one per style), got {w.tolist()}")
        return
    if alpha != 1.0 or style_weights is not None or preserve_color:
        raise ValueError("alpha, style_weights and preserve_color apply to AdaIN models only "
                         "(conditional-IN generators take mixing weights as style=)")
    config = getattr(model, "config", {})
    if config.get("norm") != "conditional_instance":
        if style is not None and config:
            raise ValueError(f"style given, but this generator has norm={config.get('norm')!r}; "
                             "only conditional-IN generators take a style")
        return
    n_styles = config["n_styles"]
    if style is None:
        raise ValueError(f"a conditional-IN generator needs style=: a style index (0..{n_styles - 1}) "
                         f"or {n_styles} mixing weights")
    s = _as_style(style, "cpu")
    if s.is_floating_point():
        if s.shape[-1] != n_styles:
            shape = tuple(torch.as_tensor(style).shape)
            raise ValueError(f"style weights must be {n_styles} numbers (one per style of this "
                             f"network), got shape {shape}")
    elif s.numel() and (int(s.min()) < 0 or int(s.max()) >= n_styles):
        raise ValueError(f"style index {s.tolist()} out of range: this network has {n_styles} "
                         f"styles (0..{n_styles - 1})")


def _check_adain_size(img: torch.Tensor, name: str, down: int) -> None:
    # the encoder pools down by ``down`` and reflect-pads every 3x3 conv: smaller maps cannot be
    if min(img.shape[-2:]) < 2 * down:
        raise ValueError(f"{name} is {img.shape[-1]}x{img.shape[-2]} pixels; the AdaIN encoder needs "
                         f"at least {2 * down} px on each side")


def load_styles(style, style_size, down: int = 1) -> list[torch.Tensor]:
    """AdaIN style images, each (3, H, W), loaded, checked and resized to ``style_size`` (the
    shorter side; None keeps it), their sides checked against the encoder's downsampling ``down``.
    A batch of frames (repro.video) loads them once this way."""
    if style is None:
        raise ValueError("an AdaIN model needs style= (a style image path or tensor, or a list of them)")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    out = []
    for s in styles:
        name, s = (str(s), load_image(s)) if isinstance(s, (str, Path)) else ("style", as_image(s, "style"))
        if s.dim() != 3:
            raise ValueError(f"{name}: each AdaIN style is one (3, H, W) image, got {tuple(s.shape)}")
        if style_size is not None:
            check_resize_shorter(s.shape, style_size, name)
            s = resize_shorter(s, style_size)
        _check_adain_size(s, name, down)
        out.append(s)
    return out


def _adain_styles(style, style_size, content, preserve_color, down: int = 1) -> list[torch.Tensor]:
    # AdaIN §7.3: with preserve_color the style takes the content's colours first, so only its
    # texture transfers
    return [(match_color(s, content) if preserve_color else s)[None].float()
            for s in load_styles(style, style_size, down)]


def _input_batch(image, size, device, memory_format=torch.contiguous_format, *, model=None,
                 tile=None, overlap=None):
    """(N, 3, H, W) float32 on ``device`` from a path, tensor, numpy array or PIL image (checked
    by ``images.as_image``), resized first if ``size``; and whether the caller gave a single
    (3, H, W) image. With ``model``, the call's memory is estimated from the pixels, and checked
    against the budget, before anything is resized or run."""
    if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise ValueError(f"size must be a positive integer, got {size!r}")

    def check(shape, name, n=1):
        h, w = check_resize_shorter(shape, size, name) if size is not None else shape[-2:]
        if model is not None:
            # resizing first decodes the whole original (float RGB) beside the result
            decoded = n * shape[-2] * shape[-1] if size is not None else 0
            _check_memory(model, name, h, w, n, device, tile, overlap, decoded)

    if isinstance(image, (str, Path)):
        name = str(image)
        header = _header_shape(image)
        if header is not None:  # checked before the pixels are even decoded
            check(header, name)
        x = load_image(image)
    else:
        name, x = "image", as_image(image)
    check(x.shape, name, 1 if x.dim() == 3 else x.shape[0])
    if size is not None:
        x = resize_shorter(x, size)
    single = x.dim() == 3
    x = (x[None] if single else x).to(device, torch.float32, memory_format=memory_format)
    if isinstance(model, AdaINNet):
        _check_adain_size(x, name, model.down)
    return x, single


def _header_shape(path) -> tuple[int, int] | None:
    """(H, W) from an image file's header (no pixel decoded), or None if PIL cannot tell."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except Exception:  # load_image reports unreadable files properly
        return None
    return (h, w)


def _check_memory(model, name: str, h: int, w: int, n: int, device, tile, overlap,
                  decoded_pixels: int = 0) -> None:
    """Refuse, before any work, a call whose estimated memory exceeds ``repro.budget``'s."""
    config = getattr(model, "config", {})
    if not config:
        return  # a module of the user's own: nothing measured to estimate from
    # the float input and output of the whole image, and the original decoded before a resize
    io_bytes = 2 * 3 * 4 * h * w * n + 3 * 4 * decoded_pixels
    if tile:
        est = budget.generator_bytes(config, min(tiling.tile_pixels(model, tile, overlap), h * w)) + io_bytes
        way_out = "use a smaller --tile (Stylizer(..., tile=N))"
    else:
        est = budget.generator_bytes(config, h * w) * n + io_bytes
        way_out = ("stylize it in tiles with --tile 1024 (stylize(..., tile=1024)), which gives the "
                   "same image at bounded memory, or smaller with --size N")
    budget.check(est, f"stylizing {name} ({w}x{h} px{f', {n} images' if n > 1 else ''})", way_out,
                 device)


def _apply(fn, model, x: torch.Tensor, arbitrary: bool, style, alpha, style_weights, style_size,
           preserve_color, tile=None, overlap=None) -> torch.Tensor:
    """One generator call on an (N, 3, H, W) batch already on the model's device (``tile``:
    tile by tile, ``repro.tiling``, with ``model`` itself rather than ``fn``)."""
    if arbitrary:
        styles = [s.to(x.device) for s in _adain_styles(style, style_size, x[0], preserve_color, model.down)]
        if tile:
            return tiling.adain_tiled(model, x, styles, alpha=alpha, style_weights=style_weights,
                                      tile=tile, overlap=overlap)
        return fn(x, styles, alpha=alpha, style_weights=style_weights)
    s = _as_style(style, x.device)
    s = None if s is None else s.expand(x.shape[0], *s.shape[1:])
    if tile:
        return tiling.generator_tiled(model, x, s, tile=tile, overlap=overlap)
    return fn(x) if s is None else fn(x, s)


@torch.inference_mode()
def stylize(checkpoint_or_model, image, size: int | None = None, *, style=None,
            device: str | torch.device | None = None, alpha: float = 1.0, style_weights=None,
            preserve_color: bool = False, style_size: int | None = None, precision: str = "auto",
            exact: bool = False, tile: int | None = None, overlap: int | None = None) -> torch.Tensor:
    """Apply a trained generator to an image; return (3, H, W) (or (N, 3, H, W)) in [0, 1].

    ``checkpoint_or_model``: a checkpoint path, a run directory, or a generator module.
    ``image``: a path or an RGB tensor (3, H, W) / (N, 3, H, W) in [0, 1]. ``size``: resize so
    the shorter side is ``size`` first (None: the image's own resolution).

    ``style``: for a conditional-IN generator, a style index or a vector of mixing weights. For
    an AdaIN model, the style image (path or tensor; any style, seen in training or not) or a
    list of them mixed with ``style_weights``; ``alpha`` in [0, 1] trades style for content
    (AdaIN eq. 14), ``preserve_color`` keeps the content's colours (§7.3), ``style_size``
    resizes the style's shorter side first.

    ``precision``: ``"auto"`` (the default fast path: bf16 autocast where the hardware does bf16
    natively, fp32 elsewhere; within 40 dB PSNR of fp32 on real photos, bench/), ``"fp32"``
    (plain fp32, what the figures' metrics use; ``exact=True`` is a synonym) or ``"bf16"``
    (``repro.precision``). For many images, :class:`Stylizer` also compiles.

    ``image`` may also be a numpy array or PIL image; uint8 values are divided by 255, and NaN,
    infinite or out-of-range values are refused (``images.as_image``). Before the network runs,
    the call's memory is estimated from the pixels (``repro.budget``); beyond the budget it is a
    ``MemoryBudgetError``. ``tile=N`` stylizes in overlapping tiles of N px (``overlap`` px of
    context) with instance norm's statistics taken over the whole image (``repro.tiling``): the
    same image at bounded memory.
    """
    if isinstance(checkpoint_or_model, torch.nn.Module):
        model = checkpoint_or_model
        was_training = model.training
    else:
        model, was_training = load_generator(checkpoint_or_model), False
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    arbitrary = isinstance(model, AdaINNet)
    check_style_options(model, style, alpha=alpha, style_weights=style_weights,
                        preserve_color=preserve_color)
    dtype = precision_mod.inference_dtype(precision, exact, dev)
    if tile is not None:
        tiling.check_tile(tile, overlap)
    x, single = _input_batch(image, size, dev, model=model, tile=tile, overlap=overlap)
    model.to(dev).eval()
    try:
        with precision_mod.autocast(dev, dtype):
            y = _apply(model, model, x, arbitrary, style, alpha, style_weights, style_size,
                       preserve_color, tile, overlap)
        y = y.float().clamp(0, 1)
    finally:
        model.train(was_training)
    return y[0] if single else y


class Stylizer:
    """A generator prepared once and applied to many images (a folder, a video; IN Fig. 6's
    real-time claim), as fast as this machine allows.

    The fast path (default): inference mode; bf16 autocast where native (``repro.precision``,
    fp32 elsewhere); ``torch.compile`` (inductor), so the first call at a new image size
    compiles (seconds; inductor caches the kernels on disk, so later processes start faster)
    and every later call runs fused kernels; on CUDA also channels_last and cudnn autotuning.
    It pays off for many images of one size (video frames, tiles, crops): every new size
    recompiles, and for the multi-scale generator torch's dynamic-shape recompilation over a
    dozen photo sizes took minutes; use ``compile=False`` (the eager fast path) for mixed sizes.
    Its speed and accuracy against the plain fp32 network: ``make bench`` (bench/README.md).
    ``precision`` as in :func:`stylize`; ``"fp32"`` (``exact=True``) is plain eager fp32, the
    function the figures' metrics are computed with.
    ``tile=N``: images of any size in overlapping tiles (:func:`stylize`; eager, not compiled).

        fast = Stylizer("runs/cpu-residual-...")
        for frame in frames:
            out = fast(frame)            # (3, H, W) or (N, 3, H, W) in [0, 1]

    ``__call__`` takes ``image`` and the keyword arguments of :func:`stylize`. The model is
    put in eval mode; it is copied when its memory layout changes (channels_last, CUDA), so the
    caller's parameters are never touched.
    """

    def __init__(self, checkpoint_or_model, *, device: str | torch.device | None = None,
                 precision: str = "auto", exact: bool = False, compile: bool = True,
                 tile: int | None = None, overlap: int | None = None):
        if isinstance(checkpoint_or_model, torch.nn.Module):
            model = checkpoint_or_model
        else:
            model = load_generator(checkpoint_or_model)
        if tile is not None:
            tiling.check_tile(tile, overlap)
        dev = resolve_device(device) if device is not None else next(model.parameters()).device
        self.device, self.tile, self.overlap = dev, tile, overlap
        self.dtype = precision_mod.inference_dtype(precision, exact, dev)
        # plain eager fp32 only when asked for: "auto" on a CPU without bf16 still compiles
        self.exact = exact or precision == "fp32"
        self.arbitrary = isinstance(model, AdaINNet)
        self.memory_format = torch.contiguous_format
        if dev.type == "cuda" and not self.exact:
            # measured on the CPU: no gain from channels_last (eager it was slower, compiled
            # inductor chooses its own layouts), so it is a CUDA-only setting
            torch.backends.cudnn.benchmark = True
            self.memory_format = torch.channels_last
            model = copy.deepcopy(model).to(memory_format=self.memory_format)
        self.model = model.to(dev).eval()
        # tiles come in several sizes (the image's edges), each a recompilation: tiled is eager
        self.compiled = bool(compile and not self.exact and tile is None)
        self._fn = torch.compile(self.model) if self.compiled else self.model

    @torch.inference_mode()
    def __call__(self, image, size: int | None = None, *, style=None, alpha: float = 1.0,
                 style_weights=None, preserve_color: bool = False,
                 style_size: int | None = None) -> torch.Tensor:
        check_style_options(self.model, style, alpha=alpha, style_weights=style_weights,
                            preserve_color=preserve_color)
        x, single = _input_batch(image, size, self.device, self.memory_format, model=self.model,
                                 tile=self.tile, overlap=self.overlap)
        self.model.eval()
        with precision_mod.autocast(self.device, self.dtype):
            y = _apply(self._fn, self.model, x, self.arbitrary, style, alpha, style_weights,
                       style_size, preserve_color, self.tile, self.overlap)
        y = y.float().clamp(0, 1).contiguous()
        return y[0] if single else y
