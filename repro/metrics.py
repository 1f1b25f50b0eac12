"""Measurements the figures report, and the record each figure notebook writes.

``FigureRecord`` collects a figure's numbers and claims and writes ``<figure>.json`` (numbers,
claims, profile, parameters, deviations from the paper, git commit) atomically; ``figures.py``
builds REPORT.md from those files.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from repro.runs import atomic_write_json, git_commit


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
        rec.save(out_dir)
    """

    def __init__(self, figure: str, profile: str, params: dict | None = None, title: str = ""):
        self.figure, self.profile, self.title = figure, profile, title
        self.params = dict(params or {})
        self.numbers: dict[str, Any] = {}
        self.claims: list[dict] = []
        self.deviations: list[str] = []
        self.notes: list[str] = []
        self._t0 = time.perf_counter()

    def claim(self, statement: str, measured: str, holds: bool, *, paper: str = "",
              assert_at: tuple[str, ...] = ("cpu", "paper")) -> bool:
        """Record a claim. It is *asserted* (the notebook fails when it does not hold) at the
        profiles in ``assert_at``; at others (smoke) it is only recorded."""
        holds = bool(holds)
        self.claims.append({"statement": statement, "measured": measured, "holds": holds,
                            "paper": paper, "asserted": self.profile in assert_at})
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
                       "params": self.params, "numbers": self.numbers, "claims": self.claims,
                       "deviations": self.deviations, "notes": self.notes, "git_commit": git_commit(),
                       "seconds": round(time.perf_counter() - self._t0, 1),
                       "torch": torch.__version__})

    def save(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / f"{self.figure}.json"
        atomic_write_json(path, self.to_dict())
        return path


def relative_gap(a: float, b: float) -> float:
    """(a - b) / a: how much lower b is than a, as a fraction of a."""
    return (a - b) / a if a else float("nan")


def log_slope(x, y) -> float:
    """Least-squares slope of log(y) on log(x): the elasticity of y with respect to x
    (1: proportional; 0: independent)."""
    lx = torch.log(torch.as_tensor(x, dtype=torch.float64))
    ly = torch.log(torch.as_tensor(y, dtype=torch.float64))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


def load_record(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def border_artifacts(img: torch.Tensor, band: int = 8) -> dict[str, float]:
    """Frame-like structure along the image border (IN Fig. 3).

    The artifacts of a zero-padded generator are stripes and frames *parallel* to the image
    edges. In a ``band``-pixel strip along each edge this compares the gradient energy across
    the edge (which stripes parallel to it create) with the energy along it:
    ``log(E_across / E_along)``, from forward differences of the channel-mean image. Texture and
    photos score about 0 on average (their structure has no preferred orientation relative to
    the nearest edge; a horizon can tilt one image either way); a frame scores well above 0.

    Returns each side's value (``top``, ``bottom``, ``left``, ``right``) and their mean,
    ``score``. A batch (N, C, H, W) gives the means over images.
    """
    if img.dim() == 4:
        vals = [border_artifacts(i, band) for i in img]
        return {k: sum(v[k] for v in vals) / len(vals) for k in vals[0]}
    if img.dim() != 3 or band < 1 or min(img.shape[-2:]) <= 4 * band:
        raise ValueError(f"border_artifacts needs a (C, H, W) image larger than 4*band={4 * band} "
                         f"pixels (band >= 1), got {tuple(img.shape)}")
    g = img.float().mean(0)
    # both differences on the same (H-1, W-1) grid
    across_rows = (g[1:, :-1] - g[:-1, :-1]) ** 2      # vertical change: horizontal stripes
    across_cols = (g[:-1, 1:] - g[:-1, :-1]) ** 2      # horizontal change: vertical stripes
    eps = 1e-10

    def ratio(across, along):
        return float(torch.log((across.mean() + eps) / (along.mean() + eps)))

    sides = {
        "top": ratio(across_rows[:band], across_cols[:band]),
        "bottom": ratio(across_rows[-band:], across_cols[-band:]),
        "left": ratio(across_cols[:, :band], across_rows[:, :band]),
        "right": ratio(across_cols[:, -band:], across_rows[:, -band:]),
    }
    return {**sides, "score": sum(sides.values()) / 4}
