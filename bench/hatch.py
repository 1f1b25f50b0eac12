"""``python -m bench.hatch``: what the fine periodic hatch of the residual generator answers to.

Issue 18, part 4. The IN Fig. 4 generator (the profile's residual generator with instance
normalization, one style) is trained once per variant by the project's trainer
(``repro.experiments.train_generator``; runs are cached in ``runs/`` like the figures') and
measured on the profile's held-out photos at its test size:

- ``excess_db``: :func:`repro.metrics.periodic_artifacts`, the outputs' spectral peak at periods
  of 2-4 px over the photos' own (``peak_frequency``: where it lies, cycles/px along y, x);
- ``style`` / ``content``: the held-out style and content losses (a fix must not buy the
  hatch's removal with the stylization).

**What counts as a fix, written before the variants were run:** ``excess_db`` at most 6 dB (the
bound of the figures' hatch rows) with a held-out style loss at most 1.25x the profile default's.

Variants: the profile default; the plain output conv (``model.equalized_output=false``, the
recipe before issue 18's part 1); a total-variation term (``loss.tv_weight=500``: about a third of
the content term for a stylized image); bilinear upsampling. ``--quick``: the smoke profile, two
variants, a few steps (the tests run it). Results: ``bench/results/hatch-<machine>.json``.
Nothing here asserts a number.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import data, experiments
from repro.atomic import atomic_write_json

VARIANTS = {
    "profile default": [],
    "plain output conv": ["model.equalized_output=false"],
    "tv 500": ["loss.tv_weight=500"],
    "bilinear upsampling": ["model.upsample=bilinear"],
}
FIX_DB = 6.0
FIX_STYLE = 1.25


def measure(profile: str, style: str, overrides: list[str], n_heldout: int) -> dict:
    """One variant trained (or reused from ``runs/``) and measured (module docstring)."""
    t0 = time.perf_counter()
    run = experiments.train_generator(profile, arch="residual", norm="instance", style=style,
                                      overrides=overrides, progress=False)
    size = run.config.data.test_size
    heldout = data.content_paths("test")[:n_heldout]
    art = experiments.periodic_artifacts(run, heldout, size)
    losses = experiments.heldout_losses(run, heldout, size)
    return {"overrides": overrides, "run": run.path.name, "excess_db": art["excess_db"],
            "peak_frequency": art["output_peak_frequency"], "style": losses["style"],
            "content": losses["content"], "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hatch", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, two variants, a few steps (a check that it runs)")
    p.add_argument("--style", default="starry_night", help="the style trained (default starry_night, as IN Fig. 5)")
    p.add_argument("--n-heldout", type=int, default=12, help="held-out photos measured (default 12)")
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), metavar="VARIANT",
                   help=f"some of: {', '.join(repr(v) for v in VARIANTS)}")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    if args.n_heldout < 1:
        p.error(f"--n-heldout must be >= 1, got {args.n_heldout}")
    profile = "smoke" if args.quick else "cpu"
    names = args.only or (list(VARIANTS)[:2] if args.quick else list(VARIANTS))
    extra = ["optim.steps=4", "train.eval_every=0", "train.checkpoint_every=0"] if args.quick else []
    for name in names:   # every variant's config is checked before any is trained
        experiments.generator_config(profile, arch="residual", norm="instance", style=args.style,
                                     overrides=VARIANTS[name] + extra)
    device = torch.device("cpu")
    info = machine_info(device)
    res = {"profile": profile, "style": args.style, "n_heldout": args.n_heldout, "machine": info,
           "fix": {"excess_db_at_most": FIX_DB, "style_at_most_x_default": FIX_STYLE}, "variants": {}}
    out = Path(args.out) / f"hatch-{machine_slug(info, device)}.json"
    for name in names:
        r = measure(profile, args.style, VARIANTS[name] + extra, args.n_heldout)
        res["variants"][name] = r
        print(f"{name}: hatch {r['excess_db']:+.1f} dB at {r['peak_frequency']}, style {r['style']:.3g}, "
              f"content {r['content']:.3g} ({r['seconds']:.0f} s)", flush=True)
        atomic_write_json(out, res)   # what finished stays on disk
    base = res["variants"].get("profile default")
    if base:
        for r in res["variants"].values():
            r["fix"] = bool(r["excess_db"] <= FIX_DB and r["style"] <= FIX_STYLE * base["style"])
        atomic_write_json(out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
