"""AdaIN encoder-decoder (Huang & Belongie 2017): architecture, eq. 8-9/14, training with the
trainer, checkpoints, arbitrary-style inference, colour preservation, the CLI."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from repro import config as config_mod
from repro import images, runs
from repro.checkpoint import load_checkpoint, load_generator, model_kwargs
from repro.inference import stylize
from repro.models import AdaINNet, build_generator
from repro.models.adain import decoder_for
from repro.norms import mean_std
from repro.train import train

ADAIN = ["model.arch=adain", "model.norm=none", "model.encoder_weights=random", "loss.vgg_weights=random",
         "loss.style_stat=meanstd", "loss.content_layers=[relu3_1]", "data.style=[candy,feathers,mosaic]",
         "optim.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "data.n_train=3",
         "data.image_size=32", "data.content_size=64", "data.style_size=64",
         "data.test_images=[karya]", "data.test_size=40"]


@pytest.fixture
def net():
    torch.manual_seed(0)
    return AdaINNet("relu3_1", vgg_weights="random").eval()


def test_decoder_mirrors_the_encoder_as_in_the_paper():
    dec = decoder_for("relu4_1")
    convs = [(m.in_channels, m.out_channels) for m in dec if isinstance(m, nn.Conv2d)]
    # AdaIN §6.1: 512-256, up, 256-256 x3, 256-128, up, 128-128, 128-64, up, 64-64, 64-3
    assert convs == [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128),
                     (128, 64), (64, 64), (64, 3)]
    ups = [m for m in dec if isinstance(m, nn.Upsample)]
    assert len(ups) == 3 and all(u.mode == "nearest" for u in ups)
    assert all(m.padding_mode == "reflect" for m in dec if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in dec.modules())
    assert not isinstance(list(dec)[-1], nn.ReLU)  # linear RGB out
    small = [(m.in_channels, m.out_channels) for m in decoder_for("relu3_1") if isinstance(m, nn.Conv2d)]
    assert small == [(256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    with pytest.raises(ValueError, match="encoder_layer"):
        decoder_for("relu3_2")


def test_bottleneck_takes_the_style_statistics_and_alpha_blends_back(net):
    c, s = torch.rand(2, 3, 48, 40), torch.rand(1, 3, 56, 64)
    fc, fs = net.encode(c), net.encode(s)
    t = net.target(fc, [fs])
    tm, ts = mean_std(t)
    sm, ss = mean_std(fs)
    # channels the content leaves constant (dead ReLUs) can only take the style's mean
    # (and eps inside the square root matters only for near-constant channels)
    live = ((mean_std(fc)[1] > 0.05) & (ss > 0.05)).expand_as(ts)
    assert torch.allclose(tm, sm.expand_as(tm), atol=1e-4)
    assert live.float().mean() > 0.5
    assert torch.allclose(ts[live], ss.expand_as(ts)[live], rtol=1e-2)
    assert torch.equal(net.target(fc, [fs], alpha=0.0), fc)
    half = net.target(fc, [fs], alpha=0.5)
    assert torch.allclose(half, 0.5 * t + 0.5 * fc, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        net.target(fc, [fs], alpha=1.5)


def test_style_interpolation_weights(net):
    c = torch.rand(1, 3, 32, 32)
    s1, s2 = torch.rand(1, 3, 40, 40), torch.rand(3, 36, 44)
    with torch.no_grad():
        only_first = net(c, [s1, s2], style_weights=[1, 0])
        assert torch.allclose(only_first, net(c, s1), atol=1e-5)
        mixed = net(c, [s1, s2], style_weights=[2, 2])    # normalised to 1/2, 1/2
        assert torch.allclose(mixed, net(c, [s1, s2]), atol=1e-5)
    for bad in ([1], [-1, 2], [0, 0]):
        with pytest.raises(ValueError, match="style_weights"):
            net(c, [s1, s2], style_weights=bad)
    with pytest.raises(ValueError, match="RGB"):
        net(c, torch.rand(1, 32, 32))


def test_any_size_and_a_decoder_only_checkpoint(net, tmp_path):
    with torch.no_grad():
        y = net(torch.rand(1, 3, 37, 51), torch.rand(1, 3, 30, 30))
    assert y.shape == (1, 3, 37, 51)
    sd = net.state_dict()
    assert sd and not any(k.startswith("encoder.") for k in sd)
    clone = build_generator(**net.config)
    clone.load_state_dict(sd)  # strict, encoder filled from the clone's own VGG
    for k, v in sd.items():
        assert torch.equal(clone.state_dict()[k], v)
    with pytest.raises(ValueError, match="fixed decoder"):
        build_generator("adain", norm="batch")


def test_trainer_trains_the_decoder_only_and_logs_adain_terms(tmp_path):
    cfg = config_mod.load_config("smoke", ADAIN)
    run = train(cfg, progress=False, runs_root=tmp_path)
    rows = runs.metrics(run)
    assert len(rows) == 4 and all(k in rows[0] for k in ("content/relu3_1", "style/relu1_1", "style/relu3_1"))
    ev = runs.evals(run)
    assert [e["step"] for e in ev] == [2, 4] and ev[-1]["style"] > 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step000002.png", "step000004.png"]
    model = load_generator(run)
    assert isinstance(model, AdaINNet) and model.config["vgg_weights"] == "random"
    fresh = AdaINNet("relu3_1", vgg_weights="random")
    # the encoder is the fixed VGG; the decoder moved
    assert all(torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(),
                                                  fresh.encoder.state_dict().values()))
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt["step"] == 4 and ckpt["generator"]["arch"] == "adain"
    torch.manual_seed(cfg.train.seed)  # the trainer's initialisation
    init = build_generator(**model.config).decoder.state_dict()
    assert all(not torch.equal(init[k], v) for k, v in model.decoder.state_dict().items())


def test_adain_config_is_checked():
    with pytest.raises(config_mod.ConfigError, match="loss.content_layers"):
        config_mod.load_config("smoke", ADAIN + ["loss.content_layers=[relu2_2]"])
    with pytest.raises(config_mod.ConfigError, match="data.transform"):
        config_mod.load_config("smoke", ADAIN + ["data.transform=equalize"])
    with pytest.raises(config_mod.ConfigError, match="model.encoder_weights"):
        config_mod.load_config("smoke", ADAIN + ["model.encoder_weights=vgg"])


def test_self_style_is_checked_and_keyed_for_adain_only():
    for bad in ("-0.1", "1.5"):
        with pytest.raises(config_mod.ConfigError, match=r"data.self_style: must be in \[0, 1\]"):
            config_mod.load_config("smoke", ADAIN + [f"data.self_style={bad}"])
    # the profiles turn the residual generator's equalized output conv on; AdaIN's decoder (the
    # paper's) does not read it, so it neither fails nor changes an AdaIN run's directory
    eq = [config_mod.load_config("smoke", ADAIN + [f"model.equalized_output={v}"]) for v in ("true", "false")]
    assert runs.config_hash(eq[0]) == runs.config_hash(eq[1])
    assert "equalized_output" not in model_kwargs(eq[0].model)
    with pytest.raises(config_mod.ConfigError, match="data.self_style is for arch=adain"):
        config_mod.load_config("smoke", ["data.self_style=0.5"])
    # an AdaIN run's directory depends on it; a generator run's does not see the key at all
    a = [config_mod.load_config("smoke", ADAIN + [f"data.self_style={v}"]) for v in (0.0, 0.5)]
    assert runs.config_hash(a[0]) != runs.config_hash(a[1])
    g = config_mod.load_config("smoke")
    d = config_mod.to_dict(g)
    del d["data"]["self_style"]
    assert runs.config_hash(g) == runs.config_hash(d)


def test_loss_network_padding_is_checked_built_and_keyed_only_when_set():
    from repro import tasks

    with pytest.raises(config_mod.ConfigError, match="loss.vgg_padding: must be one of zero, reflect"):
        config_mod.load_config("smoke", ["loss.vgg_padding=replicate"])
    # the AdaIN profiles measure the output with the encoder's reflection padding, as t is made
    from repro import experiments
    for profile in ("smoke", "cpu", "gpu", "paper"):
        assert experiments.generator_config(profile, arch="adain").loss.vgg_padding == "reflect", profile
    cfg = config_mod.load_config("smoke", ADAIN + ["loss.vgg_padding=reflect"])
    convs = [m for m in tasks.build_loss(cfg).loss_network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.padding_mode == "reflect" for m in convs)
    # the value every earlier run had leaves the hash as it was; any other value changes it
    g = config_mod.load_config("smoke")
    d = config_mod.to_dict(g)
    del d["loss"]["vgg_padding"]
    assert runs.config_hash(g) == runs.config_hash(d)
    r = config_mod.load_config("smoke", ["loss.vgg_padding=reflect"])
    assert runs.config_hash(r) != runs.config_hash(g)


def test_self_style_batches_carry_their_own_photos_as_style(data_ready):
    from repro import tasks

    base = ADAIN + ["data.image_size=32", "data.n_train=3"]
    plain = tasks.make_task(config_mod.load_config("smoke", base), "cpu")
    mixed = tasks.make_task(config_mod.load_config("smoke", base + ["data.self_style=0.5"]), "cpu")
    b0 = plain.sample(4, torch.Generator().manual_seed(3))
    b1 = mixed.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(b0["x"], b1["x"])
    # round(0.5 * 4) = 2 photos are their own style; the other two keep their paintings
    assert torch.equal(b1["s"][:2], b1["x"][:2]) and torch.equal(b1["s"][2:], b0["s"][2:])
    assert not torch.equal(b0["s"][:2], b0["x"][:2])
    # their target is the photo's own features: t = AdaIN(f(c), f(c)) = f(c)
    net = AdaINNet("relu3_1", vgg_weights="random")
    x = b1["x"][:1]
    _, t = net(x, x, return_target=True)
    assert torch.allclose(t, net.encode(x), atol=1e-4)


def test_stylize_with_unseen_style_alpha_and_colour_preservation(net, data_ready):
    from repro import data

    content = images.load_image(data.content_path("karya"), size=48)
    style_path = data.style_path("the_scream")
    y = stylize(net, content, style=style_path, style_size=64)
    assert y.shape == content.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    y0 = stylize(net, content, style=style_path, style_size=64, alpha=0.0, precision="fp32")
    with torch.no_grad():
        recon = net.decoder(net.encode(content[None]))[0].clamp(0, 1)
    assert torch.allclose(y0, recon, atol=1e-5)
    kept = stylize(net, content, style=style_path, style_size=64, preserve_color=True)
    assert not torch.allclose(kept, y)
    with pytest.raises(ValueError, match="needs style"):
        stylize(net, content)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        stylize(net, content, style="nope.jpg")


def test_match_color_gives_the_target_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    src = 0.3 + 0.2 * torch.rand(3, 40, 40, generator=g)
    mix = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]])
    tgt = (0.4 + 0.1 * torch.einsum("ij,jhw->ihw", mix, torch.rand(3, 30, 50, generator=g))).clamp(0, 1)
    out = images.match_color(src, tgt)

    def stats(x):
        f = x.reshape(3, -1).double()
        return f.mean(1), torch.cov(f, correction=0)

    (m_o, c_o), (m_t, c_t) = stats(out), stats(tgt)
    assert torch.allclose(m_o, m_t, atol=1e-4) and torch.allclose(c_o, c_t, atol=1e-4)
    assert out.shape == src.shape
    with pytest.raises(ValueError, match="source"):
        images.match_color(src[None], tgt)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True,
                          env=dict(os.environ))


def test_cli_stylize_adain_and_its_errors(tmp_path, data_ready):
    from repro import data
    from repro.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = AdaINNet("relu3_1", vgg_weights="random")
    ckpt = save_checkpoint(tmp_path / "adain.pt", model=model, step=0,
                           config=config_mod.load_config("smoke", ADAIN))
    content, out = str(data.content_path("karya")), tmp_path / "out.png"
    styles = [str(data.style_path("candy")), str(data.style_path("the_scream"))]
    r = _cli("stylize", str(ckpt), content, str(out), "--size", "40", "--style", *styles,
             "--style-weights", "0.3,0.7", "--alpha", "0.8", "--preserve-color", "--style-size", "48")
    assert r.returncode == 0, r.stderr
    assert min(images.load_image(out).shape[-2:]) == 40
    for args, needle in [((), "--style"), (("--style", styles[0], "--style-index", "1"), "--style-index"),
                         (("--style", styles[0], "--alpha", "2"), "alpha"),
                         (("--style", styles[0], "--style-weights", "a,b"), "--style-weights")]:
        r = _cli("stylize", str(ckpt), content, str(tmp_path / "x.png"), *args)
        assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not (tmp_path / "x.png").exists()


def test_style_options_are_checked_before_any_pixel_with_any_number_type():
    from repro.inference import check_style_options

    net = AdaINNet("relu3_1", vgg_weights="random")
    for alpha in (0.5, 1, np.float32(0.25), torch.tensor(0.75)):
        check_style_options(net, "x.png", alpha=alpha)  # numbers of every kind pass
    for alpha in (1.5, -0.1, float("nan"), "half", True, torch.ones(2)):
        with pytest.raises(ValueError, match="alpha must be a number in"):
            check_style_options(net, "x.png", alpha=alpha)
    for style in (None, []):
        with pytest.raises(ValueError, match="needs style="):
            check_style_options(net, style)
    with pytest.raises(ValueError, match="2 non-negative numbers"):
        check_style_options(net, ["a.png", "b.png"], style_weights=[1.0])


def test_reconstruction_study_inverts_and_writes_every_number(tmp_path, data_ready):
    import json

    from bench.adain_reconstruction import invert, main

    net = AdaINNet("relu3_1", vgg_weights="random")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    err = lambda y: float(((net.encode(y) - net.encode(x)) ** 2).mean())
    assert err(invert(net, x, steps=30)) < 0.5 * err(torch.full_like(x, 0.5))
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("adain-reconstruction-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke" and res["steps"] == 2
    keys = [k for k in res if k.startswith(("target", "decoder"))]
    assert len(keys) == 4
    for k in keys:
        assert math.isfinite(res[k]["psnr_db"]) and len(res[k]["mean_rgb_shift"]) == 3


def test_one_vgg_pass_gives_f_s_and_the_style_targets_when_the_loss_network_is_the_encoder(data_ready):
    from repro import tasks
    from repro.vgg import LossNetwork

    cfg = config_mod.load_config("smoke", ADAIN + ["loss.vgg_padding=reflect"])
    task = tasks.make_task(cfg, "cpu")
    torch.manual_seed(0)
    model = build_generator(**model_kwargs(cfg.model))
    batch = task.sample(2, torch.Generator().manual_seed(1))
    calls = {"encoder": 0, "loss": 0}
    model.encoder.register_forward_hook(lambda *a: calls.__setitem__("encoder", calls["encoder"] + 1))
    task.loss_fn.loss_network.register_forward_hook(lambda *a: calls.__setitem__("loss", calls["loss"] + 1))
    shared = task.loss(model, batch)
    assert task._shared[model.encoder] is True and calls == {"encoder": 1, "loss": 2}
    task._shared[model.encoder] = False  # the two-pass path: the same numbers, exactly
    separate = task.loss(model, batch)
    assert calls == {"encoder": 3, "loss": 4}
    assert shared.keys() == separate.keys()
    assert all(torch.equal(shared[k], separate[k]) for k in shared)
    # under torchrun the trainer hands the task a DistributedDataParallel: the model is its .module
    class Wrapped(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, *args, **kw):
            return self.module(*args, **kw)

    task._shared[model.encoder] = True
    wrapped = task.loss(Wrapped(model), batch)
    assert all(torch.equal(shared[k], wrapped[k]) for k in shared)
    for args, kw in (((batch["x"],), {}), ((batch["x"], batch["s"]), {"style_feat": batch["s"]})):
        with pytest.raises(ValueError, match="exactly one of style .* or style_feat"):
            model(*args, **kw)
    # a loss network that computes otherwise is never used for f(s)
    assert model.encoder.shares_layers_with(task.loss_fn.loss_network)
    zero = tasks.make_task(config_mod.load_config("smoke", ADAIN + ["loss.vgg_padding=zero"]), "cpu")
    assert not model.encoder.shares_layers_with(zero.loss_fn.loss_network)
    other = LossNetwork(["relu3_1"], weights="random", padding="reflect", seed=1)
    assert not model.encoder.shares_layers_with(other)
    shallow = LossNetwork(["relu1_1"], weights="random", padding="reflect")
    assert not model.encoder.shares_layers_with(shallow) and shallow.shares_layers_with(model.encoder)
