"""Generators: shapes for any size, parameter counts from the architecture descriptions, padding,
upsampling, conditional styles, config round trip."""
import itertools

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from repro.models import MultiscaleGenerator, ResidualGenerator, build_generator
from repro.models._common import Blur
from repro.norms import ConditionalInstanceNorm

ARCHS = ("multiscale", "residual")
NORMS = ("batch", "instance", "none")
PADDINGS = ("zero", "reflect", "replicate")
SMALL = dict(width=0.25)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def conv_p(cin, cout, k):
    return cin * cout * k * k + cout


def norm_p(c):  # affine gamma and beta
    return 2 * c


@pytest.mark.parametrize("arch,norm,padding", list(itertools.product(ARCHS, NORMS, PADDINGS)))
def test_output_shape_equals_input_for_odd_sizes(arch, norm, padding):
    model = build_generator(arch, norm=norm, padding=padding, **SMALL)  # train mode
    for shape in ((1, 3, 97, 130), (1, 3, 17, 23)):
        x = torch.rand(shape)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_inputs(arch):
    model = build_generator(arch, **SMALL).eval()
    for h, w in ((1, 1), (2, 5), (8, 8)):
        assert model(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_residual_parameter_count_matches_johnson_architecture():
    # c9s1-32, d64, d128, 5 x R128, u64, u32, c9s1-3; IN (affine) after every conv but the last
    expected = (
        conv_p(3, 32, 9) + norm_p(32)
        + conv_p(32, 64, 3) + norm_p(64)
        + conv_p(64, 128, 3) + norm_p(128)
        + 5 * 2 * (conv_p(128, 128, 3) + norm_p(128))
        + conv_p(128, 64, 3) + norm_p(64)
        + conv_p(64, 32, 3) + norm_p(32)
        + conv_p(32, 3, 9)
    )
    assert expected == 1_679_235  # pytorch/examples TransformerNet
    assert n_params(build_generator("residual")) == expected
    # a transposed 3x3 conv has the same number of weights as a 3x3 conv
    assert n_params(build_generator("residual", upsample="transposed")) == expected
    # BN has the same affine parameters (its running stats are buffers); none has no norm params
    norms = 2 * (32 + 64 + 128 + 10 * 128 + 64 + 32)
    assert n_params(build_generator("residual", norm="none")) == expected - norms


def test_multiscale_parameter_count_matches_texture_nets_pyramid():
    k, c = 6, 8

    def block(cin, cout):  # 3x3, 3x3, 1x1 convs, each with norm
        return (conv_p(cin, cout, 3) + conv_p(cout, cout, 3) + conv_p(cout, cout, 1)
                + 3 * norm_p(cout))

    branches = k * block(3, c)
    joins = sum(norm_p(c * (i - 1)) + norm_p(c) + block(c * i, c * i) for i in range(2, k + 1))
    expected = branches + joins + conv_p(c * k, 3, 1)
    assert n_params(build_generator("multiscale")) == expected
    # v1 noise: 3 more input channels into each scale's first conv
    with_noise = build_generator("multiscale", noise_channels=3)
    assert n_params(with_noise) == expected + k * 3 * c * 9


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("padding", PADDINGS)
def test_padding_mode_is_set_on_every_spatial_conv(arch, padding):
    model = build_generator(arch, padding=padding, **SMALL)
    mode = {"zero": "zeros"}.get(padding, padding)
    convs = [m for m in model.modules() if type(m) is nn.Conv2d and m.kernel_size[0] > 1]
    assert convs and all(m.padding_mode == mode for m in convs)
    assert all(m.padding == (m.kernel_size[0] // 2,) * 2 for m in convs)


# Receptive-field radius (input pixels) through which a padded border value can reach an output
# pixel: sum over layers of kernel radius x input stride, plus one step of slack per resampling.
RESIDUAL_MARGIN = (4 * 1 + 1 * 1 + 1 * 2  # 9x9, two stride-2 3x3
                   + 10 * 1 * 4  # residual convs at 1/4 resolution
                   + 4 + 1 * 2 + 2 + 1 * 1  # upsample, 3x3 at 1/2, upsample, 3x3 at 1/1
                   + 4 * 1)  # final 9x9
MULTISCALE3_MARGIN = (4 + 2 * 1 * 4  # average pool by 4, two 3x3 convs at 1/4
                      + 4 + 2 * 1 * 2  # upsample, join block at 1/2
                      + 2 + 2 * 1 * 1)  # upsample, join block at 1/1


@pytest.mark.parametrize("arch,kw,size,margin", [
    ("residual", dict(width=0.25), 160, RESIDUAL_MARGIN),
    ("multiscale", dict(width=0.5, n_scales=3), 96, MULTISCALE3_MARGIN),
])
def test_padding_mode_reaches_the_convolutions(arch, kw, size, margin):
    # norm "none": instance statistics are global and would carry border effects inside
    zero = build_generator(arch, norm="none", padding="zero", output="linear", **kw).eval()
    reflect = build_generator(arch, norm="none", padding="reflect", output="linear", **kw).eval()
    reflect.load_state_dict(zero.state_dict())
    x = torch.rand(1, 3, size, size)  # a multiple of what the arch needs: no input padding
    with torch.no_grad():
        a, b = zero(x), reflect(x)
    diff = (a - b).abs()
    assert diff[..., :2, :].max() > 1e-4 and diff[..., :, -2:].max() > 1e-4
    inner = diff[..., margin:size - margin, margin:size - margin]
    assert inner.numel() > 0 and inner.max() < 1e-5


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "transposed", "antialiased", "subpixel"])
def test_residual_upsampling_options_keep_shape(upsample):
    model = build_generator("residual", upsample=upsample, **SMALL)
    n_transposed = sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert n_transposed == (2 if upsample == "transposed" else 0)
    assert sum(isinstance(m, nn.PixelShuffle) for m in model.modules()) == (2 if upsample == "subpixel" else 0)
    modes = {m.mode for m in model.modules() if isinstance(m, nn.Upsample)}
    expected = {"transposed": set(), "subpixel": set(), "antialiased": {"nearest"}}.get(upsample, {upsample})
    assert modes == expected
    assert sum(isinstance(m, Blur) for m in model.modules()) == (2 if upsample == "antialiased" else 0)
    assert model(torch.rand(2, 3, 37, 50)).shape == (2, 3, 37, 50)


def test_subpixel_upsampling_starts_as_nearest_x2_of_one_conv_with_untied_copies(tmp_path):
    # ICNR (Aitken et al. 2017): the four sub-pixel outputs of each 2x2 block start as copies
    torch.manual_seed(0)
    model = build_generator("residual", upsample="subpixel", **SMALL)
    layers = list(model.net)
    i = next(k for k, m in enumerate(layers) if isinstance(m, nn.PixelShuffle))
    sub = layers[i - 1]
    h = torch.randn(2, sub.in_channels, 6, 7)
    with torch.no_grad():
        up = layers[i](sub(h))
        assert up.shape == (2, sub.out_channels // 4, 12, 14) and up.std() > 0.01
        # every 2x2 block constant: no phase-dependent pattern at initialisation
        assert torch.equal(up, F.interpolate(up[..., ::2, ::2], scale_factor=2, mode="nearest"))
        # not a frozen tie: the four copies are separate weights that a step moves apart
        sub.weight[1].add_(0.1)
        up = layers[i](sub(h))
        assert not torch.equal(up, F.interpolate(up[..., ::2, ::2], scale_factor=2, mode="nearest"))
    # a checkpoint gives the same architecture back
    from repro.checkpoint import load_generator, model_kwargs, save_checkpoint
    from repro.config import Config
    cfg = Config()
    cfg.model.upsample, cfg.model.width = "subpixel", SMALL["width"]
    built = build_generator(**model_kwargs(cfg.model))
    save_checkpoint(tmp_path / "m.pt", model=built, step=0, config=cfg)
    loaded = load_generator(tmp_path / "m.pt")
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        assert torch.equal(loaded(x), built(x))
    assert sum(isinstance(m, nn.PixelShuffle) for m in loaded.modules()) == 2


def test_antialiased_upsampling_keeps_the_checkpoint_layout_of_nearest():
    # the blur is a fixed filter: the same learned weights, nothing new in a checkpoint
    near = build_generator("residual", upsample="nearest", **SMALL)
    aa = build_generator("residual", upsample="antialiased", **SMALL)
    assert [v.shape for v in near.state_dict().values()] == [v.shape for v in aa.state_dict().values()]


def test_antialiased_downsampling_is_blurpool_after_a_stride_1_conv(tmp_path):
    from repro.checkpoint import load_generator, model_kwargs, save_checkpoint
    from repro.config import Config

    strided = build_generator("residual", **SMALL)
    aa = build_generator("residual", downsample="antialiased", **SMALL)
    assert [c.stride for c in aa.modules() if isinstance(c, nn.Conv2d) and c.stride != (1, 1)] == []
    assert [b.stride for b in aa.modules() if isinstance(b, Blur)] == [2, 2]
    assert sum(c.stride == (2, 2) for c in strided.modules() if isinstance(c, nn.Conv2d)) == 2
    # the same learned weights (the blur is fixed), the same sizes, a different function
    assert [v.shape for v in strided.state_dict().values()] == [v.shape for v in aa.state_dict().values()]
    aa.load_state_dict(dict(zip(aa.state_dict(), strided.state_dict().values())))  # the blurs shift the keys
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        assert aa(x).shape == x.shape and not torch.allclose(aa(x), strided(x))
    # the trainer builds it from the config, and a checkpoint gives it back
    cfg = Config()
    cfg.model.downsample, cfg.model.width = "antialiased", SMALL["width"]
    assert model_kwargs(cfg.model)["downsample"] == "antialiased"
    assert "downsample" not in model_kwargs(Config().model)  # strided: the kwargs of earlier runs
    built = build_generator(**model_kwargs(cfg.model))
    assert [b.stride for b in built.modules() if isinstance(b, Blur)] == [2, 2]
    save_checkpoint(tmp_path / "m.pt", model=built, step=0, config=cfg)
    loaded = load_generator(tmp_path / "m.pt")
    assert [b.stride for b in loaded.modules() if isinstance(b, Blur)] == [2, 2]
    with pytest.raises(ValueError, match="downsample"):
        build_generator("residual", downsample="blurpool", **SMALL)


def test_blur_removes_a_period_2_pattern_and_keeps_a_constant():
    blur = Blur(2)
    i = torch.arange(16.0)
    stripes = ((-1.0) ** i)[None, None, :, None].expand(1, 2, 16, 16)
    out = blur(0.5 + 0.25 * stripes)
    # away from the reflected border the period-2 stripes are gone, the mean is kept
    torch.testing.assert_close(out[..., 1:-1, :], torch.full_like(out[..., 1:-1, :], 0.5))
    ramp = i[None, None, :, None].expand(1, 2, 16, 16)
    torch.testing.assert_close(blur(ramp)[..., 1:-1, :], ramp[..., 1:-1, :])   # linear passes


def test_multiscale_options():
    x = torch.rand(2, 3, 40, 30)
    model = build_generator("multiscale", activation="leaky_relu", noise_channels=3, n_scales=4,
                            **SMALL)
    assert any(isinstance(m, nn.LeakyReLU) for m in model.modules())
    assert model.branches[0][0].in_channels == 6
    model.eval()
    y1, y2 = model(x), model(x)
    assert y1.shape == x.shape
    assert not torch.equal(y1, y2)  # fresh noise at every call
    assert build_generator("multiscale", n_scales=1, **SMALL)(x).shape == x.shape


def test_linear_output_is_unbounded_and_sigmoid_is_its_squashing():
    lin = build_generator("residual", output="linear", norm="none", **SMALL)
    sig = build_generator("residual", output="sigmoid", norm="none", **SMALL)
    sig.load_state_dict(lin.state_dict())
    with torch.no_grad():
        nn.init.constant_(lin.net[-1].bias, 5.0)
        nn.init.constant_(sig.net[-1].bias, 5.0)
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(sig(x), torch.sigmoid(lin(x)))
    assert lin(x).max() > 1


def randomize_cin(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ConditionalInstanceNorm):
                m.weight.uniform_(0.2, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_generator_styles(arch):
    # float64: IN on the 2x2 coarsest multiscale maps amplifies float32 rounding differences
    # between batched and single-image convolutions beyond any tight tolerance
    model = build_generator(arch, norm="conditional_instance", n_styles=3, **SMALL)
    model = randomize_cin(model.double())
    x = torch.rand(1, 3, 33, 29, dtype=torch.float64).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([0, 1]))
    assert out.shape == x.shape
    assert (out[0] - out[1]).abs().max() > 1e-3
    # per-sample styles: each sample gets exactly its own style
    torch.testing.assert_close(out[1:], model(x[:1], torch.tensor([1])))
    torch.testing.assert_close(model(x, 2), model(x, torch.tensor([2, 2])))
    # one-hot weights equal the index
    one_hot = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(model(x[:1], one_hot), out[1:])
    # mixing weights equal a model whose style 0 carries the mixed gamma/beta in every CIN layer
    w = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    mixed = model(x[:1], w)
    other = build_generator(**model.config).double()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for m in other.modules():
            if isinstance(m, ConditionalInstanceNorm):
                m.weight[0] = w @ m.weight
                m.bias[0] = w @ m.bias
    torch.testing.assert_close(mixed, other(x[:1], torch.tensor([0])), rtol=1e-5, atol=1e-5)
    assert (mixed - out[:1]).abs().max() > 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_style_argument_is_checked(arch):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="style"):
        build_generator(arch, norm="instance", **SMALL)(x, torch.tensor([0]))
    with pytest.raises(ValueError, match="style"):
        build_generator(arch, norm="conditional_instance", n_styles=2, **SMALL)(x)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("norm", NORMS)
def test_gradient_reaches_the_input(arch, norm):
    model = build_generator(arch, norm=norm, **SMALL)
    x = torch.rand(2, 3, 24, 20, requires_grad=True)
    model(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_config_rebuilds_the_same_model(arch):
    model = build_generator(arch, norm="batch", padding="replicate", width=0.5, output="linear")
    assert model.config["arch"] == arch and model.config["padding"] == "replicate"
    clone = build_generator(**model.config)
    clone.load_state_dict(model.state_dict())  # strict: same architecture
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(clone.eval()(x), model.eval()(x))
    assert isinstance(clone, (ResidualGenerator, MultiscaleGenerator))


def test_instance_norm_generator_is_same_in_train_and_eval():
    model = build_generator("residual", norm="instance", **SMALL)
    x = torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(model.train()(x), model.eval()(x))
    assert not any("running" in k for k in model.state_dict())


@pytest.mark.parametrize("kwargs,name", [
    (dict(arch="unet"), "arch"),
    (dict(arch="residual", norm="group"), "norm"),
    (dict(arch="multiscale", padding="circular"), "padding"),
    (dict(arch="residual", upsample="bicubic"), "upsample"),
    (dict(arch="residual", output="tanh"), "output"),
    (dict(arch="multiscale", activation="gelu"), "activation"),
    (dict(arch="residual", width=0), "width"),
    (dict(arch="multiscale", n_scales=0), "n_scales"),
    (dict(arch="residual", n_styles=3), "n_styles"),
    (dict(arch="residual", norm="conditional_instance"), "n_styles"),
    (dict(arch="residual", equalized_output=1), "equalized_output"),
])
def test_build_generator_errors_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name) as err:
        build_generator(**kwargs)
    if isinstance(kwargs.get(name), str):
        assert repr(kwargs[name]) in str(err.value)


def test_build_generator_rejects_options_of_the_other_arch():
    with pytest.raises(TypeError, match="n_scales"):
        build_generator("residual", n_scales=3)


@pytest.mark.parametrize("arch", ARCHS)
def test_equalized_output_is_the_same_function_but_a_smaller_adam_step(arch):
    """Issue 18: Adam moves each weight by about lr, so a plain output conv fed by ReLUs moves
    its output by about lr * fan_in * mean(x) a step; equalized, 1/sqrt(fan_in) of that."""
    torch.manual_seed(0)
    plain = build_generator(arch, width=0.5)
    torch.manual_seed(0)
    eq = build_generator(arch, width=0.5, equalized_output=True)
    assert eq.config["equalized_output"] is True
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(eq(x), plain(x))   # same initial function

    def output_step(model):
        out = model.net[-1] if arch == "residual" else model.to_rgb
        opt = torch.optim.Adam(out.parameters(), lr=1e-3)
        seen = []
        h = out.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
        model(x).mean().backward()   # every output pushed the same way: the coherent case
        opt.step()
        with torch.no_grad():
            model(x)
        h.remove()
        return float((seen[1] - seen[0]).abs().mean()), out

    moved_plain, out = output_step(plain)
    moved_eq, _ = output_step(eq)
    fan_in = out.in_channels * out.kernel_size[0] * out.kernel_size[1]
    # Adam's first step moves every parameter by exactly lr: the bias moves both outputs by lr,
    # the weights move the plain one by lr * sum(x) and the equalized one by lr * sum(x) / sqrt(fan_in)
    assert (moved_eq - 1e-3) / (moved_plain - 1e-3) == pytest.approx(fan_in ** -0.5, rel=0.01)
    assert moved_plain > 1e-3 * (1 + 0.1 * fan_in)   # non-negative inputs add up
    clone = build_generator(**eq.config)
    clone.load_state_dict(eq.state_dict())
    torch.testing.assert_close(clone.eval()(x), eq.eval()(x))


def test_residual_output_conv_runs_nhwc_on_the_cpu_with_the_nchw_result(monkeypatch):
    """The last conv reads NHWC on the CPU (a faster input gradient in oneDNN): the output, its
    layout and the gradients are those of the all-NCHW network."""
    from repro.models import residual

    x = torch.rand(2, 3, 36, 44)
    results = []
    for nhwc in (True, False):
        if not nhwc:  # the network without the layout change: every layer in turn
            monkeypatch.setattr(residual.ResidualGenerator, "body", lambda self, x, style: self.net(x, style))
        torch.manual_seed(0)
        model = build_generator("residual", **SMALL)
        seen = []
        model.net[-1].register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous()))
        y = model(x)
        y.square().mean().backward()
        assert seen == [not nhwc] and y.is_contiguous()
        results.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    (y_a, g_a), (y_b, g_b) = results
    assert torch.allclose(y_a, y_b, atol=1e-6)
    flat_a, flat_b = torch.cat([g.flatten() for g in g_a]), torch.cat([g.flatten() for g in g_b])
    assert torch.allclose(flat_a, flat_b, rtol=1e-4, atol=1e-6 * flat_b.abs().max())
