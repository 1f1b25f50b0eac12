"""A plain, typed run configuration: dataclasses built from ``configs/<profile>.yaml`` + overrides.

    cfg = load_config("cpu", overrides=["model.norm=batch", "optim.steps=200"])

An unknown key, or a value of the wrong type, is a ``ConfigError`` naming the key. The resolved
config (``to_dict(cfg)``) is what a run directory stores and what its hash is computed from.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro import paths
from repro.data import TRANSFORMS
from repro.losses import STYLE_STATS
from repro.models import ARCHS, OUTPUTS, PADDINGS
from repro.models.residual import DOWNSAMPLES, UPSAMPLES
from repro.norms import NORM_KINDS
from repro.precision import PRECISIONS
from repro.vgg import PADDINGS as VGG_PADDINGS, POOLS, VGG_ARCHS, WEIGHTS


class ConfigError(ValueError):
    """A bad configuration key or value; the message names the key."""


@dataclass
class ModelConfig:
    """Generator (``repro.models.build_generator`` keyword arguments)."""
    arch: str = "residual"            # "residual" (Johnson'16) | "multiscale" (Ulyanov'16) | "adain"
    norm: str = "instance"            # "instance" | "batch" | "none" | "conditional_instance"
    padding: str = "reflect"          # "zero" | "reflect" | "replicate"
    width: float = 1.0                # channel multiplier (1.0 = the papers' networks)
    upsample: str = "nearest"         # residual only: "nearest" | "bilinear" (+conv) | "transposed" | "antialiased" (+blur) | "subpixel" (ICNR)
    downsample: str = "strided"       # residual only: "strided" (stride-2 conv) | "antialiased" (stride 1 + BlurPool)
    n_styles: int = 0                 # conditional_instance only
    noise_channels: int = 0           # multiscale only (texture_nets v1 noise inputs)
    output: str = "sigmoid"           # "sigmoid" (in [0, 1]) | "linear" (clamped only at inference)
    equalized_output: bool = False    # residual/multiscale (adain ignores it): the output conv at 1/sqrt(fan_in) (issue 18)
    encoder_layer: str = "relu3_1"    # adain only: the VGG-19 bottleneck (paper: relu4_1)
    encoder_weights: str = "auto"     # adain only: LossNetwork weights of the frozen encoder


@dataclass
class DataConfig:
    """Content photos, crops, and the style image(s)."""
    style: list[str] = field(default_factory=lambda: ["starry_night"])  # names or paths
    style_size: int = 256             # shorter side of the style image
    content_size: int = 256           # content photos resized to this shorter side, then cropped
    image_size: int = 128             # random crop size for training
    n_train: int = 16                 # first N train photos (Texture Networks used 16); 0 = all
    transform: str = "none"           # "none" | "equalize" (AdaIN Fig. 1b) | "stylize" (Fig. 1c)
    transform_checkpoint: str = ""    # the generator used by transform="stylize"
    test_images: list[str] = field(default_factory=lambda: ["karya", "tubingen", "golden_gate", "kitten"])
    test_size: int = 256              # held-out evaluation at this shorter side
    self_style: float = 0.0           # adain only: fraction of each batch styled by its own photo
                                      # (t = f(c), the alpha = 0 target; not in the paper)


@dataclass
class LossConfig:
    """``repro.losses.PerceptualLoss`` on ``repro.vgg.LossNetwork``."""
    content_layers: list[str] = field(default_factory=lambda: ["relu2_2"])
    style_layers: list[str] = field(default_factory=lambda: ["relu1_1", "relu2_1", "relu3_1"])
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 0.0
    style_stat: str = "gram"          # "gram" | "meanstd"
    vgg_arch: str = "vgg19"
    vgg_weights: str = "auto"         # "auto" | "normalised" | "imagenet" | "random"
    vgg_pool: str = "max"             # "max" (VGG) | "avg" (Gatys et al.'s suggestion)
    vgg_padding: str = "zero"         # "zero" (VGG) | "reflect" (AdaIN's encoder, its loss network)
    # residual/multiscale (adain ignores it): each output and its photo cropped at a random offset
    # of 0..jitter-1 px before the loss network, so the generator's stride grid does not stay
    # aligned with VGG's pooling grid (issue 18, the hatch; not in the papers). 0 = off
    jitter: int = 0


@dataclass
class OptimConfig:
    """Adam with texture_nets' step decay (lr x decay every N steps; 0 = constant)."""
    lr: float = 1e-3
    steps: int = 400
    batch_size: int = 4
    lr_decay: float = 0.8
    lr_decay_every: int = 0


@dataclass
class TrainConfig:
    """How the loop runs (device, precision, logging, checkpoints)."""
    seed: int = 0
    device: str = "auto"              # "auto" (cuda if available) | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"           # "auto" (bf16 autocast where native: CUDA, AVX-512 BF16/AMX CPUs; else fp32) | "fp32" | "bf16"
    channels_last: bool = True        # CUDA only: NHWC kernels
    compile: bool = False             # torch.compile the generator
    sync_bn: bool = False             # distributed + batch norm: SyncBatchNorm (CUDA only)
    eval_every: int = 100             # held-out losses and a sample grid
    checkpoint_every: int = 100
    # the generator kept at these fractions of optim.steps (snapshots/step<N>.pt), so a claim can
    # be measured along training (issue 18: trends); the final model is model.pt
    snapshots: list[float] = field(default_factory=list)
    progress: bool = True             # tqdm bar


@dataclass
class Config:
    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Keys that change how a run is watched, not what it computes: left out of the run hash so a
# finished run is reused whether or not a progress bar was shown.
VOLATILE_KEYS = {"train.progress"}
# Keys only some architectures read: hashed only for runs of those, so adding an option for one
# architecture keeps every other run's directory (and its cache) unchanged; the others ignore it.
ARCH_ONLY_KEYS = {"model.encoder_layer": ("adain",), "model.encoder_weights": ("adain",),
                  "data.self_style": ("adain",), "model.equalized_output": ("residual", "multiscale"),
                  "loss.jitter": ("residual", "multiscale"), "model.downsample": ("residual",)}
# Keys added after runs existed, with the value every earlier run had: hashed only when set to
# something else, so the runs that never set them keep their directories.
HASHED_WHEN_NOT = {"loss.vgg_padding": "zero", "model.equalized_output": False, "train.snapshots": [],
                   "loss.jitter": 0, "model.downsample": "strided"}


def _check(value: Any, tp: Any, key: str) -> Any:
    """Coerce/validate one value against a dataclass field type."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_check(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads exponents without a dot ("1e-3") as text: a number field takes them
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _merge(obj: Any, updates: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for k, v in updates.items():
        key = f"{prefix}{k}"
        if k not in names:
            raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(sorted(names))}")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(cur))}")
            _merge(cur, v, key + ".")
        else:
            setattr(obj, k, _check(v, hints[k], key))


def parse_override(item: str) -> dict:
    """``"model.norm=batch"`` -> ``{"model": {"norm": "batch"}}`` (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. model.norm=batch)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _yaml_problem(e: Exception) -> str:
    """PyYAML's multi-line error as one line: what and where."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark else what


def profile_path(profile: str | Path) -> Path:
    """``configs/<profile>.yaml`` for a profile name, or a ``.yaml`` path as given (a dry run,
    ``<profile>-dry``, reads its profile's file)."""
    profile = dry_run_of(profile) or profile
    p = Path(profile)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        return p
    p = paths.CONFIGS / f"{profile}.yaml"
    if not p.is_file():
        avail = sorted(q.stem for q in paths.CONFIGS.glob("*.yaml"))
        raise ConfigError(f"no profile {profile!r} ({p}); available: {', '.join(avail)}")
    return p


# ---------------------------------------------------------------------------------------------
# Dry runs: a profile's whole code path in seconds, on the CPU, with no download

DRY_SUFFIX = "-dry"
DRY_TRAIN = {  # merged into train_defaults and into every arch_defaults entry
    "data": {"style_size": 48, "content_size": 48, "image_size": 32, "n_train": 4, "test_size": 48},
    "optim": {"steps": 4, "batch_size": 2, "lr_decay_every": 2},
    "train": {"eval_every": 2, "checkpoint_every": 2, "compile": False, "device": "cpu"},
}
DRY_NOTEBOOK = {"size": 48, "sizes": [48, 64], "steps": 2, "gatys_steps": 2, "n_heldout": 2,
                "window": 2, "n_photos": 1, "time_sizes": [48, 64], "time_steps": 1, "time_repeats": 1,
                "style_weights": [3.0, 1000.0], "seeds": [0], "test_size": 48}
"""Notebook parameters that set a cost, and their dry-run values (others are kept as they are)."""
RANDOM_STAND_IN = "random"
WEIGHT_KEYS = (("loss", "vgg_weights"), ("model", "encoder_weights"))
"""Where a training section names VGG weights."""


def _override_parts(item) -> tuple[str, str]:
    """``"key=value"`` -> (key, value), both stripped."""
    key, _, value = str(item).partition("=")
    return key.strip(), value.strip()


def _names_weights(key: str) -> bool:
    return key.endswith(tuple(name for _, name in WEIGHT_KEYS))


def dry_run_of(profile: str | Path) -> str | None:
    """The profile a dry-run name stands for (``paper-dry`` -> ``paper``), else None."""
    name = str(profile)
    if name.endswith(DRY_SUFFIX) and Path(name).suffix not in (".yaml", ".yml"):
        return name[: -len(DRY_SUFFIX)]
    return None


def _stand_in(weights: str | None) -> str:
    """The weights a dry run uses instead of ``weights``: never a download."""
    if weights in (None, "auto"):
        return "normalised" if paths.normalised_vgg19_path().is_file() else RANDOM_STAND_IN
    return RANDOM_STAND_IN if weights == "imagenet" else weights


def _dry_run(doc: dict, base: str) -> dict:
    """``base``'s profile shrunk to seconds: tiny images, a few steps, CPU, no compilation, and
    the VGG weights a download would bring (``imagenet``, or ``auto`` without the local file)
    replaced by a seeded random VGG-19 of the same architecture (``weights: random``, named in
    every run config and figure record). Figures go to ``build/figures/dry-run/<profile>``;
    claims are recorded, never asserted."""
    if "train_defaults" not in doc:  # a flat YAML is all training settings (as load_config reads it)
        doc = {"train_defaults": doc}

    def shrink(section: dict, top: bool) -> dict:
        section = copy.deepcopy(section or {})
        for key, values in DRY_TRAIN.items():
            section[key] = {**(section.get(key) or {}), **values}
        data = section["data"]
        if data.get("test_images"):
            data["test_images"] = list(data["test_images"])[:2]
        for key, name in WEIGHT_KEYS:
            given = (section.get(key) or {}).get(name)
            if top or given is not None:  # the defaults once, and every explicit choice
                section.setdefault(key, {})[name] = _stand_in(given)
        return section

    doc["train_defaults"] = shrink(doc["train_defaults"], top=True)
    doc["train_defaults"]["name"] = f"{doc['train_defaults'].get('name', 'run')}{DRY_SUFFIX}"
    doc["arch_defaults"] = {a: shrink(s, top=False) for a, s in (doc.get("arch_defaults") or {}).items()}
    doc["gatys"] = {**(doc.get("gatys") or {}),
                    "vgg_weights": _stand_in((doc.get("gatys") or {}).get("vgg_weights"))}
    cost_keys = {f"{section}.{k}" for section, values in DRY_TRAIN.items() for k in values}
    notebooks = {}
    for name, params in (doc.get("notebooks") or {}).items():
        params = {k: (DRY_NOTEBOOK[k] if k in DRY_NOTEBOOK else v) for k, v in params.items()}
        # train_overrides, and another figure's (cin_overrides): the dry run's sizes and steps
        # win; no download
        for okey in [k for k in params if k.endswith("overrides")]:
            kept = []
            for o in params[okey]:
                key, value = _override_parts(o)
                if key in cost_keys:
                    continue
                if _names_weights(key):
                    o = f"{key}={_stand_in(value)}"
                kept.append(o)
            params[okey] = kept
        notebooks[name] = params
    doc["notebooks"] = notebooks
    doc["figures"] = {"dir": f"build/figures/dry-run/{Path(base).stem}", "readme": False,
                      "assert_claims": False}
    doc["dry_run"] = {"of": base, "vgg_stand_in": RANDOM_STAND_IN}
    return doc


def is_dry_run(profile: str | Path) -> bool:
    return dry_run_of(profile) is not None


def check_figure_profile(profile: str | Path) -> None:
    """A profile whose figures are real (not a dry run) may not name the random VGG stand-in:
    not in its training sections, its Gatys section, nor a notebook's training overrides."""
    if is_dry_run(profile):
        return
    doc = read_profile(profile)
    sections = {"train_defaults": doc.get("train_defaults", doc),
                **{f"arch_defaults.{a}": s for a, s in (doc.get("arch_defaults") or {}).items()}}
    found = [f"{where}.{k}.{n}" for where, s in sections.items() for k, n in WEIGHT_KEYS
             if isinstance(s, dict) and isinstance(s.get(k), dict) and s[k].get(n) == RANDOM_STAND_IN]
    if (doc.get("gatys") or {}).get("vgg_weights") == RANDOM_STAND_IN:
        found.append("gatys.vgg_weights")
    for name, params in (doc.get("notebooks") or {}).items():
        for o in (params or {}).get("train_overrides") or []:
            key, value = _override_parts(o)
            if _names_weights(key) and value == RANDOM_STAND_IN:
                found.append(f"notebooks.{name}.train_overrides ({o})")
    if found:
        raise ConfigError(f"{profile_path(profile)}: {found[0]} is the random VGG stand-in, for "
                          f"dry runs only (profile {profile}-dry); real figures need real weights")


@functools.lru_cache(maxsize=32)
def _parse_profile(path: Path, stamp: tuple[int, ...]) -> dict:
    """One parse per file version (``stamp``: device, inode, mtime, size): an edited file is re-read."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return doc


def read_profile(profile: str | Path) -> dict:
    """The whole YAML document of a profile: the one reader behind the training config, the
    per-architecture defaults, the notebooks' parameters and the figures folder. Cached; a
    fresh copy each call, so a caller may change it."""
    path = profile_path(profile)
    st = path.stat()
    doc = copy.deepcopy(_parse_profile(path, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)))
    base = dry_run_of(profile)
    return _dry_run(doc, base) if base else doc


def profile_section(profile: str | Path, name: str) -> dict:
    """A top-level section of a profile other than ``train_defaults`` (``{}`` if absent):
    ``arch_defaults``, ``notebooks`` (papermill parameters per figure notebook), ``figures``."""
    section = read_profile(profile).get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{profile_path(profile)}: section {name!r} must be a mapping")
    return section


def figures_dir(profile: str | Path) -> Path:
    """Where a profile's figure notebooks write ``<figure>.png/.pdf/.json`` and REPORT.md: its
    ``figures: {dir: ...}``, relative to the repository root (default ``figures/<profile>``)."""
    where = profile_section(profile, "figures").get("dir") or Path("figures") / Path(profile).stem
    return paths.ROOT / where


def asserts_claims(profile: str | Path) -> bool:
    """Whether a figure claim that does not hold fails the notebook at this profile
    (``figures: {assert_claims: true}``: cpu and paper; at smoke claims are only recorded)."""
    return bool(profile_section(profile, "figures").get("assert_claims", False))


def refreshes_readme(profile: str | Path) -> bool:
    """Whether a profile's figures are the README's (``figures: {readme: true}``; only ``cpu``)."""
    return bool(profile_section(profile, "figures").get("readme", False))


GATYS_DEFAULTS = {"content_layers": ["relu3_1"], "style_layers": ["relu1_1", "relu2_1", "relu3_1"],
                  "vgg_weights": "auto"}


def gatys_settings(profile: str | Path) -> dict:
    """The loss of Gatys et al.'s optimization at a profile (its ``gatys:`` section over
    ``GATYS_DEFAULTS``): the layers and the VGG weights every Gatys run of its figures uses."""
    section = profile_section(profile, "gatys")
    unknown = sorted(set(section) - set(GATYS_DEFAULTS))
    if unknown:
        raise ConfigError(f"{profile_path(profile)}: gatys.{unknown[0]} is not a setting; "
                          f"known: {', '.join(GATYS_DEFAULTS)}")
    settings = {**GATYS_DEFAULTS, **section}
    if settings["vgg_weights"] not in WEIGHTS:
        raise ConfigError(f"gatys.vgg_weights: must be one of {', '.join(WEIGHTS)}, "
                          f"got {settings['vgg_weights']!r}")
    return settings


def load_config(profile: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Defaults <- ``configs/<profile>.yaml`` (its ``train_defaults`` section, if present) <- overrides."""
    cfg = Config()
    if profile is not None:
        doc = read_profile(profile)
        section = doc.get("train_defaults", doc)
        if not isinstance(section, dict):
            raise ConfigError(f"{profile_path(profile)}: expected a mapping")
        _merge(cfg, section)
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: Config, *layers: list[str] | dict | None) -> Config:
    """Apply ``["key=value", ...]`` or nested dicts to ``cfg`` in place, in order, then validate
    once (so that layers which only make sense together, e.g. an architecture and its
    options, can be given separately)."""
    for overrides in layers:
        if isinstance(overrides, dict):
            _merge(cfg, overrides)
        else:
            for item in overrides or []:
                _merge(cfg, parse_override(item))
    validate(cfg)
    return cfg


def from_dict(d: dict) -> Config:
    cfg = Config()
    _merge(cfg, d)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


_CHOICES = {  # each vocabulary is owned by the module that implements it
    "model.arch": ARCHS,
    "model.norm": NORM_KINDS,
    "model.padding": tuple(PADDINGS),
    "model.upsample": UPSAMPLES,
    "model.downsample": DOWNSAMPLES,
    "model.output": OUTPUTS,
    "data.transform": TRANSFORMS,
    "loss.style_stat": STYLE_STATS,
    "loss.vgg_arch": VGG_ARCHS,
    "loss.vgg_weights": WEIGHTS,
    "model.encoder_weights": WEIGHTS,
    "loss.vgg_pool": POOLS,
    "loss.vgg_padding": VGG_PADDINGS,
    "train.precision": PRECISIONS,
}


def snapshot_steps(cfg: Config) -> list[int]:
    """The steps ``train.snapshots`` (fractions of ``optim.steps``) keep: at least step 1, before
    the last, each once (a short run may keep fewer than asked)."""
    return sorted({min(max(1, round(f * cfg.optim.steps)), cfg.optim.steps - 1)
                   for f in cfg.train.snapshots} - {0})


def validate(cfg: Config) -> None:
    d = to_dict(cfg)
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        if d[section][name] not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got {d[section][name]!r}")
    positive = ["model.width", "data.style_size", "data.content_size", "data.image_size",
                "data.test_size", "optim.lr", "optim.steps", "optim.batch_size"]
    for key in positive:
        section, name = key.split(".")
        if d[section][name] <= 0:
            raise ConfigError(f"{key}: must be > 0, got {d[section][name]!r}")
    for key in ("data.n_train", "optim.lr_decay_every", "train.eval_every", "train.checkpoint_every",
                "model.n_styles", "model.noise_channels", "loss.jitter"):
        section, name = key.split(".")
        if d[section][name] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {d[section][name]!r}")
    if any(not 0.0 < f < 1.0 for f in cfg.train.snapshots):
        raise ConfigError(f"train.snapshots: fractions of optim.steps strictly between 0 and 1, "
                          f"got {cfg.train.snapshots!r}")
    if not 0.0 <= cfg.data.self_style <= 1.0:
        raise ConfigError(f"data.self_style: must be in [0, 1], got {cfg.data.self_style!r}")
    # hashed for every architecture but read by the residual generator only: elsewhere it would
    # train the default under a run directory of its own (model.downsample, an ARCH_ONLY_KEYS
    # entry, is ignored and unhashed elsewhere instead)
    if cfg.model.upsample != "nearest" and cfg.model.arch != "residual":
        raise ConfigError(f"model.upsample={cfg.model.upsample} is an option of the residual generator "
                          f"only, not of model.arch={cfg.model.arch}")
    if cfg.data.self_style and cfg.model.arch != "adain":
        raise ConfigError("data.self_style is for arch=adain (a photo as its own style)")
    if cfg.loss.jitter and cfg.loss.jitter * 4 > cfg.data.image_size:
        raise ConfigError(f"loss.jitter ({cfg.loss.jitter}) must be at most a quarter of "
                          f"data.image_size ({cfg.data.image_size}): the loss sees the crop less jitter px")
    if cfg.data.image_size > cfg.data.content_size:
        raise ConfigError(f"data.image_size ({cfg.data.image_size}) must not exceed "
                          f"data.content_size ({cfg.data.content_size}): crops come from the resized photos")
    if not cfg.data.style:
        raise ConfigError("data.style: name at least one style image")
    if cfg.model.norm == "conditional_instance":
        if cfg.model.n_styles != len(cfg.data.style):
            raise ConfigError(f"model.n_styles ({cfg.model.n_styles}) must equal the number of "
                              f"data.style images ({len(cfg.data.style)}) for conditional_instance")
    elif cfg.model.arch == "adain":
        # the training paintings; the content target is t at the bottleneck (AdaIN eq. 12)
        if cfg.loss.content_layers != [cfg.model.encoder_layer]:
            raise ConfigError(f"loss.content_layers must be [{cfg.model.encoder_layer}] "
                              f"(model.encoder_layer) for arch=adain, got {cfg.loss.content_layers}")
        if cfg.data.transform != "none":
            raise ConfigError("data.transform is for single-style generators, not arch=adain")
    elif len(cfg.data.style) != 1:
        raise ConfigError("data.style: several styles need model.norm=conditional_instance "
                          "(or model.arch=adain)")
    if cfg.data.transform == "stylize" and not cfg.data.transform_checkpoint:
        raise ConfigError("data.transform=stylize needs data.transform_checkpoint")
    if not cfg.loss.content_layers and not cfg.loss.style_layers:
        raise ConfigError("loss: name at least one content or style layer")
