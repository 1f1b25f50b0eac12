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
        # any H, W: reflect-pad up to a multiple of 4 (two stride-2 convs), crop back at the end
        h, w = x.shape[-2:]
        ph, pw = -h % 4, -w % 4
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = F.relu(self.in4(self.up1(y)))
        y = F.relu(self.in5(self.up2(y)))
        return torch.sigmoid(self.out(y)[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w])

    @classmethod
    def from_repro(cls, model) -> "TransformerNet":
        """The reference with a trained ``repro`` residual IN generator's weights."""
        cfg = model.config
        if cfg["arch"] != "residual" or cfg["norm"] != "instance" or cfg["padding"] != "reflect" \
                or cfg.get("upsample", "nearest") != "nearest" or cfg["output"] != "sigmoid" \
                or cfg.get("downsample", "strided") != "strided":
            raise ValueError(f"the reference covers the residual IN generator with reflection padding, "
                             f"stride-2 downsampling, nearest upsampling and a sigmoid output; got {cfg}")
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
        # any H, W: reflect-pad up to a multiple of 2**(n_scales - 1), crop back at the end
        h, w = x.shape[-2:]
        m = 2 ** (self.n_scales - 1)
        ph, pw = -h % m, -w % m
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")
        y = None
        for k in range(self.n_scales):
            ratio = 2 ** (self.n_scales - 1 - k)
            fine = self.branches[k](F.avg_pool2d(x, ratio) if ratio > 1 else x)
            if y is None:
                y = fine
            else:
                coarse = F.interpolate(y, scale_factor=2, mode="nearest")
                y = self.blocks[k - 1](torch.cat([self.coarse_norms[k - 1](coarse), self.fine_norms[k - 1](fine)], 1))
        y = self.to_rgb(y)[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
        return torch.sigmoid(y)

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


# ---------------------------------------------------------------------------------------------
# The loss network, the perceptual loss, one training step and Gatys et al.'s optimization


VGG19_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PlainVGG(nn.Module):
    """VGG-19 ``features`` up to the deepest layer asked for: 3x3 convs (zero padding 1), ReLU,
    2x2 max pooling; Caffe input (BGR, 0..255, minus the mean) for the local normalised weights,
    torchvision's (RGB, mean/std) otherwise. Weights copied from a ``repro`` ``LossNetwork`` so
    both compute the same function."""

    def __init__(self, layers, caffe: bool = True):
        super().__init__()
        names, modules, cin, block, i = [], [], 3, 1, 1
        for c in VGG19_CHANNELS:
            if c == "M":
                names.append(f"pool{block}")
                modules.append(nn.MaxPool2d(2, 2))
                block, i = block + 1, 1
                continue
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            modules += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()]
            cin, i = c, i + 1
        self.layers = list(layers)
        deepest = max(names.index(l) for l in self.layers)
        self.names = names[:deepest + 1]
        self.features = nn.Sequential(*modules[:deepest + 1])
        self.caffe = caffe
        mean, std = (CAFFE_MEAN_BGR, (1 / 255,) * 3) if caffe else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x):
        h = ((x.flip(1) * 255 - self.mean) if self.caffe else (x - self.mean) / self.std)
        out = {}
        for name, module in zip(self.names, self.features):
            h = module(h)
            if name in self.layers:
                out[name] = h
        return out

    @classmethod
    def from_repro(cls, loss_network) -> "PlainVGG":
        if loss_network.padding != "zero" or loss_network.arch != "vgg19":
            raise ValueError("the reference VGG covers the zero-padded VGG-19 loss network")
        ref = cls(loss_network.layers, caffe=loss_network.bgr)
        ref.features.load_state_dict(loss_network.features.state_dict())
        return ref.eval()


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (h * w)


def perceptual_loss(vgg, y, content_feats, style_grams, content_layers, style_layers,
                    content_weight, style_weight):
    """Johnson et al.'s loss as ``repro``'s profiles define it: MSE of features at the content
    layers, MSE of Gram matrices (normalised by H*W) at the style layers."""
    feats = vgg(y)
    loss = 0.0
    for l in content_layers:
        loss = loss + content_weight * F.mse_loss(feats[l], content_feats[l].expand_as(feats[l]))
    for l in style_layers:
        g = gram(feats[l])
        loss = loss + style_weight * F.mse_loss(g, style_grams[l].expand_as(g))
    return loss


def training_step(generator, vgg, optimizer, x, style_grams, content_layers, style_layers,
                  content_weight, style_weight):
    """One step the plain way: generator forward, loss network on output and content, backward,
    Adam. Returns the loss."""
    y = generator(x)
    with torch.no_grad():
        content_feats = vgg(x)
    loss = perceptual_loss(vgg, y, content_feats, style_grams, content_layers, style_layers,
                           content_weight, style_weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def gatys(vgg, content, style, steps, content_layers, style_layers, content_weight, style_weight):
    """Gatys et al. the plain way: L-BFGS (one evaluation per step, no line search, as
    neural-style) on the pixels from the content image, projected onto [0, 1] after each step."""
    with torch.no_grad():
        content_feats = vgg(content)
        style_grams = {l: gram(f) for l, f in vgg(style).items()}
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=50)

    def closure():
        opt.zero_grad()
        loss = perceptual_loss(vgg, x, content_feats, style_grams, content_layers, style_layers,
                               content_weight, style_weight)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


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
