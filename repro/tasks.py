"""The three training tasks, each knowing what it samples, optimizes and measures:

- ``SingleStyle``: one painting's style targets for every photo (Ulyanov et al. 2016, IN Fig. 3-6).
- ``ConditionalStyles``: N paintings, each sample drawing a style index that selects its
  normalization parameters and its targets (conditional IN, Dumoulin et al. 2017).
- ``ArbitraryStyle``: a fresh batch of paintings each step; content loss against AdaIN's target
  t, style loss against the batch's paintings (Huang & Belongie 2017, eq. 11-13).

``make_task(cfg, device)`` picks one from the config; ``Task`` is what the trainer relies on. The trainer (``repro.train``) runs any of
them; ``experiments.heldout_losses`` measures a trained generator with the same held-out terms.
"""
from __future__ import annotations

import weakref
from pathlib import Path

import torch

from repro import data, images
from repro.checkpoint import load_generator
from repro.config import Config
from repro.inference import stylize
from repro.losses import PerceptualLoss
from repro.vgg import LossNetwork


# ---------------------------------------------------------------------------------------------
# What a config names


def build_loss(cfg: Config, device: torch.device | str = "cpu") -> PerceptualLoss:
    """The perceptual loss of ``cfg.loss`` (Johnson et al. 2016, on the VGG-19 loss network)."""
    layers = list(dict.fromkeys(cfg.loss.content_layers + cfg.loss.style_layers))
    net = LossNetwork(layers, arch=cfg.loss.vgg_arch, weights=cfg.loss.vgg_weights,
                      pool=cfg.loss.vgg_pool, padding=cfg.loss.vgg_padding)
    return PerceptualLoss(cfg.loss.content_layers, cfg.loss.style_layers,
                          content_weight=cfg.loss.content_weight, style_weight=cfg.loss.style_weight,
                          tv_weight=cfg.loss.tv_weight, style_stat=cfg.loss.style_stat,
                          loss_network=net).to(device)


def style_images(cfg: Config) -> torch.Tensor:
    """(S, 3, H, W) style images at ``style_size`` (shorter side), center-cropped to a common
    size when there are several (CIN)."""
    imgs = [images.load_image(data.image_path(s, "style"), size=cfg.data.style_size)
            for s in cfg.data.style]
    if len(imgs) > 1:
        imgs = [images.center_crop(i, cfg.data.style_size) for i in imgs]
    return torch.stack(imgs)


def heldout_images(cfg: Config) -> list[torch.Tensor]:
    """The photos a run is evaluated on during training (``data.test_images``)."""
    return [images.load_image(data.image_path(n, "content"), size=cfg.data.test_size)
            for n in cfg.data.test_images]


def content_transform(cfg: Config):
    """The per-photo transform of AdaIN Fig. 1: (b) luminance histogram equalization, (c)
    stylization by a generator trained earlier (style normalization)."""
    if cfg.data.transform == "equalize":
        return images.equalize_luminance_histogram
    if cfg.data.transform == "stylize":
        model = load_generator(cfg.data.transform_checkpoint)
        # exact fp32: the training data must not depend on whether this CPU has native bf16
        return lambda img: stylize(model, img, precision="fp32")
    return None


def training_photos(cfg: Config) -> data.RandomCrops:
    photos = data.content_paths("train")
    if cfg.data.n_train:
        photos = photos[: cfg.data.n_train]
    return data.RandomCrops(photos, cfg.data.content_size, cfg.data.image_size,
                            transform=content_transform(cfg))


def jitter_crops(y: torch.Tensor, x: torch.Tensor, offsets: list | None, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss.jitter`` = j: sample i of the output and of its photo cropped from ``offsets[i]``
    (dy, dx in 0..j-1) to the size less j - 1, so where VGG's pooling grid falls on the
    generator's stride grid changes from sample to sample (issue 18: the hatch)."""
    if not offsets:
        return y, x
    h, w = y.shape[-2] - j + 1, y.shape[-1] - j + 1
    return (torch.stack([y[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(offsets)]),
            torch.stack([x[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(offsets)]))


def draw_offsets(cfg: Config, batch_size: int, g: torch.Generator) -> list | None:
    """The per-sample offsets of ``loss.jitter`` (none when it is 0: nothing drawn, so runs
    without it see the random stream they always did)."""
    if not cfg.loss.jitter:
        return None
    return torch.randint(cfg.loss.jitter, (batch_size, 2), generator=g).tolist()


def select_style_targets(targets: dict, idx: torch.Tensor) -> dict:
    """Per-sample style targets for conditional IN: sample i gets style idx[i]."""
    return {l: (t[idx] if isinstance(t, torch.Tensor) else tuple(x[idx] for x in t))
            for l, t in targets.items()}


# ---------------------------------------------------------------------------------------------
# The tasks


class Task:
    """What the trainer needs of a task: ``sample`` a batch, its ``loss``, and the held-out
    measurements (``evaluate``, ``save_samples``) built on ``styles``/``apply``/``heldout_terms``."""

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.loss_fn = build_loss(cfg, device)

    def sample(self, batch_size: int, g: torch.Generator, memory_format=torch.contiguous_format) -> dict:
        return {"x": self.photos.sample(batch_size, g).to(self.device, memory_format=memory_format)}

    def loss(self, model, batch: dict) -> dict:
        raise NotImplementedError

    def styles(self) -> list:
        """What one held-out photo is measured with (none, style indices, style images)."""
        raise NotImplementedError

    def apply(self, model, x: torch.Tensor, style) -> torch.Tensor:
        raise NotImplementedError

    def heldout_terms(self, model, x: torch.Tensor, style) -> dict:
        """Unweighted loss terms of the generator on one held-out photo (1, 3, H, W)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model, photos: list[torch.Tensor]) -> dict:
        """Held-out style, content and TV losses (unweighted, eval mode), averaged over photos
        (and styles): the numbers IN Fig. 5 compares."""
        was_training = model.training
        model.eval()
        acc: dict[str, list[float]] = {}
        for x in photos:
            for s in self.styles():
                terms = self.heldout_terms(model, x[None].to(self.device), s)
                for k in ("style", "content", "tv"):
                    acc.setdefault(k, []).append(float(terms[k]))
        model.train(was_training)
        return {k: sum(v) / len(v) for k, v in acc.items()}

    @torch.no_grad()
    def save_samples(self, model, photos: list[torch.Tensor], path: Path) -> None:
        """A grid: each of the first 3 photos (128 px crops), then its stylizations."""
        model.eval()
        shown = self.styles()[:4]
        rows = []
        for x in photos[:3]:
            x = images.center_crop(images.resize_shorter(x, 128), 128)[None].to(self.device)
            outs = [x[0].cpu()] + [self.apply(model, x, s)[0].float().clamp(0, 1).cpu() for s in shown]
            rows.append(torch.cat(outs, dim=2))
        model.train()
        images.save_image(torch.cat(rows, dim=1), path)


def loss_layout(*images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The training loss's inputs, NHWC on the CPU, where oneDNN's VGG passes take a step
    2-13% faster in that layout (``python -m bench.train_step``); elsewhere as given."""
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.device.type == "cpu" else t
                 for t in images)


class SingleStyle(Task):
    """One style: every photo is pushed toward the same style targets."""

    def __init__(self, cfg: Config, device: torch.device, *, train: bool = True):
        super().__init__(cfg, device)
        self.style_targets = self.loss_fn.compute_style_targets(style_images(cfg).to(device))
        self.photos = training_photos(cfg) if train else None

    def sample(self, batch_size: int, g: torch.Generator, memory_format=torch.contiguous_format) -> dict:
        batch = super().sample(batch_size, g, memory_format)
        batch["offsets"] = draw_offsets(self.cfg, batch_size, g)
        return batch

    def loss(self, model, batch: dict) -> dict:
        x = batch["x"]
        y, x = loss_layout(*jitter_crops(model(x).float(), x, batch.get("offsets"), self.cfg.loss.jitter))
        return self.loss_fn(y, x, style_targets=self.style_targets)

    def styles(self) -> list:
        return [None]

    def apply(self, model, x: torch.Tensor, style) -> torch.Tensor:
        return model(x)

    def heldout_terms(self, model, x: torch.Tensor, style) -> dict:
        return self.loss_fn(self.apply(model, x, style).float(), x, style_targets=self.style_targets,
                            weighted=False)


class ConditionalStyles(SingleStyle):
    """N styles in one generator: each sample draws the index of its style."""

    def __init__(self, cfg: Config, device: torch.device, *, train: bool = True):
        super().__init__(cfg, device, train=train)
        self.n_styles = cfg.model.n_styles

    def sample(self, batch_size: int, g: torch.Generator, memory_format=torch.contiguous_format) -> dict:
        batch = super().sample(batch_size, g, memory_format)   # photos, offsets, then the styles
        batch["idx"] = torch.randint(self.n_styles, (batch_size,), generator=g).to(self.device)
        return batch

    def loss(self, model, batch: dict) -> dict:
        x, idx = batch["x"], batch["idx"]
        y, x = loss_layout(*jitter_crops(model(x, idx).float(), x, batch.get("offsets"), self.cfg.loss.jitter))
        return self.loss_fn(y, x, style_targets=select_style_targets(self.style_targets, idx))

    def styles(self) -> list:
        return list(range(self.n_styles))

    def apply(self, model, x: torch.Tensor, style) -> torch.Tensor:
        return model(x, torch.tensor([style], device=x.device))

    def heldout_terms(self, model, x: torch.Tensor, style) -> dict:
        targets = select_style_targets(self.style_targets, torch.tensor([style], device=x.device))
        return self.loss_fn(self.apply(model, x, style).float(), x, style_targets=targets, weighted=False)


class ArbitraryStyle(Task):
    """AdaIN: any painting at test time; trained on a fresh batch of paintings every step."""

    def __init__(self, cfg: Config, device: torch.device, *, train: bool = True):
        super().__init__(cfg, device)
        self.photos = training_photos(cfg) if train else None
        self.paintings = data.RandomCrops([data.image_path(s, "style") for s in cfg.data.style],
                                          cfg.data.style_size, cfg.data.image_size) if train else None
        # measured during training with up to 4 of its own paintings
        self.test_styles = [images.load_image(data.image_path(s, "style"), size=cfg.data.style_size)
                            for s in cfg.data.style[:4]]
        # encoder -> whether the loss network computes it (weak: a freed model's entry goes too)
        self._shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def sample(self, batch_size: int, g: torch.Generator, memory_format=torch.contiguous_format) -> dict:
        batch = super().sample(batch_size, g, memory_format)  # the photos first, then the paintings
        batch["s"] = self.paintings.sample(batch_size, g).to(self.device, memory_format=memory_format)
        # the first round(self_style * N) photos are their own style: t = AdaIN(f(c), f(c)) = f(c),
        # the alpha = 0 target, which the paintings alone never show the decoder
        k = round(self.cfg.data.self_style * batch_size)
        if k:
            batch["s"] = torch.cat([batch["x"][:k], batch["s"][k:]])
        return batch

    def loss(self, model, batch: dict) -> dict:
        x, s = batch["x"], batch["s"]
        layer = self.cfg.model.encoder_layer
        net = self.loss_fn.loss_network
        encoder = getattr(model, "module", model).encoder  # DistributedDataParallel wraps the model
        if encoder not in self._shared:  # checked once per encoder: it compares the weights
            self._shared[encoder] = layer in getattr(net, "layers", ()) and encoder.shares_layers_with(net)
        if self._shared[encoder]:
            # the loss network is the encoder (as in the official code): one VGG pass over the
            # paintings gives both f(s) and the style targets, the same numbers with a quarter
            # less VGG work a step
            fs = self.loss_fn.features(s, list(dict.fromkeys(self.loss_fn.style_layers + [layer])))
            y, t = model(x, style_feat=fs[layer], return_target=True)
            style = {"style_feats": fs}
        else:
            y, t = model(x, s, return_target=True)
            style = {"style": s}
        return self.loss_fn(y.float(), content_feats={layer: t.float()}, **style)

    def styles(self) -> list:
        return self.test_styles

    def apply(self, model, x: torch.Tensor, style) -> torch.Tensor:
        return model(x, style[None].to(x.device))

    def heldout_terms(self, model, x: torch.Tensor, style) -> dict:
        # t lives on the encoder's grid: compare on a crop that the encoder does not round
        m = model.down
        x = x[..., : x.shape[-2] // m * m, : x.shape[-1] // m * m]
        s = style[None].to(x.device)
        y, t = model(x, s, return_target=True)
        return self.loss_fn(y, content_feats={model.encoder_layer: t}, style=s, weighted=False)


def make_task(cfg: Config, device: torch.device | str = "cpu", *, train: bool = True) -> Task:
    """The task ``cfg`` trains (``train=False``: only what measuring a trained model needs)."""
    device = torch.device(device)
    if cfg.model.arch == "adain":
        return ArbitraryStyle(cfg, device, train=train)
    if cfg.model.norm == "conditional_instance":
        return ConditionalStyles(cfg, device, train=train)
    return SingleStyle(cfg, device, train=train)
