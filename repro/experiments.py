"""Shared pieces of the generator figures: one config per (arch, norm, padding, style), so that
figures reuse each other's trained models through the run cache, and held-out measurements.

    run = train_generator("cpu", arch="residual", norm="instance", style="candy")
    losses = heldout_losses(run, data.content_paths("test"), size=256)
"""
from __future__ import annotations

from pathlib import Path

import torch

from repro import config as config_mod
from repro import images
from repro.checkpoint import load_generator
from repro.train import build_loss, select_style_targets, style_images, train


def generator_config(profile: str, *, arch: str | None = None, norm: str | None = None,
                     padding: str | None = None, style: str | list[str] | None = None,
                     overrides: list[str] | None = None) -> config_mod.Config:
    """The profile's training config with these choices; its ``name`` says what it is.

    ``style``: one style, or several (a conditional-IN generator, or AdaIN's training paintings).
    """
    cfg = config_mod.load_config(profile)
    # the profile's per-architecture settings (e.g. the residual generator's width at cpu scale)
    section = config_mod.profile_section(profile, "arch_defaults").get(arch or cfg.model.arch, {})
    choices = []
    if arch:
        choices.append(f"model.arch={arch}")
    if norm:
        choices.append(f"model.norm={norm}")
    if padding:
        choices.append(f"model.padding={padding}")
    if style:
        styles = [style] if isinstance(style, str) else list(style)
        choices.append(f"data.style=[{','.join(styles)}]")
        if norm == "conditional_instance":
            choices.append(f"model.n_styles={len(styles)}")
    config_mod.apply_overrides(cfg, section, list(overrides or []), choices)
    if cfg.model.arch == "adain":
        cfg.name = f"{profile}-adain-{cfg.model.encoder_layer}-{len(cfg.data.style)}styles"
    else:
        styles = (Path(cfg.data.style[0]).stem if len(cfg.data.style) == 1
                  else f"{len(cfg.data.style)}styles")
        cfg.name = f"{profile}-{cfg.model.arch}-{cfg.model.norm}-{cfg.model.padding}-{styles}"
    # runs that differ in what they train on or in the seed say so in their directory name
    if cfg.data.transform != "none":
        cfg.name += f"-{cfg.data.transform}"
    if cfg.train.seed:
        cfg.name += f"-seed{cfg.train.seed}"
    return cfg


def train_generator(profile: str, progress: bool | None = None, **choices) -> Path:
    """Train (or reuse) the generator of ``generator_config(profile, **choices)``."""
    return train(generator_config(profile, **choices), progress=progress)


@torch.no_grad()
def heldout_losses(run: Path, image_paths, size: int, *, bn_mode: str = "eval",
                   style: int | None = None) -> dict:
    """Raw (unweighted) style and content losses of a trained generator on held-out photos.

    ``bn_mode="eval"`` applies the model as a user would (batch norm with running statistics);
    ``"train"`` uses per-batch statistics (each image alone), to show the difference. ``style``:
    for a conditional-IN generator, the index of the style to apply and measure against.
    Returns means over images and the per-image lists.
    """
    cfg = config_mod.from_dict(torch.load(Path(run) / "model.pt", weights_only=True)["config"])
    device = torch.device("cpu")
    model = load_generator(run)
    model.train(bn_mode == "train")
    loss_fn = build_loss(cfg, device)
    targets = loss_fn.compute_style_targets(style_images(cfg))
    n_styles = cfg.model.n_styles if cfg.model.norm == "conditional_instance" else 0
    if n_styles and style is None:
        raise ValueError(f"{run} is a conditional-IN generator of {n_styles} styles: give style=")
    if style is not None:
        if not n_styles or not 0 <= style < n_styles:
            raise ValueError(f"style={style} is not a style index of {run} ({n_styles} styles)")
        idx = torch.tensor([style])
        targets = select_style_targets(targets, idx)
    per = {"style": [], "content": [], "content_image_style": []}
    for p in image_paths:
        x = images.load_image(p, size=size)[None]
        y = (model(x) if style is None else model(x, idx)).float()
        terms = loss_fn(y, x, style_targets=targets, weighted=False)
        per["style"].append(float(terms["style"]))
        per["content"].append(float(terms["content"]))
        # the content photo's own style loss: what "no stylization" scores
        per["content_image_style"].append(float(loss_fn(x, x, style_targets=targets, weighted=False)["style"]))
    model.eval()
    return {**{k: sum(v) / len(v) for k, v in per.items()}, "per_image": per}


def stylize_paths(run: Path, image_paths, size: int) -> list[torch.Tensor]:
    """Stylized held-out photos (eval mode) at ``size`` (shorter side)."""
    from repro.inference import stylize

    model = load_generator(run)
    return [stylize(model, images.load_image(p, size=size)) for p in image_paths]


MEASURE_CALL = r"""
# times call(x) and samples the resident size every 0.5 ms while it runs; the code before this
# defines x and call (and has warmed call up)
import json, os, threading, time
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
before = peak = rss()
done = threading.Event()
def sample():
    global peak
    while not done.wait(0.0005):
        peak = max(peak, rss())
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
t = time.perf_counter()
y = call(x)
seconds = time.perf_counter() - t
done.set()
sampler.join()
peak = max(peak, rss())
print(json.dumps({"seconds": seconds, "peak_bytes": peak, "extra_bytes": peak - before,
                  "shape": list(getattr(y, "shape", ()))}))
"""
"""A child process's measurement of one call (IN Fig. 6, ``bench/memory.py``)."""

_MEASURE = r"""
import sys, torch
from repro import images
from repro.checkpoint import load_generator
from repro.inference import stylize
torch.set_num_threads(int(sys.argv[3]))
exact = sys.argv[4] == "exact"
model = load_generator(sys.argv[1])
x = images.load_image(sys.argv[2])                    # already at the size to measure
call = lambda img: stylize(model, img, exact=exact)
call(images.center_crop(x, min(64, *x.shape[-2:])))  # warm-up (allocator, kernels)
""" + MEASURE_CALL


def measure_stylize(run: Path, image_path, size: int, threads: int = 2, exact: bool = False) -> dict:
    """Time and memory of one stylization at ``size`` (shorter side), in a fresh process
    (``exact``: plain fp32; else ``stylize``'s default fast path).

    The input is resized here and handed over as a PNG, so the child never decodes anything
    larger than what it stylizes. ``seconds`` comes from one child; ``extra_bytes`` (how far the
    call raised the resident size above its size just before, sampled every 0.5 ms) and
    ``peak_bytes`` from a second child whose allocator returns every block of 128 KiB or more
    to the system when it is freed (``MALLOC_MMAP_THRESHOLD_``), so its resident size follows
    the live tensors. With glibc's default the resident high-water mark kept memory freed
    earlier (loading, warm-up), and the extra at 512 px came out anywhere from 1 to 113 MiB.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    def child(tmp: str, env: dict) -> dict:
        resized = Path(tmp) / "input.png"
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(run), str(resized), str(threads),
                              "exact" if exact else "fast"], capture_output=True, text=True,
                             env={**os.environ, **env})
        if out.returncode != 0:
            raise RuntimeError(f"measuring the stylization of {image_path} at {size} px failed:\n"
                               f"{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as tmp:
        images.save_image(images.load_image(image_path, size=size), Path(tmp) / "input.png")
        timed = child(tmp, {})
        memory = child(tmp, {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    return {**timed, "peak_bytes": memory["peak_bytes"], "extra_bytes": memory["extra_bytes"]}
