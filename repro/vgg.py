"""The frozen loss network: VGG-16/19 feature extractors with named taps.

Every perceptual loss in the papers (Gatys et al. 2016; Johnson et al. 2016; Ulyanov et al.
2016/2017; Huang & Belongie 2017) is computed on activations of an ImageNet-trained VGG.
``LossNetwork`` returns those activations by name (``relu1_1``, ``relu2_1``, ...), runs only
up to the deepest requested layer, and applies the preprocessing that matches its weights, so
callers always pass RGB in [0, 1].

Weights:

- ``"normalised"``: the Gatys et al. "normalised" VGG-19 (each filter rescaled so its mean
  activation over ImageNet is 1; the network AdaIN also uses), from the local file in
  ``data/weights`` (conv1_1..conv3_1 only, i.e. up to ``relu3_1``). Caffe preprocessing:
  BGR, 0..255, minus the ImageNet mean, no std division.
- ``"imagenet"``: torchvision's ImageNet weights (full VGG-16/19; downloaded into
  ``$TORCH_HOME`` on first use). torchvision preprocessing: RGB, mean/std normalisation.
- ``"random"``: seeded random initialisation, for tests only.
- ``"auto"``: ``"normalised"`` when the local file is present, else ``"imagenet"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn as nn

from repro import paths
from repro.choices import check_choice

# Convolutions per block: VGG-16 is configuration D, VGG-19 configuration E (Simonyan &
# Zisserman 2015, Table 1). Channels per block are shared.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The local normalised file holds torchvision ``vgg19().features`` indices 0..11
# (conv1_1 .. relu3_1); see data/manifests/weights_PROVENANCE.md.
_NORMALISED_DEEPEST = "relu3_1"


VGG_ARCHS = tuple(_BLOCKS)
WEIGHTS = ("auto", "normalised", "imagenet", "random")
"""``auto``: the local normalised VGG-19 when present, else torchvision's ImageNet download."""
PADDINGS = ("zero", "reflect")
POOLS = ("max", "avg")


def layer_names(arch: str = "vgg19") -> list[str]:
    """Names of ``torchvision.models.<arch>().features`` modules, in order.

    ``conv{b}_{i}``, ``relu{b}_{i}`` and ``pool{b}``, so ``layer_names("vgg19")[11]`` is
    ``"relu3_1"``, the same index torchvision uses.
    """
    check_choice("arch", arch, VGG_ARCHS)
    names = []
    for b, n_convs in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def available_layers(weights: str, arch: str = "vgg19") -> list[str]:
    """The layers a given weight source can produce."""
    names = layer_names(arch)
    if weights == "normalised":
        return names[: names.index(_NORMALISED_DEEPEST) + 1]
    return names


def _build_features(arch: str, n_modules: int, padding: str, pool: str) -> nn.Sequential:
    """``vgg.features`` truncated to its first ``n_modules`` modules, torchvision key layout."""
    check_choice("padding", padding, PADDINGS)
    check_choice("pool", pool, POOLS)
    modules: list[nn.Module] = []
    in_ch = 3
    for b, n_convs in enumerate(_BLOCKS[arch]):
        for _ in range(n_convs):
            # padding_mode keeps the state-dict keys identical to torchvision's for both modes.
            modules.append(nn.Conv2d(in_ch, _CHANNELS[b], 3, padding=1,
                                     padding_mode="zeros" if padding == "zero" else "reflect"))
            modules.append(nn.ReLU(inplace=False))
            in_ch = _CHANNELS[b]
        # Gatys et al. found average pooling gives slightly smoother results; max is VGG's own.
        modules.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*modules[:n_modules])


def _load_normalised_state(path: Path, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"normalised VGG-19 weights not found at {path}; run `make data` "
            "(or `python -m repro data`) to fetch them, or use weights='imagenet'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle error, ...
        raise ValueError(f"could not read VGG weights file {path}: {e}") from e
    state = {k: v for k, v in state.items() if k in expected}
    return state


def _load_imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    import torchvision  # its model zoo takes seconds to import; only this download path needs it

    weights_enum = {"vgg16": torchvision.models.VGG16_Weights,
                    "vgg19": torchvision.models.VGG19_Weights}[arch].IMAGENET1K_V1
    try:
        full = weights_enum.get_state_dict(progress=True)
    except Exception as e:  # no internet, proxy error, corrupt cache
        raise RuntimeError(
            f"could not load torchvision's ImageNet {arch} weights ({e}). They are downloaded "
            "into $TORCH_HOME on first use, which needs internet. Offline, run `make data` and "
            "use weights='normalised' (VGG-19 up to relu3_1).") from e
    return {k[len("features."):]: v for k, v in full.items() if k.startswith("features.")}


class LossNetwork(nn.Module):
    """A frozen VGG returning named activations from RGB [0, 1] input.

    Args:
        layers: names to return, e.g. ``["relu1_1", "relu2_1", "relu3_1"]``.
        arch: ``"vgg19"`` or ``"vgg16"``.
        weights: ``"auto" | "normalised" | "imagenet" | "random"`` (see module docstring).
        padding: ``"zero"`` (VGG/Caffe) or ``"reflect"`` (AdaIN's encoder).
        pool: ``"max"`` (VGG) or ``"avg"`` (Gatys et al.'s suggestion).
        weights_path: override the local normalised file (default ``data/weights/...``).

    ``forward(x)`` returns ``{name: activation}`` for exactly ``layers``; the network is
    truncated after the deepest of them. Parameters never require grad and the module stays
    in eval mode whatever ``train()`` is called with.
    """

    def __init__(self, layers: Sequence[str] | Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 arch: str = "vgg19", weights: str = "auto", padding: str = "zero",
                 pool: str = "max", weights_path: str | Path | None = None, seed: int = 0):
        super().__init__()
        names = layer_names(arch)
        if isinstance(layers, str):
            layers = [layers]
        layers = list(dict.fromkeys(layers))
        if not layers:
            raise ValueError("layers must name at least one VGG layer")
        unknown = [l for l in layers if l not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layer(s) {unknown}; valid names: {', '.join(names)}")
        if weights == "auto":
            local = Path(weights_path) if weights_path else paths.normalised_vgg19_path()
            weights = "normalised" if arch == "vgg19" and local.is_file() else "imagenet"
        check_choice("weights", weights, WEIGHTS)
        if weights == "normalised" and arch != "vgg19":
            raise ValueError("weights='normalised' exists only for arch='vgg19'")
        avail = available_layers(weights, arch)
        missing = [l for l in layers if l not in avail]
        if missing:
            raise ValueError(
                f"layer(s) {missing} are not available with weights={weights!r} ({arch}); "
                f"available: {', '.join(l for l in avail if l.startswith('relu'))}. The local "
                "normalised VGG-19 file stops at relu3_1; weights='imagenet' (torchvision, "
                "needs internet once) has every layer.")

        self.arch, self.weights, self.padding = arch, weights, padding
        self.layers = layers
        self._index = {names.index(l): l for l in layers}
        self.features = _build_features(arch, max(self._index) + 1, padding, pool)

        expected = {k: v.shape for k, v in self.features.state_dict().items()}
        if weights == "random":
            g = torch.Generator().manual_seed(seed)
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * 9
                    with torch.no_grad():
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                        m.bias.zero_()
        else:
            if weights == "normalised":
                path = Path(weights_path) if weights_path else paths.normalised_vgg19_path()
                state = _load_normalised_state(path, expected)
            else:
                state = _load_imagenet_state(arch)
                state = {k: v for k, v in state.items() if k in expected}
            # strict: a missing or misshapen tensor must fail loudly, never load half a network.
            try:
                self.features.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise ValueError(f"VGG weights ({weights}) do not match {arch}: {e}") from e

        if weights == "normalised":
            # Caffe convention: BGR, 0..255, minus the mean; no std (weights PROVENANCE.md).
            mean, scale, bgr = torch.tensor(CAFFE_MEAN_BGR), torch.full((3,), 255.0), True
        else:
            mean = torch.tensor(IMAGENET_MEAN)
            scale, bgr = 1.0 / torch.tensor(IMAGENET_STD), False
        self.bgr = bgr
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)

        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "LossNetwork":
        # A loss network is never trained; keep it in eval mode inside a model.train() call.
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the input space of the weights (Caffe BGR 0..255 - mean, or ImageNet)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LossNetwork expects (N, 3, H, W) RGB input, got {tuple(x.shape)}")
        if self.bgr:
            x = x.flip(1)
            return x * self.scale.to(x.dtype) - self.mean.to(x.dtype)
        return (x - self.mean.to(x.dtype)) * self.scale.to(x.dtype)

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{name: activation}`` for ``layers`` (default: all of this network's), computing
        only as deep as the deepest of them (the content pass of a training step needs
        relu2_2, not relu3_1)."""
        if layers is None:
            layers = self.layers
        unknown = [l for l in layers if l not in self.layers]
        if unknown:
            raise ValueError(f"layer(s) {unknown} are not among this loss network's {self.layers}")
        wanted = {i for i, name in self._index.items() if name in layers}
        h = self.preprocess(x)
        out = {}
        last = max(wanted)
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[self._index[i]] = h
            if i == last:
                break
        return {name: out[name] for name in layers}

    def shares_layers_with(self, other: "LossNetwork") -> bool:
        """Whether ``other`` computes every layer of this network the same (the same input
        mapping, modules and weights up to our deepest layer), so its activations can stand in
        for ours: the AdaIN task reads the encoder's f(s) off the loss network's pass."""
        if not isinstance(other, LossNetwork) or self.bgr != other.bgr or len(other.features) < len(self.features):
            return False
        if not (torch.equal(self.mean, other.mean) and torch.equal(self.scale, other.scale)):
            return False
        for a, b in zip(self.features, other.features):
            if type(a) is not type(b) or repr(a) != repr(b):
                return False
            sa, sb = a.state_dict(), b.state_dict()
            if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
                return False
        return True

    def extra_repr(self) -> str:
        return f"arch={self.arch}, weights={self.weights}, padding={self.padding}, layers={self.layers}"
