"""Run directories keyed by a hash of the resolved config; finished runs are reused.

    runs/<name>-<hash10>/
        config.json        the full resolved config
        metrics.jsonl      one line per training step (losses, lr, images/s)
        eval.jsonl         held-out style/content losses every ``train.eval_every`` steps
        checkpoint.pt      latest checkpoint (model, optimizer, step, RNG states, config)
        model.pt           the final checkpoint, written when the run completes
        samples/           sample grids on held-out images
        done.json          written last: the run is finished and will be reused

Notebooks call ``train(config)`` freely: with ``done.json`` present it returns at once.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from repro import paths
from repro.atomic import atomic_write_bytes, atomic_write_json  # noqa: F401  (re-exported)
from repro.config import ARCH_ONLY_KEYS, VOLATILE_KEYS, Config, to_dict


def config_hash(cfg: Config | dict) -> str:
    d = to_dict(cfg) if isinstance(cfg, Config) else json.loads(json.dumps(cfg))
    for key in VOLATILE_KEYS:
        section, name = key.split(".")
        d.get(section, {}).pop(name, None)
    for key, arch in ARCH_ONLY_KEYS.items():
        section, name = key.split(".")
        if d.get("model", {}).get("arch") != arch:
            d.get(section, {}).pop(name, None)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def run_dir(cfg: Config, root: Path | None = None) -> Path:
    root = Path(root) if root else paths.runs_dir()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name) or "run"
    return root / f"{name}-{config_hash(cfg)[:10]}"


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


def metrics(run: Path) -> list[dict]:
    return read_jsonl(Path(run) / "metrics.jsonl")


def evals(run: Path) -> list[dict]:
    return read_jsonl(Path(run) / "eval.jsonl")


def summary(run: Path) -> dict:
    return json.loads((Path(run) / "done.json").read_text())
