"""Tests of repro.images: robust loading, atomic saving, geometry, contrast and equalization."""
from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

from repro import images as I
from repro.images import ImageLoadError
from tiny import unwritable_folder

CONTENT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "content"


def _rng(seed=0):
    return np.random.default_rng(seed)


def _rand_u8(h, w, c=3, seed=0):
    return (_rng(seed).random((h, w, c)) * 255).round().astype(np.uint8)


def _png_bytes(w, h, bit_depth, color_type, rows: np.ndarray, extra: bytes = b"") -> bytes:
    """A minimal PNG (PIL cannot write 16-bit colour PNGs): rows is (h, w*channels) big-endian."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    extra_chunk = chunk(b"eXIf", extra) if extra else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra_chunk
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _assert_image(t, h, w):
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert tuple(t.shape) == (3, h, w)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


# --------------------------------------------------------------------------------------------
# save / load round trips

def test_png_round_trip_exact_to_one_level(tmp_path):
    x = torch.rand(3, 17, 23, generator=torch.Generator().manual_seed(0))
    p = I.save_image(x, tmp_path / "a.png")
    y = I.load_image(p)
    _assert_image(y, 17, 23)
    assert float((x - y).abs().max()) <= 0.5 / 255 + 1e-6  # rounding, not truncation
    q = torch.round(x * 255) / 255  # already on the 8-bit grid: exact
    I.save_image(q, tmp_path / "q.png")
    assert torch.equal(I.load_image(tmp_path / "q.png"), q)


def test_save_accepts_batch_of_one_gray_bf16_and_clamps(tmp_path):
    x = torch.rand(1, 3, 8, 9)
    I.save_image(x, tmp_path / "b.png")
    assert torch.allclose(I.load_image(tmp_path / "b.png"), x[0], atol=0.5 / 255 + 1e-6)

    g = torch.rand(1, 8, 9)
    I.save_image(g, tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "L"
    y = I.load_image(tmp_path / "g.png")
    assert torch.allclose(y, g.expand(3, -1, -1), atol=0.5 / 255 + 1e-6)

    I.save_image(x[0].to(torch.bfloat16), tmp_path / "h.png")
    assert torch.allclose(I.load_image(tmp_path / "h.png"), x[0], atol=0.01)

    I.save_image(torch.full((3, 4, 4), 2.0) - torch.tensor([3.0, 0, 0]).view(3, 1, 1),
                 tmp_path / "c.png")
    assert I.load_image(tmp_path / "c.png")[:, 0, 0].tolist() == [0.0, 1.0, 1.0]


def test_save_jpeg_and_creates_parent_dirs(tmp_path):
    x = torch.rand(3, 32, 32) * 0.1 + torch.linspace(0, 0.8, 32)
    p = I.save_image(x, tmp_path / "deep" / "er" / "x.jpg")
    assert p.exists() and Image.open(p).format == "JPEG"
    assert float((I.load_image(p) - x).abs().mean()) < 0.03


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (4, 5, 5), (2, 5, 5), (5, 5), (3, 0, 4)])
def test_save_bad_shape_names_shape(tmp_path, shape):
    with pytest.raises(ValueError, match=str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")):
        I.save_image(torch.zeros(shape), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_nan_and_unknown_extension(tmp_path):
    x = torch.zeros(3, 4, 4)
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        I.save_image(x, tmp_path / "n.png")
    with pytest.raises(ValueError, match="extension"):
        I.save_image(torch.zeros(3, 4, 4), tmp_path / "x.notanimage")
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    old = torch.rand(3, 10, 10)
    I.save_image(old, target)
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]  # no temp file left
    before = target.read_bytes()

    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")  # something reaches the disk, then the save fails
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        I.save_image(torch.rand(3, 10, 10), target)
    monkeypatch.setattr(Image.Image, "save", real_save)

    assert target.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]
    assert torch.allclose(I.load_image(target), old, atol=0.5 / 255 + 1e-6)


def test_save_respects_umask_not_private_tempfile_mode(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        p = I.save_image(torch.rand(3, 4, 4), tmp_path / "m.png")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------
# modes and bit depths

def test_16bit_grayscale_png_scaled_by_65535(tmp_path):
    a = np.array([[0, 32768, 65535], [1000, 40000, 65534]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    t = I.load_image(tmp_path / "g16.png")
    _assert_image(t, 2, 3)
    assert t[:, 0, 2].tolist() == [1.0, 1.0, 1.0]
    assert t[0, 0, 1].item() == pytest.approx(0.5, abs=1e-4)
    assert t[0, 1, 1].item() == pytest.approx(40000 / 65535, abs=1e-6)  # not clipped to 255
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


def test_16bit_big_endian_and_32bit_int_and_float_modes(tmp_path):
    a = np.array([[0, 32768, 65535]], dtype=">u2")
    Image.frombytes("I;16B", (3, 1), a.tobytes()).save(tmp_path / "b.tif")
    Image.fromarray(np.array([[0, 40000, 65535]], np.int32)).save(tmp_path / "i.tif")
    Image.fromarray(np.array([[0.0, 0.25, 2.0]], np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    assert Image.open(tmp_path / "f.tif").mode == "F"
    b = I.load_image(tmp_path / "b.tif")[0, 0].tolist()
    assert b == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)
    i = I.load_image(tmp_path / "i.tif")[0, 0].tolist()
    assert i == pytest.approx([0.0, 40000 / 65535, 1.0], abs=1e-6)
    f = I.load_image(tmp_path / "f.tif")[0, 0].tolist()
    assert f == pytest.approx([0.0, 0.25, 1.0])  # clamped

    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageLoadError, match="big.tif"):
        I.load_image(tmp_path / "big.tif")


def test_16bit_rgb_png_keeps_16_bit_precision(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=">u2")
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32768, 0x01FF  # 0x01FF: 1 in PIL's 8 bits
    (tmp_path / "rgb48.png").write_bytes(_png_bytes(3, 2, 16, 2, rgb.reshape(2, -1)))
    t = I.load_image(tmp_path / "rgb48.png")
    _assert_image(t, 2, 3)
    assert t[:, 1, 2].tolist() == pytest.approx([1.0, 32768 / 65535, 511 / 65535], abs=1e-7)


def test_16bit_rgb_png_with_exif_orientation(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=">u2")
    rgb[0, 0] = (0x01FF, 0, 0)  # marks the top-left pixel
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    tiff = exif.tobytes()[len(b"Exif\x00\x00"):]
    (tmp_path / "o48.png").write_bytes(_png_bytes(3, 2, 16, 2, rgb.reshape(2, -1), extra=tiff))
    t = I.load_image(tmp_path / "o48.png")
    _assert_image(t, 3, 2)
    assert t[0, 0, 1].item() == pytest.approx(511 / 65535, abs=1e-7)  # now top-right
    assert t[0].sum().item() == pytest.approx(511 / 65535, abs=1e-7)


def test_16bit_rgba_and_la_png_composited_on_white(tmp_path):
    rgba = np.zeros((1, 2, 4), dtype=">u2")
    rgba[0, 0] = (0, 0, 0, 0)            # transparent black -> white
    rgba[0, 1] = (0, 65535, 0, 32768)    # half-opaque green
    (tmp_path / "rgba64.png").write_bytes(_png_bytes(2, 1, 16, 6, rgba.reshape(1, -1)))
    t = I.load_image(tmp_path / "rgba64.png")
    _assert_image(t, 1, 2)
    a = 32768 / 65535
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == pytest.approx([1 - a, 1.0, 1 - a], abs=1e-6)

    la = np.array([[[40000, 65535], [0, 0]]], dtype=">u2")
    (tmp_path / "la32.png").write_bytes(_png_bytes(2, 1, 16, 4, la.reshape(1, -1)))
    t = I.load_image(tmp_path / "la32.png")
    assert t[:, 0, 0].tolist() == pytest.approx([40000 / 65535] * 3, abs=1e-6)
    assert t[:, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_16bit_rgb_png_falls_back_to_8_bits_with_a_warning(tmp_path, monkeypatch):
    import torchvision.io

    def broken(*a, **k):
        raise RuntimeError("no libpng (simulated)")

    monkeypatch.setattr(torchvision.io, "decode_png", broken)
    rgb = np.full((2, 2, 3), 0x80FF, dtype=">u2")
    (tmp_path / "rgb48.png").write_bytes(_png_bytes(2, 2, 16, 2, rgb.reshape(2, -1)))
    with pytest.warns(UserWarning, match="8-bit precision"):
        t = I.load_image(tmp_path / "rgb48.png")
    assert t[0, 0, 0].item() == pytest.approx(0x80 / 255, abs=1e-6)


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P", "LA", "RGBA", "YCbCr"])
def test_common_modes_load_to_rgb_unit_range(tmp_path, mode):
    base = Image.fromarray(_rand_u8(12, 15))
    img = base.convert(mode)
    ext = "jpg" if mode in ("CMYK", "YCbCr") else "png"
    if mode == "YCbCr":
        img.save(tmp_path / f"x.{ext}")  # JPEG stores YCbCr; PIL writes it from this mode
    else:
        img.save(tmp_path / f"x.{ext}")
    t = I.load_image(tmp_path / f"x.{ext}")
    _assert_image(t, 12, 15)
    if mode in ("L", "1", "LA"):
        assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    if mode == "1":
        assert set(t.unique().tolist()) <= {0.0, 1.0}
    if mode == "L":
        expect = torch.from_numpy(np.asarray(img).astype(np.float32) / 255)
        assert torch.equal(t[0], expect)


def test_grayscale_values_and_palette_colours(tmp_path):
    Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(tmp_path / "l.png")
    t = I.load_image(tmp_path / "l.png")
    assert torch.equal(t[0], t[2])
    assert t[0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])

    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    t = I.load_image(tmp_path / "p.png")
    assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert t[:, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_palette_with_transparency_composited_on_white(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "pt.png", transparency=0)  # index 0 (black) is transparent
    t = I.load_image(tmp_path / "pt.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == [0.0, 1.0, 0.0]
    p.save(tmp_path / "pt.gif", transparency=0)
    assert I.load_image(tmp_path / "pt.gif")[:, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_rgba_and_la_alpha_compositing(tmp_path):
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, 0] = (10, 20, 30, 0)        # fully transparent -> white whatever its colour
    a[0, 1] = (255, 0, 0, 255)       # opaque red
    a[0, 2] = (0, 0, 0, 51)          # 20% black over white
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    t = I.load_image(tmp_path / "a.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == [1.0, 0.0, 0.0]
    assert t[:, 0, 2].tolist() == pytest.approx([0.8] * 3, abs=1e-6)
    t = I.load_image(tmp_path / "a.png", background=(0.0, 0.0, 1.0))
    assert t[:, 0, 0].tolist() == [0.0, 0.0, 1.0]

    la = np.array([[[100, 0], [100, 255]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    t = I.load_image(tmp_path / "la.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == pytest.approx([100 / 255] * 3)


# --------------------------------------------------------------------------------------------
# EXIF orientation

def _marked_image(h=20, w=30):
    a = np.full((h, w, 3), 255, np.uint8)
    a[:8, :8] = (255, 0, 0)  # red block in the top-left corner
    return Image.fromarray(a)


@pytest.mark.parametrize("orientation, corner", [(6, "top_right"), (8, "bottom_left")])
def test_exif_orientation_applied(tmp_path, orientation, corner):
    exif = Image.Exif()
    exif[0x0112] = orientation
    _marked_image().save(tmp_path / "o.jpg", quality=95, exif=exif.tobytes())
    assert Image.open(tmp_path / "o.jpg").size == (30, 20)
    t = I.load_image(tmp_path / "o.jpg")
    _assert_image(t, 30, 20)  # H and W swapped
    red = (t[0] - t[1]) > 0.5  # loose: JPEG blurs chroma at the block's edges
    corners = {"top_left": red[1:7, 1:7], "top_right": red[1:7, -7:-1],
               "bottom_left": red[-7:-1, 1:7], "bottom_right": red[-7:-1, -7:-1]}
    for name, block in corners.items():
        assert bool(block.all()) == (name == corner), name


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tensor_orientation_matches_pil(orientation):
    # the 16-bit PNG path orients tensors itself; it must agree with ImageOps.exif_transpose
    img = Image.fromarray(_rand_u8(4, 6, seed=orientation))
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expect = np.asarray(ImageOps.exif_transpose(img))
    t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    got = I._orient_tensor(t, orientation).permute(1, 2, 0).numpy()
    assert np.array_equal(got, expect)


# --------------------------------------------------------------------------------------------
# errors

def test_missing_file_names_path(tmp_path):
    p = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg") as ei:
        I.load_image(p)
    assert ei.value.filename == str(p)


def _jpeg_bytes():
    import io
    buf = io.BytesIO()
    Image.fromarray(_rand_u8(64, 80)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("cut", ["half", "eoi", "header"])
def test_truncated_jpeg_raises_naming_path(tmp_path, cut):
    data = _jpeg_bytes()
    n = {"half": len(data) // 2, "eoi": len(data) - 2, "header": 100}[cut]
    p = tmp_path / f"trunc_{cut}.jpg"
    p.write_bytes(data[:n])
    with pytest.raises(ImageLoadError, match=f"trunc_{cut}.jpg") as ei:
        I.load_image(p)
    assert isinstance(ei.value, ValueError)
    assert ei.value.path == str(p) and ei.value.reason
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # not flipped globally


def test_corrupt_png_raises(tmp_path):
    Image.fromarray(_rand_u8(32, 32)).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="bad.png"):
        I.load_image(tmp_path / "bad.png")


def test_load_error_survives_pickling(tmp_path):
    import pickle
    e = pickle.loads(pickle.dumps(ImageLoadError(tmp_path / "x.jpg", "broken")))
    assert isinstance(e, ImageLoadError) and e.path.endswith("x.jpg") and e.reason == "broken"
    assert "x.jpg" in str(e)


def test_text_file_empty_file_and_directory_raise(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a JPEG\n")
    with pytest.raises(ImageLoadError, match="notes.jpg"):
        I.load_image(tmp_path / "notes.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.png.*empty"):
        I.load_image(tmp_path / "empty.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageLoadError, match="dir.png.*directory"):
        I.load_image(tmp_path / "dir.png")


def test_decompression_bomb_limits_respected(tmp_path, monkeypatch):
    Image.fromarray(_rand_u8(20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 400 px: warning only
    with pytest.warns(Image.DecompressionBombWarning):
        I.load_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # > 2x the limit: refused
    with pytest.raises(ImageLoadError, match="big.png.*bomb"):
        I.load_image(tmp_path / "big.png")


# --------------------------------------------------------------------------------------------
# geometry

def test_load_with_size(tmp_path):
    Image.fromarray(_rand_u8(40, 100)).save(tmp_path / "w.png")
    _assert_image(I.load_image(tmp_path / "w.png", size=20), 20, 50)
    _assert_image(I.load_image(tmp_path / "w.png", size=(7, 9)), 7, 9)


def test_resize_shorter_keeps_aspect_and_dtype():
    x = torch.rand(3, 40, 100)
    assert I.resize_shorter(x, 20).shape == (3, 20, 50)
    assert I.resize_shorter(x.transpose(1, 2), 20).shape == (3, 50, 20)
    assert I.resize_shorter(torch.rand(2, 3, 30, 45), 20).shape == (2, 3, 20, 30)
    assert I.resize_shorter(torch.rand(3, 33, 50), 64).shape == (3, 64, 97)  # upscale, rounded
    y = I.resize_shorter(x.to(torch.bfloat16), 10)
    assert y.dtype == torch.bfloat16 and y.shape == (3, 10, 25)
    flat = I.resize_shorter(torch.full((3, 40, 100), 0.3), 13)
    assert torch.allclose(flat, torch.full_like(flat, 0.3), atol=1e-5)
    with pytest.raises(ValueError):
        I.resize_shorter(x, 0)


def test_resize_antialiases():
    # a one-pixel checkerboard averages to grey when shrunk; point sampling would alias
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((yy + xx) % 2).float().expand(3, -1, -1)
    small = I.resize(board, (8, 8))
    assert float((small - 0.5).abs().max()) < 0.05


def test_center_crop():
    x = torch.arange(5 * 7, dtype=torch.float32).view(1, 5, 7).expand(3, -1, -1)
    c = I.center_crop(x, 3)
    assert c.shape == (3, 3, 3)
    assert torch.equal(c, x[:, 1:4, 2:5])
    assert I.center_crop(torch.rand(4, 3, 10, 12), (4, 6)).shape == (4, 3, 4, 6)
    with pytest.raises(ValueError, match=r"6x6.*5x7"):
        I.center_crop(x, 6)


def test_random_crop_deterministic_and_in_bounds():
    x = torch.rand(3, 50, 60)
    a = I.random_crop(x, (16, 20), generator=torch.Generator().manual_seed(3))
    b = I.random_crop(x, (16, 20), generator=torch.Generator().manual_seed(3))
    assert a.shape == (3, 16, 20) and torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    crops = {I.random_crop(x, 16, generator=g).sum().item() for _ in range(10)}
    assert len(crops) > 1  # actually random across draws
    batch = torch.rand(2, 3, 20, 20)
    c = I.random_crop(batch, 20)
    assert torch.equal(c, batch)
    with pytest.raises(ValueError, match=r"21x21.*20x20"):
        I.random_crop(batch, 21)


# --------------------------------------------------------------------------------------------
# luminance, contrast

def test_luminance_is_rec601_like_pil():
    a = _rand_u8(16, 16, seed=5)
    t = torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)
    pil_l = torch.from_numpy(np.asarray(Image.fromarray(a).convert("L")).astype(np.float32) / 255)
    y = I.rgb_to_luminance(t)
    assert y.shape == (1, 16, 16)
    assert float((y[0] - pil_l).abs().max()) <= 1 / 255
    assert I.rgb_to_luminance(torch.rand(2, 3, 4, 4)).shape == (2, 1, 4, 4)


def test_rms_contrast_is_population_std_of_luminance():
    x = torch.rand(2, 3, 8, 8)
    c = I.rms_contrast(x)
    assert c.shape == (2,)
    y = I.rgb_to_luminance(x[1]).flatten()
    assert c[1].item() == pytest.approx(math.sqrt(((y - y.mean()) ** 2).mean().item()), rel=1e-5)
    assert I.rms_contrast(torch.full((3, 4, 4), 0.7)).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("factor", [0.0, 0.25, 0.5, 1.0, 1.5])
def test_scale_contrast_scales_rms_and_keeps_mean(factor):
    g = torch.Generator().manual_seed(1)
    x = 0.4 + 0.2 * torch.rand(3, 24, 24, generator=g)  # in [0.4, 0.6]: no clipping up to 2x
    x[0] += 0.05  # a tinted image: the channel means differ
    y = I.scale_contrast(x, factor)
    assert I.rms_contrast(y).item() == pytest.approx(factor * I.rms_contrast(x).item(),
                                                     rel=1e-4, abs=1e-6)
    assert torch.allclose(y.mean(dim=(1, 2)), x.mean(dim=(1, 2)), atol=1e-5)


def test_scale_contrast_clamps_batches_and_rejects_negative():
    x = torch.rand(2, 3, 16, 16)
    y = I.scale_contrast(x, 4.0)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    z = I.scale_contrast(x * 0.2 + 0.4, torch.tensor([0.5, 2.0]))
    ratio = I.rms_contrast(z) / I.rms_contrast(x * 0.2 + 0.4)
    assert ratio.tolist() == pytest.approx([0.5, 2.0], rel=1e-4)
    with pytest.raises(ValueError):
        I.scale_contrast(x, -1.0)
    with pytest.raises(ValueError):
        I.scale_contrast(x, torch.tensor([1.0, 1.0, 1.0]))


# --------------------------------------------------------------------------------------------
# histogram equalization

def _low_contrast_colour_image(seed=0, h=48, w=64):
    g = torch.Generator().manual_seed(seed)
    y = 0.4 + 0.15 * torch.rand(1, h, w, generator=g)  # luma squeezed into [0.4, 0.55]
    tint = torch.tensor([0.08, 0.0, -0.06]).view(3, 1, 1)  # warm, moderately saturated
    return (y + tint).clamp(0, 1)


def test_equalization_flattens_luminance_histogram():
    x = _low_contrast_colour_image()
    e = I.equalize_luminance_histogram(x)
    assert e.shape == x.shape and e.dtype == x.dtype
    assert float(e.min()) >= 0 and float(e.max()) <= 1
    y = I.rgb_to_luminance(e).flatten().sort().values
    # empirical CDF of the result is close to that of a uniform distribution on [0, 1]
    ideal = torch.linspace(0, 1, y.numel())
    assert float((y - ideal).abs().max()) < 0.05
    hist = torch.histc(y, bins=10, min=0, max=1) / y.numel()
    assert float(hist.min()) > 0.07 and float(hist.max()) < 0.13
    assert I.rms_contrast(e).item() > 5 * I.rms_contrast(x).item()


def test_equalization_keeps_hue():
    x = _low_contrast_colour_image(seed=2)
    e = I.equalize_luminance_histogram(x)

    def hue(t):
        ycc = I.rgb_to_ycbcr(t)
        return torch.atan2(ycc[2], ycc[1])

    d = torch.remainder(hue(e) - hue(x) + math.pi, 2 * math.pi) - math.pi
    # pixels pushed into clipping at the extremes may shift; the typical pixel must not
    assert float(d.abs().median()) < math.radians(3)
    assert float((d.abs() < math.radians(10)).float().mean()) > 0.8


def test_equalization_matches_classic_table_on_8bit_gray():
    a = (_rng(4).normal(100, 12, (30, 40)).clip(0, 255)).round().astype(np.uint8)
    hist = np.bincount(a.ravel(), minlength=256)
    cdf = hist.cumsum()
    cdf_min = cdf[a.min()]
    expect = (cdf[a] - cdf_min) / (a.size - cdf_min)
    t = torch.from_numpy(a.astype(np.float32) / 255).expand(3, -1, -1)
    e = I.equalize_luminance_histogram(t)
    assert np.allclose(e[0].numpy(), expect, atol=1e-5)
    assert torch.allclose(e[0], e[1], atol=1e-6) and torch.allclose(e[1], e[2], atol=1e-6)


def test_equalization_per_image_in_batch_and_constant_image():
    a = _low_contrast_colour_image(seed=0)
    b = torch.rand(3, 48, 64)
    batch = I.equalize_luminance_histogram(torch.stack([a, b]))
    assert torch.allclose(batch[0], I.equalize_luminance_histogram(a), atol=1e-6)
    assert torch.allclose(batch[1], I.equalize_luminance_histogram(b), atol=1e-6)
    c = torch.full((3, 5, 5), 0.3)
    assert torch.allclose(I.equalize_luminance_histogram(c), c, atol=1e-6)
    bf = I.equalize_luminance_histogram(a.to(torch.bfloat16))
    assert bf.dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------
# a real photo

def test_real_photo_loads():
    photos = sorted(CONTENT_DIR.glob("*.jpg")) if CONTENT_DIR.is_dir() else []
    if not photos:
        pytest.skip(f"no sample photos in {CONTENT_DIR}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean photo loads without any warning
        t = I.load_image(photos[0])
    assert t.ndim == 3 and t.shape[0] == 3 and min(t.shape[1:]) >= 64
    assert float(t.min()) >= 0 and float(t.max()) <= 1 and float(t.std()) > 0.05
    s = I.load_image(photos[0], size=64)
    assert min(s.shape[1:]) == 64
    ratio = t.shape[1] / t.shape[2]
    assert s.shape[1] / s.shape[2] == pytest.approx(ratio, rel=0.05)
    e = I.equalize_luminance_histogram(s)
    assert I.rms_contrast(e).item() == pytest.approx(1 / math.sqrt(12), abs=0.05)


def test_check_output_path_names_the_formats_and_tries_the_folder(tmp_path):
    with pytest.raises(ValueError, match=r"unknown format '\.onx'; use \.onnx$"):
        I.check_output_path(tmp_path / "m.onx", (), "OUT", suffixes=(".onnx",))
    with pytest.raises(ValueError, match=r"use \.mp4, \.mkv or \.mov$"):
        I.check_output_path(tmp_path / "v.avi", (), "OUT", suffixes=(".mp4", ".mkv", ".mov"))
    # the folder is tried with a probe file, which is removed again
    assert I.check_output_path(tmp_path / "new" / "deeper" / "out.png") == tmp_path / "new" / "deeper" / "out.png"
    assert list(tmp_path.iterdir()) == []
    ro = unwritable_folder(tmp_path)
    with pytest.raises(ValueError, match=f"the folder {re.escape(str(ro))} is not writable"):
        I.check_output_path(ro / "out.png")
    # the probe's name does not grow with the output's: a 250-byte name is fine
    assert I.check_output_path(tmp_path / ("x" * 246 + ".png")).name == "x" * 246 + ".png"
    assert list(tmp_path.iterdir()) == []
