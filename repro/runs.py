"""Run directories keyed by a hash of the resolved config; finished runs are reused.

    runs/<name>-<hash10>/
        config.json        the full resolved config
        metrics.jsonl      one line per training step (losses, lr, images/s)
        eval.jsonl         held-out style/content losses every ``train.eval_every`` steps
        checkpoint.pt      latest checkpoint (model, optimizer, step, RNG states, config)
        model.pt           the final checkpoint, written when the run completes
        samples/           sample grids on held-out images
        snapshots/         step<N>.pt: the generator at the ``train.snapshots`` fractions
        done.json          written last: the run is finished and will be reused
    runs/.locks/<name>-<hash10>.lock         the run's OS file lock (one writer at a time)
    runs/.locks/<name>-<hash10>.owner.json   who holds it (pid, host, since)

The hash covers the config and the sha256 of every file the config names by path (a style
image given as a path, the checkpoint of ``data.transform_checkpoint``), so a changed file means
a new run. ``train(config)`` may be called freely: a finished run whose logs hold every step
exactly once returns at once; one whose logs disagree with its ``done.json`` is repaired
(``finished``); ``done.json`` is written last (``write_summary``).

``Run`` is the handle notebooks and scripts hold (``experiments.train_generator`` returns one):
the directory, its config, logs, summary and model.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from repro import paths
from repro.atomic import atomic_write_bytes, atomic_write_json  # noqa: F401  (re-exported)
from repro.checkpoint import load_generator
from repro.config import (ARCH_ONLY_KEYS, HASHED_WHEN_NOT, VOLATILE_KEYS, Config, from_dict, snapshot_steps,
                          to_dict)
from repro.data import names_a_file, sha256_file


def git_commit() -> str:
    """The commit the code runs from (``+dirty`` when repro/, configs/ or notebooks/ differ)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.ROOT,
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "repro", "configs", "notebooks"],
                               cwd=paths.ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return ""


class RunLocked(RuntimeError):
    """Another process holds the run's lock (raised only when asked not to wait)."""


# ---------------------------------------------------------------------------------------------
# The run key


def named_files(cfg: Config | dict) -> dict[str, Path]:
    """Every file the config names by path, ``{config key: path}``; a missing one is a
    ``FileNotFoundError`` naming the key. Data names (``starry_night``) are left out: their
    contents are pinned by the data manifests' sha256."""
    d = to_dict(cfg) if isinstance(cfg, Config) else cfg
    found: dict[str, Path] = {}
    for key in ("style", "test_images"):
        for i, entry in enumerate(d.get("data", {}).get(key, [])):
            if names_a_file(entry):
                found[f"data.{key}[{i}]"] = Path(entry)
    ckpt = d.get("data", {}).get("transform_checkpoint")
    if ckpt and d["data"].get("transform") == "stylize":
        p = Path(ckpt)
        found["data.transform_checkpoint"] = p / "model.pt" if p.is_dir() else p
    for key, p in found.items():
        if not p.is_file():
            raise FileNotFoundError(2, f"{key}: file not found", str(p))
    return found


def config_hash(cfg: Config | dict) -> str:
    d = to_dict(cfg) if isinstance(cfg, Config) else json.loads(json.dumps(cfg))
    files = {key: sha256_file(p) for key, p in named_files(d).items()}
    for key in VOLATILE_KEYS:
        section, name = key.split(".")
        d.get(section, {}).pop(name, None)
    for key, archs in ARCH_ONLY_KEYS.items():
        section, name = key.split(".")
        if d.get("model", {}).get("arch") not in archs:
            d.get(section, {}).pop(name, None)
    for key, value in HASHED_WHEN_NOT.items():
        section, name = key.split(".")
        if d.get(section, {}).get(name) == value:
            d[section].pop(name)
    if files:  # absent when no file is named by path, so those runs keep their directories
        d["files_sha256"] = files
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def run_dir(cfg: Config, root: Path | None = None) -> Path:
    root = Path(root) if root else paths.runs_dir()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name) or "run"
    return root / f"{name}-{config_hash(cfg)[:10]}"


# ---------------------------------------------------------------------------------------------
# One writer per run


def _lock_paths(run: Path) -> tuple[Path, Path]:
    locks = Path(run).parent / ".locks"
    return locks / f"{Path(run).name}.lock", locks / f"{Path(run).name}.owner.json"


def holder(run: Path) -> str:
    """Who last took the run's lock, in words (the lock itself is the OS's)."""
    try:
        o = json.loads(_lock_paths(run)[1].read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o["since"]))
        return f"pid {o['pid']} on {o['host']} since {since}"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def lock(run: Path, wait: bool = True) -> Iterator[None]:
    """Hold the run's OS file lock (``filelock``; released by the OS if the holder dies).

    A second process on the same run waits (saying so on stderr), or with ``wait=False``
    raises :class:`RunLocked` naming the run and the holder."""
    lock_path, owner = _lock_paths(run)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # an OS lock or none: a marker-file fallback (filesystems without flock) would outlive a
    # killed holder
    strict = ({"fallback_to_soft": False}
              if "fallback_to_soft" in inspect.signature(FileLock).parameters else {})
    flock = FileLock(lock_path, **strict)
    try:
        flock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise RunLocked(f"run {run} is being trained by {holder(run)}; wait for it, or "
                            f"drop --no-wait to queue behind it") from None
        print(f"waiting for run {run}: held by {holder(run)}", file=sys.stderr, flush=True)
        flock.acquire()
    try:
        atomic_write_json(owner, {"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.time(), "argv": sys.argv})
        yield
    finally:
        flock.release()


# ---------------------------------------------------------------------------------------------
# Logs, and what a finished run must hold


def is_done(run: Path) -> bool:
    return (Path(run) / "done.json").is_file()


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of a log (a torn last line from a kill is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only the log lines of steps <= ``max_step`` (what the checkpoint already covers);
    steps after it will be recomputed identically on resume, so nothing is lost or doubled."""
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= max_step]
    atomic_write_bytes(Path(path), "".join(json.dumps(r) + "\n" for r in rows).encode())


def eval_steps(cfg: Config) -> list[int]:
    """The steps at which the trainer evaluates on held-out images (none without test images)."""
    if not cfg.data.test_images:
        return []
    every = cfg.train.eval_every
    return [s for s in range(1, cfg.optim.steps + 1)
            if (every and s % every == 0) or s == cfg.optim.steps]


def log_problems(run: Path, cfg: Config, upto: int) -> list[str]:
    """What is wrong with the logs of steps 1..``upto``: each must be logged exactly once,
    in order (``[]``: nothing)."""
    problems = []
    got = [r.get("step") for r in metrics(run)]
    if got != list(range(1, upto + 1)):
        problems.append(f"metrics.jsonl holds {_describe(got)}, expected steps 1..{upto} once each")
    want = [s for s in eval_steps(cfg) if s <= upto]
    got = [r.get("step") for r in evals(run)]
    if got != want:
        problems.append(f"eval.jsonl holds {_describe(got)}, expected {_describe(want)}")
    return problems


def _describe(steps: list) -> str:
    if not steps:
        return "no step"
    dup = len(steps) - len(set(steps))
    return (f"{len(steps)} rows (steps {steps[0]}..{steps[-1]}"
            + (f", {dup} repeated" if dup else "") + ")")


def done_problems(run: Path, cfg: Config) -> list[str]:
    """Why a run marked done cannot be trusted (``[]``: it can): its logs must hold every
    step exactly once, ``model.pt`` must exist, and ``done.json`` must agree with the logs."""
    problems = log_problems(run, cfg, cfg.optim.steps)
    if not (Path(run) / "model.pt").is_file():
        problems.append("model.pt is missing")
    try:
        s = summary(run)
    except (OSError, ValueError):
        return problems + ["done.json is unreadable"]
    if s.get("steps") != cfg.optim.steps:
        problems.append(f"done.json says {s.get('steps')} steps, the config {cfg.optim.steps}")
    if s.get("final_eval") != (evals(run) or [None])[-1]:
        problems.append("done.json's final_eval is not the last row of eval.jsonl")
    return problems


def reset(run: Path) -> None:
    """Empty a run directory but for its ``config.json`` (it will be trained again)."""
    for p in Path(run).iterdir():
        if p.name == "config.json":
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def snapshot_path(run: Path, step: int) -> Path:
    """Where the generator at ``step`` is kept (``train.snapshots``)."""
    return Path(run) / "snapshots" / f"step{int(step):06d}.pt"


def metrics(run: Path) -> list[dict]:
    return read_jsonl(Path(run) / "metrics.jsonl")


def evals(run: Path) -> list[dict]:
    return read_jsonl(Path(run) / "eval.jsonl")


def summary(run: Path) -> dict:
    return json.loads((Path(run) / "done.json").read_text())


def write_summary(run: Path, cfg: Config, extra: dict) -> None:
    """``done.json``, written last: only when the logs hold every step exactly once."""
    problems = log_problems(run, cfg, cfg.optim.steps)
    if problems:
        raise RuntimeError(f"run {run}: {problems[0]}; not marking it done")
    m = metrics(run)
    tail = m[-max(1, len(m) // 10):]
    atomic_write_json(Path(run) / "done.json", {
        **extra,
        "steps": cfg.optim.steps,
        "final_train": {k: sum(r[k] for r in tail) / len(tail)
                        for k in ("total", "content", "style", "tv") if tail and k in tail[0]},
        "final_eval": (evals(run) or [None])[-1],
    })


def finished(run: Path, cfg: Config) -> bool:
    """True for a finished run that can be trusted. A run marked done that cannot be is
    repaired: ``done.json`` rewritten when the logs are whole, else emptied to be trained again
    from step 0 (the only way to recompute missing rows exactly)."""
    if not is_done(run):
        return False
    problems = done_problems(run, cfg)
    if not problems:
        return True
    if not log_problems(run, cfg, cfg.optim.steps) and (Path(run) / "model.pt").is_file():
        try:
            old = summary(run)
        except (OSError, ValueError):
            old = {}
        write_summary(run, cfg, old)
        warnings.warn(f"run {run}: {problems[0]}; done.json rewritten from its logs", stacklevel=3)
        return True
    warnings.warn(f"run {run} was marked done but {problems[0]}; training it again from step 0",
                  stacklevel=3)
    reset(run)
    return False


@contextmanager
def removed_if_failed_early(run: Path):
    """A call that fails (bad input, divergence, Ctrl-C) before the run's first checkpoint
    leaves no directory behind: there is nothing in it worth resuming."""
    created = not Path(run).exists()
    try:
        yield
    except BaseException:
        if created and not (Path(run) / "checkpoint.pt").exists():
            shutil.rmtree(run, ignore_errors=True)
        raise


@dataclass(frozen=True)
class Run(os.PathLike):
    """A trained run, for notebooks and scripts: its directory, config, logs and model.

    Path-like: ``Path(run)``, ``run / "model.pt"`` and every function taking a run directory
    accept it."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def config(self) -> Config:
        return from_dict(json.loads((self.path / "config.json").read_text()))

    def snapshots(self) -> dict[int, Path]:
        """The generators kept along training, by step (``train.snapshots``), and the final
        model at ``optim.steps``; a snapshot the config asks for and the run lacks is an error."""
        steps = snapshot_steps(self.config)
        missing = [snapshot_path(self.path, s) for s in steps if not snapshot_path(self.path, s).is_file()]
        if missing:
            raise FileNotFoundError(2, f"snapshot missing ({len(missing)} of {len(steps)}; delete the run "
                                       "to train it again)", str(missing[0]))
        return {**{s: snapshot_path(self.path, s) for s in steps}, self.config.optim.steps: self.path / "model.pt"}

    def metrics(self) -> list[dict]:
        """One row per training step (losses, lr, images/s)."""
        return metrics(self.path)

    def evals(self) -> list[dict]:
        """Held-out losses at each evaluation step."""
        return evals(self.path)

    def summary(self) -> dict:
        """``done.json``: final train and held-out losses, device, precision, commit."""
        return summary(self.path)

    def load_model(self, device="cpu"):
        """The final generator, in eval mode."""
        return load_generator(self.path, device)
