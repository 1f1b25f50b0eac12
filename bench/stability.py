"""``python -m bench.stability``: where the residual generator trains and where it collapses.

Issue 18, part 1. Each point of a grid (width x style weight x learning rate x output conv, IN
or BN) is trained from scratch by the project's own step (``repro.train.training_step`` on
``repro.tasks``: the ``cpu`` profile with content at relu3_1, Adam, batch 4) and then measured on
the profile's held-out photos (center crops at the crop size):

- ``contrast``: :func:`repro.metrics.contrast_ratio` of the outputs against the photos;
- ``style_progress``: the held-out style loss after training over the untrained generator's;
- ``saturated``: the fraction of pre-sigmoid outputs beyond +-4 (sigmoid' < 0.018) on the
  held-out photos;
- ``output_step``: the mean |change| of the pre-sigmoid output over the first Adam step, on the
  first training batch (what :class:`repro.models.EqualizedConv2d` shrinks).

**The collapse test, written before the grid was run** (:func:`repro.metrics.collapsed`): a
point has collapsed when its ``contrast`` is below 0.4 (the untrained generator scores about
0.25) or its ``style_progress`` is above 0.5 (training took off less than half of the
untrained generator's style loss).

``--quick``: the smoke profile, two points, two steps (the tests run it). Results:
``bench/results/stability-<machine>.json``. Nothing here asserts a number.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import config, images, metrics, tasks
from repro.atomic import atomic_write_json
from repro.checkpoint import model_kwargs
from repro.models import build_generator
from repro.train import training_step


def _output_conv(model) -> torch.nn.Module:
    """The conv whose output goes through the sigmoid (residual: the 9x9; multi-scale: to_rgb)."""
    return model.net[-1] if hasattr(model, "net") else model.to_rgb


def _heldout(model, task, photos: torch.Tensor) -> dict:
    """Held-out style loss, contrast and sigmoid saturation of ``model`` on ``photos``."""
    seen = []
    hook = _output_conv(model).register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    model.eval()
    with torch.no_grad():
        y = model(photos).float()
        style = [float(task.heldout_terms(model, x[None], s)["style"])
                 for x in photos for s in task.styles()]
    model.train()
    hook.remove()
    z = torch.cat([s.flatten() for s in seen])
    return {"style": sum(style) / len(style), "contrast": metrics.contrast_ratio(y, photos),
            "saturated": float((z.abs() > 4).float().mean())}


def train_point(profile: str, overrides: list[str], steps: int, seed: int = 0) -> dict:
    """One grid point trained for ``steps`` and measured (module docstring)."""
    cfg = config.load_config(profile, overrides + [f"train.seed={seed}"])
    torch.manual_seed(seed)
    task = tasks.make_task(cfg, "cpu")
    model = build_generator(**model_kwargs(cfg.model))
    last = _output_conv(model)
    size = cfg.data.image_size
    photos = torch.stack([images.center_crop(images.resize_shorter(p, size), size)
                          for p in tasks.heldout_images(cfg)])
    before = _heldout(model, task, photos)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    g = torch.Generator().manual_seed(seed)
    seen: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    first = task.sample(cfg.optim.batch_size, g)
    t0 = time.perf_counter()
    training_step(model, task, opt, first, None)
    with torch.no_grad():
        model(first["x"])
    hook.remove()
    output_step = float((seen[1] - seen[0]).abs().mean())
    trace = []
    for step in range(2, steps + 1):
        terms = training_step(model, task, opt, task.sample(cfg.optim.batch_size, g), None)
        if step % max(1, steps // 10) == 0:
            trace.append(round(float(terms["style"].detach()) / cfg.loss.style_weight, 3))
    after = _heldout(model, task, photos)
    progress = after["style"] / before["style"]
    return {"overrides": overrides, "seed": seed, "steps": steps,
            "seconds": round(time.perf_counter() - t0, 1), "output_step": output_step,
            "style_before": before["style"], "style_after": after["style"],
            "style_progress": progress, "contrast": after["contrast"],
            "saturated": after["saturated"], "train_style_trace": trace,
            "collapsed": metrics.collapsed(after["contrast"], progress)}


def grid(quick: bool, widths, weights, lrs, norms, outputs) -> list[list[str]]:
    if quick:
        return [["model.width=0.25", "model.equalized_output=false"],
                ["model.width=0.25", "model.equalized_output=true"]]
    return [[f"model.norm={n}", f"model.width={w}", f"loss.style_weight={sw}", f"optim.lr={lr}",
             f"model.equalized_output={str(eq).lower()}"]
            for n, w, sw, lr, eq in itertools.product(norms, widths, weights, lrs, outputs)]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stability", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, two points, two steps (a check that it runs)")
    p.add_argument("--steps", type=int, help="training steps per point (default 100; --quick 2)")
    p.add_argument("--crop", type=int, default=64, help="training and held-out crop size in px (default 64)")
    p.add_argument("--widths", type=_floats, default=[0.5, 1.0])
    p.add_argument("--style-weights", type=_floats, default=[3, 30, 1000])
    p.add_argument("--lrs", type=_floats, default=[0.001, 0.002, 0.005])
    p.add_argument("--norms", default="instance", help="comma-separated: instance,batch")
    p.add_argument("--outputs", default="plain,equalized", help="comma-separated output convs: plain,equalized")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    steps = args.steps if args.steps is not None else (2 if args.quick else 100)
    if steps < 2:
        p.error(f"--steps must be >= 2, got {steps}")
    if args.crop < 32:
        p.error(f"--crop must be >= 32 px, got {args.crop}")
    outputs = [o.strip() for o in args.outputs.split(",")]
    bad = [o for o in outputs if o not in ("plain", "equalized")]
    if bad:
        p.error(f"--outputs: {bad[0]!r} is not plain or equalized")
    profile = "smoke" if args.quick else "cpu"
    base = [f"data.image_size={args.crop}", "loss.content_layers=[relu3_1]"]
    points = grid(args.quick, args.widths, args.style_weights, args.lrs,
                  [n.strip() for n in args.norms.split(",")], [o == "equalized" for o in outputs])
    for pt in points:  # every point's config is checked before any is trained
        config.load_config(profile, base + pt)
    device = torch.device("cpu")
    info = machine_info(device)
    res = {"profile": profile, "base": base, "steps": steps, "machine": info,
           "collapse_test": {"contrast_below": metrics.COLLAPSE_CONTRAST,
                             "style_progress_above": metrics.COLLAPSE_PROGRESS},
           "points": []}
    out = Path(args.out) / f"stability-{machine_slug(info, device)}.json"
    for pt in points:
        r = train_point(profile, base + pt, steps)
        r["overrides"] = pt
        res["points"].append(r)
        label = " ".join(o.split("=")[0].rsplit(".", 1)[-1] + "=" + o.split("=", 1)[1] for o in pt)
        print(f"{label}: contrast {r['contrast']:.2f}, style x{r['style_progress']:.2f}, "
              f"saturated {r['saturated']:.1%}, first step moves the output by {r['output_step']:.3f}"
              f"{'  COLLAPSED' if r['collapsed'] else ''} ({r['seconds']:.0f} s)", flush=True)
        atomic_write_json(out, res)   # what finished stays on disk
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
