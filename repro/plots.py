"""Figure helpers: labelled image grids, loss curves, atomic PNG + PDF output."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt  # headless runs get Agg by default; kernels get inline
import numpy as np
import torch

from repro.runs import atomic_write_bytes


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) array for imshow."""
    img = img.detach().float().cpu()
    if img.dim() == 4:
        img = img[0]
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def image_grid(rows: Sequence[Sequence[torch.Tensor | None]], *, row_labels=None, col_labels=None,
               titles=None, cell: float = 2.2, fontsize: int = 9):
    """A grid of images (None leaves a cell empty); labels on the left and on top, optional
    per-cell titles (same nesting as ``rows``). Returns the matplotlib figure."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    # rows as tall as the images in them (height/width), so wide cells leave no gaps
    aspects = [max((im.shape[-2] / im.shape[-1] for im in r if im is not None), default=1.0) for r in rows]
    extra = 0.35 if (titles is not None or col_labels is not None) else 0.0
    heights = [cell * a + extra for a in aspects]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            img = rows[i][j] if j < len(rows[i]) else None
            if img is not None:
                ax.imshow(to_numpy(img), interpolation="lanczos")
            if titles is not None and j < len(titles[i]) and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=fontsize)
            if col_labels is not None and i == 0 and j < len(col_labels) and not (titles and titles[0][j]):
                ax.set_title(col_labels[j], fontsize=fontsize)
            if row_labels is not None and j == 0:
                ax.set_ylabel(row_labels[i], fontsize=fontsize)
    fig.tight_layout()
    return fig


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Centered moving average (edges use the available neighbours)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < 2:
        return v
    kernel = np.ones(window)
    num = np.convolve(v, kernel, mode="same")
    den = np.convolve(np.ones_like(v), kernel, mode="same")
    return num / den


def loss_curve(ax, steps, values, *, label, color=None, window: int = 1, raw_alpha: float = 0.25,
               logy: bool = False):
    """Raw values faint, the smoothed curve solid."""
    if window > 1:
        ax.plot(steps, values, color=color, alpha=raw_alpha, linewidth=0.8)
    line, = ax.plot(steps, smooth(values, window), color=color, label=label, linewidth=1.6)
    if logy:
        ax.set_yscale("log")
    return line


def save_figure(fig, name: str, out_dir: str | Path, dpi: int = 120) -> dict[str, Path]:
    """Write ``<out_dir>/<name>.png`` and ``.pdf`` atomically; return the paths."""
    out_dir = Path(out_dir)
    written = {}
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        # fixed metadata keeps regenerated PDFs/PNGs byte-stable when nothing changed
        meta = {"Software": None} if ext == "png" else {"CreationDate": None, "Producer": None}
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight", metadata=meta)
        path = out_dir / f"{name}.{ext}"
        atomic_write_bytes(path, buf.getvalue())
        written[ext] = path
    return written
