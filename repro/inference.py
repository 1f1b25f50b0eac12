"""Checkpoints and stylization with a trained generator (``repro.stylize``).

A checkpoint is a plain ``torch.save`` dict, loadable with ``torch.load(weights_only=True)``:
``{"model": state_dict, "config": plain dict, "step": int, "optimizer": ..., "rng": ...}``.
It is written atomically (temporary file, then rename): a crash never leaves half a file.

``stylize`` applies a generator in inference mode, batch norm in eval mode (running
statistics; the way a user applies a BN model), instance norm as always with per-image
statistics. The networks are fully convolutional: any H and W, memory grows with pixels only.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from repro import precision, runs


class CheckpointError(ValueError):
    """A checkpoint file is missing pieces, truncated or not a checkpoint; names the file."""


def model_kwargs(model_cfg) -> dict:
    """``build_generator`` keyword arguments from a ``ModelConfig`` (or its dict)."""
    m = model_cfg if isinstance(model_cfg, dict) else model_cfg.__dict__
    if m["arch"] == "adain":
        return dict(arch="adain", encoder_layer=m.get("encoder_layer", "relu3_1"),
                    vgg_weights=m.get("encoder_weights", "auto"))
    kw = dict(arch=m["arch"], norm=m["norm"], padding=m["padding"], width=m["width"],
              output=m.get("output", "sigmoid"))
    if m["arch"] == "residual":
        kw["upsample"] = m.get("upsample", "nearest")
    if m["arch"] == "multiscale" and m.get("noise_channels"):
        kw["noise_channels"] = m["noise_channels"]
    if m["norm"] == "conditional_instance":
        kw["n_styles"] = m["n_styles"]
    return kw


def save_checkpoint(path, *, model, step: int, config, optimizer=None, rng=None, **extra) -> Path:
    from repro.config import Config, to_dict

    cfg = to_dict(config) if isinstance(config, Config) else dict(config)
    state = {"model": model.state_dict(), "config": cfg, "step": int(step),
             "generator": dict(model.config) if hasattr(model, "config") else None, **extra}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if rng is not None:
        state["rng"] = rng
    buf = io.BytesIO()
    torch.save(state, buf)
    runs.atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():  # a run directory: its final model
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(2, "checkpoint not found", str(path))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, unpickling refusal, not a torch file at all
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: not a repro checkpoint (needs 'model' and 'config' entries)")
    return ckpt


def load_generator(checkpoint, device="cpu") -> torch.nn.Module:
    """The generator stored in a checkpoint (or run directory), in eval mode."""
    from repro.models import build_generator

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    name = checkpoint if not isinstance(checkpoint, dict) else "checkpoint"
    kw = ckpt.get("generator") or model_kwargs(ckpt["config"]["model"])
    model = build_generator(**kw)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{name}: weights do not match the generator it describes: {e}") from e
    return model.to(device).eval()


def _as_style(style, device) -> torch.Tensor | None:
    if style is None:
        return None
    if isinstance(style, int):
        return torch.tensor([style], device=device)
    t = torch.as_tensor(style, device=device)
    if t.dtype.is_floating_point:
        return t.float().reshape(1, -1)
    return t.reshape(-1)


def _adain_styles(style, style_size, content, preserve_color) -> list[torch.Tensor]:
    from repro.images import load_image, match_color, resize_shorter

    if style is None:
        raise ValueError("an AdaIN model needs style= (a style image path or tensor, or a list of them)")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    out = []
    for s in styles:
        if isinstance(s, (str, Path)):
            s = load_image(s, size=style_size)
        elif not isinstance(s, torch.Tensor) or s.dim() != 3 or not s.is_floating_point():
            raise ValueError("each AdaIN style must be an image path or an RGB (3, H, W) float tensor, "
                             f"got {type(s).__name__} {tuple(getattr(s, 'shape', ()))}")
        elif style_size is not None:
            s = resize_shorter(s, style_size)
        if preserve_color:
            # AdaIN §7.3: the style takes the content's colours first, so only its texture transfers
            s = match_color(s, content)
        out.append(s[None].float())
    return out


def _input_batch(image, size, device, memory_format=torch.contiguous_format):
    """(N, 3, H, W) float32 on ``device`` from a path or tensor, resized first if ``size``;
    and whether the caller gave a single (3, H, W) image."""
    from repro.images import load_image, resize_shorter

    x = load_image(image) if isinstance(image, (str, Path)) else image
    if size is not None:
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f"size must be a positive integer, got {size!r}")
        x = resize_shorter(x, size)
    single = x.dim() == 3
    x = (x[None] if single else x).to(device, torch.float32, memory_format=memory_format)
    return x, single


def _apply(fn, x: torch.Tensor, arbitrary: bool, style, alpha, style_weights, style_size,
           preserve_color) -> torch.Tensor:
    """One generator call on an (N, 3, H, W) batch already on the model's device."""
    if arbitrary:
        styles = [s.to(x.device) for s in _adain_styles(style, style_size, x[0], preserve_color)]
        return fn(x, styles, alpha=alpha, style_weights=style_weights)
    s = _as_style(style, x.device)
    return fn(x) if s is None else fn(x, s.expand(x.shape[0], *s.shape[1:]))


@torch.inference_mode()
def stylize(checkpoint_or_model, image, size: int | None = None, *, style=None,
            device: str | torch.device | None = None, alpha: float = 1.0, style_weights=None,
            preserve_color: bool = False, style_size: int | None = None,
            exact: bool = False) -> torch.Tensor:
    """Apply a trained generator to an image; return (3, H, W) (or (N, 3, H, W)) in [0, 1].

    ``checkpoint_or_model``: a checkpoint path, a run directory, or a generator module.
    ``image``: a path or an RGB tensor (3, H, W) / (N, 3, H, W) in [0, 1]. ``size``: resize so
    the shorter side is ``size`` first (None: the image's own resolution).

    ``style``: for a conditional-IN generator, a style index or a vector of mixing weights. For
    an AdaIN model, the style image (path or tensor; any style, seen in training or not) or a
    list of them mixed with ``style_weights``; ``alpha`` in [0, 1] trades style for content
    (AdaIN eq. 14), ``preserve_color`` keeps the content's colours (§7.3), ``style_size``
    resizes the style's shorter side first.

    The fast path is the default: bf16 autocast where the hardware does bf16 natively
    (``repro.precision``; fp32 elsewhere), within 40 dB PSNR of fp32 on real photos (bench/).
    ``exact=True`` computes in plain fp32. For many images, :class:`Stylizer` also compiles.
    """
    from repro.models import AdaINNet

    if isinstance(checkpoint_or_model, torch.nn.Module):
        model = checkpoint_or_model
        was_training = model.training
    else:
        model, was_training = load_generator(checkpoint_or_model), False
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    arbitrary = isinstance(model, AdaINNet)
    if not arbitrary and (alpha != 1.0 or style_weights is not None or preserve_color):
        raise ValueError("alpha, style_weights and preserve_color apply to AdaIN models only "
                         "(conditional-IN generators take mixing weights as style=)")
    try:
        x, single = _input_batch(image, size, dev)
        with precision.autocast(dev, None if exact else precision.fast_dtype(dev)):
            y = _apply(model, x, arbitrary, style, alpha, style_weights, style_size, preserve_color)
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
    dozen photo sizes took minutes (measured); use ``compile=False`` for mixed sizes.
    Measured on the 2-core CPU: 2.6-3.6x the plain fp32 network at 512 and 1080 px, at 44-52 dB
    PSNR against it on real photos (``make bench``; bench/README.md). ``compile=False``: the eager fast path.
    ``exact=True``: plain eager fp32, the function the figures' metrics are computed with.

        fast = Stylizer("runs/cpu-residual-...")
        for frame in frames:
            out = fast(frame)            # (3, H, W) or (N, 3, H, W) in [0, 1]

    ``__call__`` takes ``image`` and the keyword arguments of :func:`stylize`. The model is
    put in eval mode; it is copied when its memory layout changes (channels_last, CUDA), so the
    caller's parameters are never touched.
    """

    def __init__(self, checkpoint_or_model, *, device: str | torch.device | None = None,
                 exact: bool = False, compile: bool = True):
        import copy

        from repro.models import AdaINNet

        if isinstance(checkpoint_or_model, torch.nn.Module):
            model = checkpoint_or_model
        else:
            model = load_generator(checkpoint_or_model)
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        self.device, self.exact = dev, exact
        self.dtype = None if exact else precision.fast_dtype(dev)
        self.arbitrary = isinstance(model, AdaINNet)
        self.memory_format = torch.contiguous_format
        if dev.type == "cuda" and not exact:
            # measured on the CPU: no gain from channels_last (eager it was slower, compiled
            # inductor chooses its own layouts), so it is a CUDA-only setting
            torch.backends.cudnn.benchmark = True
            self.memory_format = torch.channels_last
            model = copy.deepcopy(model).to(memory_format=self.memory_format)
        self.model = model.to(dev).eval()
        self.compiled = bool(compile and not exact)
        self._fn = torch.compile(self.model) if self.compiled else self.model

    @torch.inference_mode()
    def __call__(self, image, size: int | None = None, *, style=None, alpha: float = 1.0,
                 style_weights=None, preserve_color: bool = False,
                 style_size: int | None = None) -> torch.Tensor:
        if not self.arbitrary and (alpha != 1.0 or style_weights is not None or preserve_color):
            raise ValueError("alpha, style_weights and preserve_color apply to AdaIN models only")
        x, single = _input_batch(image, size, self.device, self.memory_format)
        self.model.eval()
        with precision.autocast(self.device, self.dtype):
            y = _apply(self._fn, x, self.arbitrary, style, alpha, style_weights, style_size,
                       preserve_color)
        y = y.float().clamp(0, 1).contiguous()
        return y[0] if single else y
