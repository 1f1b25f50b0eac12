import csv
import io
import subprocess
import sys

import pytest
import torch
from PIL import Image

from repro import data, paths

FIELDS_IMG = ["file", "split", "source_repo", "commit", "source_path", "source_blob", "width",
              "height", "sha256"]
FIELDS_W = ["file", "source_repo", "commit", "source_path", "source_blob", "sha256", "conversion"]


def _write_manifests(dirpath, images, weights):
    dirpath.mkdir(parents=True, exist_ok=True)
    for name, fields, rows in (("images.csv", FIELDS_IMG, images), ("weights.csv", FIELDS_W, weights)):
        with open(dirpath / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


def _rows(kind, n):
    with open(paths.MANIFESTS / f"{kind}.csv", newline="") as f:
        return list(csv.DictReader(f))[:n]


@pytest.fixture
def small_mirror(tmp_path):
    """A mirror and manifests holding the weights and three images copied from data/ or the
    shared mirror."""
    src_root = paths.default_mirror() or paths.data_dir()
    images, weights = _rows("images", 3), _rows("weights", 1)
    mirror = tmp_path / "mirror"
    for kind, rows in (("images", images), ("weights", weights)):
        for r in rows:
            src = src_root / kind / r["file"]
            if not src.is_file():
                pytest.skip(f"{src} not available (run make data)")
            dst = mirror / kind / r["file"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    manifests = tmp_path / "manifests"
    _write_manifests(manifests, images, weights)
    return mirror, manifests, images, weights


def test_committed_manifests_cover_the_splits():
    entries = data.read_manifest()
    splits = {}
    for e in entries:
        splits[e.split] = splits.get(e.split, 0) + 1
        assert len(e.sha256) == 64 and len(e.source_blob) == 40 and len(e.commit) == 40
    assert splits == {"weights": 1, "style": 16, "train": 47, "test": 12, "hires": 4}


def test_fetch_from_mirror_verifies_and_is_idempotent(small_mirror, tmp_path):
    mirror, manifests, images, weights = small_mirror
    dest = tmp_path / "data"
    data.fetch(mirror, dest, manifests=manifests, verbose=False)
    for r in images:
        assert data.sha256_file(dest / "images" / r["file"]) == r["sha256"]
    w = dest / "weights" / weights[0]["file"]
    assert data.sha256_file(w) == weights[0]["sha256"]
    before = w.stat().st_mtime_ns
    data.fetch(mirror, dest, manifests=manifests, verbose=False)
    assert w.stat().st_mtime_ns == before  # nothing rewritten
    assert not list(dest.rglob("*.part"))


def test_corrupt_mirror_file_is_named_and_nothing_is_written(small_mirror, tmp_path):
    mirror, manifests, images, _ = small_mirror
    victim = mirror / "images" / images[2]["file"]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    dest = tmp_path / "data"
    with pytest.raises(data.DataError, match=images[2]["file"]):
        data.fetch(mirror, dest, manifests=manifests, verbose=False)
    assert not dest.exists() or not [p for p in dest.rglob("*") if p.is_file()]


def test_missing_mirror_file_is_named(small_mirror, tmp_path):
    mirror, manifests, images, _ = small_mirror
    (mirror / "images" / images[0]["file"]).unlink()
    with pytest.raises(data.DataError, match=f"{images[0]['file']}.*missing"):
        data.fetch(mirror, tmp_path / "data", manifests=manifests, verbose=False)


def test_corrupted_file_in_data_is_replaced_from_the_mirror(small_mirror, tmp_path):
    mirror, manifests, images, _ = small_mirror
    dest = tmp_path / "data"
    data.fetch(mirror, dest, manifests=manifests, verbose=False)
    target = dest / "images" / images[1]["file"]
    target.write_bytes(b"garbage")
    data.fetch(mirror, dest, manifests=manifests, verbose=False)
    assert data.sha256_file(target) == images[1]["sha256"]


def test_cli_reports_a_corrupt_mirror_in_one_line(small_mirror, tmp_path):
    mirror, manifests, images, _ = small_mirror
    (mirror / "weights" / _rows("weights", 1)[0]["file"]).write_bytes(b"not weights")
    r = subprocess.run([sys.executable, "-m", "repro", "data", "--mirror", str(mirror),
                        "--dest", str(tmp_path / "d")], capture_output=True, text=True)
    # the CLI uses the committed manifests, so the weights file is the first one checked
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "vgg19_normalised" in r.stderr and "sha256 mismatch" in r.stderr


def _serve(tmp_path, monkeypatch):
    """A stand-in for the public sources: SOURCE_URL pointing at a local directory."""
    root = tmp_path / "remote"
    monkeypatch.setattr(data, "SOURCE_URL", root.as_uri() + "/{repo}/{commit}/{path}")
    return root


def test_download_path_checks_blob_normalises_and_converts(tmp_path, monkeypatch):
    root = _serve(tmp_path, monkeypatch)
    commit = "a" * 40
    # An image larger than the 512 px target, with an EXIF rotation, as a PNG source.
    img = Image.new("RGB", (700, 600), (200, 30, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    raw_img = buf.getvalue()
    # A legacy (non-zip) checkpoint shaped like the source of the weights file.
    legacy = {"conv1.weight": torch.randn(3, 3, 1, 1), "conv1.bias": torch.randn(3)}
    shapes = {"conv2": (64, 3), "conv3": (64, 64), "conv4": (128, 64), "conv5": (128, 128),
              "conv6": (256, 128)}
    for name, (o, i) in shapes.items():
        legacy[f"{name}.weight"] = torch.randn(o, i, 3, 3)
        legacy[f"{name}.bias"] = torch.randn(o)
    buf = io.BytesIO()
    torch.save(legacy, buf, _use_new_zipfile_serialization=False)
    raw_w = buf.getvalue()
    for rel, raw in (("some/repo/" + commit + "/photo.jpg", raw_img),
                     ("other/repo/" + commit + "/vgg_r31.pth", raw_w)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(raw)
    manifests = tmp_path / "manifests"
    images = [dict(file="content/photo.jpg", split="train", source_repo="some/repo", commit=commit,
                   source_path="photo.jpg", source_blob=data.git_blob_id(raw_img), sha256="0" * 64)]
    weights = [dict(file="vgg.pth", source_repo="other/repo", commit=commit,
                    source_path="vgg_r31.pth", source_blob=data.git_blob_id(raw_w), sha256="0" * 64)]
    _write_manifests(manifests, images, weights)
    dest = tmp_path / "data"
    with pytest.warns(UserWarning, match="git blob id"):
        data.fetch(dest=dest, download=True, manifests=manifests, verbose=False)
    out = Image.open(dest / "images/content/photo.jpg")
    assert out.size == (512, 597)  # rotated to portrait, shorter side 512
    assert out.format == "JPEG" and "exif" not in out.info
    state = torch.load(dest / "weights/vgg.pth", weights_only=True)
    assert sorted(state) == sorted(f"{i}.{p}" for i in (0, 2, 5, 7, 10) for p in ("weight", "bias"))
    assert torch.equal(state["10.weight"], legacy["conv6.weight"])

    # A source whose bytes differ from the recorded blob is refused and nothing is written.
    (root / "some/repo" / commit / "photo.jpg").write_bytes(raw_img + b"x")
    (dest / "images/content/photo.jpg").unlink()
    with pytest.raises(data.DataError, match="content/photo.jpg.*git blob id"):
        data.fetch(dest=dest, download=True, manifests=manifests, verbose=False)
    assert not (dest / "images/content/photo.jpg").exists()
    assert not list(dest.rglob("*.part"))


def test_image_set_lookups(data_ready):
    assert len(data.content_paths("train")) == 47
    test = data.content_paths("test")
    assert len(test) == 12 and data.content_path("karya") in test
    assert data.style_path("starry_night").name == "starry_night.jpg"
    assert data.hires_path("karya").parent.name == "hires"
    with pytest.raises(ValueError, match="available: .*starry_night"):
        data.style_path("mona_lisa")
    with pytest.raises(ValueError, match="split"):
        data.content_paths("val")
