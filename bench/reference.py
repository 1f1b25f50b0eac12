"""Plain references for the benchmarks: the same networks written the straightforward way.

Eager PyTorch, fp32, stock layers (``nn.ReflectionPad2d`` + ``nn.Conv2d``,
``nn.InstanceNorm2d(affine=True)``, ``nn.Upsample``), no autocast, no channels_last, no compile,
the way pytorch/examples' fast_neural_style writes its TransformerNet. The weights are loaded from
a trained ``repro`` generator, so our output and the reference's can be compared pixel by pixel
(PSNR). Nothing here is used by ``repro`` itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """Reflection padding, then an unpadded convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        return self.conv(self.pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = ConvLayer(cin, cout, kernel)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson et al.'s residual generator with instance norm, nearest upsampling, reflection
    padding and a sigmoid output (``repro``'s ``residual`` generator), channels 32/64/128 x width."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(1, int(round(c * width))) for c in (32, 64, 128))
        self.conv1, self.in1 = ConvLayer(3, c1, 9), nn.InstanceNorm2d(c1, affine=True)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2), nn.InstanceNorm2d(c2, affine=True)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2), nn.InstanceNorm2d(c3, affine=True)
        self.res = nn.Sequential(*(ResidualBlock(c3) for _ in range(5)))
        self.up1, self.in4 = UpsampleConvLayer(c3, c2, 3), nn.InstanceNorm2d(c2, affine=True)
        self.up2, self.in5 = UpsampleConvLayer(c2, c1, 3), nn.InstanceNorm2d(c1, affine=True)
        self.out = ConvLayer(c1, 3, 9)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = F.relu(self.in4(self.up1(y)))
        y = F.relu(self.in5(self.up2(y)))
        return torch.sigmoid(self.out(y))

    @classmethod
    def from_repro(cls, model) -> "TransformerNet":
        """The reference with a trained ``repro`` residual IN generator's weights."""
        cfg = model.config
        if cfg["arch"] != "residual" or cfg["norm"] != "instance" or cfg["padding"] != "reflect" \
                or cfg.get("upsample", "nearest") != "nearest" or cfg["output"] != "sigmoid":
            raise ValueError(f"the reference covers the residual IN generator with reflection padding, "
                             f"nearest upsampling and a sigmoid output; got {cfg}")
        ref = cls(cfg["width"])
        src = model.state_dict()
        # repro's net.<i> indices: conv, norm, relu triples; 5 residual blocks at 9..13
        # (body.0 conv, body.1 norm, body.3 conv, body.4 norm); upsampling at 14..21; conv 22
        names = {"conv1.conv": "net.0", "in1": "net.1", "conv2.conv": "net.3", "in2": "net.4",
                 "conv3.conv": "net.6", "in3": "net.7", "up1.conv.conv": "net.15", "in4": "net.16",
                 "up2.conv.conv": "net.19", "in5": "net.20", "out.conv": "net.22"}
        for b in range(5):
            names.update({f"res.{b}.conv1.conv": f"net.{9 + b}.body.0", f"res.{b}.in1": f"net.{9 + b}.body.1",
                          f"res.{b}.conv2.conv": f"net.{9 + b}.body.3", f"res.{b}.in2": f"net.{9 + b}.body.4"})
        state = {f"{ours}.{p}": src[f"{theirs}.{p}"] for ours, theirs in names.items() for p in ("weight", "bias")}
        ref.load_state_dict(state, strict=True)
        return ref.eval()


class ConvBlock(nn.Sequential):
    """texture_nets' conv block: (3x3, 3x3, 1x1) conv + instance norm + ReLU."""

    def __init__(self, cin: int, cout: int):
        layers = []
        for k, i in ((3, cin), (3, cout), (1, cout)):
            layers += [ConvLayer(i, cout, k), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]
        super().__init__(*layers)


class PyramidNet(nn.Module):
    """Ulyanov et al.'s multi-scale generator (``repro``'s ``multiscale``, IN, reflection padding,
    no noise, sigmoid output), written out plainly."""

    def __init__(self, width: float = 1.0, n_scales: int = 6):
        super().__init__()
        c = max(1, int(round(8 * width)))
        self.n_scales = n_scales
        self.branches = nn.ModuleList(ConvBlock(3, c) for _ in range(n_scales))
        self.coarse_norms = nn.ModuleList(nn.InstanceNorm2d(c * i, affine=True) for i in range(1, n_scales))
        self.fine_norms = nn.ModuleList(nn.InstanceNorm2d(c, affine=True) for _ in range(1, n_scales))
        self.blocks = nn.ModuleList(ConvBlock(c * (i + 1), c * (i + 1)) for i in range(1, n_scales))
        self.to_rgb = nn.Conv2d(c * n_scales, 3, 1)

    def forward(self, x):
        y = None
        for k in range(self.n_scales):
            ratio = 2 ** (self.n_scales - 1 - k)
            fine = self.branches[k](F.avg_pool2d(x, ratio) if ratio > 1 else x)
            if y is None:
                y = fine
            else:
                coarse = F.interpolate(y, scale_factor=2, mode="nearest")
                y = self.blocks[k - 1](torch.cat([self.coarse_norms[k - 1](coarse), self.fine_norms[k - 1](fine)], 1))
        return torch.sigmoid(self.to_rgb(y))

    @classmethod
    def from_repro(cls, model) -> "PyramidNet":
        cfg = model.config
        if cfg["arch"] != "multiscale" or cfg["norm"] != "instance" or cfg["padding"] != "reflect" \
                or cfg.get("noise_channels") or cfg["output"] != "sigmoid" or cfg.get("activation", "relu") != "relu":
            raise ValueError(f"the reference covers the multiscale IN generator with reflection padding, "
                             f"ReLU, no noise and a sigmoid output; got {cfg}")
        ref = cls(cfg["width"], cfg["n_scales"])
        src = model.state_dict()

        def block(ours: str, theirs: str) -> dict:
            # repro: StyledSequential of (conv, norm, act) x 3 -> indices 0,1 / 3,4 / 6,7
            out = {}
            for j in range(3):
                for p in ("weight", "bias"):
                    out[f"{ours}.{3 * j}.conv.{p}"] = src[f"{theirs}.{3 * j}.{p}"]
                    out[f"{ours}.{3 * j + 1}.{p}"] = src[f"{theirs}.{3 * j + 1}.{p}"]
            return out

        state = {}
        for k in range(ref.n_scales):
            state.update(block(f"branches.{k}", f"branches.{k}"))
        for i in range(ref.n_scales - 1):
            for p in ("weight", "bias"):
                state[f"coarse_norms.{i}.{p}"] = src[f"joins.{i}.coarse_norm.{p}"]
                state[f"fine_norms.{i}.{p}"] = src[f"joins.{i}.fine_norm.{p}"]
            state.update(block(f"blocks.{i}", f"joins.{i}.block"))
        state.update({f"to_rgb.{p}": src[f"to_rgb.{p}"] for p in ("weight", "bias")})
        ref.load_state_dict(state, strict=True)
        return ref.eval()


def reference_for(model) -> nn.Module:
    """The plain reference of a trained ``repro`` generator, with its weights."""
    return {"residual": TransformerNet, "multiscale": PyramidNet}[model.config["arch"]].from_repro(model)


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x 2 of every convolution in one forward pass (what dominates these networks)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += 2 * out.numel() * (m.in_channels // m.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total
