"""Load and save images robustly; resize, crop, contrast and histogram operations.

Every image tensor here is float RGB in [0, 1], shaped ``(3, H, W)`` or ``(N, 3, H, W)``.

Which experiment needs what:

- every figure: :func:`load_image`, :func:`save_image`, :func:`resize_shorter`,
  :func:`center_crop` (held-out images, IN Fig. 4 and 6, the AdaIN method, CIN);
- training (IN Fig. 3-5, AdaIN Fig. 1, CIN): :func:`random_crop`;
- IN Fig. 2 (contrast invariance): :func:`scale_contrast` makes content / style images of
  lower or higher contrast, :func:`rms_contrast` measures the contrast of the results;
- AdaIN Fig. 1 (b) ("contrast-normalized" training images):
  :func:`equalize_luminance_histogram`.

Decisions worth knowing:

- **Luminance** is Rec. 601 luma, ``Y' = 0.299 R' + 0.587 G' + 0.114 B'``, computed on the
  gamma-encoded values as stored.  These are the JPEG/JFIF YCbCr weights (so equalization works
  in the same space JPEG stores) and what PIL's ``convert("L")`` uses.
- **Transparency** (RGBA, LA, PA, palette or RGB/L with a ``tRNS`` colour) is composited onto a
  *white* background (``background=`` changes it): the way viewers and web pages show such
  images, and a fully transparent pixel otherwise has no defined colour.
- **16-bit PNG.**  Grayscale 16-bit PNGs open in PIL as ``I;16`` and are scaled by 1/65535.
  PIL opens 16-bit *colour* PNGs (RGB 48-bit, RGBA 64-bit, LA 32-bit) as 8-bit modes, keeping the
  high byte: correctly scaled, but only 8 bits of precision.  For those files the pixels are
  decoded again with ``torchvision.io.decode_png``, which keeps all 16 bits; if that is not
  available (torchvision deprecated its decoders in 0.29 and will remove them), the 8-bit PIL
  result is used and a warning says so.  16-bit grayscale or RGB PNGs with a ``tRNS`` colour
  key stay on PIL's path.
- **Mode ``I``** (32-bit integer, what older PIL versions gave for 16-bit PNGs) is taken as
  16-bit data and scaled by 1/65535; values outside [0, 65535] are an error, since no scale can be
  guessed.  **Mode ``F``** (float) is taken as already in [0, 1] and clamped.
- **CMYK** uses PIL's plain conversion (no ICC colour management).
- **Multi-frame** files (GIF, TIFF) give their first frame.
- **EXIF orientation** is applied, so the tensor is upright as a viewer shows it.
- **Truncated or corrupt** files raise :class:`ImageLoadError`: every file is decoded fully while
  the error is caught.  ``ImageFile.LOAD_TRUNCATED_IMAGES`` and PIL's decompression-bomb limits
  are left as the user set them (a bomb is reported as an :class:`ImageLoadError`).
- **Crops never upscale**: asking for a crop larger than the image is a ``ValueError``; resize
  first with :func:`resize_shorter` when that is what you mean.  Silent upscaling would change the
  pixel size of strokes and textures, which several figures measure.
"""
from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from repro.atomic import atomic_open
from repro.paths import nearest_existing

__all__ = [
    "ImageLoadError",
    "as_image",
    "check_output_path",
    "check_resize_shorter",
    "LUMA_WEIGHTS",
    "load_image",
    "save_image",
    "to_pil",
    "resize",
    "resize_shorter",
    "center_crop",
    "random_crop",
    "rgb_to_luminance",
    "rms_contrast",
    "scale_contrast",
    "equalize_luminance_histogram",
]

PathLike = Union[str, "os.PathLike[str]"]
Size = Union[int, Sequence[int]]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""Rec. 601 luma weights for R', G', B' (JPEG/JFIF YCbCr, PIL's ``convert("L")``)."""

# Full-range YCbCr (JFIF): Cb = (B' - Y') / _CB_SCALE, Cr = (R' - Y') / _CR_SCALE.
_CB_SCALE = 2.0 * (1.0 - LUMA_WEIGHTS[2])
_CR_SCALE = 2.0 * (1.0 - LUMA_WEIGHTS[0])

_EXIF_ORIENTATION = 0x0112


class ImageLoadError(ValueError):
    """A file exists but cannot be read as an image (corrupt, truncated, not an image, ...)."""

    def __init__(self, path: PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot load image {self.path!r}: {reason}")

    def __reduce__(self):  # picklable across worker processes despite the 2-argument init
        return (type(self), (self.path, self.reason))


# --------------------------------------------------------------------------------------------
# loading

def load_image(
    path: PathLike,
    size: Size | None = None,
    *,
    background: Sequence[float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """Read an image file as a float32 RGB tensor ``(3, H, W)`` in [0, 1].

    ``size``: ``None`` keeps the file's size; an ``int`` resizes so that the *shorter* side equals
    it (aspect kept, antialiased); ``(h, w)`` resizes to exactly that.  ``background`` is the RGB
    colour, in [0, 1], that transparent pixels are composited onto.

    Raises ``FileNotFoundError`` for a missing file and :class:`ImageLoadError` (a
    ``ValueError``) naming the path and the reason for anything that is not a readable image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "image file not found", os.fspath(path))
    if path.is_dir():
        raise ImageLoadError(path, "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "the file is empty")
    bg = torch.as_tensor(background, dtype=torch.float32).reshape(-1)
    if bg.numel() != 3 or not bool(((bg >= 0) & (bg <= 1)).all()):
        raise ValueError(f"background must be 3 values in [0, 1], got {background!r}")

    try:
        with Image.open(path) as img:
            # Image.open only reads the header; decode everything now so that a truncated or
            # corrupt file fails here (inside the try) and not later, half-loaded.
            img.load()
            orientation = _orientation(img)
            precise = _png16_colour(path, img)
            img = ImageOps.exif_transpose(img)
            out = _pil_to_tensor(img, bg, path)
    except Image.DecompressionBombError as e:
        raise ImageLoadError(path, f"decompression bomb refused by PIL ({e})") from e
    except ImageLoadError:
        raise
    except Exception as e:  # PIL signals bad data with many types (OSError, SyntaxError, ...)
        raise ImageLoadError(path, f"{type(e).__name__}: {e}") from e

    if precise:
        t16 = _decode_png16(path)
        if t16 is not None:
            t16 = _orient_tensor(_composite(t16, bg), orientation)
            if t16.shape == out.shape:
                out = t16

    if size is not None:
        out = resize_shorter(out, size) if isinstance(size, int) else resize(out, size)
    return out.contiguous()


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1


def _png16_colour(path: Path, img: Image.Image) -> bool:
    """True for a 16-bit colour PNG (which PIL reduces to 8 bits) without a tRNS colour."""
    if img.format != "PNG" or "transparency" in img.info:
        return False
    with open(path, "rb") as f:
        head = f.read(26)
    # PNG signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4), then
    # bit depth and colour type.
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


def _decode_png16(path: Path) -> torch.Tensor | None:
    """All 16 bits of a colour PNG as float ``(C, H, W)``, or None (then PIL's 8 bits are kept)."""
    try:
        from torchvision.io import ImageReadMode, decode_png, read_file

        with warnings.catch_warnings():
            # torchvision >= 0.29 deprecates its decoders; when they are gone we fall back
            # below, so the notice is noise to our users.
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = decode_png(read_file(os.fspath(path)), mode=ImageReadMode.UNCHANGED)
        if raw.dtype != torch.uint16:
            raise RuntimeError(f"decode_png returned {raw.dtype}")
        return raw.to(torch.int32).to(torch.float32) / 65535.0
    except Exception as e:
        warnings.warn(
            f"{path}: 16-bit colour PNG loaded at 8-bit precision (torchvision could not decode "
            f"it: {type(e).__name__}: {e})",
            stacklevel=3,
        )
        return None


def _pil_to_tensor(img: Image.Image, bg: torch.Tensor, path: Path) -> torch.Tensor:
    mode = img.mode
    if mode in ("P", "PA", "L", "RGB", "1") and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode in ("RGBa", "PA"):
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode == "La":
        img, mode = img.convert("LA"), "LA"

    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":
        a = np.asarray(img)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise ImageLoadError(path, f"32-bit integer pixels span [{lo}, {hi}], outside the "
                                       "16-bit range; cannot tell their scale")
        arr = a.astype(np.float32) / 65535.0
    elif mode == "F":
        arr = np.asarray(img).astype(np.float32)
        if not np.isfinite(arr).all():
            raise ImageLoadError(path, "float image contains NaN or infinite values")
        arr = np.clip(arr, 0.0, 1.0)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(img).astype(np.float32) / 255.0
    else:  # 1, P, CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(img.convert("RGB")).astype(np.float32) / 255.0

    t = torch.from_numpy(np.ascontiguousarray(arr))
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return _composite(t, bg)


def _composite(t: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """(1|2|3|4, H, W) gray / gray+alpha / RGB / RGBA -> RGB composited onto ``bg``."""
    c = t.shape[0]
    if c in (2, 4):
        # gray + alpha becomes RGB here, since the background may be coloured
        color, alpha = t[:-1], t[-1:]
        t = color * alpha + bg.view(3, 1, 1) * (1.0 - alpha)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.clamp(0.0, 1.0).to(torch.float32)


def _orient_tensor(t: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation to ``(C, H, W)`` exactly as ``ImageOps.exif_transpose`` does."""
    hw = (-2, -1)
    if orientation == 2:
        return t.flip(-1)
    if orientation == 3:
        return t.flip(hw)
    if orientation == 4:
        return t.flip(-2)
    if orientation == 5:
        return t.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(t, -1, hw)
    if orientation == 7:
        return t.transpose(-2, -1).flip(hw)
    if orientation == 8:
        return torch.rot90(t, 1, hw)
    return t


# --------------------------------------------------------------------------------------------
# images handed to the API

_RANGE_TOLERANCE = 1e-3  # floats this far outside [0, 1] are rounding (resampling), clamped


def as_image(image, name: str = "image") -> torch.Tensor:
    """An image given to the API as a float32 tensor ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1].

    Accepted, and converted where the meaning is unambiguous:

    - a float tensor in [0, 1] (values within 1e-3 outside are clamped);
    - a ``uint8`` tensor or numpy array: divided by 255;
    - a numpy array shaped ``(H, W)``, ``(H, W, 1|3|4)`` (channels last, as PIL, imageio and
      matplotlib give them; alpha composited on white) or ``(3, H, W)``; ``uint16``: / 65535;
    - a PIL image (any mode, as :func:`load_image` converts it).

    Refused with a ``ValueError`` naming ``name`` and saying what was expected: NaN or infinite
    values, floats outside [0, 1] (a [0, 255] or [-1, 1] image), other dtypes, other shapes,
    empty sides.
    """
    if isinstance(image, Image.Image):
        image.load()
        return _pil_to_tensor(ImageOps.exif_transpose(image), torch.ones(3), name).contiguous()
    if isinstance(image, np.ndarray):
        image = _numpy_to_tensor(image, name)
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an image path, a torch tensor, a numpy array or a PIL "
                         f"image, got {type(image).__name__}")
    t = image.detach()
    if t.ndim not in (3, 4) or t.shape[-3] != 3:
        raise ValueError(f"{name}: expected an RGB tensor shaped (3, H, W) or (N, 3, H, W), got "
                         f"shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name}: empty image, shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.to(torch.float32) / 255.0
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected float values in [0, 1] or uint8 in [0, 255], got "
                         f"dtype {t.dtype}")
    return _checked_unit_range(t.to(torch.float32), name)


def _checked_unit_range(t: torch.Tensor, name: str) -> torch.Tensor:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name}: {bad} of {t.numel()} values are NaN or infinite; expected "
                         "finite values in [0, 1]")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        hint = (" (a [0, 255] image: divide by 255)" if hi > 1 + _RANGE_TOLERANCE and lo >= 0
                else " (a [-1, 1] image: use (x + 1) / 2)" if lo < 0 else "")
        raise ValueError(f"{name}: values span [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1]{hint}")
    return t.clamp(0.0, 1.0) if lo < 0 or hi > 1 else t


def _numpy_to_tensor(a: np.ndarray, name: str) -> torch.Tensor:
    scales = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
    if a.dtype not in scales and a.dtype.kind != "f":
        raise ValueError(f"{name}: expected a uint8, uint16 or float array, got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)
    elif a.ndim == 3 and a.shape[0] == 3:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    else:
        raise ValueError(f"{name}: expected an array shaped (H, W), (H, W, 1|3|4) or (3, H, W), "
                         f"got {a.shape}")
    if t.numel() == 0:
        raise ValueError(f"{name}: empty image, shape {a.shape}")
    t = _checked_unit_range(t / scales.get(a.dtype, 1.0), name)
    return _composite(t, torch.ones(3)).contiguous()  # gray -> RGB, alpha onto white


MAX_ASPECT = 20
"""Images resized by their shorter side (``--size``) may be at most this many times longer than
wide: a 3 x 5000 sliver at ``--size 256`` would become 256 x 426,667 pixels."""


def check_resize_shorter(shape: Sequence[int], size: int, name: str = "image") -> tuple[int, int]:
    """The (H, W) that :func:`resize_shorter` will give an image of ``shape``, refusing extreme
    aspect ratios (over :data:`MAX_ASPECT`:1) before any pixel is computed."""
    h, w = int(shape[-2]), int(shape[-1])
    if min(h, w) == 0:
        raise ValueError(f"{name}: empty image ({h}x{w})")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ValueError(f"{name} is {w}x{h} pixels (aspect ratio {max(h, w) / min(h, w):.0f}:1): "
                         f"resizing its shorter side to {size} would make it "
                         f"{round(max(h, w) * size / min(h, w)):,} pixels long; crop it first "
                         f"(at most {MAX_ASPECT}:1 is resized)")
    if h <= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


def _save_format(path: Path) -> str | None:
    """The PIL format that writes ``path``'s extension, or None."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    return fmt if fmt in Image.SAVE else None


def check_output_path(path, inputs: Sequence = (), what: str = "output",
                      suffixes: Sequence[str] | None = None) -> Path:
    """Refuse, before any work, an output path that could not be written or would destroy an
    input: an unknown image format (with ``suffixes``: a suffix not among them, e.g. videos),
    an existing directory, a parent that is a file, or the same file as one of ``inputs``
    (symlinks and hard links included); a folder where no file can be created (tried, with a
    probe file created and removed). Returns the path."""
    path = Path(path)
    if path.is_dir():
        example = suffixes[0] if suffixes else ".png"
        raise ValueError(f"{what} {path} is a directory; give a file name such as {path / ('out' + example)}")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        choices = " or ".join(filter(None, [", ".join(suffixes[:-1]), suffixes[-1]]))
        raise ValueError(f"{what} {path}: unknown format {path.suffix or '(no extension)'!r}; use "
                         f"{choices}")
    if suffixes is None and _save_format(path) is None:
        raise ValueError(f"{what} {path}: unknown image format {path.suffix or '(no extension)'!r}; "
                         "use .png, .jpg, .webp or .tif")
    parent = nearest_existing(path.parent)
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a directory")
    # tried rather than os.access: read-only file systems refuse even root, who passes os.access
    probe = parent / f".repro-probe-{secrets.token_hex(6)}"  # short: any valid output name fits
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise ValueError(f"{what} {path}: the folder {parent} is not writable ({e.strerror})") from None
    try:
        probe.unlink()
    except OSError:
        pass  # created, so writable; a folder that forbids deleting keeps an empty dot-file
    if path.exists():
        for p in inputs:
            if p is None or not isinstance(p, (str, os.PathLike)):
                continue
            try:
                same = os.path.samefile(path, p)
            except OSError:
                continue
            if same:
                raise ValueError(f"{what} {path} is the input {p}: writing it would destroy the "
                                 "input; choose another output path")
    return path


# --------------------------------------------------------------------------------------------
# saving

def _as_single_image(tensor: torch.Tensor) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    t = tensor.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(
            f"expected an image tensor shaped (3, H, W), (1, 3, H, W) or (1, H, W), "
            f"got shape {tuple(tensor.shape)}"
        )
    if t.shape[-2] == 0 or t.shape[-1] == 0:
        raise ValueError(f"image tensor has an empty side: shape {tuple(tensor.shape)}")
    return t


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` / ``(1, 3, H, W)`` / ``(1, H, W)`` tensor in [0, 1] -> 8-bit PIL image.

    Values are clamped to [0, 1] and rounded to the nearest of 256 levels.  A tensor with NaN is
    an error (it would otherwise become arbitrary pixel values).
    """
    t = _as_single_image(tensor).to("cpu", torch.float32)
    if torch.isnan(t).any():
        raise ValueError("image tensor contains NaN values")
    arr = (t.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(arr[:, :, 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


_SAVE_OPTIONS = {
    "JPEG": {"quality": 95, "subsampling": 0},  # figures: avoid visible chroma blur
    "PNG": {"optimize": False},
    "WEBP": {"quality": 95},
}


def save_image(tensor: torch.Tensor, path: PathLike) -> Path:
    """Write an image tensor (see :func:`to_pil`) to ``path``, format chosen by the extension.

    The write is atomic: the image goes to a temporary file in the same directory, which then
    replaces ``path``, so readers never see a half-written file and a failed save leaves any
    previous file intact.  Parent directories are created.  Returns the path.
    """
    path = Path(path)
    fmt = _save_format(path)
    if fmt is None:
        raise ValueError(f"cannot tell an image format to write from the extension of {path}")
    img = to_pil(tensor)
    with atomic_open(path) as f:
        img.save(f, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return path


# --------------------------------------------------------------------------------------------
# geometry

def _check_batchable(img: torch.Tensor, name: str = "img") -> None:
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
    if img.ndim not in (3, 4):
        raise ValueError(f"{name} must be shaped (C, H, W) or (N, C, H, W), got {tuple(img.shape)}")


def _pair(size: Size, what: str = "size") -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an int or (h, w), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return h, w


def resize(img: torch.Tensor, size: Size, mode: str = "bicubic") -> torch.Tensor:
    """Resize ``(C, H, W)`` or ``(N, C, H, W)`` to exactly ``(h, w)`` (antialiased, clamped).

    Computed in float32 (or float64) whatever the input dtype, and returned in the input dtype.
    Bicubic overshoots at edges, hence the clamp to [0, 1].
    """
    _check_batchable(img)
    if not img.is_floating_point():
        raise TypeError(f"resize expects a floating-point image in [0, 1], got dtype {img.dtype}")
    h, w = _pair(size)
    if tuple(img.shape[-2:]) == (h, w):
        return img
    single = img.ndim == 3
    x = img[None] if single else img
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.interpolate(work, size=(h, w), mode=mode, align_corners=False, antialias=True)
    out = out.clamp(0.0, 1.0).to(img.dtype)
    return out[0] if single else out


def resize_shorter(img: torch.Tensor, size: int, mode: str = "bicubic") -> torch.Tensor:
    """Resize so that the shorter side equals ``size``, keeping the aspect ratio (antialiased).

    The longer side is rounded to the nearest pixel.  An int ``size`` only; use :func:`resize`
    for an exact ``(h, w)``.
    """
    _check_batchable(img)
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive int (the shorter side), got {size!r}")
    H, W = img.shape[-2:]
    if min(H, W) == 0:
        raise ValueError(f"cannot resize an empty image of shape {tuple(img.shape)}")
    if H <= W:
        h, w = int(size), max(1, round(W * size / H))
    else:
        h, w = max(1, round(H * size / W)), int(size)
    return resize(img, (h, w), mode=mode)


def _crop_size(img: torch.Tensor, size: Size, what: str) -> tuple[int, int, int, int]:
    _check_batchable(img)
    h, w = _pair(size, "crop size")
    H, W = img.shape[-2:]
    if h > H or w > W:
        raise ValueError(
            f"{what} of {h}x{w} (h x w) is larger than the image, {H}x{W}; "
            f"resize first (e.g. resize_shorter(img, {max(h, w)}))"
        )
    return h, w, H, W


def center_crop(img: torch.Tensor, size: Size) -> torch.Tensor:
    """The central ``size`` (int for a square, or ``(h, w)``) crop of ``(C,H,W)`` / ``(N,C,H,W)``.

    When the margin is odd, the extra pixel is left at the bottom / right.
    """
    h, w, H, W = _crop_size(img, size, "center crop")
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top:top + h, left:left + w]


def random_crop(
    img: torch.Tensor, size: Size, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniformly placed ``size`` crop; every image of a batch gets the same window.

    Pass a seeded CPU ``torch.Generator`` for a reproducible crop; without one, torch's global
    RNG is used.
    """
    h, w, H, W = _crop_size(img, size, "random crop")
    top = int(torch.randint(0, H - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, W - w + 1, (1,), generator=generator))
    return img[..., top:top + h, left:left + w]


# --------------------------------------------------------------------------------------------
# contrast and histograms

def _check_rgb(img: torch.Tensor) -> None:
    _check_batchable(img)
    if img.shape[-3] != 3:
        raise ValueError(f"expected RGB images with 3 channels, got shape {tuple(img.shape)}")
    if not img.is_floating_point():
        raise TypeError(f"expected a floating-point image in [0, 1], got dtype {img.dtype}")


def rgb_to_luminance(img: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of ``(3, H, W)`` / ``(N, 3, H, W)``: shape ``(1, H, W)`` / ``(N, 1, H, W)``."""
    _check_rgb(img)
    wts = torch.tensor(LUMA_WEIGHTS, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return (img * wts).sum(dim=-3, keepdim=True)


def rms_contrast(img: torch.Tensor) -> torch.Tensor:
    """RMS contrast: the standard deviation of luminance over the pixels of each image.

    Population std, ``sqrt(mean((Y - mean Y)^2))``.  A 0-d tensor for ``(3, H, W)``, shape
    ``(N,)`` for a batch.  Computed in at least float32.
    """
    _check_rgb(img)
    if img.dtype not in (torch.float32, torch.float64):
        img = img.float()
    return rgb_to_luminance(img).flatten(-3).std(dim=-1, correction=0)


def scale_contrast(img: torch.Tensor, factor) -> torch.Tensor:
    """Scale contrast about each image's per-channel mean, then clamp to [0, 1].

    ``out = mean_c + factor * (img - mean_c)`` per channel.  Because luminance is a fixed
    linear mix of the channels with weights summing to 1, this scales the luminance deviations,
    and so :func:`rms_contrast`, by exactly ``factor`` and keeps each channel's mean (before
    clamping); the mean colour is kept, so ``factor -> 0`` tends to the image's average colour.
    ``factor`` is a float >= 0, or for a batch a tensor of N such values.
    """
    _check_rgb(img)
    f = torch.as_tensor(factor, dtype=img.dtype, device=img.device)
    if not bool(torch.isfinite(f).all()) or bool((f < 0).any()):
        raise ValueError(f"contrast factor must be finite and >= 0, got {factor!r}")
    if f.ndim == 1 and img.ndim == 4:
        if f.shape[0] != img.shape[0]:
            raise ValueError(f"{f.shape[0]} factors for a batch of {img.shape[0]} images")
        f = f.view(-1, 1, 1, 1)
    elif f.ndim != 0:
        raise ValueError(f"factor must be a scalar (or one per image of a batch), got {factor!r}")
    mean = img.mean(dim=(-2, -1), keepdim=True)
    return (mean + f * (img - mean)).clamp(0.0, 1.0)


def rgb_to_ycbcr(img: torch.Tensor) -> torch.Tensor:
    """Full-range (JFIF) Y'CbCr with Rec. 601 weights; Cb and Cr centred on 0 (not 0.5)."""
    _check_rgb(img)
    r, g, b = img.unbind(dim=-3)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return torch.stack((y, (b - y) / _CB_SCALE, (r - y) / _CR_SCALE), dim=-3)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    y, cb, cr = ycc.unbind(dim=-3)
    r = y + _CR_SCALE * cr
    b = y + _CB_SCALE * cb
    g = (y - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    return torch.stack((r, g, b), dim=-3)


def equalize_luminance_histogram(img: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Histogram-equalize the luma of each image, keeping its chroma (AdaIN Fig. 1 (b)).

    Works in full-range Y'CbCr: Y' is remapped through its empirical CDF, Cb and Cr are kept,
    and the result is converted back to RGB and clamped to [0, 1].

    The mapping is the classic one, ``lut[k] = (cdf[k] - cdf_min) / (n - cdf_min)`` over
    ``bins`` levels (``cdf_min`` the count in the darkest occupied level), so the darkest
    pixels become 0 and the brightest 1.  Each Y' is mapped by linear interpolation of ``lut``
    at its position ``Y' * (bins - 1)``: for 8-bit data with 256 bins this is exactly the
    classic table, and finer (16-bit, resized) values keep their ordering instead of collapsing
    onto 256 levels.  An image of constant luma is returned unchanged (clamped).
    """
    _check_rgb(img)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    single = img.ndim == 3
    x = img[None] if single else img
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()

    ycc = rgb_to_ycbcr(work)
    y = ycc[:, 0].clamp(0.0, 1.0)
    n_img, n_pix = y.shape[0], y.shape[-2] * y.shape[-1]
    pos = y.reshape(n_img, -1) * (bins - 1)
    level = pos.round().long().clamp_(0, bins - 1)

    offsets = (torch.arange(n_img, device=y.device) * bins).view(-1, 1)
    hist = torch.bincount((level + offsets).flatten(), minlength=n_img * bins)
    # float64 counts stay exact for any image size
    cdf = hist.view(n_img, bins).cumsum(dim=1).to(torch.float64)
    cdf_min = cdf.gather(1, level.min(dim=1, keepdim=True).values)
    denom = float(n_pix) - cdf_min
    flat = denom <= 0  # one occupied level: nothing to equalize
    lut = ((cdf - cdf_min) / denom.clamp_min(1.0)).clamp(0.0, 1.0).to(work.dtype)

    lo = pos.floor().long().clamp_(0, bins - 1)
    hi = (lo + 1).clamp_(max=bins - 1)
    frac = pos - lo.to(pos.dtype)
    new_y = torch.lerp(lut.gather(1, lo), lut.gather(1, hi), frac)
    new_y = torch.where(flat, pos / (bins - 1), new_y).view_as(y)

    out = ycbcr_to_rgb(torch.stack((new_y, ycc[:, 1], ycc[:, 2]), dim=1)).clamp(0.0, 1.0)
    out = out.to(img.dtype)
    return out[0] if single else out


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``source`` with its colour distribution moved onto ``target``'s (AdaIN §7.3, after Gatys
    et al. 2017): the affine map that gives the source pixels the target's mean and covariance,
    ``x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t``, with symmetric matrix square roots.
    Used for colour preservation: the style image takes the content photo's colours before the
    transfer. Result clamped to [0, 1]."""
    for name, img in (("source", source), ("target", target)):
        _check_rgb(img)
        if img.dim() != 3:
            raise ValueError(f"match_color: {name} must be one (3, H, W) image, got {tuple(img.shape)}")

    def stats(img):
        x = img.reshape(3, -1).double()
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        return x, mu, xc @ xc.T / x.shape[1] + eps * torch.eye(3, dtype=x.dtype)

    def sqrtm(c, inverse=False):
        vals, vecs = torch.linalg.eigh(c)
        vals = vals.clamp_min(eps)
        return vecs @ torch.diag(vals ** (-0.5 if inverse else 0.5)) @ vecs.T

    xs, mu_s, cov_s = stats(source)
    _, mu_t, cov_t = stats(target)
    out = sqrtm(cov_t) @ sqrtm(cov_s, inverse=True) @ (xs - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)
