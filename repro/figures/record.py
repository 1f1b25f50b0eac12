"""``FigureRecord``: what one figure notebook measured, written as ``<figure>.json``.

The file holds the numbers, the paper's claims with our measurement and whether each holds,
the deviations from the paper, findings, the parameters, profile and git commit. It goes to the
profile's figures folder (``config.figures_dir``), beside the PNG and PDF, where the pipeline
builds REPORT.md from every record.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from repro import config, precision
from repro.atomic import atomic_write_json
from repro.runs import git_commit


def _plain(x: Any) -> Any:
    """JSON-able copy: tensors and numpy scalars to floats/lists, non-finite floats to None."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().tolist()
    if hasattr(x, "item") and not isinstance(x, (list, dict)):
        try:
            x = x.item()
        except Exception:
            pass
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


class FigureRecord:
    """The numbers and claims of one figure at one profile.

        rec = FigureRecord("in_fig2_contrast", profile="cpu", params={...})
        rec.numbers["elasticity_content"] = 0.12
        rec.claim("output contrast follows the style, not the content", measured="...",
                  holds=..., paper="IN Fig. 2")
        rec.deviation("style layers relu1_1..relu3_1 (paper: up to relu5_1)")
        rec.note("what was tried at this profile, and why these settings")
        plots.save_figure(fig, rec.figure, rec.out_dir)
        rec.save()

    ``out_dir`` is the profile's figures folder unless given.
    """

    def __init__(self, figure: str, profile: str, params: dict | None = None, title: str = "",
                 out_dir: str | Path | None = None):
        self.figure, self.profile, self.title = figure, profile, title
        self.dry_run = config.is_dry_run(profile)
        self.out_dir = Path(out_dir) if out_dir is not None else config.figures_dir(profile)
        self.params = dict(params or {})
        self.numbers: dict[str, Any] = {}
        self.claims: list[dict] = []
        self.deviations: list[str] = []
        self.notes: list[str] = []
        if self.dry_run:  # never mistaken for a figure: random VGG weights, a few steps
            self.title = f"DRY RUN ({profile}): {title}"
            self.deviations.append(f"DRY RUN of profile {config.dry_run_of(profile)}: tiny images, a few "
                                   "steps, random VGG-19 weights where the profile downloads them; "
                                   "the numbers mean nothing")
        self._t0 = time.perf_counter()

    def claim(self, statement: str, measured: str, holds: bool, *, paper: str = "",
              assert_at: tuple[str, ...] | None = None) -> bool:
        """Record a claim. It is *asserted* (the notebook fails when it does not hold) at the
        profiles whose YAML says ``figures: {assert_claims: true}``, or only at those named in
        ``assert_at`` (a claim that needs the paper's scale); elsewhere it is only recorded."""
        holds = bool(holds)
        self.claims.append({"statement": statement, "measured": measured, "holds": holds,
                            "paper": paper,
                            "asserted": (self.profile in assert_at if assert_at is not None
                                         else config.asserts_claims(self.profile))})
        return holds

    def deviation(self, text: str) -> None:
        if text not in self.deviations:
            self.deviations.append(text)

    def note(self, text: str) -> None:
        """A finding worth reading beside the claims (REPORT.md lists them): what was tried,
        why a setting was chosen, why a claim does not hold at this scale."""
        if text not in self.notes:
            self.notes.append(text)

    def check(self) -> None:
        """Raise AssertionError listing the asserted claims that do not hold."""
        failed = [c["statement"] for c in self.claims if c["asserted"] and not c["holds"]]
        assert not failed, f"{self.figure} ({self.profile}): claims do not hold: {failed}"

    def to_dict(self) -> dict:
        return _plain({"figure": self.figure, "title": self.title, "profile": self.profile,
                       "dry_run": self.dry_run, "params": self.params, "numbers": self.numbers, "claims": self.claims,
                       "deviations": self.deviations, "notes": self.notes, "git_commit": git_commit(),
                       "seconds": round(time.perf_counter() - self._t0, 1),
                       "machine": precision.machine_description(),
                       "torch": torch.__version__})

    def save(self, out_dir: str | Path | None = None) -> Path:
        """Write ``<figure>.json`` into ``out_dir`` (default: ``self.out_dir``)."""
        path = Path(self.out_dir if out_dir is None else out_dir) / f"{self.figure}.json"
        atomic_write_json(path, self.to_dict())
        return path
