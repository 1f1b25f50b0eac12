"""Shared pieces of the generator figures: one config per (arch, norm, padding, style), so that
figures reuse each other's trained models through the run cache, and held-out measurements.

    run = train_generator("cpu", arch="residual", norm="instance", style="candy")
    losses = heldout_losses(run, data.content_paths("test"), size=256)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from repro import config as config_mod
from repro import data, images, metrics, precision, runs, tasks
from repro.checkpoint import load_generator, model_kwargs
from repro.inference import stylize
from repro.losses import PerceptualLoss
from repro.models import build_generator
from repro.train import train


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


def model_deviations(cfg) -> list[str]:
    """The deviations of a generator run's model from the papers, for a figure's record."""
    m = cfg.model if hasattr(cfg, "model") else config_mod.from_dict(cfg).model
    out = []
    if m.arch == "residual" and m.upsample != "transposed":
        how = {"nearest": "nearest x2 and a 3x3 conv (as Dumoulin et al. and pytorch/examples)",
               "bilinear": "bilinear x2 and a 3x3 conv (not in the papers)",
               "antialiased": "nearest x2, a 3x3 conv and a fixed blur (not in the papers)"}[m.upsample]
        out.append(f"the residual generator upsamples by {how}; Johnson et al.'s has fractionally "
                   "strided convs (model.upsample=transposed), which drew 2-3 px stripes at cpu scale")
    if m.arch == "residual" and m.downsample != "strided":
        out.append("the residual generator downsamples by a stride-1 conv, norm, ReLU and BlurPool "
                   "(Zhang 2019; issue 18, not in the papers) in place of its stride-2 convs")
    if m.arch != "adain" and m.equalized_output:
        out.append(f"the {m.arch} generator's output conv has an equalized learning rate (Karras et al. "
                   "2018; issue 18, not in the papers): with the plain conv, Adam's first steps saturate "
                   "the sigmoid and training collapses to a flat image outside a narrow window")
    return out


def train_generator(profile: str, progress: bool | None = None, **choices) -> runs.Run:
    """Train (or reuse) the generator of ``generator_config(profile, **choices)``; its ``Run``
    carries the resolved config, the logs and the model."""
    return runs.Run(train(generator_config(profile, **choices), progress=progress))


def gatys_loss(profile: str, *, style_weight: float, content_weight: float = 1.0) -> PerceptualLoss:
    """Gatys et al.'s loss (Gram style statistic) with the layers and VGG weights of the
    profile's ``gatys:`` section, so every figure's optimization runs the profile's network."""
    g = config_mod.gatys_settings(profile)
    # built on the profile's training device: gatys.stylize optimizes where its loss lives
    device = precision.resolve_device(config_mod.load_config(profile).train.device)
    return PerceptualLoss(g["content_layers"], g["style_layers"], content_weight=content_weight,
                          style_weight=style_weight, network_weights=g["vgg_weights"]).to(device)


def describe_loss_network(loss: PerceptualLoss) -> str:
    """A deviation line's account of a loss: network, weights and layers."""
    net = loss.loss_network
    weights = {"normalised": "Gatys-normalised (local file, up to relu3_1)", "imagenet": "torchvision ImageNet",
               "random": "RANDOM STAND-IN (dry run)"}.get(net.weights, net.weights)
    return (f"{net.arch.replace('vgg', 'VGG-')} with {weights} weights; content {', '.join(loss.content_layers)}, "
            f"style {', '.join(loss.style_layers)}")


@torch.no_grad()
def heldout_losses(run, image_paths, size: int, *, bn_mode: str = "eval",
                   style: int | None = None, model: torch.nn.Module | None = None) -> dict:
    """Raw (unweighted) style and content losses of a trained generator on held-out photos:
    the terms the trainer evaluates with (``tasks``), here per photo and for one style.

    ``bn_mode="eval"`` applies the model as a user would (batch norm with running statistics);
    ``"train"`` uses per-batch statistics (each image alone), to show the difference. ``style``:
    for a conditional-IN generator, the index of the style to apply and measure against.
    ``model``: measure this generator (e.g. ``initial_generator(run)``) in place of the run's.
    Returns means over images and the per-image lists.
    """
    run = runs.Run(run)
    device = precision.resolve_device(run.config.train.device)  # where the run trained (CUDA at gpu)
    task = tasks.make_task(run.config, device, train=False)
    if isinstance(task, tasks.ArbitraryStyle):
        raise ValueError(f"{run.path} is an AdaIN model: measure it against its style images")
    n_styles = task.n_styles if isinstance(task, tasks.ConditionalStyles) else 0
    if n_styles and style is None:
        raise ValueError(f"{run.path} is a conditional-IN generator of {n_styles} styles: give style=")
    if style is not None and not (n_styles and 0 <= style < n_styles):
        raise ValueError(f"style={style} is not a style index of {run.path} ({n_styles} styles)")
    model = run.load_model(device) if model is None else model.to(device)
    model.train(bn_mode == "train")
    targets = (task.style_targets if style is None
               else tasks.select_style_targets(task.style_targets, torch.tensor([style], device=device)))
    per = {"style": [], "content": [], "content_image_style": []}
    for p in image_paths:
        x = images.load_image(p, size=size)[None].to(device)
        terms = task.heldout_terms(model, x, style)
        per["style"].append(float(terms["style"]))
        per["content"].append(float(terms["content"]))
        # the content photo's own style loss: what "no stylization" scores
        per["content_image_style"].append(float(task.loss_fn(x, x, style_targets=targets, weighted=False)["style"]))
    model.eval()
    return {**{k: sum(v) / len(v) for k, v in per.items()}, "per_image": per}


@torch.no_grad()
def adain_style_ratios(run, styles: list[str], image_paths, models: dict) -> dict:
    """AdaIN Fig. 3's "far below the content photo" statistic: an AdaIN network's style loss on
    held-out photos styled by each of ``styles`` (names), over the photos' own style loss, both
    measured with the run's own loss (mean/std at its style layers, unweighted), in fp32.
    ``models``: {key: AdaIN network}, e.g. a run's snapshots by step. Returns
    {style: {key: ratio}}, each the mean over the photos of the styled loss over the mean of the
    photos' own."""
    cfg = runs.Run(run).config
    if cfg.model.arch != "adain":
        raise ValueError(f"{runs.Run(run).path} is a {cfg.model.arch} generator, not AdaIN")
    yardstick = tasks.build_loss(cfg)
    photos = [images.load_image(p, size=cfg.data.test_size) for p in image_paths]
    out = {}
    for style in styles:
        s = images.load_image(data.style_path(style), size=cfg.data.style_size)
        targets = yardstick.compute_style_targets(s[None])

        def style_loss(y, x):
            return float(yardstick(y[None], x[None], style_targets=targets, weighted=False)["style"])

        own = sum(style_loss(x, x) for x in photos) / len(photos)
        out[style] = {key: sum(style_loss(stylize(m, x, style=s, precision="fp32"), x) for x in photos)
                      / len(photos) / own for key, m in models.items()}
    return out


@torch.no_grad()
def border_excess(image_paths, size: int, band: int, models: dict) -> dict:
    """IN Fig. 3's statistic: :func:`repro.metrics.border_artifacts` of each held-out photo's
    output in excess of the photo's own score (a horizon along an edge is not an artifact), the
    mean over the photos. ``models``: {key: generator}, e.g. a run's snapshots by step. Returns
    {key: mean excess}."""
    photos = [images.load_image(p, size=size) for p in image_paths]
    own = [metrics.border_artifacts(x, band)["score"] for x in photos]
    return {key: sum(metrics.border_artifacts(stylize(m, x), band)["score"] - o for x, o in zip(photos, own))
            / len(photos) for key, m in models.items()}


def initial_generator(run) -> torch.nn.Module:
    """The run's generator as its training started: built from its config under its seed, as
    ``repro.train`` builds it (eval mode)."""
    cfg = runs.Run(run).config
    torch.manual_seed(cfg.train.seed)
    return build_generator(**model_kwargs(cfg.model)).eval()


def collapse_test(run, image_paths, size: int) -> dict:
    """Issue 18's collapse test (:func:`repro.metrics.collapsed`) of a trained generator on
    held-out photos at ``size``: the contrast of its outputs (eval mode) over the photos', and its
    held-out style loss over the untrained generator's (measured in train mode: an untrained
    batch norm has no running statistics yet). Returns the trained generator's held-out
    ``style`` and ``content`` losses too, so a caller measures them once."""
    photos = [images.load_image(p, size=size) for p in image_paths]
    contrast = metrics.contrast_ratio(stylize_paths(run, image_paths, size), photos)
    after = heldout_losses(run, image_paths, size)
    before = heldout_losses(run, image_paths, size, bn_mode="train", model=initial_generator(run))["style"]
    progress = after["style"] / before
    return {"style": after["style"], "content": after["content"], "contrast": contrast,
            "style_progress": progress, "collapsed": metrics.collapsed(contrast, progress)}


def stylize_paths(run, image_paths, size: int) -> list[torch.Tensor]:
    """Stylized held-out photos (eval mode) at ``size`` (shorter side)."""
    model = load_generator(run)
    return [stylize(model, images.load_image(p, size=size)) for p in image_paths]


def periodic_artifacts(run, image_paths, size: int, *, style: int | None = None) -> dict:
    """:func:`repro.metrics.periodic_artifacts` of a generator's held-out outputs (eval mode, at
    ``size``; ``style``: a conditional-IN generator's style index) against the photos themselves
    (issue 18: the fine hatch of the residual generator)."""
    photos = [images.load_image(p, size=size) for p in image_paths]
    model = load_generator(run)
    return metrics.periodic_artifacts([stylize(model, x, style=style) for x in photos], photos)


MEASURE_CALL = r"""
# measures the memory of one call(x) (the kernel's high-water mark, see repro.budget.PeakRSS);
# the code before this defines x and call (and has warmed call up)
import json, time
from repro.budget import PeakRSS
with PeakRSS() as memory:
    t = time.perf_counter()
    y = call(x)
    seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_bytes": memory.peak, "extra_bytes": memory.peak - memory.start,
                  "shape": list(getattr(y, "shape", ()))}))
"""
"""A child process's measurement of one call (IN Fig. 6, ``bench/memory.py``)."""

TIME_CALLS = r"""
# times call(x): one call at this very size first (the first call at a new size pays for the
# allocator and the kernels' first use: 2-3x a later call at 1080 px on 2 cores), then the
# median of `repeats` calls; the code before this defines x, call and repeats, and has warmed
# call up on a small crop
import json, statistics, time
t = time.perf_counter()
y = call(x)
first = time.perf_counter() - t
times = []
for _ in range(repeats):
    t = time.perf_counter()
    y = call(x)
    times.append(time.perf_counter() - t)
print(json.dumps({"seconds": statistics.median(times), "times": times, "first_seconds": first,
                  "shape": list(getattr(y, "shape", ()))}))
"""
"""A child process's timing of a call, warmed up at the measured size (IN Fig. 6)."""

_SETUP = r"""
import sys, torch
from repro import images
from repro.checkpoint import load_generator
from repro.inference import stylize
torch.set_num_threads(int(sys.argv[3]))
model = load_generator(sys.argv[1])
x = images.load_image(sys.argv[2])                    # already at the size to measure
call = lambda img: stylize(model, img, precision=sys.argv[4])
repeats = int(sys.argv[5])
call(images.center_crop(x, min(64, *x.shape[-2:])))  # warm-up (allocator, kernels, weights)
"""


def measure_stylize(run, image_path, size: int, threads: int = 2, precision: str = "auto",
                    repeats: int = 3) -> dict:
    """Time and memory of a stylization at ``size`` (shorter side) and ``precision`` (as in
    ``stylize``: the default fast path, or ``"fp32"``), each in a fresh process.

    The input is resized here and handed over as a PNG, so the child never decodes anything
    larger than what it stylizes. ``seconds`` is the median of ``repeats`` calls in one child,
    after a 64 px warm-up and a first call at the same size (``times``: each call;
    ``first_seconds``: that first call, the one-shot cost);
    ``extra_bytes`` (how far one call raised the resident size above its size just before) and
    ``peak_bytes`` come from a second child, after a 64 px warm-up, whose allocator returns
    every block of 128 KiB or more to the system when it is freed (``MALLOC_MMAP_THRESHOLD_``),
    so its resident size follows the live tensors (glibc's default keeps memory freed earlier,
    during loading and warm-up, which makes the extra meaningless).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}")

    def child(tmp: str, code: str, env: dict) -> dict:
        resized = Path(tmp) / "input.png"
        out = subprocess.run([sys.executable, "-c", code, str(run), str(resized), str(threads),
                              precision, str(repeats)], capture_output=True, text=True,
                             env={**os.environ, **env})
        if out.returncode != 0:
            raise RuntimeError(f"measuring the stylization of {image_path} at {size} px failed:\n"
                               f"{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as tmp:
        images.save_image(images.load_image(image_path, size=size), Path(tmp) / "input.png")
        timed = child(tmp, _SETUP + TIME_CALLS, {})
        memory = child(tmp, _SETUP + MEASURE_CALL, {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    return {**timed, "peak_bytes": memory["peak_bytes"],
            "extra_bytes": memory["extra_bytes"]}
