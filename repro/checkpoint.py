"""The checkpoint format: one ``torch.save`` dict per file, loadable with
``torch.load(weights_only=True)``:
``{"model": state_dict, "config": plain dict, "step": int, "generator": build_generator kwargs,
"optimizer": ..., "rng": ...}``.

Written atomically (temporary file, then rename): a crash never leaves half a file. Reading
refuses, with one line naming the file, anything that is not such a dict (another format, a
truncated or corrupt file, pickled objects, NaN weights, weights of another shape).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch

from repro.atomic import atomic_write_bytes
from repro.config import Config, to_dict
from repro.models import build_generator
from repro.precision import resolve_device


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
        if m.get("downsample", "strided") != "strided":
            kw["downsample"] = m["downsample"]
    if m["arch"] == "multiscale" and m.get("noise_channels"):
        kw["noise_channels"] = m["noise_channels"]
    if m["norm"] == "conditional_instance":
        kw["n_styles"] = m["n_styles"]
    if m.get("equalized_output"):
        kw["equalized_output"] = True
    return kw


def save_checkpoint(path, *, model, step: int, config, optimizer=None, rng=None, **extra) -> Path:
    cfg = to_dict(config) if isinstance(config, Config) else dict(config)
    state = {"model": model.state_dict(), "config": cfg, "step": int(step),
             "generator": dict(model.config) if hasattr(model, "config") else None, **extra}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if rng is not None:
        state["rng"] = rng
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():  # a run directory: its final model
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(2, "checkpoint not found", str(path))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path}: not a checkpoint (not a torch.save archive: another "
                                  "format, truncated or corrupt)") from None
        # torch's own message suggests weights_only=False, which would run arbitrary code
        raise CheckpointError(f"{path}: holds objects other than tensors and plain data, so it is "
                              "not a repro checkpoint; it was not unpickled") from None
    except Exception as e:  # truncated zip, not a torch file at all
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: "
                              f"{type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: not a repro checkpoint (needs 'model' and 'config' entries)")
    for key, t in ckpt["model"].items() if isinstance(ckpt["model"], dict) else ():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: weight {key!r} holds NaN or infinite values (a diverged "
                                  "or damaged checkpoint)")
    return ckpt


def load_generator(checkpoint, device="cpu") -> torch.nn.Module:
    """The generator stored in a checkpoint (or run directory), in eval mode."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    name = checkpoint if not isinstance(checkpoint, dict) else "checkpoint"
    kw = ckpt.get("generator") or model_kwargs(ckpt["config"]["model"])
    try:
        model = build_generator(**kw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: describes no generator this version can build ({e})") from None
    expected = model.state_dict()
    got = ckpt["model"]
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    wrong = [k for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        first = (f"{wrong[0]}: {tuple(got[wrong[0]].shape)} stored, {tuple(expected[wrong[0]].shape)} "
                 "expected" if wrong else (missing or unexpected)[0])
        raise CheckpointError(f"{name}: weights do not match the generator its config describes "
                              f"({len(wrong)} of another shape, {len(missing)} missing, "
                              f"{len(unexpected)} unexpected; e.g. {first})")
    model.load_state_dict(got)
    return model.to(resolve_device(device)).eval()
