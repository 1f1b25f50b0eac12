"""``python -m bench.adain_reconstruction``: what limits AdaIN's reconstruction at alpha = 0.

At alpha = 0 the decoder's input is the photo's own encoder features f(c), so it should give the
photo back (AdaIN eq. 14). This study separates the target from the training:

- **target**: f(c) inverted by gradient descent on the image (Adam from mid-grey), the best a
  decoder could do against this content target;
- **decoder, content loss only**: the AdaIN decoder trained from scratch to invert f(c) of the
  training crops, nothing else; once with a zero-padded loss network (the trainer before issue
  17's fix) and once with the profile's (``loss.vgg_padding``: the encoder's reflection);
- **decoder, content + style**: the same, plus the profile's mean/std style term at its style
  weight, measured against the photo's own statistics (a target consistent with the content's).

Each is scored on held-out photos at the test size: PSNR against the photo and each channel's
mean shift. Profile ``cpu`` (the encoder layer, crops, learning rate and style weight of its
AdaIN run); ``--quick``: the smoke profile, a few steps (the tests run it). Results:
``bench/results/adain-reconstruction-<machine>.json``. Nothing here asserts a number.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import data, experiments, images, tasks
from repro.atomic import atomic_write_json
from repro.models import AdaINNet


def _score(make, photos) -> dict:
    """PSNR and mean RGB shift of ``make(x)`` against each photo ``x``."""
    psnr, shift = [], []
    with torch.no_grad():
        for x in photos:
            y = make(x[None])[0].clamp(0, 1)
            psnr.append(-10 * math.log10(float(((y - x) ** 2).mean())))
            shift.append((y - x).mean((1, 2)))
    return {"psnr_db": sum(psnr) / len(psnr), "mean_rgb_shift": torch.stack(shift).mean(0).tolist()}


def invert(net: AdaINNet, x: torch.Tensor, steps: int, lr: float = 0.02) -> torch.Tensor:
    """f(x) inverted by Adam on the image from mid-grey (the loss relative to |f(x)|^2)."""
    with torch.enable_grad():   # scored under no_grad
        target = net.encode(x).detach()
        y = torch.full_like(x, 0.5).requires_grad_(True)
        opt = torch.optim.Adam([y], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            (((net.encode(y) - target) ** 2).mean() / (target ** 2).mean()).backward()
            opt.step()
    return y.detach()


def train_decoder(cfg, steps: int, style_weight: float, seed: int = 0, *,
                  padding: str | None = None) -> AdaINNet:
    """The AdaIN decoder trained to invert f(c) of the profile's training crops; with
    ``style_weight`` > 0 the profile's style term joins, against each crop's own statistics.
    The loss network is the trainer's (``tasks.build_loss``, ``loss.vgg_padding``), or with
    ``padding`` the same network with that border."""
    torch.manual_seed(seed)
    net = AdaINNet(cfg.model.encoder_layer, vgg_weights=cfg.model.encoder_weights)
    if padding is not None:
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, vgg_padding=padding))
    loss = tasks.build_loss(cfg)
    photos = tasks.training_photos(cfg)
    opt = torch.optim.Adam(net.decoder.parameters(), lr=cfg.optim.lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = photos.sample(cfg.optim.batch_size, g)
        with torch.no_grad():
            fc = net.encode(x)
        terms = loss(net.decoder(fc), content_feats={cfg.model.encoder_layer: fc}, style=x, weighted=False)
        total = terms["content"] + style_weight * terms["style"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    return net


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.adain_reconstruction", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke profile, a few steps (a check that it runs)")
    p.add_argument("--steps", type=int, help="decoder training steps (default 150; --quick 2)")
    p.add_argument("--invert-steps", type=int, help="image optimization steps (default 300; --quick 2)")
    p.add_argument("--photos", type=int, help="held-out photos scored (default 6; --quick 1)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    profile = "smoke" if args.quick else "cpu"
    steps = args.steps if args.steps is not None else (2 if args.quick else 150)
    inv_steps = args.invert_steps if args.invert_steps is not None else (2 if args.quick else 300)
    n = args.photos if args.photos is not None else (1 if args.quick else 6)
    for name, v in (("--steps", steps), ("--invert-steps", inv_steps), ("--photos", n)):
        if v < 1:
            p.error(f"{name} must be >= 1, got {v}")
    cfg = experiments.generator_config(profile, arch="adain")
    net = AdaINNet(cfg.model.encoder_layer, vgg_weights=cfg.model.encoder_weights)
    d = net.down   # whole encoder cells, so f(x) and the decoder's output line up
    photos = [images.load_image(path, size=cfg.data.test_size) for path in data.content_paths("test")[:n]]
    photos = [x[..., : x.shape[-2] // d * d, : x.shape[-1] // d * d] for x in photos]
    sw = cfg.loss.style_weight
    res = {"profile": profile, "encoder_layer": cfg.model.encoder_layer, "steps": steps,
           "invert_steps": inv_steps, "photos": n, "style_weight": sw, "lr": cfg.optim.lr}
    t0 = time.perf_counter()
    res["target: image optimization"] = _score(lambda x: invert(net, x, inv_steps), photos)
    pad = cfg.loss.vgg_padding
    for label, w, padding in (("decoder: content loss only, zero-padded loss network", 0.0, "zero"),
                              (f"decoder: content loss only ({pad} padding, the trainer's)", 0.0, None),
                              (f"decoder: content + style x{sw:g} ({pad} padding)", sw, None)):
        dec = train_decoder(cfg, steps, w, padding=padding)
        res[label] = _score(lambda x, dec=dec: dec.decoder(dec.encode(x)), photos)
        print(f"{label}: {res[label]['psnr_db']:.2f} dB", flush=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"target (image optimization, {inv_steps} steps): {res['target: image optimization']['psnr_db']:.2f} dB")
    device = torch.device("cpu")
    info = machine_info(device)
    res["machine"] = info
    out = Path(args.out) / f"adain-reconstruction-{machine_slug(info, device)}.json"
    atomic_write_json(out, res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
