"""Figure helpers: labelled image grids, loss curves, lean atomic PNG + PDF output."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt  # headless runs get Agg by default; kernels get inline
import numpy as np
import torch
from PIL import Image

from repro.atomic import atomic_write_bytes


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


# Size bounds of one committed figure (issue 21): every regeneration adds its files to git history.
MAX_PNG_BYTES = 1 << 20
MAX_PDF_BYTES = 2 << 20
MAX_FIGURES_BYTES = 12 << 20

PNG_COLOURS = 256
"""Figures are written as palette PNGs: a quarter of the RGBA bytes, and at 256 colours with
Floyd-Steinberg dithering stylized textures are indistinguishable at the README's width."""


def _palette(img: Image.Image) -> Image.Image:
    # median cut keeps the rare saturated colours of a painting that octree merges away
    return img.convert("RGB").quantize(PNG_COLOURS, method=Image.Quantize.MEDIANCUT,
                                       dither=Image.Dither.FLOYDSTEINBERG)


def encode_png(img: Image.Image) -> bytes:
    """The lean PNG encoding of a rendered figure: 256-colour palette, no metadata (byte-stable)."""
    buf = io.BytesIO()
    _palette(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _downsample_panels(fig, dpi: float) -> list[tuple]:
    """Replace each RGB(A) image panel by a copy resampled to its size on the page at ``dpi``
    and reduced to a 256-colour palette, shown without further interpolation: matplotlib's PDF
    backend then embeds it as an indexed image, a third of the bytes of full RGB. Returns what
    to restore."""
    saved = []
    fig.canvas.draw()  # settle the layout so the panels' extents are final
    for ax in fig.axes:
        for im in ax.get_images():
            data = np.asarray(im.get_array())
            if data.ndim != 3 or data.shape[-1] not in (3, 4):
                continue
            box = im.get_window_extent()
            w = max(1, round(box.width * dpi / fig.dpi))
            h = max(1, round(box.height * dpi / fig.dpi))
            u8 = data if data.dtype == np.uint8 else (np.clip(data, 0, 1) * 255 + 0.5).astype(np.uint8)
            small = Image.fromarray(u8[..., :3]).resize((w, h), Image.Resampling.LANCZOS)
            saved.append((im, im.get_array(), im.get_interpolation()))
            im.set_data(np.asarray(_palette(small).convert("RGB")))
            im.set_interpolation("none")  # vector backends embed 'none' images unresampled
    return saved


def save_figure(fig, name: str, out_dir: str | Path, dpi: int = 100) -> dict[str, Path]:
    """Write ``<out_dir>/<name>.png`` and ``.pdf`` atomically; return the paths.

    Lean by construction (issue 21): the PNG is rendered at ``dpi`` and stored as a palette
    image; the PDF keeps text and lines as vectors and embeds each image panel once, resampled
    to ``dpi`` and palette-indexed. Fixed metadata keeps both byte-stable when nothing changed."""
    out_dir = Path(out_dir)
    written = {}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    buf.seek(0)
    with Image.open(buf) as rendered:
        png = encode_png(rendered)
    atomic_write_bytes(out_dir / f"{name}.png", png)
    written["png"] = out_dir / f"{name}.png"
    saved = _downsample_panels(fig, dpi)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf", dpi=dpi, bbox_inches="tight", facecolor="white",
                    metadata={"CreationDate": None, "Producer": None})
    finally:  # the notebook's inline display keeps the full-resolution panels
        for im, data, interpolation in saved:
            im.set_data(data)
            im.set_interpolation(interpolation)
    atomic_write_bytes(out_dir / f"{name}.pdf", buf.getvalue())
    written["pdf"] = out_dir / f"{name}.pdf"
    return written
