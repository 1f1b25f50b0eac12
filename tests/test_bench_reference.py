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
                                             ("multiscale", dict(n_scales=3, width=0.5), (32, 40))])
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
