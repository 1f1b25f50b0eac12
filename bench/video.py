"""``python -m bench.video``: video stylization speed, and flicker of instance vs batch norm.

- **Speed**: the ``cpu`` profile's trained residual IN generator (IN Fig. 5's style) on a
  synthetic clip: a pan of 2 px a frame across a real photo (pickup_truck, data/images/hires),
  4:3 frames of 256 and 512 px (shorter side), encoded as H.264 (``repro.video.write_frames``).
  For eager and compiled (``torch.compile``) Stylizers at batch 1 and 4 (default precision:
  bf16 where native, else fp32):
  ``model_fps``: frames per second of the Stylizer alone on the decoded frames in memory (after
  its first call, reported as ``first_call_s``: the compilation, for the compiled path);
  ``end_to_end_fps``: ``repro.video.stylize_video`` on the file, decoding, resizing, stylizing,
  encoding (libx264, CRF 18) and writing included, with the same warmed-up Stylizer
  (``end_to_end_model_s``: the part of it spent in the network).
- **Flicker** (``repro.video``), IN and BN generators of the same architecture and style (the
  IN Fig. 5 pair; BN in eval mode, with its running statistics), plain fp32, frames of 256 px
  from the 12 held-out photos: ``static``, the mean frame-to-frame change of the output where
  the input does not change, on a clip whose still background (the photo) is crossed by a
  moving object (a patch of another photo, 4 px a frame); ``pan``, the output's change along a
  2 px pan once the motion is undone (``pan_input``: the same on the input, 0 when the motion is
  undone exactly). In [0, 1] units of pixel value; lower is steadier.

The generators come from ``repro.experiments.train_generator`` (the figures' run cache, or
trained: a few minutes each at ``cpu``). ``--quick``: the ``smoke`` profile, tiny frames, eager
only (the tests run it). Results: ``bench/results/video-<machine>.json`` (``--out DIR``),
written atomically. Nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.run import RESULTS, machine_info, machine_slug
from repro import config, data, images, video
from repro.atomic import atomic_write_json
from repro.experiments import train_generator
from repro.inference import Stylizer
from repro.runs import git_commit

PAN_STEP, OBJECT_STEP = 2, 4


def _frame_shape(size: int) -> tuple[int, int]:
    w = round(size * 4 / 3)
    return size, w + w % 2


def pan_photo(path, size: int, frames: int) -> torch.Tensor:
    """``path`` resized (at least 1.15 x ``size`` tall) so that a pan of ``frames`` 4:3 frames
    of ``size`` px fits across it."""
    h, w = images.load_image(path).shape[-2:]  # photos are landscape
    span = _frame_shape(size)[1] + PAN_STEP * (frames - 1)
    return images.load_image(path, size=max(round(size * 1.15), -(-span * h // w) + 1))


def speed_clip(size: int, frames: int) -> torch.Tensor:
    """A 2 px-a-frame pan across the hires pickup_truck photo, 4:3 frames of ``size`` px."""
    photo = pan_photo(data.hires_path("pickup_truck"), size, frames)
    return video.pan_clip(photo, _frame_shape(size), frames, PAN_STEP)


def object_clip(background: torch.Tensor, obj: torch.Tensor, frames: int, step: int) -> torch.Tensor:
    """``background`` (3, H, W) still, with ``obj`` (3, h, w) crossing it left to right,
    ``step`` px a frame, vertically centred: a clip whose static pixels are known."""
    H, W = background.shape[-2:]
    h, w = obj.shape[-2:]
    top = (H - h) // 2
    clip = background.expand(frames, -1, -1, -1).clone()
    for t in range(frames):
        left = t * step
        clip[t, :, top:top + h, left:left + w] = obj[:, :, :max(0, min(w, W - left))]
    return clip


def measure_speed(model, size: int, frames: int, batches, compiles, tmp: Path) -> list[dict]:
    clip = speed_clip(size, frames)
    src = video.write_frames(tmp / f"pan{size}.mp4", clip)
    decoded = video.read_frames(src)[0]
    rows = []
    for compile in compiles:
        for batch in batches:
            torch._dynamo.reset()  # every compiled variant compiles afresh, at its own shape
            fast = Stylizer(model, compile=compile)
            t = time.perf_counter()
            fast(decoded[:batch])
            first = time.perf_counter() - t
            runs = []
            for _ in range(2):
                t = time.perf_counter()
                for i in range(0, frames, batch):
                    fast(decoded[i:i + batch])
                runs.append(time.perf_counter() - t)
            res = video.stylize_video(fast, src, tmp / f"out{size}.mp4", batch=batch, progress=False)
            row = {"size": size, "shape": list(decoded.shape[-2:]), "frames": frames,
                   "compile": compile, "batch": batch, "precision": str(fast.dtype or "fp32").removeprefix("torch."),
                   "first_call_s": first, "model_fps": frames / min(runs),
                   "end_to_end_fps": res.frames / res.seconds, "end_to_end_model_s": res.model_seconds,
                   "end_to_end_s": res.seconds}
            rows.append(row)
            print(f"{size:4d} px {'compiled' if compile else 'eager':8s} batch {batch}: model "
                  f"{row['model_fps']:6.2f} fps, end to end {row['end_to_end_fps']:6.2f} fps "
                  f"(first call {first:.1f} s)", flush=True)
    return rows


def measure_flicker(models: dict, size: int, photos: list[Path], frames: int, threshold: float) -> dict:
    shape = _frame_shape(size)
    per = {name: {"static": [], "pan": [], "pan_input": []} for name in models}
    for k, path in enumerate(photos):
        photo = pan_photo(path, size, frames)
        background = images.center_crop(photo, shape)
        other = images.load_image(photos[(k + 1) % len(photos)], size=size // 2)
        obj = images.center_crop(other, (size // 2, size // 2))
        still = object_clip(background, obj, frames, OBJECT_STEP)
        for name, model in models.items():
            exact = Stylizer(model, precision="fp32")  # the models' own flicker, not bf16's
            out = torch.cat([exact(still[i:i + 4]) for i in range(0, frames, 4)])
            per[name]["static"].append(video.flicker(still, out, threshold))
            pan = video.pan_flicker(exact, photo, shape, frames, PAN_STEP)
            per[name]["pan"].append(pan["output"])
            per[name]["pan_input"].append(pan["input"])
    res = {"size": size, "shape": list(shape), "frames": frames, "threshold": threshold,
           "pan_step": PAN_STEP, "object_step": OBJECT_STEP, "photos": [p.stem for p in photos]}
    for name, d in per.items():
        res[name] = {k: statistics.mean(v) for k, v in d.items()} | {"per_photo": d}
        print(f"flicker {name:8s}: static {res[name]['static']:.4f}, pan {res[name]['pan']:.4f} "
              f"(input {res[name]['pan_input']:.1e})", flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke profile, tiny frames, eager only: checks that everything runs")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    p.add_argument("--frames", type=int, help="frames per speed clip (default 24; --quick 8)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = "smoke" if args.quick else "cpu"
    style = (config.profile_section(profile, "notebooks").get("in_fig5_bn_vs_in", {})
             .get("style", "starry_night"))
    runs = {norm: train_generator(profile, arch="residual", norm=norm, style=style, progress=False)
            for norm in ("instance", "batch")}
    models = {norm: run.load_model() for norm, run in runs.items()}
    sizes, frames = ((32, 48), args.frames or 8) if args.quick else ((256, 512), args.frames or 24)
    compiles = (False,) if args.quick else (False, True)
    device = torch.device("cpu")
    info = machine_info(device)
    res = {"machine": info, "git_commit": git_commit(), "quick": args.quick, "profile": profile,
           "style": style, "runs": {k: str(r.path) for k, r in runs.items()}, "speed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            res["speed"] += measure_speed(models["instance"], size, frames, (1, 4), compiles, Path(tmp))
    photos = data.content_paths("test")[:2 if args.quick else None]
    res["flicker"] = measure_flicker(models, sizes[0], photos, 6 if args.quick else 8, 2 / 255)
    out = Path(args.out) / f"video-{machine_slug(info, device)}.json"
    atomic_write_json(out, res)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
