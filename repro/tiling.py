"""Stylizing an image of any size in overlapping tiles, at bounded memory, with the result of
stylizing it whole.

Instance normalization (IN eq. 3) normalizes by the statistics of the *whole* image: a tile
normalized by its own statistics is a different image, and its seams show. So the statistics
of every IN layer (and of AdaIN's content features, AdaIN eq. 8) are first accumulated over the
whole image, tile by tile, and the image is then rendered tile by tile with them:

1. statistics passes, one per IN layer in the order the network calls them: every tile runs
   through the network up to that layer, the layers before it normalizing with the whole
   image's statistics already found, and the layer adds the count, mean and sum of squared
   deviations of its input over the tile's *core* to a running total (Chan et al.'s parallel
   variance, in float64). The tiles' cores partition the image, so each pixel counts once, and
   the totals are the whole image's statistics exactly (to float rounding).
2. render pass: every tile normalized with those statistics; its core is kept.

The statistics passes cost time, not memory: each runs the tiles up to its layer, so a tiled
call takes several times the whole-image time (bench/README.md). Each tile normalized by
its own statistics (``statistics="tile"``, kept for comparison) is far from the whole image
(bench/README.md). The AdaIN
encoder-decoder has one statistic (the content features') and needs one statistics pass; batch
norm in eval mode (running statistics) needs none.

Tiles overlap their neighbours by ``overlap`` pixels on each side, by default at least the
network's reach (:data:`DEFAULT_OVERLAP`), so a core pixel sees the same neighbourhood as in the
whole image; cores start at multiples of the generator's downsampling factor so every feature
map's grid lines up. A smaller ``overlap`` gives an approximation near the seams.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from repro.models._common import Generator, pad_to_multiple
from repro.norms import ConditionalInstanceNorm, InstanceNorm

DEFAULT_OVERLAP = {"residual": 64, "multiscale": 192, "adain": 64}
"""Pixels of context on each side of a core: at least how far one input pixel reaches in the
output, measured with the norms removed (residual 54 px, about 60 px with both of its blur
options, ``downsample`` and ``upsample="antialiased"``; multi-scale 157 px plus its 32 px
pooling grid, the AdaIN relu3_1 encoder-decoder 22 px); a core pixel then sees exactly what it
sees in the whole image."""


class _Moments:
    """Running count, mean and sum of squared deviations per channel (float64)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        # x: (1, C, h, w) core region of one tile
        n = x.shape[-2] * x.shape[-1]
        if n == 0:
            return
        var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.n = total

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.mean.float().view(1, -1, 1, 1), (self.m2 / self.n).float().view(1, -1, 1, 1))


class _Tile:
    """Where the current tile's core lies, in the coordinates of the tile fed to the network."""

    def __init__(self):
        self.hw = (1, 1)
        self.core = (0, 1, 0, 1)

    def region(self, x: torch.Tensor) -> torch.Tensor:
        (th, tw), (y0, y1, x0, x1) = self.hw, self.core
        fh, fw = x.shape[-2:]
        # cores start at multiples of the downsampling factor, so these divisions are exact
        return x[..., y0 * fh // th: y1 * fh // th, x0 * fw // tw: x1 * fw // tw]


class _Stop(Exception):
    """Raised by the layer whose statistics a pass is for: nothing after it is needed."""


@contextmanager
def _global_instance_norm(norms, tile: _Tile, collect: dict | None, stats: dict | None,
                          stop_after=None):
    """Within the block each IN / CIN layer in ``collect`` adds its core input to
    ``collect[layer]`` (``stop_after``: then ends the forward pass) and each layer in ``stats``
    normalizes with ``stats[layer]`` instead of its input's own statistics."""

    def patched(mod):
        original = type(mod).forward

        def forward(x, style=None):
            if collect is not None and mod in collect:
                collect[mod].add(tile.region(x))
                if mod is stop_after:
                    raise _Stop
            if stats is None or mod not in stats:
                return original(mod, x, style) if conditional else original(mod, x)
            mean, var = stats[mod]
            y = (x.float() - mean) * torch.rsqrt(var + mod.eps)
            if conditional:
                gamma, beta = mod.style_params(style)
                y = y * gamma.float()[:, :, None, None] + beta.float()[:, :, None, None]
            elif mod.weight is not None:
                y = y * mod.weight.float().view(1, -1, 1, 1) + mod.bias.float().view(1, -1, 1, 1)
            return y.to(x.dtype)

        conditional = isinstance(mod, ConditionalInstanceNorm)
        return forward

    for mod in norms:
        mod.forward = patched(mod)
    try:
        yield
    finally:
        for mod in norms:
            del mod.forward


def _norms_in_call_order(model, xp: torch.Tensor, style) -> list:
    """The IN / CIN layers in the order a forward pass calls them (on a small crop)."""
    norms = [mod for mod in model.modules() if isinstance(mod, (InstanceNorm, ConditionalInstanceNorm))]
    order: list = []
    hooks = [mod.register_forward_pre_hook(lambda mod, args: order.append(mod)) for mod in norms]
    try:
        side = max(model.min_size, model.multiple)
        model.body(xp[..., :side, :side], style)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def _cores(size: int, core: int) -> list[tuple[int, int]]:
    return [(a, min(a + core, size)) for a in range(0, size, core)]


def _tiles(h: int, w: int, core: int, overlap: int):
    """(tile box, core box relative to the tile) over an (h, w) canvas, row by row."""
    for y0, y1 in _cores(h, core):
        for x0, x1 in _cores(w, core):
            ty0, tx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            ty1, tx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            yield (ty0, ty1, tx0, tx1), (y0 - ty0, y1 - ty0, x0 - tx0, x1 - tx0)


def _round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def check_tile(tile, overlap) -> None:
    if not (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 64):
        raise ValueError(f"tile must be an integer >= 64 (pixels of a tile's core side), got {tile!r}")
    if overlap is not None and not (isinstance(overlap, int) and overlap >= 0):
        raise ValueError(f"overlap must be an integer >= 0, got {overlap!r}")


def tile_pixels(model, tile: int, overlap: int | None = None) -> int:
    """Pixels of the largest tile the network sees (for the memory estimate)."""
    m = getattr(model, "multiple", None) or getattr(model, "down", 1)
    side = _round_up(tile, m) + 2 * _round_up(overlap if overlap is not None else
                                               DEFAULT_OVERLAP.get(model.config["arch"], 64), m)
    return side * side


@torch.inference_mode()
def generator_tiled(model: Generator, x: torch.Tensor, style=None, *, tile: int = 512,
                    overlap: int | None = None, statistics: str = "whole") -> torch.Tensor:
    """``model(x, style)`` for a residual or multi-scale generator, computed tile by tile
    (``x``: (N, 3, H, W)). ``statistics="tile"`` normalizes each tile by its own statistics
    instead: the naive way, kept to measure what the statistics passes are for."""
    check_tile(tile, overlap)
    if statistics not in ("whole", "tile"):
        raise ValueError(f"statistics must be 'whole' or 'tile', got {statistics!r}")
    if model.config.get("noise_channels"):
        raise ValueError("tiling needs a deterministic generator; this one draws noise inputs")
    if x.shape[0] != 1:
        per_image = torch.is_tensor(style) and style.dim() > 0 and style.shape[0] == x.shape[0]
        return torch.cat([generator_tiled(model, x[i:i + 1], style[i:i + 1] if per_image else style,
                                          tile=tile, overlap=overlap, statistics=statistics)
                          for i in range(x.shape[0])])
    m = model.multiple
    overlap = DEFAULT_OVERLAP[model.config["arch"]] if overlap is None else overlap
    core, overlap = _round_up(tile, m), _round_up(overlap, m)
    h, w = x.shape[-2:]
    xp, (top, left) = pad_to_multiple(x, m, model.min_size)
    hp, wp = xp.shape[-2:]
    boxes = list(_tiles(hp, wp, core, overlap))
    if any(min(b[1] - b[0], b[3] - b[2]) < model.min_size for b, _ in boxes):
        raise ValueError(f"tile {tile} with overlap {overlap} leaves tiles under the generator's "
                         f"minimum side of {model.min_size} px; use a larger tile")
    where = _Tile()
    norms = _norms_in_call_order(model, xp, style)

    def run(collect=None, stats=None, out=None, stop_after=None):
        with _global_instance_norm(norms, where, collect, stats, stop_after):
            for (ty0, ty1, tx0, tx1), c in boxes:
                where.hw, where.core = (ty1 - ty0, tx1 - tx0), c
                try:
                    y = model.body(xp[..., ty0:ty1, tx0:tx1], style)
                except _Stop:
                    continue
                if out is not None:
                    out[..., ty0 + c[0]: ty0 + c[1], tx0 + c[2]: tx0 + c[3]] = y[..., c[0]:c[1], c[2]:c[3]]

    stats = None
    if norms and len(boxes) > 1 and statistics == "whole":
        # one pass per layer, in the order the network calls them, each normalizing the layers
        # before it with the whole image's statistics and stopping at its own
        stats = {}
        for mod in norms:
            acc = {mod: _Moments()}
            run(collect=acc, stats=stats, stop_after=mod)
            stats[mod] = acc[mod].mean_var()
    out = torch.empty(1, 3, hp, wp, device=x.device, dtype=torch.float32)
    run(stats=stats, out=out)
    y = out[..., top:top + h, left:left + w]
    return torch.sigmoid(y) if model.config["output"] == "sigmoid" else y


@torch.inference_mode()
def adain_tiled(model, x: torch.Tensor, styles: list[torch.Tensor], *, alpha: float = 1.0,
                style_weights=None, tile: int = 512, overlap: int | None = None) -> torch.Tensor:
    """``model(x, styles, ...)`` for the AdaIN encoder-decoder, tile by tile: one pass for the
    content features' statistics (AdaIN eq. 8's mu(x), sigma(x)), one to render."""
    check_tile(tile, overlap)
    if x.shape[0] != 1:
        return torch.cat([adain_tiled(model, xi[None], styles, alpha=alpha, style_weights=style_weights,
                                      tile=tile, overlap=overlap) for xi in x])
    m = model.down
    overlap = DEFAULT_OVERLAP["adain"] if overlap is None else overlap
    core, overlap = _round_up(tile, m), _round_up(overlap, m)
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    xp = x
    if ph or pw:  # as AdaINNet.forward pads
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        xp = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
    hp, wp = xp.shape[-2:]
    boxes = list(_tiles(hp, wp, core, overlap))
    style_feats = [model.encode(s) for s in styles]
    where, acc = _Tile(), _Moments()
    for (ty0, ty1, tx0, tx1), c in boxes:
        where.hw, where.core = (ty1 - ty0, tx1 - tx0), c
        acc.add(where.region(model.encode(xp[..., ty0:ty1, tx0:tx1])))
    mean, var = acc.mean_var()
    stats = (mean, torch.sqrt(var + 1e-5))
    out = torch.empty(1, 3, hp, wp, device=x.device, dtype=torch.float32)
    for (ty0, ty1, tx0, tx1), c in boxes:
        fc = model.encode(xp[..., ty0:ty1, tx0:tx1])
        y = model.decoder(model.target(fc, style_feats, style_weights, alpha, content_stats=stats))
        out[..., ty0 + c[0]: ty0 + c[1], tx0 + c[2]: tx0 + c[3]] = y[..., c[0]:c[1], c[2]:c[3]]
    return out[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]


def n_tiles(h: int, w: int, tile: int) -> int:
    return math.ceil(h / tile) * math.ceil(w / tile)
