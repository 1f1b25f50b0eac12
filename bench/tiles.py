"""``python -m bench.tiles [RUN]``: tiled stylization (``--tile``) against the whole image.

- **Agreement**: the four hi-res photos of data/ (884x1181 to 1620x1080, which fit in memory
  whole) stylized whole and in 512 px tiles, plain fp32, by RUN (default: the ``cpu`` profile's
  residual starry_night generator, trained if absent): PSNR of the tiled result against the
  whole one, with the whole image's statistics (``repro.tiling``, the default) and, for
  comparison, with each tile normalized by its own statistics.
- **A 4000x3000 photo** (pickup_truck, upscaled bicubically and centre-cropped): seconds and
  the peak resident memory the call adds (measured as in ``bench/memory.py``), whole and in
  1024 px tiles, on the default fast path.

Results: ``bench/results/tiles-<machine>.json``.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.memory import ROOT, run_child
from bench.run import machine_info, machine_slug
from repro import images, tiling
from repro.atomic import atomic_write_json
from repro.checkpoint import load_generator
from repro.config import load_config
from repro.inference import stylize
from repro.paths import images_dir
from repro.train import train

_CHILD = r"""
import sys, torch
from repro.images import load_image
from repro.checkpoint import load_generator
from repro.inference import stylize
torch.set_num_threads(2)
model = load_generator(sys.argv[1])
x = load_image(sys.argv[2])
tile = int(sys.argv[3]) or None
call = lambda img: stylize(model, img, tile=tile)
"""


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(max(float(((a - b) ** 2).mean()), 1e-20))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tiles", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="run directory or checkpoint (default: the cpu profile's)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    run = args.run or str(train(load_config("cpu"), progress=False))
    model = load_generator(run)
    res = {"run": str(run), "agreement": {}, "large": {}}

    for path in sorted((images_dir() / "hires").glob("*.jpg")):
        x = images.load_image(path)
        t = time.perf_counter()
        whole = stylize(model, x, precision="fp32")
        row = {"size": list(x.shape[-2:]), "whole_s": time.perf_counter() - t}
        for name in ("whole", "tile"):
            t = time.perf_counter()
            tiled = tiling.generator_tiled(model, x[None], tile=512, statistics=name)[0]
            row[name] = {"psnr": psnr(whole, tiled.clamp(0, 1)), "seconds": time.perf_counter() - t}
        res["agreement"][path.stem] = row
        print(f"{path.stem:30s} {x.shape[-1]}x{x.shape[-2]}  whole-image statistics "
              f"{row['whole']['psnr']:.1f} dB ({row['whole']['seconds']:.1f} s), each tile's own "
              f"{row['tile']['psnr']:.1f} dB; untiled {row['whole_s']:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        big = images.load_image(images_dir() / "hires" / "pickup_truck.jpg", size=3000)
        big = images.center_crop(big.clamp(0, 1), (3000, 4000))
        images.save_image(big, Path(tmp) / "big.png")
        for name, tile in (("untiled", 0), ("tile 1024", 1024), ("tile 512", 512)):
            m = run_child(_CHILD, str(run), str(Path(tmp) / "big.png"), str(tile))
            res["large"][name] = m
            print(f"4000x3000 {name:20s} {m['seconds']:7.1f} s  {m['extra_bytes'] / 2**20:7.0f} MiB",
                  flush=True)

    info = machine_info(torch.device("cpu"))
    res["machine"] = info
    out = ROOT / "bench" / "results" / f"tiles-{machine_slug(info, torch.device('cpu'))}.json"
    atomic_write_json(out, res)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
