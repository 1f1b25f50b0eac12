"""``python -m bench.memory``: the bytes per pixel behind ``repro.budget``'s memory estimates.

Each case runs in a fresh process whose allocator returns every freed block of 128 KiB or more
to the system (``MALLOC_MMAP_THRESHOLD_``), so its resident size follows the live tensors; a
thread samples it every 0.5 ms during one call, after a small warm-up call. The extra resident
bytes over the size just before the call are measured at two image sizes; the slope between them
is the bytes per pixel, the rest the fixed cost. Results go to ``bench/results/memory-<machine>.json``;
``repro/budget.py`` holds the constants taken from them (with a safety margin).

    python -m bench.memory            # all cases, about 3 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench.run import machine_info, machine_slug
from repro.atomic import atomic_write_json
from repro.experiments import MEASURE_CALL

ROOT = Path(__file__).resolve().parents[1]

# name: what the child builds and calls
CASES = {
    "residual": "generator arch=residual width=1.0",
    "residual_w0.5": "generator arch=residual width=0.5",
    "multiscale": "generator arch=multiscale width=1.0",
    "adain_relu3_1": "adain encoder_layer=relu3_1",
    "gatys_lbfgs": "gatys optimizer=lbfgs",
}
SIDES = (512, 1024)

_CHILD = r"""
import sys, torch
torch.set_num_threads(2)
kind, side, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]  # mode: a precision
opts = dict(a.split("=") for a in sys.argv[4:])
x = torch.rand(3, side, side)
if kind == "generator":
    from repro.models import build_generator
    from repro.inference import stylize
    model = build_generator(opts["arch"], width=float(opts["width"])).eval()
    call = lambda img: stylize(model, img, precision=mode)
elif kind == "adain":
    from repro.models import build_generator
    from repro.inference import stylize
    model = build_generator("adain", encoder_layer=opts["encoder_layer"], vgg_weights="random").eval()
    s = torch.rand(3, 256, 256)
    call = lambda img: stylize(model, img, style=s, precision=mode)
else:
    from repro import gatys
    s = torch.rand(3, 256, 256)
    call = lambda img: gatys.stylize(img, s, steps=3, optimizer=opts["optimizer"], network_weights="random")
call(torch.rand(3, 64, 64))  # warm-up: allocator, kernels, weights
"""


def run_child(setup: str, *args: str) -> dict:
    """Run ``setup`` (which defines ``x`` and ``call``) then ``repro.experiments.MEASURE_CALL``
    in a fresh process that returns freed memory to the system; its ``extra_bytes``,
    ``seconds``, ... ."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    out = subprocess.run([sys.executable, "-c", setup + MEASURE_CALL, *args],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"measurement {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(case: str, side: int, mode: str) -> int:
    kind, *opts = CASES[case].split()
    return run_child(_CHILD, kind, str(side), mode, *opts)["extra_bytes"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=list(CASES))
    args = p.parse_args(argv)
    results = {}
    for case in args.only or CASES:
        modes = ["fp32"] if case.startswith("gatys") else ["fp32", "auto"]
        for mode in modes:
            e = {s: measure(case, s, mode) for s in SIDES}
            (s1, s2) = SIDES
            per_px = (e[s2] - e[s1]) / (s2 * s2 - s1 * s1)
            fixed = e[s1] - per_px * s1 * s1
            results[f"{case} {mode}"] = {"extra_bytes": e, "bytes_per_pixel": per_px,
                                         "fixed_bytes": fixed}
            print(f"{case:16s} {mode:5s} {per_px:8.0f} B/px  fixed {fixed / 2**20:7.1f} MiB  "
                  f"({', '.join(f'{s}px {b / 2**20:.0f} MiB' for s, b in e.items())})", flush=True)
    torch.set_num_threads(2)
    info = machine_info(torch.device("cpu"))
    out = ROOT / "bench" / "results" / f"memory-{machine_slug(info, torch.device('cpu'))}.json"
    atomic_write_json(out, {"machine": info, "sides": list(SIDES), "cases": results})
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
