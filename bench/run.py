"""``make bench`` (``python -m bench``): how fast ``repro`` stylizes and trains, next to the
plain fp32 reference networks of ``bench/reference.py``, on this machine.

Every case runs both ways in the same invocation:

- **inference**: the residual and multi-scale IN generators (the ``cpu`` profile's trained
  starry_night models, and the residual network at full width with its initial weights, for
  speed only) at 256, 512 and 1080 px (shorter side of a real photo). ``reference``: the plain
  network, eager fp32. ``ours (one-shot)``: ``repro.stylize`` (eager, bf16 where native).
  ``ours``: ``repro.Stylizer`` (bf16 where native + ``torch.compile``), timed after its warm-up
  call, which is reported separately. ``onnxruntime``: the network exported by ``repro.export``
  (once per case) in an onnxruntime session, fp32, on its CUDA provider on CUDA where
  onnxruntime has one, else on the CPU. Each variant runs in its own process so its memory is its
  own: latency is the median of the timed calls, memory the process's peak resident size above
  its size before the first call (on CUDA: ``max_memory_allocated``).
  GFLOP/s counts convolutions only; the peak is this machine's measured dense matmul rate for
  the precision used. PSNR is against the reference's output, on the same photo (and, for the
  trained models, the minimum over the 12 held-out photos at 512 px).
- **training**: one step (generator forward, loss network on output and content, backward,
  Adam) at the ``cpu`` and ``paper`` profiles' sizes, as the trainer runs it, against the plain
  step of ``reference.training_step``; images/s. The ``paper`` loss network (VGG-19 to relu4_2)
  has random weights here: the local weights stop at relu3_1, and speed does not depend on them.
- **gatys**: 200 L-BFGS steps at 256 and 512 px, ``repro.gatys`` vs ``reference.gatys``.

Results go to ``bench/results/<machine>.json`` (written atomically) and the table in the
README. Nothing here asserts a speed: a slow machine gets numbers, not a failure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

from bench import reference
from bench.reference import conv_flops, reference_for
from repro import config, data, gatys, images, precision, runs, tasks
from repro.atomic import replace_between
from repro.budget import PeakRSS
from repro.checkpoint import load_generator
from repro.experiments import train_generator
from repro.export import export_onnx
from repro.inference import Stylizer, stylize
from repro.losses import PerceptualLoss
from repro.models import build_generator
from repro.precision import fast_dtype
from repro.runs import git_commit
from repro.train import resolve_precision, training_step

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
INFERENCE_SIZES = (256, 512, 1080)
# what each inference case compares with the reference, each in its own process
COMPARED = ("ours (one-shot)", "ours", "onnxruntime")
TRAIN_CASES = {
    # name: profile, generator, crop size, batch, loss layers, loss weights
    "cpu residual": dict(arch="residual", width=0.5, size=128, batch=4, weights="auto",
                         content=["relu2_2"], style=["relu1_1", "relu2_1", "relu3_1"], sw=10.0),
    "cpu multiscale": dict(arch="multiscale", width=1.0, size=128, batch=4, weights="auto",
                           content=["relu2_2"], style=["relu1_1", "relu2_1", "relu3_1"], sw=10.0),
    "paper residual": dict(arch="residual", width=1.0, size=256, batch=4, weights="random",
                           content=["relu4_2"], style=["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
                           sw=30.0),
}


# ---------------------------------------------------------------------------------------------
# The machine


def machine_info(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "native_bf16": precision.cpu_has_native_bf16()}
    info["cpu"] = precision.cpu_model()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_slug(info: dict, device: torch.device) -> str:
    """The results file's name: the GPU, or the CPU model and threads, plus "bf16" for a CPU with
    native bf16 (the same model name covers CPUs with and without it, and their numbers differ)."""
    name = info.get("gpu") if device.type == "cuda" else (
        f"{info['cpu']} {info['threads']}t" + (" bf16" if info.get("native_bf16") else ""))
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Dense n x n matmul rate in GFLOP/s (median of ``reps``): the ceiling convolutions approach."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for _ in range(reps + 1):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times[1:]) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, reps: int, device: torch.device) -> tuple[float, float, list[float]]:
    """(first call's seconds, median of ``reps`` further calls, all of them)."""
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), times


# ---------------------------------------------------------------------------------------------
# Inference: one variant of one case per process


def _inference_model(spec: dict):
    if spec["run"]:
        return load_generator(spec["run"])
    torch.manual_seed(0)
    return build_generator("residual", width=spec["width"]).eval()


def _child_inference(spec: dict) -> dict:
    """Run in a fresh process: time one variant and save its output for the PSNR."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    model = _inference_model(spec).to(device)
    x = images.load_image(spec["image"], size=spec["size"])[None].to(device)
    variant = spec["variant"]
    if variant == "reference":
        net = reference_for(model).to(device)

        @torch.inference_mode()
        def fn():
            return net(x)
        dtype = None
    elif variant == "ours (one-shot)":
        def fn():
            return stylize(model, x)
        dtype = fast_dtype(device)
    elif variant == "onnxruntime":
        fn, provider = _onnxruntime_fn(spec["onnx"], x, device, spec["threads"])
        dtype = None
    else:
        st = Stylizer(model)

        def fn():
            return st(x)
        dtype = st.dtype
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRSS(interval=0.001) as mem:
        first, median, times = _timed(fn, spec["reps"], device)
    y = fn().float().clamp(0, 1).cpu()
    torch.save(y, spec["out"])
    # shapes only: the meta device runs no arithmetic
    flops = conv_flops(reference_for(model).to("meta"), x.to("meta"))
    extra = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
             else mem.peak - mem.start)
    res = {"first_s": first, "median_s": median, "times_s": times, "dtype": str(dtype or "fp32"),
           "peak_extra_mib": extra / 2 ** 20, "gflop": flops / 1e9,
           "shape": list(x.shape)}
    if variant == "onnxruntime":
        res["provider"] = provider
        if device.type == "cuda":  # torch's allocator does not see onnxruntime's memory
            res["peak_extra_mib"] = None
    return res


def _onnxruntime_fn(onnx_path: str, x: torch.Tensor, device: torch.device, threads: int):
    """The exported model (``repro.export``) in an onnxruntime session, fp32, on the CUDA
    provider for a CUDA device when onnxruntime has it, else on the CPU; and the provider."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    cuda = device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    session = onnxruntime.InferenceSession(onnx_path, options, providers=[provider])
    feed = {"image": x.cpu().numpy()}  # numpy in and out: the copies are part of its latency

    def fn():
        return torch.from_numpy(session.run(["stylized"], feed)[0])
    return fn, provider


def _run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.run", "--child", json.dumps(spec)],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec['case']} {spec['variant']}):\n"
                           f"{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def bench_inference(cases: list[dict], sizes, image, reps: int, threads: int, device,
                    psnr_photos) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            # exported once per case (seconds), here: the children only load the file
            onnx_path = export_onnx(_inference_model(case), Path(tmp) / "model.onnx")
            for size in sizes:
                row = {"case": case["name"], "size": size, "trained": bool(case["run"])}
                outs = {}
                for variant in ("reference", *COMPARED):
                    spec = {**case, "case": case["name"], "variant": variant, "size": size,
                            "image": str(image), "reps": reps if size < 1000 else max(2, reps // 2),
                            "threads": threads, "device": str(device), "onnx": str(onnx_path),
                            "out": str(Path(tmp) / f"{variant}.pt")}
                    row[variant] = _run_child(spec)
                    outs[variant] = torch.load(spec["out"])
                    print(f"  inference {case['name']} {size}px {variant}: "
                          f"{row[variant]['median_s'] * 1e3:.1f} ms", flush=True)
                for variant in COMPARED:
                    row[variant]["psnr_db"] = psnr(outs[variant], outs["reference"])
                    row[variant]["speedup"] = row["reference"]["median_s"] / row[variant]["median_s"]
                rows.append(row)
            if case["run"] and psnr_photos:
                # the fast path's accuracy over every held-out photo, at 512 px
                model = _inference_model(case)
                ref = reference_for(model).to(device)
                fast = Stylizer(model, device=device)
                values = []
                with torch.inference_mode():
                    for p in psnr_photos:
                        # 512x512 centre crops: one shape, so one compilation (a new size
                        # recompiles; the multi-scale network's dynamic-shape recompiles took minutes)
                        x = images.center_crop(images.load_image(p, size=512), 512)[None].to(device)
                        values.append(psnr(fast(x).cpu(), ref(x).clamp(0, 1).cpu()))
                rows.append({"case": case["name"], "psnr_heldout_512": {
                    "photos": len(values), "min_db": min(values), "median_db": statistics.median(values)}})
    return rows


# ---------------------------------------------------------------------------------------------
# Training and Gatys, in this process


def bench_training(names, reps: int, device) -> list[dict]:
    rows = []
    for name in names:
        c = TRAIN_CASES[name]
        torch.manual_seed(0)
        gen = build_generator(c["arch"], width=c["width"]).to(device)
        cfg = config.load_config("cpu", [
            f"model.arch={c['arch']}", f"model.width={c['width']}", f"loss.vgg_weights={c['weights']}",
            f"loss.content_layers=[{','.join(c['content'])}]", f"loss.style_layers=[{','.join(c['style'])}]",
            f"loss.style_weight={c['sw']}"])
        task = tasks.SingleStyle(cfg, device, train=False)  # the trainer's task, starry_night's targets
        net = task.loss_fn.loss_network
        style = tasks.style_images(cfg).to(device)
        x = torch.rand(c["batch"], 3, c["size"], c["size"], device=device)
        opt = torch.optim.Adam(gen.parameters(), 1e-3)
        amp = resolve_precision("auto", device)

        def ours():  # the trainer's own step
            training_step(gen, task, opt, {"x": x}, amp)

        ref_gen = reference.reference_for(gen).to(device).train()
        ref_gen.requires_grad_(True)
        vgg = reference.PlainVGG.from_repro(net).to(device)
        ref_opt = torch.optim.Adam(ref_gen.parameters(), 1e-3)
        with torch.no_grad():
            grams = {l: reference.gram(f) for l, f in vgg(style).items() if l in c["style"]}

        def ref():
            reference.training_step(ref_gen, vgg, ref_opt, x, grams, c["content"], c["style"], 1.0,
                                    c["sw"])

        row = {"case": name, "batch": c["batch"], "size": c["size"],
               "precision": precision.name(amp)}
        for variant, fn in (("reference", ref), ("ours", ours)):
            fn()  # warm-up: allocator, oneDNN primitives
            first, median, times = _timed(fn, reps, device)
            row[variant] = {"median_s": median, "times_s": times,
                            "images_per_s": c["batch"] / median}
            print(f"  training {name} {variant}: {median:.3f} s/step", flush=True)
        row["speedup"] = row["reference"]["median_s"] / row["ours"]["median_s"]
        rows.append(row)
    return rows


def bench_gatys(sizes, steps: int, device) -> list[dict]:
    rows = []
    for size in sizes:
        content = images.load_image(data.content_path("tubingen"), size=size)
        style = images.load_image(data.style_path("starry_night"), size=size)
        loss = PerceptualLoss(["relu3_1"], ["relu1_1", "relu2_1", "relu3_1"], style_weight=1e3).to(device)
        result = gatys.stylize(content, style, steps=steps, loss=loss, device=device)
        vgg = reference.PlainVGG.from_repro(loss.loss_network).to(device)
        t = time.perf_counter()
        ref_img = reference.gatys(vgg, content[None].to(device), style[None].to(device), steps,
                                  ["relu3_1"], ["relu1_1", "relu2_1", "relu3_1"], 1.0, 1e3)
        _sync(device)
        ref_s = time.perf_counter() - t
        rows.append({"size": size, "steps": steps, "shape": list(content.shape),
                     "reference": {"seconds": ref_s}, "ours": {"seconds": result.seconds},
                     "speedup": ref_s / result.seconds,
                     "psnr_db": psnr(result.image, ref_img[0].cpu())})
        print(f"  gatys {size}px: reference {ref_s:.1f} s, ours {result.seconds:.1f} s", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def table(res: dict) -> str:
    """The README's markdown table of one results file."""
    m = res["machine"]
    lines = [f"Machine: {m.get('gpu') or m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
             f"measured matmul peak {res['peak_gflops']['fp32']:.0f} GFLOP/s fp32, "
             f"{res['peak_gflops']['bf16']:.0f} GFLOP/s bf16. `make bench`, {res['date']}"
             + "".join(f"; {section} kept from {k.get('date')} ({k.get('git_commit')})"
                       for section, k in res.get("kept", {}).items()) + ".",
             "",
             "| inference | px | reference fp32 | ours, one-shot | ours, Stylizer (compiled) | speed-up | "
             "GFLOP/s (of peak) | PSNR vs fp32 | peak memory ref / ours | onnxruntime fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["inference"]:
        if "size" not in r:
            continue
        ref, one, ours = r["reference"], r["ours (one-shot)"], r["ours"]
        peak = res["peak_gflops"]["bf16" if ours["dtype"] == "torch.bfloat16" else "fp32"]
        rate = ours["gflop"] / ours["median_s"]
        lines.append(
            f"| {r['case']} | {ours['shape'][2]}x{ours['shape'][3]} | {ref['median_s'] * 1e3:.0f} ms | "
            f"{one['median_s'] * 1e3:.0f} ms | {ours['median_s'] * 1e3:.0f} ms "
            f"(first call {ours['first_s']:.1f} s) | {ours['speedup']:.1f}x | {rate:.0f} ({rate / peak:.0%}) | "
            + (f"{ours['psnr_db']:.1f} dB" if r["trained"] else "untrained") +
            f" | {ref['peak_extra_mib']:.0f} / {ours['peak_extra_mib']:.0f} MiB | {_ort_cell(r, 'gpu' in m)} |")
    held = [r for r in res["inference"] if "psnr_heldout_512" in r]
    if held:
        lines += ["", "PSNR of the compiled fast path against fp32 over the held-out photos (512x512 centre crops): "
                  + "; ".join(f"{r['case']} min {r['psnr_heldout_512']['min_db']:.1f} dB, median "
                              f"{r['psnr_heldout_512']['median_db']:.1f} dB "
                              f"({r['psnr_heldout_512']['photos']} photos)" for r in held) + "."]
    if res.get("training"):
        lines += ["", "| training step | batch x px | precision | reference | ours | speed-up |",
                  "|---|---|---|---|---|---|"]
        for r in res["training"]:
            lines.append(f"| {r['case']} | {r['batch']} x {r['size']} | {r['precision']} | "
                         f"{r['reference']['images_per_s']:.1f} img/s | {r['ours']['images_per_s']:.1f} img/s | "
                         f"{r['speedup']:.2f}x |")
    if res.get("gatys"):
        lines += ["", "| Gatys et al., L-BFGS | px | reference | ours | speed-up |", "|---|---|---|---|---|"]
        for r in res["gatys"]:
            lines.append(f"| {r['steps']} steps | {r['shape'][1]}x{r['shape'][2]} | {r['reference']['seconds']:.1f} s | "
                         f"{r['ours']['seconds']:.1f} s | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def _ort_cell(r: dict, gpu: bool) -> str:
    ort = r.get("onnxruntime")  # results written before the variant existed have none
    if ort is None:
        return "-"
    cell = f"{ort['median_s'] * 1e3:.0f} ms" + (f", {ort['psnr_db']:.1f} dB" if r["trained"] else "")
    # on a GPU machine, say where onnxruntime ran (its CUDA provider, or the CPU without one)
    return f"{cell} ({ort['provider'].removesuffix('ExecutionProvider')})" if gpu else cell


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(res: dict, readme: Path) -> None:
    replace_between(readme, START, END, "\n" + table(res) + "\n")


SECTIONS = ("inference", "training", "gatys")


def _keep_sections(res: dict, out: Path) -> None:
    """``--only`` re-runs some sections: the others are kept from ``out`` (same machine, not a
    quick run), each with the date and commit it was measured at under ``kept``."""
    try:
        previous = json.loads(out.read_text())
    except (OSError, ValueError):
        return
    if previous.get("quick") or res["quick"] or previous.get("machine") != res["machine"]:
        return
    for section in SECTIONS:
        if section not in res and section in previous:
            res[section] = previous[section]
            res.setdefault("kept", {})[section] = previous.get("kept", {}).get(
                section, {"date": previous.get("date"), "git_commit": previous.get("git_commit")})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and few repeats: checks that every case runs (tests use it)")
    ap.add_argument("--device", default="auto", help="cpu, cuda (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS,
                    help="sections to run; the others are kept from the results file, with the "
                    "date and commit they were measured at")
    ap.add_argument("--out", type=Path, help="results file (default bench/results/<machine>.json)")
    ap.add_argument("--readme", default=str(ROOT / "README.md"),
                    help="README whose benchmark table to refresh ('' for none; --quick never "
                    "touches the repository's)")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child_inference(json.loads(args.child))))
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    info = machine_info(device)
    quick = args.quick
    res = {"machine": info, "date": time.strftime("%Y-%m-%d"), "quick": quick,
           "git_commit": git_commit(),
           "peak_gflops": {"fp32": matmul_peak(torch.float32, device, 512 if quick else 2048),
                           "bf16": matmul_peak(torch.bfloat16, device, 512 if quick else 2048)}}
    print(f"machine: {info}\nmatmul peak: {res['peak_gflops']}", flush=True)
    if "inference" in args.only:
        if quick:
            cases = [{"name": "residual (untrained)", "run": None, "width": 0.25}]
        else:
            cases = [{"name": "residual, cpu (starry_night)", "width": 0.5,
                      "run": str(train_generator("cpu", arch="residual", norm="instance", style="starry_night"))},
                     {"name": "multiscale, cpu (starry_night)", "width": 1.0,
                      "run": str(train_generator("cpu", arch="multiscale", norm="instance", style="starry_night"))},
                     {"name": "residual, width 1 (untrained)", "run": None, "width": 1.0}]
        res["inference"] = bench_inference(
            cases, (48, 64) if quick else INFERENCE_SIZES, data.hires_path("karya"), 2 if quick else 7,
            args.threads, device, [] if quick else data.content_paths("test"))
    if "training" in args.only:
        res["training"] = bench_training(["cpu residual"] if quick else list(TRAIN_CASES),
                                         2 if quick else 6, device)
    if "gatys" in args.only:
        res["gatys"] = bench_gatys((48,) if quick else (256, 512), 3 if quick else 200, device)
    out = args.out or RESULTS / f"{machine_slug(info, device)}.json"
    _keep_sections(res, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(out, res)
    print(f"\n{table(res)}\n\nwrote {out}")
    readme = Path(args.readme).resolve() if args.readme else None
    if readme is not None and not (quick and readme == (ROOT / "README.md").resolve()):
        update_readme(res, readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
