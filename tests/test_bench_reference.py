"""The benchmarks' plain references compute exactly our generators' function (fp32)."""
import sys

import pytest
import torch

from repro import paths
from repro.models import build_generator

sys.path.insert(0, str(paths.ROOT))
from bench.reference import PyramidNet, TransformerNet, conv_flops, reference_for  # noqa: E402


def _randomize_norms(model):
    # trained IN affine parameters are not (1, 0): make the mapping of every tensor matter
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("arch, kw, size", [("residual", dict(width=0.25), (36, 44)),
                                             ("residual", dict(width=0.25), (37, 42)),
                                             ("multiscale", dict(n_scales=3, width=0.5), (32, 40)),
                                             ("multiscale", dict(n_scales=3, width=0.5), (35, 42))])
def test_reference_matches_our_generator(arch, kw, size):
    torch.manual_seed(0)
    ours = build_generator(arch, norm="instance", padding="reflect", **kw).eval()
    _randomize_norms(ours)
    ref = reference_for(ours)
    assert isinstance(ref, TransformerNet if arch == "residual" else PyramidNet)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_reference_refuses_what_it_does_not_cover_and_counts_flops():
    with pytest.raises(ValueError, match="residual IN generator"):
        TransformerNet.from_repro(build_generator("residual", norm="batch"))
    net = TransformerNet(width=1.0)
    flops = conv_flops(net, torch.rand(1, 3, 64, 64))
    # the first 9x9 conv alone: 2 * 64*64 * 32 * 3 * 81
    assert flops > 2 * 64 * 64 * 32 * 3 * 81
    assert conv_flops(net, torch.rand(1, 3, 128, 128)) == pytest.approx(4 * flops, rel=1e-9)


def test_reference_loss_network_and_loss_are_ours(data_ready):
    from bench.reference import PlainVGG, gram, perceptual_loss
    from repro.losses import PerceptualLoss
    from repro.vgg import LossNetwork

    content, style = ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]
    net = LossNetwork(content + style)
    ours = PerceptualLoss(content, style, style_weight=10.0, loss_network=net)
    vgg = PlainVGG.from_repro(net)
    torch.manual_seed(0)
    y, x, s = torch.rand(2, 3, 40, 48), torch.rand(2, 3, 40, 48), torch.rand(1, 3, 56, 56)
    with torch.no_grad():
        for layer, f in net(y).items():
            torch.testing.assert_close(vgg(y)[layer], f)
        grams = {l: gram(f) for l, f in vgg(s).items() if l in style}
        ref = perceptual_loss(vgg, y, vgg(x), grams, content, style, 1.0, 10.0)
        mine = ours(y, x, style_targets=ours.compute_style_targets(s))["total"]
    torch.testing.assert_close(ref, mine, rtol=1e-4, atol=0)


def test_reference_gatys_follows_ours(data_ready):
    from bench.reference import PlainVGG, gatys
    from repro import gatys as repro_gatys
    from repro.losses import PerceptualLoss

    torch.manual_seed(0)
    content, style = torch.rand(3, 32, 40), torch.rand(3, 32, 40)
    layers = (["relu3_1"], ["relu1_1", "relu2_1", "relu3_1"])
    loss = PerceptualLoss(*layers, style_weight=1e3)
    ours = repro_gatys.stylize(content, style, steps=5, loss=loss, device="cpu").image
    ref = gatys(PlainVGG.from_repro(loss.loss_network), content[None], style[None], 5, *layers, 1.0, 1e3)[0]
    assert not torch.equal(ours, content)  # it moved
    assert float((ours - ref).abs().max()) < 1e-3


def test_bench_quick_runs_every_case_and_fills_the_readme_table(tmp_path, data_ready):
    import json

    from bench.run import END, START, main, table

    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nbefore\n{START}\nold table\n{END}\nafter\n")
    out = tmp_path / "r.json"
    assert main(["--quick", "--threads", "1", "--out", str(out), "--readme", str(readme)]) == 0
    res = json.loads(out.read_text())
    assert res["quick"] and res["peak_gflops"]["fp32"] > 0
    rows = [r for r in res["inference"] if "size" in r]
    assert [r["size"] for r in rows] == [48, 64]
    for r in rows:
        assert r["ours"]["psnr_db"] > 30 and r["ours"]["speedup"] > 0 and r["ours"]["gflop"] > 0
        assert r["ours"]["shape"] == r["reference"]["shape"]
        # the exported ONNX graph: fp32 like the reference
        assert r["onnxruntime"]["psnr_db"] > 60 and r["onnxruntime"]["median_s"] > 0
    assert res["training"][0]["ours"]["images_per_s"] > 0
    assert res["gatys"][0]["psnr_db"] > 40  # the reference and ours optimize the same loss
    text = readme.read_text()
    assert "old table" not in text and "| inference |" in text and "onnxruntime fp32" in text
    assert text.startswith("# t\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    # sections kept from an earlier run (--only) say when and at which commit they were measured
    res["kept"] = {"gatys": {"date": "2026-11-30", "git_commit": "abc1234"}}
    assert "gatys kept from 2026-11-30 (abc1234)." in table(res).splitlines()[0]
