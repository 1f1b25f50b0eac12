"""``python -m bench.adain_trend``: does AdaIN's "far below the photo" cross where the trend said?

``notebooks/in_trends_budget.py`` follows AdaIN Fig. 3's statistic (the style loss of a photo
styled by an unseen painting over the photo's own; the claim: at most 0.5x) along the profile's
AdaIN run and extrapolates where it would cross (a straight line in log2(steps) through the last
three snapshots). This trains the same run for longer (``--steps``, default twice the profile's)
and measures the statistic at the profile's snapshot steps and beyond, so the extrapolation made
from the profile's budget is checked against a measurement: per unseen style, the trend read at
the profile's steps (``at_profile_budget``) and the one at ``--steps`` (``at_steps``).

The learning rate is constant and each step's batch is seeded by its index, so the longer run's
first steps are the profile run's: its snapshots at the profile's steps are that run's
generator (the first columns reproduce the figure's numbers). ``--quick``: the smoke profile, a
few steps (the tests run it). Results: ``bench/results/adain-trend-<machine>.json``. Nothing here
asserts a number.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import config as config_mod
from repro import data, experiments, metrics
from repro.atomic import atomic_write_json
from repro.checkpoint import load_generator

BOUND = 0.5   # adain_arbitrary's and in_trends_budget's "far below" (at most 0.5x the photo's)


def longer_overrides(profile_cfg, steps: int) -> list[str]:
    """``steps`` with snapshots at the profile run's snapshot steps and at its last step."""
    base = profile_cfg.optim.steps
    if profile_cfg.optim.lr_decay_every:
        raise ValueError("the profile's AdaIN learning rate decays: a longer run would not start as the profile's")
    keep = sorted({*config_mod.snapshot_steps(profile_cfg), base})
    return [f"optim.steps={steps}", f"train.snapshots=[{','.join(repr(s / steps) for s in keep)}]"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.adain_trend", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, a few steps (a check that it runs)")
    p.add_argument("--steps", type=int, help="training steps (default twice the profile's: 1600 at cpu)")
    p.add_argument("--n-heldout", type=int, default=12, help="held-out photos measured (default 12)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    profile = "smoke" if args.quick else "cpu"
    profile_cfg = experiments.generator_config(profile, arch="adain")
    base = profile_cfg.optim.steps
    steps = args.steps if args.steps is not None else 2 * base
    if steps <= base:
        p.error(f"--steps must be more than the profile's {base} steps, got {steps}")
    if args.n_heldout < 1:
        p.error(f"--n-heldout must be >= 1, got {args.n_heldout}")
    unseen = config_mod.profile_section(profile, "notebooks").get("in_trends_budget", {}).get("adain_unseen", ["candy", "the_scream"])
    overrides = longer_overrides(profile_cfg, steps)
    experiments.generator_config(profile, arch="adain", overrides=overrides)   # checked before training
    t0 = time.perf_counter()
    run = experiments.train_generator(profile, arch="adain", overrides=overrides, progress=None)
    trained = time.perf_counter() - t0
    snaps = {step: load_generator(path) for step, path in sorted(run.snapshots().items())}
    ratios = experiments.adain_style_ratios(run, unseen, data.content_paths("test")[: args.n_heldout], snaps)
    res = {"profile": profile, "steps": steps, "profile_steps": base, "bound": BOUND, "n_heldout": args.n_heldout,
           "run": run.path.name, "overrides": overrides, "seconds_training": round(trained, 1), "styles": {}}
    for style, by_step in ratios.items():
        at = sorted(by_step)
        values = [by_step[s] for s in at]
        early = [s for s in at if s <= base]
        res["styles"][style] = {
            "ratio": {str(s): v for s, v in zip(at, values)},
            "at_profile_budget": metrics.budget_trend(early, values[: len(early)], BOUND, holds_below=True),
            "at_steps": metrics.budget_trend(at, values, BOUND, holds_below=True)}
        r = res["styles"][style]
        said = r["at_profile_budget"]["crossing"]
        print(f"{style}: " + ", ".join(f"{s}: {v:.3f}" for s, v in zip(at, values))
              + f" | at {base} steps the trend said " + ("holds" if r["at_profile_budget"]["holds"] else
                                                         f"cross near {said:.0f}" if said else "no crossing")
              + f"; at {steps}: " + ("holds" if r["at_steps"]["holds"] else "does not hold"), flush=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    device = torch.device("cpu")
    info = machine_info(device)
    res["machine"] = info
    out = Path(args.out) / f"adain-trend-{machine_slug(info, device)}.json"
    atomic_write_json(out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
