"""``make gpu-check`` (``python -m bench.gpu_check``): one command for a borrowed GPU.

A GPU is lent for minutes, so everything only a GPU can check runs in one go, in stages, and
each result is on disk as soon as it exists: a hard time limit (``timeout 540 make gpu-check``)
keeps what finished.

1. ``cuda``: the trainer's and the Stylizer's CUDA paths on the first GPU, each a sub-check with
   pass/fail, seconds and a one-line detail: bf16 autocast, channels_last, ``torch.compile``,
   cudnn autotuning, DDP with nccl (one process, ``torch.distributed.run``), the Stylizer's fast
   path, and a short real training run of the ``gpu`` profile (images/s).
2. ``bench``: ``python -m bench`` (it writes ``bench/results/<machine>.json`` itself).
3. ``figures``: ``python -m repro figures --profile gpu`` (``figures/gpu/``).

Results: ``<out>/gpu-check-<machine>.json`` (default ``bench/results/``), rewritten atomically
before and after every sub-check and stage. A status is ``pending`` (a stage not reached),
``running`` (cut off there, if the file still says so after the command ended), ``passed``,
``failed`` (a SIGTERM or Ctrl-C is recorded as a failure: "interrupted") or ``skipped``.
Exit status: 0 when nothing failed, 1 when something did, 2 without a GPU.

``--quick`` runs the cuda sub-checks at tiny sizes with the ``smoke`` profile; on a machine
without CUDA it runs them on the CPU (the cuda stage is still recorded as skipped: nothing about
CUDA was checked) and skips bench and figures unless ``--skip`` says otherwise. The tests use it.
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bench.run import ROOT, RESULTS, machine_info, machine_slug, psnr
from repro import config, precision, runs
from repro.atomic import atomic_write_json
from repro.experiments import generator_config
from repro.inference import Stylizer, stylize
from repro.losses import PerceptualLoss
from repro.models import build_generator
from repro.train import train

STAGES = ("cuda", "bench", "figures")
TRAIN_STEPS = 20
# Tolerances. Outputs are images in [0, 1]; 1e-3 is a quarter of an 8-bit level. Layout and
# autotuning compare fp32 with fp32 (TF32 off), so only the order of the sums differs.
BF16_LOSS_RTOL = 0.05      # bf16 autocast loss vs fp32 loss, relative (bf16 keeps ~3 digits)
LAYOUT_ATOL = 1e-4         # channels_last vs contiguous, output max |diff|; loss relative
AUTOTUNE_RTOL = 1e-3       # cudnn.benchmark's algorithms vs the default ones, loss relative
COMPILE_ATOL = 1e-3        # compiled vs eager, output max |diff|
STYLIZER_MIN_PSNR = 40.0   # the Stylizer's fast path vs plain fp32 (bench/README.md's target)
DDP_TIMEOUT_S = 180        # a hung nccl init fails the sub-check instead of the whole command


class Interrupted(BaseException):
    """SIGTERM (``timeout``) or Ctrl-C: stop, after recording where."""


class CheckFailed(AssertionError):
    """A sub-check ran and its result is wrong."""


# ---------------------------------------------------------------------------------------------
# What the cuda sub-checks share


@dataclass
class Sizes:
    width: float   # residual generator width
    batch: int
    px: int
    profile: str   # of the training sub-check and the figures stage
    steps: int     # of the training sub-check


FULL = Sizes(width=1.0, batch=4, px=256, profile="gpu", steps=TRAIN_STEPS)
QUICK = Sizes(width=0.25, batch=2, px=32, profile="smoke", steps=3)


class Checks:
    """The cuda stage's sub-checks on one device; each method returns its one-line detail and
    raises when the check fails. A fixed seed makes every model and input repeatable."""

    def __init__(self, device: torch.device, sizes: Sizes):
        self.device, self.sizes = device, sizes
        self._loss = None
        # on the CPU (--quick) inductor's C++ build would take most of the run: dynamo and
        # AOTAutograd still trace the generator, the kernels are left to the GPU run
        self.inductor = device.type == "cuda"

    def generator(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return build_generator("residual", width=self.sizes.width).to(self.device)

    def input(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(1)
        return torch.rand(self.sizes.batch, 3, self.sizes.px, self.sizes.px, generator=g).to(self.device)

    def loss(self) -> PerceptualLoss:
        """The ``cpu`` profile's perceptual loss on the real VGG weights (data/), random style."""
        if self._loss is None:
            g = torch.Generator().manual_seed(2)
            style = torch.rand(1, 3, self.sizes.px, self.sizes.px, generator=g)
            self._loss = PerceptualLoss(["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"],
                                        style_weight=10.0).to(self.device)
            self._loss.set_style(style.to(self.device))
        return self._loss

    def step(self, model, x, dtype=None) -> tuple[torch.Tensor, float, float]:
        """(output, loss, gradient norm) of one forward/backward, as the trainer's step runs it."""
        model.zero_grad(set_to_none=True)
        with precision.autocast(self.device, dtype):
            y = model(x)
            total = self.loss()(y, x)["total"]
        total.backward()
        grads = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
        self.sync()
        return y.detach(), float(total.detach()), float(torch.stack(grads).norm())

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- the sub-checks, in the order they run --------------------------------------------------

    def bf16_autocast(self) -> str:
        dtype = precision.resolve_precision("auto", self.device)
        gen, x = self.generator(), self.input()
        with exact_fp32():
            _, ref, _ = self.step(gen, x)
        y, amp, grad = self.step(gen, x, dtype)
        if dtype is not None and y.dtype != dtype:
            raise CheckFailed(f"autocast({precision.name(dtype)}) did not apply: output {y.dtype}")
        if not (math.isfinite(amp) and math.isfinite(grad)):
            raise CheckFailed(f"{precision.name(dtype)} autocast: loss {amp}, gradient norm {grad}")
        rel = abs(amp - ref) / abs(ref)
        detail = (f"{precision.name(dtype)} loss {amp:.5g} vs fp32 {ref:.5g}: rel {rel:.1e} "
                  f"(tol {BF16_LOSS_RTOL:g}); gradients finite")
        if dtype is None:
            detail += f" (auto is fp32 on this {self.device.type}: nothing to compare)"
        if rel > BF16_LOSS_RTOL:
            raise CheckFailed(detail)
        return detail

    def channels_last(self) -> str:
        gen, x = self.generator(), self.input()
        gen_cl = copy.deepcopy(gen).to(memory_format=torch.channels_last)
        with exact_fp32():
            y, loss, _ = self.step(gen, x)
            y_cl, loss_cl, _ = self.step(gen_cl, x.contiguous(memory_format=torch.channels_last))
        diff, rel = float((y - y_cl).abs().max()), abs(loss - loss_cl) / abs(loss)
        detail = f"output max |diff| {diff:.1e}, loss rel {rel:.1e} (tol {LAYOUT_ATOL:g})"
        if not (diff <= LAYOUT_ATOL and rel <= LAYOUT_ATOL):
            raise CheckFailed(detail)
        return detail

    def compile(self) -> str:
        gen, x = self.generator().eval(), self.input()
        with torch.no_grad(), exact_fp32():
            eager = gen(x)
            compiled = torch.compile(gen, backend="inductor" if self.inductor else "aot_eager")
            t = time.perf_counter()
            y = compiled(x)
            self.sync()
            first = time.perf_counter() - t
            t = time.perf_counter()
            compiled(x)
            self.sync()
            second = time.perf_counter() - t
        diff = float((eager - y).abs().max())
        detail = (f"{'inductor' if self.inductor else 'aot_eager'}: first call {first:.1f} s "
                  f"(compiles), second {second * 1e3:.1f} ms; "
                  f"max |diff| vs eager {diff:.1e} (tol {COMPILE_ATOL:g})")
        if not diff <= COMPILE_ATOL:
            raise CheckFailed(detail)
        return detail

    def cudnn_benchmark(self) -> str:
        gen, x = self.generator(), self.input()
        before = torch.backends.cudnn.benchmark
        try:
            with exact_fp32():
                torch.backends.cudnn.benchmark = False
                _, ref, _ = self.step(gen, x)
                torch.backends.cudnn.benchmark = True
                t = time.perf_counter()
                self.step(gen, x)  # the first call at a shape tries the algorithms
                tuned_s = time.perf_counter() - t
                _, loss, _ = self.step(gen, x)
        finally:
            torch.backends.cudnn.benchmark = before
        rel = abs(loss - ref) / abs(ref)
        where = "" if self.device.type == "cuda" else " (no cudnn on the cpu: the flag is inert)"
        detail = (f"autotuned step {tuned_s:.2f} s; loss rel {rel:.1e} vs default algorithms "
                  f"(tol {AUTOTUNE_RTOL:g}){where}")
        if not rel <= AUTOTUNE_RTOL:
            raise CheckFailed(detail)
        return detail

    def ddp(self) -> str:
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "ddp.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=1",
                   "--master-addr=127.0.0.1", f"--master-port={free_port()}", f"--log-dir={tmp}/logs",
                   "-m", "bench.gpu_check", "--ddp-worker", str(result), "--ddp-backend", backend]
            try:
                p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=DDP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"{backend}: no answer in {DDP_TIMEOUT_S} s (a hung init?)") from None
            if p.returncode or not result.is_file():
                raise CheckFailed(f"{backend}: torch.distributed.run exited {p.returncode}: "
                                  f"{last_line(p.stderr or p.stdout)}")
            r = json.loads(result.read_text())
        if not (r["world_size"] == 1 and r["all_reduce"] == 1.0 and r["params_changed"]
                and math.isfinite(r["loss"])):
            raise CheckFailed(f"{backend}: {r}")
        return (f"{r['backend']} on {r['device']}, world size 1: DDP step loss {r['loss']:.4g}, "
                f"weights updated, all_reduce ok")

    def stylizer(self) -> str:
        gen, x = self.generator().eval(), self.input()
        # its default fast path: bf16 where native, compiled (not on the CPU, see __init__),
        # on CUDA channels_last and cudnn autotuning
        fast = Stylizer(gen, device=self.device, compile=self.inductor)
        ref = stylize(gen, x, precision="fp32")
        y = fast(x)
        db = psnr(y.cpu(), ref.cpu())
        detail = (f"{precision.name(fast.dtype)}, compiled {fast.compiled}, "
                  f"{'channels_last' if fast.memory_format == torch.channels_last else 'contiguous'}: "
                  f"PSNR {db:.1f} dB vs fp32 (min {STYLIZER_MIN_PSNR:g})")
        if not db >= STYLIZER_MIN_PSNR:
            raise CheckFailed(detail)
        return detail

    def train(self) -> str:
        s = self.sizes
        cfg = generator_config(s.profile, overrides=[
            f"optim.steps={s.steps}", f"train.device={self.device}", "train.progress=false",
            f"train.eval_every={s.steps}", f"train.checkpoint_every={s.steps}"])
        with tempfile.TemporaryDirectory() as tmp:  # a fresh run: a cached one would not train
            run = train(cfg, runs_root=tmp, progress=False)
            rates = [m["images_per_s"] for m in runs.metrics(run)]
            summary = runs.summary(run)
        # the first steps compile and autotune: the rate is the median of the later half
        rate = statistics.median(rates[len(rates) // 2:])
        return (f"{s.profile} profile, {len(rates)} steps on {summary['device']} "
                f"({summary['precision']}, compile {cfg.train.compile}): {rate:.1f} images/s "
                f"(median of the last {len(rates) - len(rates) // 2}; step 1 {rates[0]:.2f} images/s)")


CHECKS = ("bf16_autocast", "channels_last", "compile", "cudnn_benchmark", "ddp", "stylizer", "train")


@contextmanager
def exact_fp32():
    """Plain fp32 on CUDA (no TF32) while references are computed; restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(text: str) -> str:
    lines = [l for l in (text or "").splitlines() if l.strip()]
    return lines[-1].strip() if lines else "(no output)"


def ddp_worker(result: Path, backend: str) -> None:
    """One rank under ``torch.distributed.run``: a small generator in DistributedDataParallel,
    one optimizer step and an all_reduce; what it saw goes to ``result``."""
    cuda = backend == "nccl"
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    try:
        torch.manual_seed(0)
        model = build_generator("residual", width=0.25).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = [p.detach().clone() for p in model.parameters()]
        loss = ddp(torch.rand(2, 3, 32, 32, device=device)).square().mean()
        loss.backward()
        opt.step()
        ones = torch.ones(1, device=device)
        dist.all_reduce(ones)
        atomic_write_json(result, {
            "backend": dist.get_backend(), "device": str(device), "world_size": dist.get_world_size(),
            "loss": float(loss.detach()), "all_reduce": float(ones),
            "params_changed": any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))})
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Stages and the results file


class Report:
    """The results file, rewritten atomically at every change so a kill loses at most the
    sub-check in progress."""

    def __init__(self, path: Path, head: dict):
        self.path = path
        self.doc = {**head, "status": "running", "stages": {s: {"status": "pending"} for s in STAGES}}
        self.save()

    def stage(self, name: str) -> dict:
        return self.doc["stages"][name]

    def save(self) -> None:
        atomic_write_json(self.path, self.doc)


def say(*parts: str) -> None:
    print("  ".join(parts), flush=True)


def run_cuda_stage(report: Report, device: torch.device, sizes: Sizes, skipped: str | None) -> bool:
    """Every sub-check, each recorded as it finishes; a failing one does not stop the others.
    Returns True when all passed."""
    stage = report.stage("cuda")
    stage.update(status="running", device=str(device), checks={})
    report.save()
    checks, ok, t0 = Checks(device, sizes), True, time.perf_counter()
    for name in CHECKS:
        stage["checks"][name] = {"status": "running"}  # what a kill cut off, if it comes now
        report.save()
        t = time.perf_counter()
        try:
            status, detail = "passed", getattr(checks, name)()
        except Exception as e:  # noqa: BLE001 - any error is this sub-check's failure
            status, detail = "failed", f"{type(e).__name__}: {last_line(str(e))}"
        seconds = time.perf_counter() - t
        ok &= status == "passed"
        stage["checks"][name] = {"status": status, "seconds": round(seconds, 2), "detail": detail}
        report.save()
        say(f"cuda/{name:<16}", f"{status:<6}", f"{seconds:6.1f} s", detail)
    n_failed = sum(c["status"] == "failed" for c in stage["checks"].values())
    summary = f"{len(CHECKS) - n_failed}/{len(CHECKS)} sub-checks passed on {device}"
    # without CUDA the sub-checks ran on the CPU: they test this code, not a GPU
    stage.update(status=("skipped" if skipped else "passed" if ok else "failed"),
                 seconds=round(time.perf_counter() - t0, 2),
                 details=f"{skipped}; {summary}" if skipped else summary)
    report.save()
    return ok


def run_command_stage(report: Report, name: str, cmd: list[str], wrote: str) -> bool:
    """A stage that is a command: its output streams to the console, its last lines and exit
    status go to the results. An interruption ends the command too."""
    stage = report.stage(name)
    stage.update(status="running", command=" ".join(cmd))
    report.save()
    say(f"{name}: {' '.join(cmd)}")
    t0, tail = time.perf_counter(), collections.deque(maxlen=20)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            print(f"  | {line}", end="", flush=True)
            tail.append(line.rstrip("\n"))
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stage["output_tail"] = list(tail)
    seconds = time.perf_counter() - t0
    stage.update(status="passed" if rc == 0 else "failed", seconds=round(seconds, 2), returncode=rc,
                 details=f"exit status 0; wrote {wrote}" if rc == 0 else
                 f"exit status {rc}: {tail[-1] if tail else '(no output)'}")
    report.save()
    say(f"{name:<21}", f"{stage['status']:<6}", f"{seconds:6.1f} s", stage["details"])
    return rc == 0


def stage_commands(quick: bool, profile: str, out: Path, slug: str) -> dict[str, tuple[list[str], str]]:
    """(command, what it writes) of the bench and figures stages."""
    bench = [sys.executable, "-m", "bench"]
    wrote = f"{RESULTS.relative_to(ROOT)}/{slug}.json and the README table"
    if quick:  # tiny sizes must never overwrite this machine's benchmark file
        wrote = str(out / f"bench-quick-{slug}.json")
        bench += ["--quick", "--out", wrote]
    figures_dir = config.figures_dir(profile)  # main() checked that the profile exists
    figures = [sys.executable, "-m", "repro", "figures", "--profile", profile]
    return {"bench": (bench, wrote), "figures": (figures, f"{figures_dir}/")}


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="folder of the results file (default bench/results)")
    ap.add_argument("--skip", default=None,
                    help="comma-separated stages not to run: cuda, bench, figures (default: none; "
                    "with --quick and no GPU: bench,figures)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, the smoke profile; without a GPU, on the CPU (the tests use it)")
    ap.add_argument("--profile", help="profile of the training sub-check and the figures "
                    "(default gpu; smoke with --quick)")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ddp-backend", default="nccl", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.ddp_backend)
        return 0

    cuda = torch.cuda.is_available()
    if not cuda and not args.quick:
        print("error: gpu-check needs a CUDA GPU and torch sees none "
              f"(torch {torch.__version__}); --quick runs its checks on the CPU at tiny sizes",
              file=sys.stderr)
        return 2
    skip = ({"bench", "figures"} if args.quick and not cuda else set()) if args.skip is None else \
        {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(STAGES):
        ap.error(f"--skip: unknown stage(s) {sorted(skip - set(STAGES))}; stages: {', '.join(STAGES)}")
    sizes = QUICK if args.quick else FULL
    if args.profile:
        sizes = Sizes(**{**sizes.__dict__, "profile": args.profile})
    try:  # a typo must not cost a borrowed GPU the stages before the one that reads it
        config.profile_path(sizes.profile)
    except config.ConfigError as e:
        ap.error(f"--profile: {e}")
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    info = machine_info(device)
    slug = machine_slug(info, device)
    report = Report(args.out / f"gpu-check-{slug}.json", {
        "machine": info, "torch": torch.__version__, "cuda_version": torch.version.cuda,
        "git_commit": runs.git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["python -m bench.gpu_check", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick, "profile": sizes.profile})
    say(f"gpu-check on {info.get('gpu') or info['cpu']}, torch {torch.__version__} -> {report.path}")

    commands = stage_commands(args.quick, sizes.profile, args.out, slug)
    ok, current, previous = True, STAGES[0], signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name in STAGES:
            current = name
            if name in skip:
                report.stage(name).update(status="skipped", seconds=0, details=f"skipped: --skip {name}"
                                          if args.skip is not None else "skipped: --quick without a GPU")
                report.save()
                say(f"{name:<21}", "skipped", report.stage(name)["details"])
            elif name == "cuda":
                ok &= run_cuda_stage(report, device, sizes, None if cuda else "skipped: no CUDA device")
            else:
                ok &= run_command_stage(report, name, *commands[name])
    except (Interrupted, KeyboardInterrupt) as e:
        why = f"interrupted ({str(e) or type(e).__name__})"
        report.stage(current).update(status="failed", details=why)
        for check in report.stage(current).get("checks", {}).values():
            if check["status"] == "running":
                check.update(status="failed", detail=why)
        ok = False
        say(f"{current}: {why}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        report.doc["status"] = "passed" if ok else "failed"
        report.save()
    say(f"gpu-check {report.doc['status']}: {report.path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
