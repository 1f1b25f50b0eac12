"""``python -m bench.hatch``: what the fine periodic hatch of the residual generator answers to.

Issue 18, part 4. The IN Fig. 4 generator (the profile's residual generator with instance
normalization, one style) is trained once per variant by the project's trainer
(``repro.experiments.train_generator``; runs are cached in ``runs/`` like the figures') and
measured on the profile's held-out photos at its test size:

- ``excess_db``: :func:`repro.metrics.periodic_artifacts`, the outputs' spectral peak at periods
  of 2-4 px over the photos' own (``peak_frequency``: where it lies, cycles/px along y, x);
- ``style`` / ``content``: the held-out style and content losses (a fix must not buy the
  hatch's removal with the stylization);
- ``decoder``: :func:`decoder_peaks`, the layer of the decoder where the pattern appears;
- ``vgg_phase_style``: :func:`vgg_phase`, the style loss with the output shifted 0-3 px
  against VGG's pooling grid.

**What counts as a fix, written before the variants were run:** ``excess_db`` at most 6 dB (the
bound of the figures' hatch rows) with a held-out style loss at most 1.25x the profile default's.

Variants: the profile default; the plain output conv (``model.equalized_output=false``, the
recipe before issue 18's part 1); a total-variation term (``loss.tv_weight=500``: about a third of
the content term for a stylized image); bilinear upsampling; the loss network fed the output
and photo at a random 0-3 px offset per sample (``loss.jitter=4``: the stride grid no longer
aligned with VGG's pooling grid); a fixed blur after each upsampling block's ReLU
(``model.upsample=antialiased``); Zhang's BlurPool in place of the encoder's two stride-2 convs
(``model.downsample=antialiased``: the conv at stride 1, norm, ReLU, blur, every second pixel);
sub-pixel upsampling (``model.upsample=subpixel``: Shi et al. 2016's conv to 4x the channels and
``PixelShuffle``, ICNR-initialised as Aitken et al. 2017, so it starts free of any checkerboard);
the style loss trained without relu1_1 (``loss.style_layers=[relu2_1,relu3_1]``: whether the
2-4 px pattern is how the generator matches the first layer's Gram matrix; measured, as every
variant, with the profile default's three style layers); the generator at full width
(``model.width=1.0``: 32/64/128 channels, whether 16 channels at full resolution are too few to
draw the texture otherwise); the style image at 512 px (``data.style_size=512``: its strokes
twice as large, so the texture to match is coarser than the 2-4 px band); 256 px training crops
(``data.image_size=256``: the papers' crop size, 4x the pixels a step). Every variant trains the
default's steps and seed and is measured by the default's loss.
``--trend STEPS``: the profile default trained for STEPS, its hatch at each snapshot. ``--quick``: the smoke profile, two
variants, a few steps (the tests run it). Results: ``bench/results/hatch-<machine>.json``.
Nothing here asserts a number.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import data, experiments, images, metrics, tasks
from repro.checkpoint import load_generator
from repro.inference import stylize
from repro.atomic import atomic_write_json
from repro.models.residual import ResidualBlock
from repro.runs import git_commit

VARIANTS = {
    "profile default": [],
    "plain output conv": ["model.equalized_output=false"],
    "tv 500": ["loss.tv_weight=500"],
    "bilinear upsampling": ["model.upsample=bilinear"],
    "loss jitter 4": ["loss.jitter=4"],
    "antialiased upsampling": ["model.upsample=antialiased"],
    "antialiased downsampling": ["model.downsample=antialiased"],
    "sub-pixel upsampling (ICNR)": ["model.upsample=subpixel"],
    "style without relu1_1": ["loss.style_layers=[relu2_1,relu3_1]"],
    "full width": ["model.width=1.0"],
    "style image at 512 px": ["data.style_size=512"],
    "256 px crops": ["data.image_size=256"],
}
FIX_DB = 6.0
FIX_STYLE = 1.25


def measure(profile: str, style: str, overrides: list[str], n_heldout: int, default) -> dict:
    """One variant trained (or reused from ``runs/``) and measured (module docstring). Its losses
    are the profile default's (``default``: that run), so a variant that trains on other loss
    terms is judged by the same ones."""
    t0 = time.perf_counter()
    run = experiments.train_generator(profile, arch="residual", norm="instance", style=style,
                                      overrides=overrides, progress=False)
    size = run.config.data.test_size
    heldout = data.content_paths("test")[:n_heldout]
    art = experiments.periodic_artifacts(run, heldout, size)
    model = load_generator(run)
    losses = experiments.heldout_losses(default, heldout, size, model=model)
    return {"overrides": overrides, "run": run.path.name, "excess_db": art["excess_db"],
            "peak_frequency": art["output_peak_frequency"], "style": losses["style"],
            "content": losses["content"], "decoder": decoder_peaks(run, heldout[:6], size),
            "vgg_phase_style": vgg_phase(default, heldout, size, model=model),
            "seconds": round(time.perf_counter() - t0, 1)}


def along_training(profile: str, style: str, steps: int, n_heldout: int, extra: list[str]) -> dict:
    """The profile default trained for ``steps`` (its snapshots at the profile's
    ``train.snapshots`` fractions of them, 1/8, 1/4, 1/2 at cpu, and the end), each snapshot's
    hatch and held-out style loss:
    whether the hatch fades with a longer training (the trend ``in_trends_budget`` extrapolates
    from Fig. 5's 400 steps)."""
    t0 = time.perf_counter()
    overrides = [f"optim.steps={steps}", f"train.eval_every={max(steps // 4, 1)}",
                 f"train.checkpoint_every={max(steps // 8, 1)}", *extra]
    run = experiments.train_generator(profile, arch="residual", norm="instance", style=style,
                                      overrides=overrides, progress=False)
    size = run.config.data.test_size
    heldout = data.content_paths("test")[:n_heldout]
    photos = [images.load_image(p, size=size) for p in heldout]
    rows = {}
    for step, path in sorted(run.snapshots().items()):
        model = load_generator(path)
        art = metrics.periodic_artifacts([stylize(model, x) for x in photos], photos)
        losses = experiments.heldout_losses(run, heldout, size, model=model)
        rows[str(step)] = {"excess_db": art["excess_db"], "style": losses["style"], "content": losses["content"]}
    return {"overrides": overrides, "run": run.path.name, "steps": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def decoder_peaks(run, image_paths, size: int) -> list[dict]:
    """Where the pattern appears: after each layer of the residual generator's decoder (every
    layer after the last residual block), the channel-averaged power spectrum at that map's
    period-2 frequencies (0.5 cycles/px along y, x or the diagonal: a 4 px period at the output
    for the half-resolution maps, 8 px for a sub-pixel conv's quarter-resolution input) over the
    median of its 9 x 9 frequency neighbours, in dB, averaged over the photos."""
    model = load_generator(run).eval().float()
    layers = list(model.net)
    # the decoder: everything after the last residual block
    first = 1 + max(i for i, m in enumerate(layers) if isinstance(m, ResidualBlock))
    seen: dict[int, list[float]] = {}

    def hook(i):
        def record(module, inputs, out):
            t = out[0].float() - out[0].float().mean((1, 2), keepdim=True)
            h, w = t.shape[-2] // 2 * 2, t.shape[-1] // 2 * 2
            power = (torch.fft.fft2(t[:, :h, :w]).abs() ** 2).mean(0).double() + 1e-20
            pad = torch.nn.functional.pad(power[None, None], (4,) * 4, mode="circular")[0, 0]
            local = pad.unfold(0, 9, 1).unfold(1, 9, 1).reshape(h, w, 81).median(-1).values
            db = 10 * torch.log10(power / local)
            seen.setdefault(i, []).append(float(max(db[h // 2, 0], db[0, w // 2], db[h // 2, w // 2])))
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(layers) if i >= first]
    try:
        for p in image_paths:
            model(images.load_image(p, size=size)[None])
    finally:
        for h in handles:
            h.remove()
    return [{"layer": f"{i}:{type(layers[i]).__name__}", "period2_db": round(sum(v) / len(v), 1)}
            for i, v in sorted(seen.items())]


@torch.no_grad()
def vgg_phase(run, image_paths, size: int, model=None) -> list[float]:
    """The held-out style loss of the outputs cropped at offsets 0-3 px (the same crop of photo
    and output, a multiple of 4 px less 4 a side): how much of the generator's gain depends on
    its stride grid falling on VGG's pooling grid as it does in training (offset 0). ``model``:
    this generator measured with ``run``'s loss in place of the run's own."""
    task = tasks.make_task(run.config, torch.device("cpu"), train=False)
    model = (load_generator(run) if model is None else model).eval()
    acc = [0.0] * 4
    for p in image_paths:
        x = images.load_image(p, size=size)
        out = stylize(model, x).float()
        h, w = (x.shape[-2] - 4) // 4 * 4, (x.shape[-1] - 4) // 4 * 4
        for d in range(4):
            terms = task.loss_fn(out[None, :, d:d + h, d:d + w], x[None, :, d:d + h, d:d + w],
                                 style_targets=task.style_targets, weighted=False)
            acc[d] += float(terms["style"]) / len(image_paths)
    return [round(a, 4) for a in acc]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hatch", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, two variants, a few steps (a check that it runs)")
    p.add_argument("--style", default="starry_night", help="the style trained (default starry_night, as IN Fig. 5)")
    p.add_argument("--n-heldout", type=int, default=12, help="held-out photos measured (default 12)")
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), metavar="VARIANT",
                   help=f"some of: {', '.join(repr(v) for v in VARIANTS)}")
    p.add_argument("--trend", type=int, metavar="STEPS",
                   help="instead of the variants: the profile default trained for STEPS, its hatch at each snapshot")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    if args.n_heldout < 1:
        p.error(f"--n-heldout must be >= 1, got {args.n_heldout}")
    n_test = len(data.content_paths("test"))
    if args.n_heldout > n_test:
        p.error(f"--n-heldout must be at most {n_test} (the held-out photos), got {args.n_heldout}")
    if args.trend is not None and args.trend < 8:
        p.error(f"--trend must be at least 8 steps (the profile's snapshots are fractions of them), got {args.trend}")
    if args.trend is not None and args.only:
        p.error("--trend trains the profile default only: leave out --only")
    profile = "smoke" if args.quick else "cpu"
    if args.trend is not None:
        return main_trend(profile, args)
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
    try:   # --only adds to this machine's earlier variants of the same measurement; each variant
        # keeps the date and commit it was measured at, and the "fix" column is recomputed below
        # against whichever default the file holds (so re-measure the default with new code)
        prev = json.loads(out.read_text())
        if all(prev.get(k) == res[k] for k in ("profile", "style", "n_heldout", "machine")):
            res["variants"] = {k: v for k, v in prev.get("variants", {}).items() if k in VARIANTS}
    except (OSError, ValueError):
        pass
    t0 = time.perf_counter()
    default = experiments.train_generator(profile, arch="residual", norm="instance", style=args.style,
                                          overrides=extra, progress=False)
    default_seconds = time.perf_counter() - t0   # its training, if it was not in runs/ yet
    for name in names:
        r = measure(profile, args.style, VARIANTS[name] + extra, args.n_heldout, default)
        if VARIANTS[name] == []:
            r["seconds_training"] = round(default_seconds, 1)   # 0 if it was in runs/ already
        r.update(date=time.strftime("%Y-%m-%d"), git_commit=git_commit())
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


def main_trend(profile: str, args) -> int:
    extra = ["train.eval_every=0", "train.checkpoint_every=0"] if args.quick else []
    experiments.generator_config(profile, arch="residual", norm="instance", style=args.style,
                                 overrides=[f"optim.steps={args.trend}", *extra])  # checked before training
    device = torch.device("cpu")
    info = machine_info(device)
    out = Path(args.out) / f"hatch-trend-{machine_slug(info, device)}.json"
    r = along_training(profile, args.style, args.trend, args.n_heldout, extra)
    for step, row in r["steps"].items():
        print(f"step {step}: hatch {row['excess_db']:+.1f} dB, style {row['style']:.3g}, content {row['content']:.3g}")
    atomic_write_json(out, {"profile": profile, "style": args.style, "n_heldout": args.n_heldout,
                            "machine": info, "trend": r})
    print(f"wrote {out} ({r['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
