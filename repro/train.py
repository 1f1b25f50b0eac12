"""The trainer: one loop for every task of ``repro.tasks`` (a single style, conditional styles,
arbitrary styles), the model knowing nothing of training.

    run_dir = train(load_config("cpu", ["model.norm=batch"]))

Fast by default: bf16 autocast where the hardware does bf16 natively (``repro.precision``),
channels_last and cudnn autotuning on CUDA, ``torch.compile`` with ``train.compile=true``.
``train.precision=fp32`` trains in exact fp32. Under ``torchrun``: DistributedDataParallel.

Exact resume: every step's batch and the global RNG are seeded from (seed, step, rank), so a
run is a pure function of its config and step index; the checkpoint holds model, optimizer,
step and RNG state; on resume the logs are cut back to the checkpoint's step. A run killed at
any moment ends with the weights and metrics of one never interrupted (bit for bit on the CPU).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from repro import precision, runs, tasks
from repro.checkpoint import load_checkpoint, model_kwargs, save_checkpoint
from repro.config import Config, from_dict, snapshot_steps, to_dict
from repro.models import build_generator


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype; an fp16-only GPU trains in fp32 (fp16 would need loss scaling)."""
    dtype = precision.resolve_precision(name, device)
    return None if dtype == torch.float16 else dtype


def _dist_setup(device: torch.device) -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # nccl collectives (and broadcast_object_list) use it
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def step_seed(seed: int, step: int, rank: int) -> int:
    """Distinct, reproducible streams per (seed, step, rank)."""
    return (seed * 1_000_003 + step) * 1009 + rank


def learning_rate(cfg: Config, step: int) -> float:
    """texture_nets' schedule: lr x decay every N steps (step is 1-based)."""
    if not cfg.optim.lr_decay_every:
        return cfg.optim.lr
    return cfg.optim.lr * cfg.optim.lr_decay ** ((step - 1) // cfg.optim.lr_decay_every)


def training_step(model, task, optimizer, batch: dict, amp_dtype: torch.dtype | None) -> dict:
    """One optimizer step on ``batch``; returns the loss terms. A non-finite loss raises
    ``TrainingDiverged`` before the weights are touched."""
    with precision.autocast(task.device, amp_dtype):
        terms = task.loss(model, batch)
    loss = terms["total"]
    if not torch.isfinite(loss.detach()).all():
        raise TrainingDiverged(f"non-finite loss ({float(loss.detach())})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return terms


def train(cfg: Config, *, runs_root: str | Path | None = None, progress: bool | None = None,
          callback=None, wait: bool = True) -> Path:
    """Train the generator ``cfg`` describes; return its run directory.

    A finished run with the same resolved config is returned at once; an unfinished one is
    resumed from its last checkpoint. One process at a time writes a run (its OS file lock; a
    second one waits, or with ``wait=False`` raises ``runs.RunLocked``). ``callback(step, logs)``
    runs after every step on rank 0 (tests use it to simulate a kill)."""
    cfg = from_dict(to_dict(cfg))  # a private copy: the caller's object is never modified
    run = runs.run_dir(cfg, runs_root)  # hashes every file the config names: missing ones fail here
    if runs.is_done(run) and not runs.done_problems(run, cfg):
        return run  # a sound finished run is never written again: no lock needed (read-only runs/)
    device = precision.resolve_device(cfg.train.device)
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        with runs.lock(run, wait):
            if runs.finished(run, cfg):
                return run
            with runs.removed_if_failed_early(run):
                return _train(cfg, run, device, progress, callback)
    # torchrun: rank 0 takes the lock and decides, then tells the other ranks to train or stop
    rank, _ = _dist_setup(device)
    with contextlib.ExitStack() as held:
        status = ["train"]
        if rank == 0:
            try:
                held.enter_context(runs.lock(run, wait))
                status = ["done" if runs.finished(run, cfg) else "train"]
            except runs.RunLocked as e:
                status = [str(e)]
        dist.broadcast_object_list(status, src=0)
        if status[0] == "done":
            return run
        if status[0] != "train":
            raise runs.RunLocked(status[0])
        with runs.removed_if_failed_early(run) if rank == 0 else contextlib.nullcontext():
            return _train(cfg, run, device, progress, callback)


def _train(cfg: Config, run: Path, device: torch.device, progress, callback) -> Path:
    rank, world = _dist_setup(device)
    if cfg.optim.batch_size % world:
        raise ValueError(f"optim.batch_size ({cfg.optim.batch_size}) must be divisible by the "
                         f"number of processes ({world})")
    batch_size = cfg.optim.batch_size // world
    amp_dtype = resolve_precision(cfg.train.precision, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    memory_format = torch.channels_last if cfg.train.channels_last and cuda else torch.contiguous_format

    torch.manual_seed(cfg.train.seed)
    model = build_generator(**model_kwargs(cfg.model)).to(device, memory_format=memory_format)
    if world > 1 and cfg.train.sync_bn and cfg.model.norm == "batch":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    task = tasks.make_task(cfg, device)
    heldout = tasks.heldout_images(cfg) if rank == 0 else []
    if rank == 0:  # the run directory is made only once every input has loaded
        run.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_json(run / "config.json", to_dict(cfg))

    # resume: cut the logs back to the checkpoint; logs that then do not hold each earlier step
    # exactly once (written before runs were locked, or edited) mean starting afresh
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
    if world > 1:
        dist.barrier()
        ckpt = load_checkpoint(ckpt_path) if rank != 0 and ckpt_path.is_file() else ckpt
    start = int(ckpt["step"]) if ckpt else 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])

    train_model = torch.compile(model) if cfg.train.compile else model
    if world > 1:
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if cuda else None)

    def checkpoint(step: int, path: Path) -> None:
        rng = {"torch": torch.get_rng_state(), **({"cuda": torch.cuda.get_rng_state(device)} if cuda else {})}
        save_checkpoint(path, model=model, optimizer=optimizer, step=step, config=cfg, rng=rng)

    show = rank == 0 and (cfg.train.progress if progress is None else progress)
    # progress None (not asked either way): a bar only when stderr is a terminal, not into logs
    bar = (tqdm(total=cfg.optim.steps, initial=start, desc=cfg.name, dynamic_ncols=True,
                disable=None if progress is None else False) if show else None)
    eval_at = set(runs.eval_steps(cfg))
    snapshot_at = set(snapshot_steps(cfg))
    t_start = time.perf_counter()
    model.train()
    with contextlib.ExitStack() as files:
        log = files.enter_context(open(run / "metrics.jsonl", "a")) if rank == 0 else None
        eval_log = files.enter_context(open(run / "eval.jsonl", "a")) if rank == 0 else None
        if bar is not None:
            files.callback(bar.close)
        for step in range(start + 1, cfg.optim.steps + 1):
            t0 = time.perf_counter()
            torch.manual_seed(step_seed(cfg.train.seed, step, rank))
            g = torch.Generator().manual_seed(step_seed(cfg.train.seed, step, rank))
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = task.sample(batch_size, g, memory_format)
            try:
                terms = training_step(train_model, task, optimizer, batch, amp_dtype)
            except TrainingDiverged as e:
                kept = (f"the last good checkpoint ({ckpt_path}) is kept" if ckpt_path.exists()
                        else "there is no checkpoint yet")
                raise TrainingDiverged(f"{e} at step {step} of run {run}; {kept}") from None
            logs = {k: float(v.detach()) for k, v in terms.items()}
            if world > 1:
                values = torch.tensor(list(logs.values()), device=device)
                dist.all_reduce(values)
                logs = dict(zip(logs, (values / world).tolist()))
            if cuda:
                torch.cuda.synchronize(device)
            if rank != 0:
                continue
            row = {"step": step, **logs, "lr": lr, "images_per_s": cfg.optim.batch_size / (time.perf_counter() - t0)}
            log.write(json.dumps(row) + "\n")
            log.flush()
            if step in eval_at:
                eval_log.write(json.dumps({"step": step, **task.evaluate(model, heldout)}) + "\n")
                eval_log.flush()
                task.save_samples(model, heldout, run / "samples" / f"step{step:06d}.png")
            if step in snapshot_at:  # the generator only: what a claim is measured on later
                save_checkpoint(runs.snapshot_path(run, step), model=model, step=step, config=cfg)
            if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                checkpoint(step, ckpt_path)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{logs['total']:.3g}", style=f"{logs['style']:.3g}",
                                content=f"{logs['content']:.3g}", refresh=False)
            if callback is not None:
                callback(step, logs)

    if rank == 0:
        checkpoint(cfg.optim.steps, run / "model.pt")
        checkpoint(cfg.optim.steps, ckpt_path)
        runs.write_summary(run, cfg, {
            "seconds_this_session": time.perf_counter() - t_start, "device": str(device),
            "world_size": world, "precision": precision.name(amp_dtype),
            "git_commit": runs.git_commit(), "torch": torch.__version__,
        })
    if world > 1:
        dist.barrier()
    return run
