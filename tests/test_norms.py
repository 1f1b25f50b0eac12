"""Normalization layers against the papers' equations (IN eq. 3, CIN, AdaIN eq. 8)."""
import pytest
import torch
from torch import nn

from repro.norms import ConditionalInstanceNorm, InstanceNorm, adain, make_norm, mean_std

EPS = 1e-5


def eq3(x, gamma, beta, eps=EPS):
    """IN paper eq. 3 written out: per image t, channel i, statistics over all (j, k)."""
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    for t in range(n):
        for i in range(c):
            v = x[t, i]
            mu = v.sum() / (h * w)
            var = ((v - mu) ** 2).sum() / (h * w)  # biased
            out[t, i] = gamma[i] * (v - mu) / torch.sqrt(var + eps) + beta[i]
    return out


def randomize_affine(module):
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-2, 2)
    return module


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_instance_norm_equals_eq3():
    x = torch.randn(3, 4, 5, 7) * 3 + 1
    norm = randomize_affine(InstanceNorm(4))
    torch.testing.assert_close(norm(x), eq3(x, norm.weight, norm.bias), rtol=1e-5, atol=1e-5)


def test_instance_norm_eps_is_inside_the_sqrt():
    # tiny variance makes sqrt(var + eps) and sqrt(var) + eps very different
    x = torch.randn(1, 2, 4, 4) * 1e-3
    norm = InstanceNorm(2, eps=1e-2)
    expected = eq3(x, torch.ones(2), torch.zeros(2), eps=1e-2)
    torch.testing.assert_close(norm(x), expected)


def test_instance_norm_invariant_to_per_image_affine_change_batch_norm_is_not():
    x = torch.randn(3, 4, 6, 6)
    a = torch.tensor([0.5, 2.0, 7.0]).view(3, 1, 1, 1)
    b = torch.tensor([-1.0, 0.3, 4.0]).view(3, 1, 1, 1)
    inorm = randomize_affine(InstanceNorm(4))
    torch.testing.assert_close(inorm(a * x + b), inorm(x), rtol=1e-4, atol=1e-4)
    bn = nn.BatchNorm2d(4).train()
    assert not torch.allclose(bn(a * x + b), bn(x), atol=1e-2)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_instance_norm_same_output_alone_or_in_batch(mode):
    norm = randomize_affine(InstanceNorm(4))
    getattr(norm, mode)()
    batch = torch.randn(5, 4, 6, 8) * torch.arange(1, 6).view(5, 1, 1, 1)
    alone = norm(batch[2:3])
    torch.testing.assert_close(norm(batch)[2:3], alone)


def test_instance_norm_eval_equals_train_and_has_no_running_stats():
    norm = randomize_affine(InstanceNorm(4))
    x = torch.randn(2, 4, 5, 5)
    for _ in range(3):  # training steps would update running stats if there were any
        norm.train()(torch.randn(2, 4, 5, 5) * 5 + 3)
    torch.testing.assert_close(norm.eval()(x), norm.train()(x))
    assert set(norm.state_dict()) == {"weight", "bias"}
    assert not any("running" in k for k in norm.state_dict())
    assert list(norm.buffers()) == []


def test_instance_norm_1x1_and_constant_maps_give_beta_not_nan():
    norm = randomize_affine(InstanceNorm(3))
    for x in (torch.randn(1, 3, 1, 1), torch.full((2, 3, 4, 4), 5.0)):
        y = norm(x)
        assert torch.isfinite(y).all()
        # the fused kernel folds eq. 3 into x * scale + shift with scale ~ 1/sqrt(eps) ~ 316 on a
        # constant map, so beta comes back up to the rounding of x * scale (~1e-4 here)
        torch.testing.assert_close(y, norm.bias.view(1, 3, 1, 1).expand_as(y), atol=1e-3, rtol=0)


def test_instance_norm_without_affine_has_no_parameters():
    norm = InstanceNorm(3, affine=False)
    assert list(norm.parameters()) == []
    y = norm(torch.randn(2, 3, 5, 5))
    torch.testing.assert_close(y.mean((2, 3)), torch.zeros(2, 3), atol=1e-5, rtol=0)


def test_batch_norm_eval_uses_running_stats():
    bn = make_norm("batch", 4)
    assert isinstance(bn, nn.BatchNorm2d)
    x = torch.randn(4, 4, 5, 5) * 3 + 2
    train_out = bn.train()(x)
    assert "running_mean" in bn.state_dict()
    assert not torch.allclose(bn.eval()(x), train_out, atol=1e-2)


# --- conditional instance norm (Dumoulin et al. 2017) -------------------------------------------

def make_cin(c=4, n_styles=3):
    return randomize_affine(ConditionalInstanceNorm(c, n_styles))


def test_cin_index_equals_instance_norm_with_that_style():
    cin = make_cin()
    x = torch.randn(2, 4, 5, 6)
    for k in range(3):
        expected = eq3(x, cin.weight[k], cin.bias[k])
        torch.testing.assert_close(cin(x, torch.tensor([k, k])), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cin(x, k), expected, rtol=1e-5, atol=1e-5)


def test_cin_one_hot_weights_equal_index():
    cin = make_cin()
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(cin(x, torch.tensor([0.0, 1.0, 0.0])), cin(x, torch.tensor([1, 1])))


def test_cin_mixing_weights_mix_gamma_and_beta():
    cin = make_cin()
    x = torch.randn(2, 4, 5, 6)
    w = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    out = cin(x, w)
    for t in range(2):
        gamma = (w[t, :, None] * cin.weight).sum(0)
        beta = (w[t, :, None] * cin.bias).sum(0)
        torch.testing.assert_close(out[t:t + 1], eq3(x[t:t + 1], gamma, beta), rtol=1e-5, atol=1e-5)


def test_cin_different_styles_per_sample():
    cin = make_cin()
    x = torch.randn(1, 4, 5, 6).expand(3, -1, -1, -1)
    out = cin(x, torch.tensor([2, 0, 1]))
    for t, k in enumerate([2, 0, 1]):
        torch.testing.assert_close(out[t:t + 1], cin(x[:1], torch.tensor([k])))
    assert not torch.allclose(out[0], out[1])


def test_cin_rejects_bad_style():
    cin = make_cin()
    x = torch.randn(2, 4, 5, 6)
    with pytest.raises(ValueError, match="style"):
        cin(x, None)
    with pytest.raises(ValueError, match="3"):
        cin(x, torch.rand(2, 5))
    with pytest.raises(ValueError, match="batch"):
        cin(x, torch.tensor([0, 1, 2]))


# --- AdaIN (Huang & Belongie 2017, eq. 8) -------------------------------------------------------

def test_adain_has_style_mean_and_std():
    content = torch.randn(2, 5, 9, 11) * 2 + 3
    style = torch.randn(2, 5, 6, 4) * torch.rand(1, 5, 1, 1) * 4 - 1
    out = adain(content, style)
    assert out.shape == content.shape
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.std((2, 3), correction=0), style.std((2, 3), correction=0),
                               rtol=1e-3, atol=1e-3)


def test_adain_equals_eq8():
    x, y = torch.randn(1, 3, 4, 5), torch.randn(1, 3, 7, 7)
    mx, vx = x.mean((2, 3), keepdim=True), x.var((2, 3), correction=0, keepdim=True)
    my, vy = y.mean((2, 3), keepdim=True), y.var((2, 3), correction=0, keepdim=True)
    expected = torch.sqrt(vy + EPS) * (x - mx) / torch.sqrt(vx + EPS) + my
    torch.testing.assert_close(adain(x, y), expected)


def test_adain_constant_maps_are_finite():
    content = torch.full((1, 3, 8, 8), 0.7)
    style = torch.randn(1, 3, 5, 5)
    out = adain(content, style)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, style.mean((2, 3), keepdim=True).expand_as(out))
    assert torch.isfinite(adain(style, torch.zeros(1, 3, 2, 2))).all()
    content.requires_grad_(True)
    adain(content, style).sum().backward()
    assert torch.isfinite(content.grad).all()


def test_adain_broadcasts_single_style_over_batch():
    content, style = torch.randn(3, 2, 6, 6), torch.randn(1, 2, 4, 4)
    out = adain(content, style)
    torch.testing.assert_close(out[1:2], adain(content[1:2], style))


def test_mean_std_shapes_and_values():
    x = torch.randn(2, 3, 4, 5)
    mean, std = mean_std(x)
    assert mean.shape == std.shape == (2, 3, 1, 1)
    torch.testing.assert_close(std.squeeze(), torch.sqrt(x.var((2, 3), correction=0) + EPS))
    _, std0 = mean_std(torch.zeros(1, 1, 3, 3))
    assert std0.item() == pytest.approx(EPS ** 0.5)


# --- make_norm ---------------------------------------------------------------------------------

def test_make_norm_kinds():
    assert isinstance(make_norm("batch", 4), nn.BatchNorm2d)
    assert isinstance(make_norm("instance", 4), InstanceNorm)
    assert isinstance(make_norm("none", 4), nn.Identity)
    cin = make_norm("conditional_instance", 4, n_styles=7)
    assert isinstance(cin, ConditionalInstanceNorm) and cin.weight.shape == (7, 4)
    assert make_norm("instance", 4, eps=1e-3).eps == 1e-3


def test_make_norm_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind='group'") as err:
        make_norm("group", 4)
    assert all(k in str(err.value) for k in ("batch", "instance", "none", "conditional_instance"))
    with pytest.raises(ValueError, match="n_styles"):
        make_norm("conditional_instance", 4)
    with pytest.raises(ValueError, match="n_styles"):
        make_norm("instance", 4, n_styles=3)


def test_bfloat16_keeps_its_dtype_and_matches_float32():
    x = torch.randn(2, 3, 16, 16) * 4 + 100
    xb = x.bfloat16()
    y = InstanceNorm(3).bfloat16()(xb)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), InstanceNorm(3)(xb.float()), rtol=2e-2, atol=2e-2)
    assert adain(xb, xb).dtype == torch.bfloat16
