"""``python -m bench.train_step``: the training step of each generator task at the ``cpu``
profile, as the trainer runs it, next to the same step without each of the changes made for the
``cpu`` budget (issue 18), in one process, the variants alternating.

- **residual** and **conditional IN** (the residual generator): ``now`` feeds the 9x9 output conv
  NHWC on the CPU (``ResidualGenerator.body``); ``NCHW output conv`` runs every layer NCHW.
  The two differ in the last bits only (reported: the first step's loss of each).
- **AdaIN**: ``now`` reads f(s) and the style targets off one VGG pass over the paintings
  (``ArbitraryStyle.loss``, where the loss network is the encoder); ``two VGG passes`` encodes
  them again for the loss. The losses are the same numbers; the file says whether they were.
- **residual**, **conditional IN** and **multi-scale**: ``NCHW loss network`` feeds the loss's
  VGG passes NCHW instead of NHWC on the CPU (``tasks.loss_layout``; last bits differ).

Each variant builds the generator afresh (seed 0), takes 2 warm-up steps, then ``--steps``
timed steps on fresh batches; ``--repeats`` rounds alternate the variants. Reported: the median
seconds a step over all rounds. ``python -m bench.train_step --quick``: the smoke profile, a
step or two (the tests run it). Results: ``bench/results/train-step-<machine>.json``. Nothing
here asserts a speed.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import experiments, tasks
from repro.atomic import atomic_write_json
from repro.checkpoint import model_kwargs
from repro.models import build_generator, residual
from repro.train import resolve_precision, training_step

STYLES = ["delaunay_portrait_de_metzinger", "candy", "starry_night", "the_scream"]
CASES = {  # name: generator_config choices
    "residual": dict(arch="residual", norm="instance", style="starry_night"),
    "conditional IN": dict(arch="residual", norm="conditional_instance", style=STYLES),
    "multiscale": dict(arch="multiscale", norm="instance", style="starry_night"),
    "AdaIN": dict(arch="adain"),
}
NCHW_LOSS = "NCHW loss network"
BEFORE = {"residual": ["NCHW output conv", NCHW_LOSS], "conditional IN": ["NCHW output conv", NCHW_LOSS],
          "multiscale": [NCHW_LOSS], "AdaIN": ["two VGG passes"]}


def before(variant: str, task, model):
    """The step without one of the budget changes: ``variant`` (a context manager)."""
    if variant == "two VGG passes":
        return mock.patch.dict(task._shared, {model.encoder: False})
    if variant == NCHW_LOSS:
        return mock.patch.object(tasks, "loss_layout", lambda *images: images)
    return mock.patch.object(residual.ResidualGenerator, "body", lambda self, x, style: self.net(x, style))


def time_variant(cfg, task, case: str, variant: str, steps: int) -> tuple[list[float], float]:
    """Seconds of each timed step, and the first step's loss."""
    device = torch.device("cpu")
    amp = resolve_precision(cfg.train.precision, device)
    torch.manual_seed(0)
    model = build_generator(**model_kwargs(cfg.model))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr)
    g = torch.Generator().manual_seed(0)
    ctx = before(variant, task, model) if variant != "now" else contextlib.nullcontext()
    with ctx:
        first = float(training_step(model, task, opt, task.sample(cfg.optim.batch_size, g), amp)["total"].detach())
        training_step(model, task, opt, task.sample(cfg.optim.batch_size, g), amp)
        times = []
        for _ in range(steps):
            batch = task.sample(cfg.optim.batch_size, g)
            t = time.perf_counter()
            training_step(model, task, opt, batch, amp)
            times.append(time.perf_counter() - t)
    return times, first


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, 1 timed step, 1 round (a check that it runs)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant and round (default 5)")
    p.add_argument("--repeats", type=int, default=2, help="rounds, the variants alternating (default 2)")
    p.add_argument("--only", nargs="+", choices=list(CASES), help="these cases only")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    steps, repeats = (1, 1) if args.quick else (args.steps, args.repeats)
    if steps < 1 or repeats < 1:
        p.error(f"--steps and --repeats must be >= 1, got {steps} and {repeats}")
    profile = "smoke" if args.quick else "cpu"
    cases = args.only or list(CASES)
    configs = {c: experiments.generator_config(profile, **CASES[c]) for c in cases}  # all checked first
    device = torch.device("cpu")
    info = machine_info(device)
    out = Path(args.out) / f"train-step-{machine_slug(info, device)}.json"
    res = {"profile": profile, "steps": steps, "repeats": repeats, "machine": info, "cases": {}}
    for case in cases:
        cfg = configs[case]
        task = tasks.make_task(cfg, device)
        variants = ["now"] + BEFORE[case]
        times = {v: [] for v in variants}
        first = {}
        for _ in range(repeats):
            for v in variants:
                t, first[v] = time_variant(cfg, task, case, v, steps)
                times[v].extend(t)
        row = {v: {"s_per_step": statistics.median(times[v]), "first_loss": first[v]} for v in variants}
        row["batch"], row["image_size"] = cfg.optim.batch_size, cfg.data.image_size
        row["precision"] = str(resolve_precision(cfg.train.precision, device) or "fp32").replace("torch.", "")
        for v in variants[1:]:  # how much faster "now" is than the step without this change
            row[v]["speedup"] = row[v]["s_per_step"] / row["now"]["s_per_step"]
            row[v]["same_first_loss"] = first["now"] == first[v]
        res["cases"][case] = row
        print(f"{case}: now {row['now']['s_per_step']:.3f} s/step" + "".join(
            f"; {v} {row[v]['s_per_step']:.3f} ({row[v]['speedup']:.2f}x, first loss "
            f"{'the same' if row[v]['same_first_loss'] else 'differs'})" for v in variants[1:]), flush=True)
        atomic_write_json(out, res)  # what finished stays on disk
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
