import pytest
import torch
import torchvision

from repro import data, paths
from repro.images import load_image
from repro.vgg import LossNetwork, available_layers, layer_names

SHALLOW = ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"]


def test_layer_names_follow_torchvision_indices():
    for arch in ("vgg16", "vgg19"):
        names = layer_names(arch)
        tv = getattr(torchvision.models, arch)().features
        assert len(names) == len(tv)
        for name, module in zip(names, tv):
            kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
            assert isinstance(module, kind[name[:4]]), (arch, name)
    assert layer_names("vgg19").index("relu3_1") == 11
    assert layer_names("vgg19").index("relu4_1") == 20
    assert layer_names("vgg16").index("relu4_3") == 22


def test_random_network_returns_exactly_requested_layers_and_truncates():
    net = LossNetwork(["relu2_1", "relu1_1"], weights="random")
    # runs only up to relu2_1 (features[6])
    assert len(net.features) == 7
    out = net(torch.rand(2, 3, 32, 40))
    assert list(out) == ["relu2_1", "relu1_1"]
    assert out["relu1_1"].shape == (2, 64, 32, 40)
    assert out["relu2_1"].shape == (2, 128, 16, 20)


def test_frozen_and_always_eval_but_gradients_reach_input():
    net = LossNetwork(["relu2_2"], weights="random")
    assert all(not p.requires_grad for p in net.parameters())
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), net)
    model.train()
    assert not net.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(x)["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_random_weights_are_seeded():
    a = LossNetwork(["relu1_1"], weights="random", seed=3)
    b = LossNetwork(["relu1_1"], weights="random", seed=3)
    c = LossNetwork(["relu1_1"], weights="random", seed=4)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="relu9_9"):
        LossNetwork(["relu9_9"], weights="random")
    with pytest.raises(ValueError, match="weights"):
        LossNetwork(["relu1_1"], weights="vggface")
    with pytest.raises(ValueError, match="padding"):
        LossNetwork(["relu1_1"], weights="random", padding="circular")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        LossNetwork(["relu1_1"], weights="random")(torch.rand(3, 8, 8))


def test_padding_mode_reaches_the_convolutions():
    x = torch.rand(1, 3, 24, 24)
    zero = LossNetwork(["relu1_2"], weights="random", padding="zero")
    refl = LossNetwork(["relu1_2"], weights="random", padding="reflect")
    a, b = zero(x)["relu1_2"], refl(x)["relu1_2"]
    # two 3x3 convs: only a 2-pixel border can see the padding
    assert torch.allclose(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], atol=1e-5)
    assert not torch.allclose(a[..., :1, :], b[..., :1, :], atol=1e-3)


def test_missing_local_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        LossNetwork(["relu1_1"], weights="normalised", weights_path=tmp_path / "none.pth")


def test_truncated_weights_file_is_a_clear_error(tmp_path, data_ready):
    src = paths.normalised_vgg19_path().read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(ValueError, match="truncated.pth"):
        LossNetwork(["relu1_1"], weights="normalised", weights_path=bad)


def test_weights_missing_a_tensor_fail_strictly(tmp_path, data_ready):
    state = torch.load(paths.normalised_vgg19_path(), weights_only=True)
    del state["10.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="10.bias"):
        LossNetwork(["relu3_1"], weights="normalised", weights_path=path)


def test_layer_beyond_the_local_weights_names_available_layers(data_ready):
    assert available_layers("normalised")[-1] == "relu3_1"
    with pytest.raises(ValueError) as e:
        LossNetwork(["relu4_1"], weights="normalised")
    msg = str(e.value)
    assert "relu4_1" in msg and "relu3_1" in msg and "imagenet" in msg


def test_auto_prefers_local_normalised_weights(data_ready):
    assert LossNetwork(["relu1_1"], weights="auto").weights == "normalised"


def _channel_means(net, images):
    with torch.no_grad():
        feats = [net(img[None]) for img in images]
    return {k: torch.stack([f[k].mean((0, 2, 3)) for f in feats]).mean(0) for k in net.layers}


@pytest.fixture(scope="module")
def real_images(data_ready):
    paths_ = data.content_paths("test")[:4] + data.style_paths()[:2]
    return [load_image(p, size=192) for p in paths_]


def test_normalised_network_has_unit_mean_activations(real_images):
    """The defining property of the Gatys-normalised VGG: each filter's mean activation on
    natural images is about 1 (weights PROVENANCE.md measured medians 0.97-1.10)."""
    net = LossNetwork(SHALLOW, weights="normalised")
    for layer, means in _channel_means(net, real_images).items():
        median = means.median().item()
        assert 0.8 < median < 1.4, (layer, median)
        assert (means > 0).float().mean() > 0.95, layer  # no dead channels


def test_preprocessing_is_caffe_bgr_and_not_silently_swapped(real_images):
    net = LossNetwork(["relu1_1"], weights="normalised")
    x = torch.rand(1, 3, 4, 4)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(net.preprocess(x), expected, atol=1e-4)

    # Feeding RGB order (torchvision's convention) moves relu1_1 statistics away from 1.
    def spread(means):
        return (means.log().abs()).median().item()

    good = spread(_channel_means(net, real_images)["relu1_1"])
    swapped = spread(_channel_means(net, [img.flip(0) for img in real_images])["relu1_1"])
    assert good < swapped


def test_imagenet_preprocessing_for_torchvision_weights():
    net = LossNetwork(["relu1_1"], weights="random")  # random uses torchvision's convention
    x = torch.rand(1, 3, 4, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(net.preprocess(x), (x - mean) / std, atol=1e-6)


def test_imagenet_weights_offline_error_is_clear(monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.VGG19_Weights.IMAGENET1K_V1.__class__,
                        "get_state_dict", offline, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="make data"):
        LossNetwork(["relu1_1"], weights="imagenet")


def test_asking_for_fewer_layers_stops_early_and_changes_nothing():
    net = LossNetwork(["relu1_1", "relu2_2", "relu3_1"], weights="random")
    x = torch.rand(2, 3, 32, 40)
    calls = []
    hook = net.features[-1].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        full = net(x)
        part = net(x, ["relu2_2"])
    hook.remove()
    assert calls == [1]  # relu3_1 ran once: for the full pass only
    assert list(part) == ["relu2_2"] and torch.equal(part["relu2_2"], full["relu2_2"])
    with pytest.raises(ValueError, match="relu4_1"):
        net(x, ["relu4_1"])
