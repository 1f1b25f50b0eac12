"""The trainer: one loop for every feed-forward generator (IN Fig. 3-6, AdaIN Fig. 1, CIN) and
for the AdaIN encoder-decoder (arbitrary styles: a batch of paintings per step).

    run_dir = train(load_config("cpu", ["model.norm=batch"]))

The fast path is the default: bf16 autocast wherever the hardware does bf16 natively (CUDA
GPUs from Ampere on; CPUs with AVX-512 BF16 or AMX, see ``repro.precision``), and on CUDA
channels_last and cudnn autotuning; ``torch.compile`` with ``train.compile=true`` (the ``paper``
profile). ``train.precision=fp32`` trains in exact fp32. Under ``torchrun`` it trains with
DistributedDataParallel (gloo on CPU, nccl on CUDA).

Exact resume: every step's batch (crops, flips, CIN style indices) is drawn from a generator
seeded by (seed, step, rank), and the global RNG is reseeded the same way, so the run is a pure
function of its config and step index. The checkpoint holds model, optimizer, step and the RNG
states; on resume the logs are cut back to the checkpoint's step and the steps after it are
recomputed, so a run killed at any moment ends with the same weights and metrics as one that
was never interrupted (bit for bit on the CPU).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from repro import config as config_mod
from repro import precision as precision_mod
from repro import data, images, runs
from repro.config import Config
from repro.checkpoint import load_checkpoint, load_generator, model_kwargs, save_checkpoint
from repro.inference import (
                             stylize)
from repro.losses import PerceptualLoss
from repro.models import build_generator


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------
# Devices and distribution


resolve_device = precision_mod.resolve_device  # "auto" | "cpu" | "cuda[:N]" -> torch.device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype (None: plain fp32): ``repro.precision``'s choice, except that
    an fp16-only GPU trains in fp32 (fp16 training would need loss scaling, which this loop
    does not do)."""
    dtype = precision_mod.resolve_precision(precision, device)
    return None if dtype == torch.float16 else dtype


def _dist_setup(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # nccl collectives (and broadcast_object_list) use it
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# Pieces of a run


def build_loss(cfg: Config, device: torch.device) -> PerceptualLoss:
    from repro.vgg import LossNetwork

    layers = list(dict.fromkeys(cfg.loss.content_layers + cfg.loss.style_layers))
    net = LossNetwork(layers, arch=cfg.loss.vgg_arch, weights=cfg.loss.vgg_weights,
                      pool=cfg.loss.vgg_pool)
    return PerceptualLoss(cfg.loss.content_layers, cfg.loss.style_layers,
                          content_weight=cfg.loss.content_weight, style_weight=cfg.loss.style_weight,
                          tv_weight=cfg.loss.tv_weight, style_stat=cfg.loss.style_stat,
                          loss_network=net).to(device)


def _image_path(name: str, kind: str) -> Path:
    p = Path(name)
    if p.suffix and p.is_file():
        return p
    if p.suffix:
        raise FileNotFoundError(2, "image file not found", str(p))
    return data.style_path(name) if kind == "style" else data.content_path(name)


def style_images(cfg: Config) -> torch.Tensor:
    """(S, 3, H, W) style images at ``style_size`` (shorter side), center-cropped to a common
    size when there are several (CIN)."""
    imgs = [images.load_image(_image_path(s, "style"), size=cfg.data.style_size) for s in cfg.data.style]
    if len(imgs) > 1:
        s = cfg.data.style_size
        imgs = [images.center_crop(i, s) for i in imgs]
    return torch.stack(imgs)


def content_transform(cfg: Config):
    """The per-image transform of AdaIN Fig. 1: (b) luminance histogram equalization, (c)
    stylization by a generator trained earlier (style normalization)."""
    if cfg.data.transform == "equalize":
        return images.equalize_luminance_histogram
    if cfg.data.transform == "stylize":
        model = load_generator(cfg.data.transform_checkpoint)
        # exact fp32: the training data must not depend on whether this CPU has native bf16
        return lambda img: stylize(model, img, exact=True)
    return None


def training_set(cfg: Config) -> data.ContentCrops:
    photos = data.content_paths("train")
    if cfg.data.n_train:
        photos = photos[: cfg.data.n_train]
    return data.ContentCrops(photos, cfg.data.content_size, cfg.data.image_size,
                             transform=content_transform(cfg))


def style_crops(cfg: Config) -> data.ContentCrops:
    """AdaIN's training paintings, sampled per step like the photos (random crops)."""
    return data.ContentCrops([_image_path(s, "style") for s in cfg.data.style], cfg.data.style_size,
                             cfg.data.image_size)


def eval_styles(cfg: Config) -> list[torch.Tensor]:
    """The styles an AdaIN run is evaluated with during training: up to 4 of its paintings."""
    return [images.load_image(_image_path(s, "style"), size=cfg.data.style_size) for s in cfg.data.style[:4]]


def test_images(cfg: Config) -> list[torch.Tensor]:
    return [images.load_image(_image_path(n, "content"), size=cfg.data.test_size)
            for n in cfg.data.test_images]


def _step_seed(seed: int, step: int, rank: int) -> int:
    # distinct, reproducible streams per (seed, step, rank)
    return (seed * 1_000_003 + step) * 1009 + rank


def _lr(cfg: Config, step: int) -> float:
    """texture_nets' schedule: lr x decay every N steps (step is 1-based)."""
    if not cfg.optim.lr_decay_every:
        return cfg.optim.lr
    return cfg.optim.lr * cfg.optim.lr_decay ** ((step - 1) // cfg.optim.lr_decay_every)


def select_style_targets(targets: dict, idx: torch.Tensor) -> dict:
    """Per-sample style targets for conditional IN: sample i gets style idx[i]."""
    return {l: (t[idx] if isinstance(t, torch.Tensor) else tuple(x[idx] for x in t))
            for l, t in targets.items()}


@torch.no_grad()
def evaluate(model, loss_fn: PerceptualLoss, tests: list[torch.Tensor], device,
             all_targets: dict | None, n_styles: int = 0, styles: list[torch.Tensor] | None = None) -> dict:
    """Held-out style and content losses (unweighted, eval mode), averaged over images (and
    over styles for conditional IN, or over ``styles`` for AdaIN, whose content loss is
    against its target t): the numbers IN Fig. 5 compares."""
    was_training = model.training
    model.eval()
    acc: dict[str, list[float]] = {}
    for x in tests:
        x = x[None].to(device)
        for s in (styles if styles else range(n_styles) if n_styles else [None]):
            if styles:
                # t lives on the encoder's grid: compare on a crop that the encoder does not round
                m = model.down
                xs = x[..., : x.shape[-2] // m * m, : x.shape[-1] // m * m]
                s = s[None].to(device)
                y, t = model(xs, s, return_target=True)
                terms = loss_fn(y, content_feats={model.encoder_layer: t}, style=s, weighted=False)
            elif s is None:
                y = model(x)
                terms = loss_fn(y, x, style_targets=all_targets, weighted=False)
            else:
                idx = torch.tensor([s], device=device)
                y = model(x, idx)
                terms = loss_fn(y, x, style_targets=select_style_targets(all_targets, idx), weighted=False)
            for k in ("style", "content", "tv"):
                acc.setdefault(k, []).append(float(terms[k]))
    model.train(was_training)
    return {k: sum(v) / len(v) for k, v in acc.items()}


@torch.no_grad()
def _save_samples(model, tests, device, path: Path, n_styles: int, styles=None) -> None:
    model.eval()
    outs = []
    for x in tests[:3]:
        x = images.center_crop(images.resize_shorter(x, 128), 128)[None].to(device)
        outs.append(x[0].cpu())
        for s in (styles if styles else range(min(n_styles, 4)) if n_styles else [None]):
            if styles:
                y = model(x, s[None].to(device))
            else:
                y = model(x) if s is None else model(x, torch.tensor([s], device=device))
            outs.append(y[0].float().clamp(0, 1).cpu())
    model.train()
    per_row = 1 + (len(styles) if styles else min(n_styles, 4) if n_styles else 1)
    rows = [torch.cat(outs[i:i + per_row], dim=2) for i in range(0, len(outs), per_row)]
    images.save_image(torch.cat(rows, dim=1), path)


def _rng_state(device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


# ---------------------------------------------------------------------------------------------
# The loop


def train(cfg: Config | dict | str | Path, overrides: list[str] | None = None, *,
          runs_root: str | Path | None = None, progress: bool | None = None,
          callback=None, wait: bool = True) -> Path:
    """Train the generator ``cfg`` describes; return its run directory.

    ``cfg``: a ``Config``, a plain dict of one, or a profile name / YAML path (with
    ``overrides`` such as ``["model.norm=batch"]``). A finished run with the same resolved
    config is returned at once; an unfinished one is resumed from its last checkpoint.
    ``callback(step, logs)`` is called after every step on rank 0 (tests use it to simulate a
    kill).

    One process at a time writes a run: the run's OS file lock is taken before anything is
    read or cut back; a second process on the same run waits for it (``wait=False``: raises
    ``runs.RunLocked`` at once). A run marked done whose logs do not hold every step exactly
    once is repaired here (``done.json`` rewritten from whole logs, or the run trained again).
    A call that fails before the run's first checkpoint leaves no run directory behind.
    """
    if isinstance(cfg, (str, Path)):
        cfg = config_mod.load_config(cfg, overrides)
    else:
        # a private copy: the caller's object is never modified
        cfg = config_mod.from_dict(cfg if isinstance(cfg, dict) else config_mod.to_dict(cfg))
        config_mod.apply_overrides(cfg, overrides)

    run = runs.run_dir(cfg, runs_root)  # hashes every file the config names: missing ones fail here
    if runs.is_done(run) and not runs.done_problems(run, cfg):
        return run  # a sound finished run is never written again: no lock needed (read-only runs/)
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        with runs.lock(run, wait):
            if _finished(run, cfg):
                return run
            with _removed_if_failed_early(run):
                return _train_locked(cfg, run, resolve_device(cfg.train.device), progress, callback)
    # torchrun: rank 0 takes the lock and decides, then tells the other ranks (which wait for it
    # within the process group's timeout) whether to train or to stop
    device = resolve_device(cfg.train.device)
    rank, world = _dist_setup(device)
    with contextlib.ExitStack() as held:
        status = ["train"]
        if rank == 0:
            try:
                held.enter_context(runs.lock(run, wait))
                status = ["done" if _finished(run, cfg) else "train"]
            except runs.RunLocked as e:
                status = [str(e)]
        dist.broadcast_object_list(status, src=0)
        if status[0] == "done":
            return run
        if status[0] != "train":
            raise runs.RunLocked(status[0])
        with _removed_if_failed_early(run) if rank == 0 else contextlib.nullcontext():
            return _train_locked(cfg, run, device, progress, callback)


@contextlib.contextmanager
def _removed_if_failed_early(run: Path):
    """A call that fails (bad input, divergence, Ctrl-C) before the run's first checkpoint
    leaves no directory behind: there is nothing in it worth resuming."""
    created = not run.exists()
    try:
        yield
    except BaseException:
        if created and not (run / "checkpoint.pt").exists():
            shutil.rmtree(run, ignore_errors=True)
        raise


def _finished(run: Path, cfg: Config) -> bool:
    """True for a finished run that can be trusted. A run marked done that cannot be is
    repaired: ``done.json`` rewritten when the logs are whole, else trained again from step 0
    (the only way to recompute missing rows exactly)."""
    if not runs.is_done(run):
        return False
    problems = runs.done_problems(run, cfg)
    if not problems:
        return True
    if not runs.log_problems(run, cfg, cfg.optim.steps) and (run / "model.pt").is_file():
        old = {}
        try:
            old = runs.summary(run)
        except (OSError, ValueError):
            pass
        _write_summary(run, cfg, old)
        warnings.warn(f"run {run}: {problems[0]}; done.json rewritten from its logs", stacklevel=3)
        return True
    warnings.warn(f"run {run} was marked done but {problems[0]}; training it again from step 0",
                  stacklevel=3)
    runs.reset(run)
    return False


def _write_summary(run: Path, cfg: Config, extra: dict) -> None:
    """``done.json``, written last: only when the logs hold every step exactly once."""
    problems = runs.log_problems(run, cfg, cfg.optim.steps)
    if problems:
        raise RuntimeError(f"run {run}: {problems[0]}; not marking it done")
    m = runs.metrics(run)
    tail = m[-max(1, len(m) // 10):]
    summary = {
        **extra,
        "steps": cfg.optim.steps,
        "final_train": {k: sum(r[k] for r in tail) / len(tail)
                        for k in ("total", "content", "style", "tv") if tail and k in tail[0]},
        "final_eval": (runs.evals(run) or [None])[-1],
    }
    runs.atomic_write_json(run / "done.json", summary)


def _train_locked(cfg: Config, run: Path, device: torch.device, progress, callback) -> Path:
    rank, world = _dist_setup(device)
    if cfg.optim.batch_size % world:
        raise ValueError(f"optim.batch_size ({cfg.optim.batch_size}) must be divisible by the "
                         f"number of processes ({world})")
    local_batch = cfg.optim.batch_size // world
    amp_dtype = resolve_precision(cfg.train.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    memory_format = (torch.channels_last if cfg.train.channels_last and device.type == "cuda"
                     else torch.contiguous_format)

    # -- model, loss, data ---------------------------------------------------------------------
    torch.manual_seed(cfg.train.seed)
    model = build_generator(**model_kwargs(cfg.model)).to(device, memory_format=memory_format)
    if world > 1 and cfg.train.sync_bn and cfg.model.norm == "batch":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    loss_fn = build_loss(cfg, device)
    arbitrary = cfg.model.arch == "adain"
    n_styles = cfg.model.n_styles if cfg.model.norm == "conditional_instance" and not arbitrary else 0
    if arbitrary:
        # AdaIN: a fresh batch of paintings every step, its statistics the per-sample targets
        paintings, style_targets = style_crops(cfg), None
    else:
        style_targets = loss_fn.compute_style_targets(style_images(cfg).to(device))
    crops = training_set(cfg)
    tests = test_images(cfg) if rank == 0 and cfg.data.test_images else []
    test_styles = eval_styles(cfg) if arbitrary and tests else None

    # -- the run directory: made only now that every input has loaded ------------------------
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_json(run / "config.json", config_mod.to_dict(cfg))

    # -- resume: cut the logs back to the checkpoint; logs that do not then hold each earlier
    # step exactly once (written before runs were locked, or edited) mean starting afresh ---
    ckpt_path = run / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path) if rank == 0 and ckpt_path.is_file() else None
    if rank == 0:
        start = int(ckpt["step"]) if ckpt else 0
        for log in ("metrics.jsonl", "eval.jsonl"):
            runs.truncate_jsonl(run / log, start)
        problems = runs.log_problems(run, cfg, start)
        if problems:
            warnings.warn(f"run {run}: {problems[0]} before its checkpoint at step {start}; "
                          "training it again from step 0", stacklevel=4)
            runs.reset(run)
            ckpt = None
    _barrier(world)
    if rank != 0 and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
    start = 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        torch.set_rng_state(ckpt["rng"]["torch"])

    train_model = model
    if cfg.train.compile:
        train_model = torch.compile(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        train_model = DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint(step: int, path: Path) -> None:
        save_checkpoint(path, model=model, optimizer=optimizer, step=step, config=cfg,
                        rng=_rng_state(device))

    show = cfg.train.progress if progress is None else progress
    bar = None
    if rank == 0 and show:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.optim.steps, initial=start, desc=cfg.name, dynamic_ncols=True)

    metrics_file = open(run / "metrics.jsonl", "a") if rank == 0 else None
    eval_file = open(run / "eval.jsonl", "a") if rank == 0 else None
    t_start = time.perf_counter()
    model.train()
    try:
        for step in range(start + 1, cfg.optim.steps + 1):
            t0 = time.perf_counter()
            torch.manual_seed(_step_seed(cfg.train.seed, step, rank))
            g = torch.Generator().manual_seed(_step_seed(cfg.train.seed, step, rank))
            lr = _lr(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = crops.sample(local_batch, g).to(device, memory_format=memory_format)
            if arbitrary:
                s = paintings.sample(local_batch, g).to(device, memory_format=memory_format)
            elif n_styles:
                idx = torch.randint(n_styles, (local_batch,), generator=g).to(device)
                targets = select_style_targets(style_targets, idx)
            else:
                idx, targets = None, style_targets

            with precision_mod.autocast(device, amp_dtype):
                if arbitrary:
                    # AdaIN eq. 11-13: content loss against t, style loss against this batch's paintings
                    y, t = train_model(x, s, return_target=True)
                    terms = loss_fn(y.float(), content_feats={cfg.model.encoder_layer: t.float()}, style=s)
                else:
                    y = train_model(x) if idx is None else train_model(x, idx)
                    terms = loss_fn(y.float(), x, style_targets=targets)
            loss = terms["total"]
            if not torch.isfinite(loss.detach()).all():
                kept = (f"the last good checkpoint ({ckpt_path}) is kept" if ckpt_path.exists()
                        else "there is no checkpoint yet")
                raise TrainingDiverged(f"non-finite loss ({float(loss.detach())}) at step {step} of "
                                       f"run {run}; {kept}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            logs = {k: float(v.detach()) for k, v in terms.items()}
            if world > 1:
                vals = torch.tensor(list(logs.values()), device=device)
                dist.all_reduce(vals)
                logs = dict(zip(logs, (vals / world).tolist()))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            if rank == 0:
                row = {"step": step, **logs, "lr": lr, "images_per_s": cfg.optim.batch_size / dt}
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                if tests and ((cfg.train.eval_every and step % cfg.train.eval_every == 0)
                              or step == cfg.optim.steps):
                    ev = evaluate(model, loss_fn, tests, device, style_targets, n_styles, test_styles)
                    eval_file.write(json.dumps({"step": step, **ev}) + "\n")
                    eval_file.flush()
                    _save_samples(model, tests, device, run / "samples" / f"step{step:06d}.png", n_styles,
                                  test_styles)
                if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                    checkpoint(step, ckpt_path)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['total']:.3g}", style=f"{logs['style']:.3g}",
                                    content=f"{logs['content']:.3g}", refresh=False)
                if callback is not None:
                    callback(step, logs)
    finally:
        for f in (metrics_file, eval_file):
            if f is not None:
                f.close()
        if bar is not None:
            bar.close()

    if rank == 0:
        checkpoint(cfg.optim.steps, run / "model.pt")
        checkpoint(cfg.optim.steps, ckpt_path)
        _write_summary(run, cfg, {
            "seconds_this_session": time.perf_counter() - t_start,
            "device": str(device), "world_size": world,
            "precision": precision_mod.name(amp_dtype),
            "git_commit": runs.git_commit(),
            "torch": torch.__version__,
        })
    _barrier(world)
    return run

