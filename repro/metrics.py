"""Pure measurements the figures report: relative gaps, elasticities, border artifacts,
the optimization iterations a result is worth, style identifiability.

Each takes numbers or images and returns numbers; the record a figure writes with them is
``repro.figures.FigureRecord``.
"""
from __future__ import annotations

import math

import torch


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


def iterations_worth(style_curve, content_curve, style: float, content: float | None = None) -> int | None:
    """How many optimization iterations a result is worth: the first k whose style loss
    ``style_curve[k]`` is at or below ``style`` while ``content_curve[k]`` is at or below
    ``content`` (None: style alone); None when the curve never gets there. Index 0 is the
    starting image (Gatys et al. from the photo)."""
    if len(style_curve) != len(content_curve):
        raise ValueError(f"curves of {len(style_curve)} and {len(content_curve)} points")
    for k, (s, c) in enumerate(zip(style_curve, content_curve)):
        if s <= style and (content is None or c <= content):
            return k
    return None


def identifiability(raw, own) -> dict:
    """Whether stylizations are recognisably their own style. ``raw[i][j]``: the style loss of
    the output made for style i scored against style j; ``own[j]``: the content photos' own loss
    against style j, which divides column j (paintings' losses differ in scale).

    Returns the relative matrix, whether every row's minimum lies on the diagonal (relative and
    raw) and the margin: the smallest ratio, over rows, of the nearest other style's relative
    loss to the row's own (above 1: every row is closest to its own style)."""
    raw = torch.as_tensor(raw, dtype=torch.float64)
    own = torch.as_tensor(own, dtype=torch.float64)
    n = raw.shape[0]
    if raw.dim() != 2 or raw.shape != (n, n) or own.shape != (n,) or n < 2:
        raise ValueError(f"need an S x S matrix (S >= 2) and S photo losses, got {tuple(raw.shape)} "
                         f"and {tuple(own.shape)}")
    rel = raw / own[None, :]
    diag = torch.arange(n)
    off = rel.masked_fill(torch.eye(n, dtype=torch.bool), float("inf"))
    return {"relative": rel.tolist(), "raw": raw.tolist(),
            "diagonal_min_relative": bool((rel.argmin(1) == diag).all()),
            "diagonal_min_raw": bool((raw.argmin(1) == diag).all()),
            "margin": float((off.min(1).values / rel.diagonal()).min())}


def _luminance(img: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of RGB (..., 3, H, W) -> (..., H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64, device=img.device)
    return (img.double() * w[:, None, None]).sum(-3)


def contrast_ratio(outputs, photos) -> float:
    """How much contrast a generator kept: the mean over images of the output's luminance
    standard deviation divided by its photo's. A generator collapsed to a flat image scores
    near 0; the untrained residual generator (sigmoid of a small output) scores about 0.25."""
    pairs = list(zip(outputs, photos, strict=True))
    if not pairs:
        raise ValueError("contrast_ratio needs at least one (output, photo) pair")
    ratios = []
    for y, x in pairs:
        if y.shape[-3] != 3 or x.shape[-3] != 3:
            raise ValueError(f"contrast_ratio needs RGB images, got {tuple(y.shape)} and {tuple(x.shape)}")
        sx = float(_luminance(x).std())
        if not sx > 0:
            raise ValueError("contrast_ratio: a photo is flat (zero luminance std)")
        ratios.append(float(_luminance(y).std()) / sx)
    return sum(ratios) / len(ratios)


COLLAPSE_CONTRAST = 0.4
COLLAPSE_PROGRESS = 0.5


def collapsed(contrast: float, style_progress: float) -> bool:
    """Issue 18's collapse test, written before it was first measured: a generator has collapsed
    when its outputs are flat (``contrast_ratio`` below ``COLLAPSE_CONTRAST``; the untrained
    residual generator scores about 0.25) or training took off less than half of the untrained
    generator's held-out style loss (``style_progress``, after over before, above
    ``COLLAPSE_PROGRESS``)."""
    return contrast < COLLAPSE_CONTRAST or style_progress > COLLAPSE_PROGRESS


def _spectral_peak_db(imgs, max_period: float, neighbourhood: int) -> tuple[float, tuple[float, float]]:
    """The largest excess (dB) of the images' mean power spectrum over its local median, among
    the frequencies of a pattern with a period of ``max_period`` px or less along x or y, and
    that frequency (cycles/px along y, x)."""
    size = min(min(i.shape[-2:]) for i in imgs)
    power = 0.0
    for img in imgs:
        h, w = img.shape[-2:]
        g = _luminance(img)[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size]
        win = torch.hann_window(size, periodic=False, dtype=torch.float64)
        g = (g - g.mean()) * win[:, None] * win[None, :]   # the window keeps the border's jump out
        power = power + torch.fft.fft2(g).abs() ** 2
    # averaged over images: a generator's pattern sits at the same frequencies in every output,
    # a texture's or a photo's peaks do not
    power = power / len(imgs) + 1e-20
    k = neighbourhood
    padded = torch.nn.functional.pad(power[None, None], (k // 2,) * 4, mode="circular")[0, 0]
    local = padded.unfold(0, k, 1).unfold(1, k, 1).reshape(size, size, k * k).median(-1).values
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    band = torch.maximum(f.abs()[:, None], f.abs()[None, :]) >= 1.0 / max_period
    excess = (10 * torch.log10(power / local)).masked_fill(~band, float("-inf"))
    i = int(excess.argmax())
    return float(excess.flatten()[i]), (float(f[i // size]), float(f[i % size]))


def periodic_artifacts(outputs, photos, max_period: float = 4.0, neighbourhood: int = 9) -> dict:
    """A fine periodic pattern (a 2-4 px hatch or checkerboard) in a generator's outputs.

    For outputs and photos separately: the luminance of each image's central square (all
    squares the size of the smallest side), Hann-windowed; the power spectra averaged over the
    images; at every frequency whose period is ``max_period`` px or less along x or y, the
    power over the median of its ``neighbourhood`` x ``neighbourhood`` frequency neighbours, and
    the largest such peak in dB. Returns ``output_peak_db``, ``photo_peak_db`` and
    ``excess_db``, their difference: about 0 when the outputs carry no periodic pattern the
    photos lack; a hatch in every output stands out by 10 dB or more. ``output_peak_frequency``
    is where the outputs' peak lies, (cycles/px along y, x): its inverse is the period."""
    outputs, photos = list(outputs), list(photos)
    if not outputs or not photos:
        raise ValueError("periodic_artifacts needs at least one output and one photo")
    if max_period < 2 or neighbourhood < 3 or neighbourhood % 2 == 0:
        raise ValueError(f"periodic_artifacts: max_period >= 2 and an odd neighbourhood >= 3, got "
                         f"max_period={max_period!r}, neighbourhood={neighbourhood!r}")
    if min(min(i.shape[-2:]) for i in outputs + photos) < 4 * neighbourhood:
        raise ValueError(f"periodic_artifacts needs images of at least {4 * neighbourhood} px a side")
    (out, where), (ref, _) = (_spectral_peak_db(i, max_period, neighbourhood) for i in (outputs, photos))
    return {"output_peak_db": out, "photo_peak_db": ref, "excess_db": out - ref,
            "output_peak_frequency": list(where)}


def budget_trend(steps, values, bound: float, *, holds_below: bool, last: int = 3,
                 horizon: float = 64.0) -> dict:
    """Where a claim's statistic goes with the training budget (issue 18): ``values`` measured at
    ``steps`` (increasing); the claim holds where the value is at most ``bound``
    (``holds_below``) or above it.

    The trend is a least-squares line of the value on log2(steps) through the ``last`` points:
    ``per_doubling`` is its slope. ``toward`` says whether it moves towards holding. When the
    claim does not hold at the last step and the line moves towards the bound, ``crossing`` is
    the step where the line meets it, if that is within ``horizon`` times the last step (else
    None: too far to extrapolate)."""
    steps = [float(s) for s in steps]
    values = [float(v) for v in values]
    if len(steps) != len(values) or len(steps) < 2:
        raise ValueError(f"budget_trend needs at least 2 (step, value) pairs of equal length, got "
                         f"{len(steps)} steps and {len(values)} values")
    if any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] <= 0:
        raise ValueError(f"budget_trend: steps must be positive and increasing, got {steps}")
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise ValueError(f"budget_trend: values must be finite, got {values}")
    x = torch.log2(torch.tensor(steps[-last:], dtype=torch.float64))
    y = torch.tensor(values[-last:], dtype=torch.float64)
    xm, ym = x.mean(), y.mean()
    slope = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    holds = values[-1] <= bound if holds_below else values[-1] > bound
    toward = slope < 0 if holds_below else slope > 0
    crossing = None
    if not holds and toward:
        at = float(xm) + (bound - float(ym)) / slope  # log2 of the step: a flat line overflows 2**
        crossing = 2 ** at if at <= math.log2(horizon * steps[-1]) else None
    return {"holds": holds, "per_doubling": slope, "toward": toward, "crossing": crossing}
