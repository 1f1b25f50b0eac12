"""Tests of repro.gatys.stylize (Gatys et al. 2016 optimization) on tiny images."""
import pytest
import torch

from repro import paths
from repro.gatys import GatysResult, stylize
from repro.losses import PerceptualLoss
from repro.vgg import LossNetwork

STYLE = ("relu1_1", "relu2_1", "relu3_1")
CONTENT = ("relu3_1",)


@pytest.fixture(scope="module")
def net():
    return LossNetwork(list(STYLE), weights="random")


def _content(h=40, w=40):
    """A smooth colour ramp with a red rectangle: structure for the content loss to keep."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([xx, yy, 1 - xx * yy])
    img[:, h // 4: 5 * h // 8, w // 4: 3 * w // 4] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    return img


def _style(size=48):
    """Diagonal colour stripes: a texture unlike the content."""
    i = torch.arange(size)
    wave = torch.sin(i[:, None] * 0.8 + i[None, :] * 0.3)
    return 0.5 + wave[None] * torch.tensor([0.4, 0.2, 0.3])[:, None, None]


def _raw(loss, image, content):
    return loss(image[None], content[None], weighted=False)


def _check_tradeoff(net_, content_weight, style_weight, steps, content_ratio):
    content, style = _content(), _style()
    results = {}
    for cw in (content_weight, 0.0):
        loss = PerceptualLoss(CONTENT, STYLE, cw, style_weight, loss_network=net_)
        r = stylize(content, style, steps=steps, loss=loss, device="cpu")
        results[cw] = (r, _raw(loss, r.image, content), _raw(loss, content, content))
    r, after, before = results[content_weight]
    _, style_only, _ = results[0.0]
    assert isinstance(r, GatysResult)
    assert r.image.shape == content.shape
    assert r.image.min() >= 0.0 and r.image.max() <= 1.0
    assert len(r.history) == r.steps == steps
    assert {"total", "content", "style", "tv"} <= set(r.history[0])
    # Style matched: at least an order of magnitude below the content image's style loss.
    assert after["style"] < before["style"] / 10
    # Content kept: clearly closer to the content than the same optimization without it.
    assert after["content"] < content_ratio * style_only["content"]


def test_lbfgs_lowers_style_loss_and_keeps_content(net):
    _check_tradeoff(net, content_weight=1.0, style_weight=10.0, steps=40, content_ratio=0.8)


def _real_weights():
    for d in (paths.weights_dir(), (paths.default_mirror() or paths.ROOT) / "weights"):
        p = d / paths.NORMALISED_VGG19
        if p.is_file():
            return p
    return None


@pytest.mark.skipif(_real_weights() is None, reason="normalised VGG-19 weights not available")
def test_lbfgs_with_real_weights():
    real = LossNetwork(list(STYLE), weights="normalised", weights_path=_real_weights())
    _check_tradeoff(real, content_weight=10.0, style_weight=1.0, steps=40, content_ratio=0.7)


def test_adam_lowers_loss(net):
    loss = PerceptualLoss(CONTENT, STYLE, 1.0, 10.0, loss_network=net)
    r = stylize(_content(), _style(), steps=60, optimizer="adam", loss=loss, device="cpu")
    assert r.final["total"] < r.history[0]["total"] / 3
    assert r.image.min() >= 0.0 and r.image.max() <= 1.0


def test_noise_init_is_seeded_and_converges(net):
    loss = PerceptualLoss(CONTENT, STYLE, 1.0, 10.0, loss_network=net)
    kw = dict(steps=15, init="noise", loss=loss, device="cpu")
    a = stylize(_content(), _style(), seed=1, **kw)
    b = stylize(_content(), _style(), seed=1, **kw)
    c = stylize(_content(), _style(), seed=2, **kw)
    torch.testing.assert_close(a.image, b.image)
    assert not torch.allclose(a.image, c.image)
    assert a.final["style"] < a.history[0]["style"] / 10


def test_builds_loss_from_arguments_and_accepts_paths(tmp_path):
    from PIL import Image
    content, style = _content(32, 36), _style(40)
    files = []
    for name, t in (("c.png", content), ("s.png", style)):
        arr = (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(tmp_path / name)
        files.append(tmp_path / name)
    seen = []
    r = stylize(str(files[0]), files[1], steps=5, size=24, network_weights="random",
                tv_weight=1.0, device="cpu", callback=lambda i, img, l: seen.append((i, img.shape)))
    assert r.image.shape == (3, 24, 27)        # shorter side resized to `size`
    assert [s[0] for s in seen] == list(range(5)) and seen[0][1] == r.image.shape
    assert r.history[0]["tv"] >= 0.0 and r.seconds > 0.0


def test_callback_can_stop(net):
    loss = PerceptualLoss(CONTENT, STYLE, loss_network=net)
    r = stylize(_content(), _style(), steps=50, loss=loss, device="cpu",
                callback=lambda step, img, losses: step == 2)
    assert r.steps == 3


@pytest.mark.parametrize("kwargs, name", [
    (dict(optimizer="sgd"), "optimizer"),
    (dict(init="zeros"), "init"),
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(lr=-1.0), "lr"),
])
def test_bad_arguments_raise(net, kwargs, name):
    loss = PerceptualLoss(CONTENT, STYLE, loss_network=net)
    with pytest.raises(ValueError, match=name):
        stylize(_content(), _style(), loss=loss, device="cpu", **kwargs)


def test_bad_style_stat_raises():
    with pytest.raises(ValueError, match="style_stat"):
        PerceptualLoss(CONTENT, STYLE, style_stat="hist", network_weights="random")


def test_cli_gatys_writes_the_result_and_reports_bad_input(tmp_path):
    import subprocess
    import sys

    from repro.images import load_image, save_image

    save_image(torch.rand(3, 40, 52), tmp_path / "c.png")
    save_image(torch.rand(3, 48, 48), tmp_path / "s.png")
    cmd = [sys.executable, "-m", "repro", "gatys", str(tmp_path / "c.png"), str(tmp_path / "s.png"),
           str(tmp_path / "out.png"), "--size", "32", "--steps", "3", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load_image(tmp_path / "out.png").shape == (3, 32, 42)
    cmd[4] = str(tmp_path / "missing.png")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and "missing.png" in r.stderr and "Traceback" not in r.stderr
