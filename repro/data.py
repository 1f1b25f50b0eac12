"""The data bootstrap (``make data`` / ``python -m repro data``) and the image sets.

``data/manifests/`` (committed) lists every file the experiments use with its sha256 and its
public source. ``fetch()`` fills the git-ignored ``data/`` either

- from a local mirror directory (``$REPRO_DATA_MIRROR``, default ``../shared/data``), verifying
  every file's sha256 before anything is written, or
- with no mirror, from the public sources the manifests record: each image from its source
  repository at the recorded commit (checked against the recorded git blob id, then normalised
  as images_PROVENANCE.md describes), and the VGG weights file rebuilt from its source
  checkpoint (checked against its blob id, then converted as the manifest's ``conversion`` says).

Every file is written to a temporary name and renamed into place only once verified, so an
interrupted or failed fetch never leaves a partial file behind. A second call is quick: files
already present with the right sha256 are left alone.

The image sets (IN paper's MS-COCO/WikiArt substitutes): ``content_paths("train" | "test")``,
``style_paths()``, ``hires_path(name)``, ``style_path(name)``, ``content_path(name)``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageCms, ImageOps

from repro import images, paths
from repro.atomic import atomic_write_bytes

# Raw file URL of a public repository at a commit; the manifests name repository, commit, path.
SOURCE_URL = os.environ.get(
    "REPRO_SOURCE_URL", "https://raw.githubusercontent.com/{repo}/{commit}/{path}")


class DataError(RuntimeError):
    """A data file is missing, corrupt, or cannot be fetched. The message names the file."""


@dataclass(frozen=True)
class Entry:
    """One manifest row: ``kind`` is "images" or "weights"; ``file`` is relative to data/<kind>/."""

    kind: str
    file: str
    sha256: str
    split: str
    source_repo: str
    commit: str
    source_path: str
    source_blob: str

    @property
    def relpath(self) -> str:
        return f"{self.kind}/{self.file}"


def read_manifest(manifests: Path | None = None) -> list[Entry]:
    """All entries of ``images.csv`` and ``weights.csv``."""
    manifests = Path(manifests) if manifests else paths.MANIFESTS
    entries = []
    for kind in ("weights", "images"):
        path = manifests / f"{kind}.csv"
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                entries.append(Entry(kind=kind, file=row["file"], sha256=row["sha256"].lower(),
                                     split=row.get("split", "weights"),
                                     source_repo=row["source_repo"], commit=row["commit"],
                                     source_path=row["source_path"], source_blob=row["source_blob"]))
    return entries


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_id(data: bytes) -> str:
    """The git object id of a file's content: sha1 of ``b"blob <len>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_current(dest: Path, entry: Entry) -> bool:
    return dest.is_file() and sha256_file(dest) == entry.sha256


# ---------------------------------------------------------------------------------------------
# From a mirror


def _fetch_from_mirror(entries: list[Entry], mirror: Path, dest_root: Path, log) -> int:
    # Verify the whole mirror first: a corrupt or missing file stops the fetch before anything
    # is written, so data/ is never left with a mix of old and new files.
    todo = []
    for e in entries:
        dest = dest_root / e.relpath
        if _is_current(dest, e):
            continue
        src = mirror / e.relpath
        if not src.is_file():
            raise DataError(f"{e.relpath}: missing from the mirror {mirror} (expected {src})")
        got = sha256_file(src)
        if got != e.sha256:
            raise DataError(f"{e.relpath}: sha256 mismatch in the mirror ({src}): expected "
                            f"{e.sha256}, got {got}. The mirror file is corrupt or not the one "
                            "data/manifests lists.")
        todo.append((e, src, dest))
    for e, src, dest in todo:
        data = src.read_bytes()
        if hashlib.sha256(data).hexdigest() != e.sha256:  # changed under us since the check
            raise DataError(f"{e.relpath}: {src} changed while copying")
        atomic_write_bytes(dest, data)
        log(f"copied {e.relpath}")
    return len(todo)


# ---------------------------------------------------------------------------------------------
# From the public sources (the path a user with internet takes)


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except Exception as e:
        raise DataError(f"could not download {url}: {e}") from e


def _normalise_image(raw: bytes, entry: Entry) -> bytes:
    """images_PROVENANCE.md "Normalisation": orientation, sRGB, shorter side 512 (hires 1080)
    with Lanczos, never upscaled, baseline JPEG quality 92, no metadata."""
    img = Image.open(io.BytesIO(raw))
    img = ImageOps.exif_transpose(img)
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "RGBA", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            img = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"),
                                            outputMode="RGB")
        except Exception as e:  # an unreadable profile: keep the pixels, say so
            warnings.warn(f"{entry.relpath}: ICC profile ignored ({e})")
    img = img.convert("RGB")
    target = 1080 if entry.split == "hires" else 512
    w, h = img.size
    if min(w, h) > target:
        s = target / min(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=92)
    return out.getvalue()


def _convert_weights(raw: bytes, entry: Entry) -> bytes:
    """weights manifest ``conversion``: drop the leading 1x1 RGB->BGR/mean conv and rename
    conv2..conv6 to torchvision ``vgg19().features`` indices 0, 2, 5, 7, 10."""
    # The source is a legacy (non-zip) torch.save of plain tensors; its git blob id was checked
    # before this point, so the bytes are the published ones.
    src = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    rename = {"conv2": "0", "conv3": "2", "conv4": "5", "conv5": "7", "conv6": "10"}
    state = {}
    for key, value in src.items():
        layer, _, param = key.partition(".")
        if layer in rename:
            state[f"{rename[layer]}.{param}"] = value.float().clone()
    out = io.BytesIO()
    torch.save(state, out)
    return out.getvalue()


def _fetch_from_sources(entries: list[Entry], dest_root: Path, log) -> int:
    n = 0
    for e in entries:
        dest = dest_root / e.relpath
        if _is_current(dest, e) or (dest.is_file() and _downloaded_ok(dest)):
            continue
        url = SOURCE_URL.format(repo=e.source_repo, commit=e.commit, path=e.source_path)
        raw = _download(url)
        blob = git_blob_id(raw)
        if blob != e.source_blob:
            raise DataError(f"{e.relpath}: the file downloaded from {url} has git blob id {blob}, "
                            f"the manifest records {e.source_blob}; not using it")
        data = _convert_weights(raw, e) if e.kind == "weights" else _normalise_image(raw, e)
        got = hashlib.sha256(data).hexdigest()
        if got != e.sha256:
            # The source bytes are verified (blob id); the normalised/converted bytes depend on
            # the Pillow/libjpeg or torch version that wrote them, so they may differ slightly.
            warnings.warn(f"{e.relpath}: source verified by git blob id, but the normalised file's "
                          f"sha256 ({got[:12]}...) differs from the mirror's ({e.sha256[:12]}...), "
                          "most likely a different Pillow/libjpeg/torch version")
        atomic_write_bytes(dest, data)
        _mark_downloaded(dest)
        log(f"downloaded {e.relpath}")
        n += 1
    return n


def _marker(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.downloaded"


def _mark_downloaded(dest: Path) -> None:
    _marker(dest).write_text(sha256_file(dest))


def _downloaded_ok(dest: Path) -> bool:
    m = _marker(dest)
    return m.is_file() and m.read_text().strip() == sha256_file(dest)


# ---------------------------------------------------------------------------------------------


def fetch(mirror: str | Path | None = None, dest: str | Path | None = None, *,
          download: bool | None = None, manifests: str | Path | None = None,
          verbose: bool = True) -> Path:
    """Fill ``dest`` (default ``data/``) with every file of the manifests; return ``dest``.

    ``mirror``: a directory laid out as ``images/...`` and ``weights/...`` (default
    ``$REPRO_DATA_MIRROR`` or ``../shared/data``). With no mirror, or ``download=True``, the
    files come from their public sources. Raises ``DataError`` naming the file on a missing or
    corrupt file.
    """
    log = print if verbose else (lambda *_: None)
    dest_root = Path(dest) if dest else paths.data_dir()
    parent = paths.nearest_existing(dest_root)
    if not parent.is_dir():
        raise DataError(f"data destination {dest_root}: {parent} is a file, not a directory")
    entries = read_manifest(Path(manifests) if manifests else None)
    mirror = Path(mirror) if mirror else (None if download else paths.default_mirror())
    if mirror is not None and not download:
        if not mirror.is_dir():
            raise DataError(f"data mirror {mirror} is not a directory (REPRO_DATA_MIRROR)")
        n = _fetch_from_mirror(entries, mirror, dest_root, log)
        where = f"mirror {mirror}"
    else:
        n = _fetch_from_sources(entries, dest_root, log)
        where = "public sources"
    log(f"data: {len(entries)} files verified in {dest_root} ({n} new from {where})")
    return dest_root


def verify(dest: str | Path | None = None) -> list[str]:
    """Names of manifest files that are missing or whose sha256 differs (empty when all good)."""
    dest_root = Path(dest) if dest else paths.data_dir()
    bad = []
    for e in read_manifest():
        p = dest_root / e.relpath
        if not (_is_current(p, e) or (p.is_file() and _downloaded_ok(p))):
            bad.append(e.relpath)
    return bad


# ---------------------------------------------------------------------------------------------
# The image sets


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path} is missing; run `make data` (or `python -m repro data`) first")
    return path


def _image_entries(split: str) -> list[Entry]:
    return [e for e in read_manifest() if e.kind == "images" and e.split == split]


def content_paths(split: str = "train") -> list[Path]:
    """Content photographs of a split ("train": 47, "test": 12 held out), in manifest order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return [_require(paths.images_dir() / e.file) for e in _image_entries(split)]


def style_paths() -> list[Path]:
    """The 16 paintings."""
    return [_require(paths.images_dir() / e.file) for e in _image_entries("style")]


def _by_name(kind: str, name: str) -> Path:
    stem = Path(name).stem
    for e in read_manifest():
        if e.kind == "images" and e.file.startswith(kind + "/") and Path(e.file).stem == stem:
            return _require(paths.images_dir() / e.file)
    names = sorted(Path(e.file).stem for e in read_manifest() if e.file.startswith(kind + "/"))
    raise ValueError(f"no {kind} image named {name!r}; available: {', '.join(names)}")


def content_path(name: str) -> Path:
    """A content photo by stem, e.g. ``content_path("karya")``."""
    return _by_name("content", name)


def style_path(name: str) -> Path:
    """A painting by stem, e.g. ``style_path("starry_night")``."""
    return _by_name("style", name)


def hires_path(name: str) -> Path:
    """A 1080 px copy, e.g. ``hires_path("karya")`` (IN Fig. 6)."""
    return _by_name("hires", name)


TRANSFORMS = ("none", "equalize", "stylize")
"""What is done to each training photo first (``data.transform``; AdaIN Fig. 1b/1c):
nothing, luminance histogram equalization, or stylization by a trained generator."""


def names_a_file(entry: str) -> bool:
    """How configs name images: an entry with a suffix (``me.jpg``) is a file path, one
    without (``starry_night``) a data/ image."""
    return bool(Path(entry).suffix)


def image_path(entry: str, kind: str) -> Path:
    """The file a config entry names: a path as given, else the ``kind`` ("style" or
    "content") image of that name."""
    if names_a_file(entry):
        if not Path(entry).is_file():
            raise FileNotFoundError(2, "image file not found", entry)
        return Path(entry)
    return style_path(entry) if kind == "style" else content_path(entry)


# ---------------------------------------------------------------------------------------------
# Training crops


class RandomCrops:
    """Images held in memory, sampled as random crops: the trainer's photos, and AdaIN's
    paintings.

    The images are few (Texture Networks used 16 photos), so they are decoded once, resized to
    ``content_size`` on the shorter side, optionally transformed (``transform(img) -> img``,
    e.g. histogram equalization for AdaIN Fig. 1b), and cropped per step. ``sample`` draws
    from an explicit ``torch.Generator``: seeding it from (seed, step, rank) makes every step's
    batch a pure function of its index, which is what makes resume exact.
    """

    def __init__(self, image_paths, content_size: int, image_size: int, transform=None):
        if not image_paths:
            raise ValueError("no images to train on")
        self.image_size = image_size
        self.images = []
        for p in image_paths:
            img = images.load_image(p, size=content_size)
            if transform is not None:
                img = transform(img)
            if min(img.shape[-2:]) < image_size:
                raise ValueError(f"{p}: {tuple(img.shape[-2:])} after resizing is smaller than "
                                 f"the crop size {image_size}")
            self.images.append(img)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.images), (batch_size,), generator=generator)
        crops = [images.random_crop(self.images[i], self.image_size, generator=generator) for i in idx.tolist()]
        # a random horizontal flip doubles the variety of 16 photos at no cost
        flips = torch.rand(batch_size, generator=generator) < 0.5
        crops = [c.flip(-1) if f else c for c, f in zip(crops, flips.tolist())]
        return torch.stack(crops)
