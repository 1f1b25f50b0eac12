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

from repro import runs


class CheckpointError(ValueError):
    """A checkpoint file is missing pieces, truncated or not a checkpoint; names the file."""


def model_kwargs(model_cfg) -> dict:
    """``build_generator`` keyword arguments from a ``ModelConfig`` (or its dict)."""
    m = model_cfg if isinstance(model_cfg, dict) else model_cfg.__dict__
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


@torch.inference_mode()
def stylize(checkpoint_or_model, image, size: int | None = None, *, style=None,
            device: str | torch.device | None = None) -> torch.Tensor:
    """Apply a trained generator to an image; return (3, H, W) (or (N, 3, H, W)) in [0, 1].

    ``checkpoint_or_model``: a checkpoint path, a run directory, or a generator module.
    ``image``: a path or an RGB tensor (3, H, W) / (N, 3, H, W) in [0, 1]. ``size``: resize so
    the shorter side is ``size`` first (None: the image's own resolution). ``style``: for a
    conditional-IN generator, a style index or a vector of mixing weights.
    """
    from repro.images import load_image, resize_shorter

    if isinstance(checkpoint_or_model, torch.nn.Module):
        model = checkpoint_or_model
        was_training = model.training
    else:
        model, was_training = load_generator(checkpoint_or_model), False
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    try:
        x = load_image(image) if isinstance(image, (str, Path)) else image
        if size is not None:
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"size must be a positive integer, got {size!r}")
            x = resize_shorter(x, size)
        single = x.dim() == 3
        x = (x[None] if single else x).to(dev, torch.float32)
        s = _as_style(style, dev)
        y = model(x) if s is None else model(x, s.expand(x.shape[0], *s.shape[1:]))
        y = y.float().clamp(0, 1)
    finally:
        model.train(was_training)
    return y[0] if single else y
