"""``python -m bench.fig3_crops``: IN Fig. 3's border claims with larger training crops.

At the ``cpu`` profile Fig. 3's "a better padding (replicate) does not cure the border
artifacts" and "instance normalization removes them" do not hold, and ``in_trends_budget``
puts zero padding + IN's crossing far beyond the profile's 800 steps. One suspect is the crop:
the multi-scale generator's coarsest branch sees a 4x4 px version of a 128 px crop, so every
3x3 conv there reaches the padding, whatever the normalization; the paper trained at 256 px.
This trains the figure's three runs (its ``train_overrides``: 800 steps on 47 photos) at other
crop sizes (``--crops``, default 256: 4x the pixels a step) and measures the figure's statistic
(:func:`repro.experiments.border_excess`: the outputs' border score over the photos' own, 12
held-out photos at the test size) at each of the runs' snapshots (1/8, 1/4, 1/2 and all of the
steps), with the figure's thresholds and :func:`repro.metrics.budget_trend` along them.

**Thresholds (the figure's, fixed before these runs):** zero + BN above 0.5 (frames appear),
replicate + BN above 0.5 ("not cured by a better padding"), zero + IN below 0.25 ("gone with IN").
``--crops 128 256`` adds the figure's own crop beside it (the figure's runs, cached in ``runs/``).
``--quick``: the smoke profile, a few steps (the tests run it). Results:
``bench/results/fig3-crops-<machine>.json``. Nothing here asserts a number.
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

VARIANTS = {"zero padding + BN": ("zero", "batch"), "replicate padding + BN": ("replicate", "batch"),
            "zero padding + IN": ("zero", "instance")}
# (bound, holds_below) of each variant's claim: in_fig3_padding's thresholds
CLAIMS = {"zero padding + BN": (0.5, False), "replicate padding + BN": (0.5, False),
          "zero padding + IN": (0.25, True)}
BAND = 8   # in_fig3_padding's band (px)


def figure_overrides(profile: str) -> list[str]:
    """in_fig3_padding's ``train_overrides`` at ``profile``."""
    return list(config_mod.profile_section(profile, "notebooks").get("in_fig3_padding", {}).get("train_overrides", []))


def measure(profile: str, style: str, crop: int, variant: str, n_heldout: int, extra: list[str]) -> dict:
    """One of Fig. 3's runs at ``crop`` px, trained (or reused from ``runs/``) and measured at
    every snapshot (module docstring)."""
    padding, norm = VARIANTS[variant]
    overrides = [*figure_overrides(profile), f"data.image_size={crop}", *extra]
    t0 = time.perf_counter()
    run = experiments.train_generator(profile, arch="multiscale", norm=norm, padding=padding, style=style,
                                      overrides=overrides, progress=False)
    trained = time.perf_counter() - t0
    size = run.config.data.test_size
    heldout = data.content_paths("test")[:n_heldout]
    snaps = {step: load_generator(path) for step, path in sorted(run.snapshots().items())}
    excess = experiments.border_excess(heldout, size, BAND, snaps)
    steps = sorted(excess)
    bound, below = CLAIMS[variant]
    return {"overrides": overrides, "run": run.path.name, "border_excess": {str(s): excess[s] for s in steps},
            "trend": metrics.budget_trend(steps, [excess[s] for s in steps], bound, holds_below=below),
            "hatch_db": experiments.periodic_artifacts(run, heldout, size)["excess_db"],
            "seconds_training": round(trained, 1), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fig3_crops", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, a few steps (a check that it runs)")
    p.add_argument("--crops", type=int, nargs="+", default=None,
                   help="training crop sizes in px (default 256; the cpu figure's is 128)")
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), metavar="VARIANT",
                   help=f"some of: {', '.join(repr(v) for v in VARIANTS)}")
    p.add_argument("--style", default="starry_night", help="the style trained (default starry_night, as the figure)")
    p.add_argument("--n-heldout", type=int, default=12, help="held-out photos measured (default 12)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    profile = "smoke" if args.quick else "cpu"
    crops = args.crops or ([48] if args.quick else [256])
    extra = ["optim.steps=8", "train.eval_every=0", "train.checkpoint_every=0"] if args.quick else []
    if args.n_heldout < 1:
        p.error(f"--n-heldout must be >= 1, got {args.n_heldout}")
    n_test = len(data.content_paths("test"))
    if args.n_heldout > n_test:
        p.error(f"--n-heldout must be at most {n_test} (the held-out photos), got {args.n_heldout}")
    names = args.only or list(VARIANTS)
    for crop in crops:   # every run's config is checked before any is trained
        for name in names:
            padding, norm = VARIANTS[name]
            try:   # a crop the photos cannot give (above data.content_size, below 1) is refused here
                experiments.generator_config(profile, arch="multiscale", norm=norm, padding=padding,
                                             style=args.style, overrides=[*figure_overrides(profile),
                                                                          f"data.image_size={crop}", *extra])
            except ValueError as e:
                p.error(f"--crops {crop}: {e}")
    device = torch.device("cpu")
    info = machine_info(device)
    res = {"profile": profile, "style": args.style, "n_heldout": args.n_heldout, "band": BAND, "machine": info,
           "claims": {k: {"bound": b, "holds_below": below} for k, (b, below) in CLAIMS.items()}, "crops": {}}
    out = Path(args.out) / f"fig3-crops-{machine_slug(info, device)}.json"
    for crop in crops:
        res["crops"][str(crop)] = {}
        for name in names:
            r = measure(profile, args.style, crop, name, args.n_heldout, extra)
            res["crops"][str(crop)][name] = r
            t = r["trend"]
            print(f"{crop} px, {name}: border excess " + ", ".join(f"{s}: {v:.2f}" for s, v in r["border_excess"].items())
                  + f" ({t['per_doubling']:+.2f} per doubling): " + ("holds" if t["holds"] else "does not hold")
                  + (f", would cross near {t['crossing']:.0f}" if t.get("crossing") else "")
                  + f"; hatch {r['hatch_db']:+.1f} dB ({r['seconds']:.0f} s)", flush=True)
            atomic_write_json(out, res)   # what finished stays on disk
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
