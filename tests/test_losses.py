"""Tests of repro.losses against the equations written out here (Gatys et al. 2016 eq. 3-5,
Huang & Belongie 2017 eq. 12, squared-difference total variation)."""
import pytest
import torch

from repro.losses import (PerceptualLoss, content_loss, gram, gram_style_loss, meanstd_style_loss,
                          style_content_losses, tv_loss)
from repro.norms import mean_std
from repro.vgg import LossNetwork

STYLE = ("relu1_1", "relu2_1", "relu3_1")
CONTENT = ("relu2_2",)


@pytest.fixture(scope="module")
def net():
    return LossNetwork(list(STYLE) + list(CONTENT), weights="random")


def _feats(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _permute_positions(f, seed=1):
    """The same random permutation of the H*W positions for every channel and sample."""
    n, c, h, w = f.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return f.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)


# -- gram ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", ["hw", "chw"])
def test_gram_matches_formula(normalize):
    f = _feats(2, 5, 4, 7)
    n, c, h, w = f.shape
    expected = torch.zeros(n, c, c)
    for s in range(n):
        for i in range(c):
            for j in range(c):
                expected[s, i, j] = (f[s, i] * f[s, j]).sum()
    expected /= (h * w) if normalize == "hw" else (c * h * w)
    g = gram(f, normalize)
    assert g.shape == (n, c, c)
    torch.testing.assert_close(g, expected)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_default_is_hw_and_rejects_unknown():
    f = _feats(1, 3, 4, 4)
    torch.testing.assert_close(gram(f), gram(f, "hw"))
    with pytest.raises(ValueError, match="normalize"):
        gram(f, "c")
    with pytest.raises(ValueError):
        gram(torch.rand(3, 4, 4))


def test_gram_is_float32_under_bf16_input():
    f = _feats(1, 4, 8, 8).bfloat16()
    assert gram(f).dtype == torch.float32


# -- individual losses --------------------------------------------------------------------------
def test_gram_style_loss_formula_and_broadcasting():
    x, y = _feats(3, 4, 5, 6, seed=0), _feats(1, 4, 9, 3, seed=1)
    gx, gy = gram(x), gram(y)
    c = x.shape[1]
    per_sample = ((gx - gy) ** 2).sum(dim=(1, 2)) / c**2
    expected = per_sample.mean()
    torch.testing.assert_close(gram_style_loss(x, gy), expected)
    torch.testing.assert_close(gram_style_loss(x, gy[0]), expected)          # (C, C)
    torch.testing.assert_close(gram_style_loss(x, gy.expand(3, c, c)), expected)
    assert gram_style_loss(x, gram(x)).item() == 0.0
    assert gram_style_loss(x, gy).item() > 0.0
    with pytest.raises(ValueError, match="batch size"):
        gram_style_loss(x, gy.expand(2, c, c))


def test_content_loss_is_feature_mse():
    x, y = _feats(2, 3, 4, 5, seed=0), _feats(2, 3, 4, 5, seed=1)
    torch.testing.assert_close(content_loss(x, y), ((x - y) ** 2).mean())
    assert content_loss(x, x.clone()).item() == 0.0
    assert content_loss(x, y).item() > 0.0
    with pytest.raises(ValueError):
        content_loss(x, y[:, :, :3])


def test_meanstd_style_loss_matches_paper_and_mse_forms():
    x, y = _feats(2, 6, 5, 5, seed=0) * 2, _feats(2, 6, 7, 3, seed=1)
    eps = 1e-5

    def stats(f):
        flat = f.flatten(2)
        mu = flat.mean(2)
        sigma = (((flat - mu[..., None]) ** 2).mean(2) + eps).sqrt()   # biased variance
        return mu, sigma

    (mx, sx), (my, sy) = stats(x), stats(y)
    paper = (((mx - my) ** 2).sum(1).sqrt() + ((sx - sy) ** 2).sum(1).sqrt()).mean()
    torch.testing.assert_close(meanstd_style_loss(x, y), paper)
    mse = ((mx - my) ** 2).mean() + ((sx - sy) ** 2).mean()
    torch.testing.assert_close(meanstd_style_loss(x, y, reduction="mse"), mse)
    mu, sigma = mean_std(x)  # the one definition, (N, C, 1, 1) to broadcast in AdaIN
    torch.testing.assert_close(mu.flatten(1), mx)
    torch.testing.assert_close(sigma.flatten(1), sx)
    assert meanstd_style_loss(x, x.clone()).item() == 0.0
    assert meanstd_style_loss(x, y).item() > 0.0
    with pytest.raises(ValueError, match="reduction"):
        meanstd_style_loss(x, y, reduction="sum")


def test_meanstd_loss_finite_gradient_on_constant_maps():
    x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    loss = meanstd_style_loss(x, x.detach())
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_style_losses_invariant_to_position_permutation_content_loss_is_not():
    x, y = _feats(2, 8, 6, 6, seed=0), _feats(1, 8, 5, 7, seed=1)
    xp = _permute_positions(x)
    torch.testing.assert_close(gram(xp), gram(x))
    torch.testing.assert_close(gram_style_loss(xp, gram(y)), gram_style_loss(x, gram(y)))
    torch.testing.assert_close(meanstd_style_loss(xp, y), meanstd_style_loss(x, y))
    assert gram_style_loss(xp, gram(x)).item() < 1e-10
    assert meanstd_style_loss(xp, x).item() < 1e-6
    assert content_loss(xp, x).item() > 1e-2


def test_tv_loss():
    assert tv_loss(torch.full((2, 3, 8, 9), 0.3)).item() == 0.0
    img = _feats(2, 3, 5, 6)
    dh = (img[:, :, 1:] - img[:, :, :-1]) ** 2
    dw = (img[:, :, :, 1:] - img[:, :, :, :-1]) ** 2
    expected = (dh.sum() + dw.sum()) / (dh.numel() + dw.numel())
    torch.testing.assert_close(tv_loss(img), expected)
    assert tv_loss(img).item() > 0.0


# -- PerceptualLoss ------------------------------------------------------------------------------
def _images(n=2, h=32, w=40, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("style_stat", ["gram", "meanstd"])
def test_perceptual_loss_terms_add_up(net, style_stat):
    lw = {"relu1_1": 0.5, "relu3_1": 2.0}
    pl = PerceptualLoss(CONTENT, STYLE, content_weight=2.0, style_weight=10.0, tv_weight=3.0,
                        style_stat=style_stat, style_layer_weights=lw, loss_network=net)
    out, content, style = _images(seed=0), _images(seed=1), _images(1, 24, 36, seed=2)
    pl.set_style(style)
    terms = pl(out, content)
    expected_keys = {"total", "content", "style", "tv", "content/relu2_2",
                     *(f"style/{l}" for l in STYLE)}
    assert set(terms) == expected_keys
    assert all(t.dim() == 0 for t in terms.values())
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"])
    torch.testing.assert_close(terms["style"], sum(terms[f"style/{l}"] for l in STYLE))
    torch.testing.assert_close(terms["content"], terms["content/relu2_2"])

    raw = pl(out, content, weighted=False)
    torch.testing.assert_close(terms["content"], 2.0 * raw["content"])
    torch.testing.assert_close(terms["tv"], 3.0 * raw["tv"])
    torch.testing.assert_close(raw["tv"], tv_loss(out))
    for l in STYLE:
        torch.testing.assert_close(terms[f"style/{l}"], 10.0 * raw[f"style/{l}"])
    # The raw per-layer term is the plain loss of that layer times its layer weight.
    f_out, f_sty = net(out), net(style)
    if style_stat == "gram":
        plain = gram_style_loss(f_out["relu3_1"], gram(f_sty["relu3_1"]))
    else:
        plain = meanstd_style_loss(f_out["relu3_1"], f_sty["relu3_1"])
    torch.testing.assert_close(raw["style/relu3_1"], 2.0 * plain)
    torch.testing.assert_close(raw["content/relu2_2"],
                               content_loss(f_out["relu2_2"], net(content)["relu2_2"]))


@pytest.mark.parametrize("style_stat", ["gram", "meanstd"])
def test_perceptual_loss_zero_for_identical_images(net, style_stat):
    pl = PerceptualLoss(CONTENT, STYLE, style_stat=style_stat, loss_network=net)
    img = _images(1)
    pl.set_style(img)
    terms = pl(img, img.clone())
    assert terms["content"].item() == 0.0
    assert terms["style"].item() < 1e-9
    assert pl(_images(1, seed=5), img)["style"].item() > 0.0


def test_gradients_reach_input_not_loss_network(net):
    pl = PerceptualLoss(CONTENT, STYLE, tv_weight=1.0, loss_network=net)
    pl.set_style(_images(1, seed=3))
    out = _images(2).requires_grad_(True)
    pl(out, _images(2, seed=1))["total"].backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    params = list(pl.parameters())
    assert params and all(not p.requires_grad and p.grad is None for p in params)
    pl.train()
    assert not pl.loss_network.training


@pytest.mark.parametrize("style_stat", ["gram", "meanstd"])
def test_per_sample_style_targets(net, style_stat):
    pl = PerceptualLoss(CONTENT, STYLE, style_stat=style_stat, loss_network=net)
    out, content, styles = _images(2, seed=0), _images(2, seed=1), _images(2, 28, 28, seed=2)
    batched = pl(out, content, style=styles)
    singles = [pl(out[i:i + 1], content[i:i + 1], style=styles[i:i + 1]) for i in range(2)]
    for k in batched:
        torch.testing.assert_close(batched[k], (singles[0][k] + singles[1][k]) / 2)
    # The same targets through style_feats, style_targets and set_style with a batch of 2.
    via_feats = pl(out, content, style_feats=net(styles))
    via_targets = pl(out, content, style_targets=pl.compute_style_targets(styles))
    pl.set_style(styles)
    via_set = pl(out, content)
    for k in batched:
        torch.testing.assert_close(via_feats[k], batched[k])
        torch.testing.assert_close(via_targets[k], batched[k])
        torch.testing.assert_close(via_set[k], batched[k])
    # One style shared by the batch equals that style repeated per sample.
    shared = pl(out, content, style=styles[:1])
    repeated = pl(out, content, style=styles[:1].expand(2, -1, -1, -1))
    torch.testing.assert_close(shared["style"], repeated["style"])


def test_content_feats_equal_content_image(net):
    pl = PerceptualLoss(CONTENT, STYLE, loss_network=net)
    pl.set_style(_images(1, seed=3))
    out, content = _images(2), _images(2, seed=1)
    a = pl(out, content)
    b = pl(out, content_feats=net(content))
    torch.testing.assert_close(a["total"], b["total"])


def test_perceptual_loss_errors(net):
    with pytest.raises(ValueError, match="style_stat"):
        PerceptualLoss(CONTENT, STYLE, style_stat="histogram", loss_network=net)
    with pytest.raises(ValueError, match="gram_normalize"):
        PerceptualLoss(CONTENT, STYLE, gram_normalize="c", loss_network=net)
    with pytest.raises(ValueError, match="relu1_2"):
        PerceptualLoss(CONTENT, ["relu1_2"], loss_network=net)
    with pytest.raises(ValueError, match="style_layer_weights"):
        PerceptualLoss(CONTENT, STYLE, style_layer_weights=[1.0], loss_network=net)
    with pytest.raises(ValueError, match="style_weight"):
        PerceptualLoss(CONTENT, STYLE, style_weight=-1, loss_network=net)
    pl = PerceptualLoss(CONTENT, STYLE, loss_network=net)
    with pytest.raises(ValueError, match="set_style"):
        pl(_images(1), _images(1))
    pl.set_style(_images(1))
    with pytest.raises(ValueError, match="content"):
        pl(_images(1))
    with pytest.raises(ValueError, match="batch size"):
        pl(_images(3), _images(3), style=_images(2))


def test_builds_its_own_network_over_the_union_of_layers():
    pl = PerceptualLoss(["relu2_2"], ["relu1_1", "relu2_1"], network_weights="random")
    assert set(pl.loss_network.layers) == {"relu1_1", "relu2_1", "relu2_2"}
    pl.set_style(_images(1))
    assert torch.isfinite(pl(_images(1), _images(1))["total"])


def test_style_content_losses_reports_raw_floats(net):
    pl = PerceptualLoss(CONTENT, STYLE, content_weight=5.0, style_weight=1e3, loss_network=net)
    stored = _images(1, seed=9)
    pl.set_style(stored)
    before = {l: t.clone() for l, t in pl.style_targets.items()}
    img, content, style = _images(1, seed=0)[0], _images(1, seed=1)[0], _images(1, seed=2)[0]
    r = style_content_losses(img, content, style, pl)
    assert all(isinstance(v, float) for v in r.values())
    raw = pl(img[None], content[None], style=style[None], weighted=False)
    assert r["content"] == pytest.approx(raw["content"].item())
    assert r["style"] == pytest.approx(raw["style"].item())
    for l, t in pl.style_targets.items():        # the stored style is untouched
        torch.testing.assert_close(t, before[l])
    r_stored = style_content_losses(img, content, None, pl)
    assert r_stored["style"] == pytest.approx(pl(img[None], content[None], weighted=False)["style"].item())
