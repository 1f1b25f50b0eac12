"""The explorer notebook's logic (``notebooks/explore.ipynb``): the trained runs on disk, one
stylization per choice with its time and its style loss, IN beside BN, and the ipywidgets UI
that calls them. Everything but :func:`build_ui` is plain Python, so pytest drives it without a
browser; :func:`build_ui`'s widgets work headless too (set a value, the result updates).

    runs = explore.runs_to_explore()                 # trains smoke runs if there are none
    ex = explore.Explorer(runs)
    r = ex.render(runs[0], "karya", size=256)       # r.image, r.seconds, r.style_loss
    explore.build_ui(ex)                             # in a notebook: the widgets
"""
from __future__ import annotations

import html
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repro import data, experiments, images, paths, runs, tasks
from repro.config import VOLATILE_KEYS, to_dict
from repro.inference import stylize
from repro.precision import resolve_device

KINDS = ("single", "cin", "adain")
"""What a run is: one style per network (IN Fig. 4), conditional IN (N styles), AdaIN (any)."""


@dataclass(frozen=True)
class RunInfo:
    """A finished training run and what the explorer needs to know of it."""

    run: runs.Run
    kind: str
    styles: tuple[str, ...]  # the paintings it was trained on (names or paths, as configured)

    @property
    def label(self) -> str:
        m = self.run.config.model
        what = {"single": f"{m.arch} {m.norm}, {_short(self.styles[0])}",
                "cin": f"{m.arch} conditional IN, {len(self.styles)} styles",
                "adain": f"AdaIN ({m.encoder_layer}), any style"}[self.kind]
        return f"{what}  [{self.run.name}]"


def _short(style: str) -> str:
    return Path(style).stem


def run_info(path) -> RunInfo:
    run = runs.Run(path)
    cfg = run.config
    kind = ("adain" if cfg.model.arch == "adain" else
            "cin" if cfg.model.norm == "conditional_instance" else "single")
    return RunInfo(run, kind, tuple(cfg.data.style))


def find_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every finished run (``done.json`` written) under ``root`` (default ``runs/``): single-style
    generators first (IN before the others), then conditional IN, then AdaIN, each by name."""
    root = Path(root) if root is not None else paths.runs_dir()
    found = []
    for d in sorted(root.glob("*/done.json")) if root.is_dir() else []:
        try:
            found.append(run_info(d.parent))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a run of another version of the code: not one the explorer can show
    return sorted(found, key=lambda r: (KINDS.index(r.kind), r.run.config.model.norm != "instance",
                                        r.run.name))


SMOKE_CHOICES = (
    dict(arch="residual", norm="instance"),
    dict(arch="residual", norm="batch"),
    # the conditional-IN notebook's smoke styles: the same run, reused from the cache
    dict(arch="residual", norm="conditional_instance", style=["delaunay_portrait_de_metzinger", "candy"]),
    dict(arch="adain"),
)


def _kind(choice: dict) -> str:
    return ("adain" if choice["arch"] == "adain" else
            "cin" if choice.get("norm") == "conditional_instance" else "single")


def runs_to_explore(profile: str = "smoke", log=print) -> list[RunInfo]:
    """The finished runs under ``runs/``, after training (or reusing) ``profile``'s smoke runs of
    any kind missing there (single-style, conditional IN, AdaIN, an IN/BN pair): seconds at
    ``smoke``, and said in ``log``. After ``make figures`` nothing needs training."""
    found = find_runs()
    kinds = {r.kind for r in found}
    pair = any(counterpart(r, found) for r in found)
    todo = [c for c in SMOKE_CHOICES
            if _kind(c) not in kinds or (c.get("norm") in ("instance", "batch") and not pair)]
    if todo:
        names = ", ".join(dict.fromkeys(_kind(c) if _kind(c) != "single" else "IN/BN pair" for c in todo))
        log(f"no trained {names} run under {paths.runs_dir()}: training the {profile} profile's "
            "(seconds; `make figures` trains the real ones)")
        for choice in todo:
            t0 = time.perf_counter()
            run = experiments.train_generator(profile, progress=False, **choice)
            log(f"  {run.name}: {time.perf_counter() - t0:.1f} s")
        found = find_runs()
    return found


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def counterpart(info: RunInfo, candidates: list[RunInfo]) -> RunInfo | None:
    """The same generator trained with the other normalization (IN <-> BN), every other setting
    equal (the pair of IN Fig. 5); None if there is no such run."""
    other = {"instance": "batch", "batch": "instance"}.get(info.run.config.model.norm)
    if info.kind != "single" or other is None:
        return None
    ignore = {"name", "model.norm", *VOLATILE_KEYS}

    def key(cfg):
        return {k: v for k, v in _flat(to_dict(cfg)).items() if k not in ignore}

    mine = key(info.run.config)
    for c in candidates:
        if c.kind == "single" and c.run.config.model.norm == other and key(c.run.config) == mine:
            return c
    return None


@dataclass
class Rendered:
    """One stylization: the image, the generator's time, its style loss against the painting
    and, for scale, the content photo's own style loss against it."""

    image: torch.Tensor
    seconds: float
    style_loss: float
    photo_style_loss: float
    painting: str

    def caption(self) -> str:
        return (f"{self.seconds * 1e3:.0f} ms | style loss {self.style_loss:.3g} against "
                f"{_short(self.painting)} (the photo itself: {self.photo_style_loss:.3g})")


def read_upload(value) -> tuple[str, torch.Tensor]:
    """(name, (3, H, W) image) from an ``ipywidgets.FileUpload`` value (its last file), decoded
    with every check of ``images.load_image``; ``ValueError`` naming the file otherwise."""
    files = list(value.values()) if isinstance(value, dict) else list(value or ())
    if not files:
        raise ValueError("no file uploaded")
    f = files[-1]
    name = str(f.get("name", "upload"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(bytes(f["content"]))
        try:
            return name, images.load_image(path)
        except (ValueError, OSError) as e:
            raise ValueError(f"uploaded file {name}: {str(e).replace(str(path), '').strip(' :')}") from None


@dataclass
class Explorer:
    """Trained models and their loss networks, each built once and reused (images are read at
    every render: a new size needs them anew)."""

    runs: list[RunInfo]
    device: str = "cpu"
    _models: dict = field(default_factory=dict, repr=False)
    _losses: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.device = resolve_device(self.device)

    def model(self, info: RunInfo):
        if info.run.path not in self._models:
            self._models[info.run.path] = info.run.load_model(self.device)
        return self._models[info.run.path]

    def loss(self, info: RunInfo):
        """The run's own perceptual loss (its layers, statistic and VGG weights)."""
        if info.run.path not in self._losses:
            self._losses[info.run.path] = tasks.build_loss(info.run.config, self.device).eval()
        return self._losses[info.run.path]

    @staticmethod
    def image(source, size: int, kind: str = "content") -> torch.Tensor:
        """An image tensor, a path, or a data image by name (a ``kind`` image: "content" or
        "style"), with its shorter side resized to ``size``."""
        if isinstance(source, torch.Tensor):
            images.check_resize_shorter(source.shape, size)
            return images.resize_shorter(source, size)
        return images.load_image(data.image_path(str(source), kind), size=size)

    @torch.no_grad()
    def render(self, info: RunInfo, photo, size: int, *, style: int = 0, mix_with: int | None = None,
               mix: float = 0.0, painting=None, painting_name: str | None = None, painting2=None,
               mix2: float = 0.0, alpha: float = 1.0, preserve_color: bool = False) -> Rendered:
        """Stylize ``photo`` (a name, path or tensor) at ``size`` with the run ``info``.

        Conditional IN: style index ``style``, mixed with ``mix_with`` by weight ``mix`` (Dumoulin
        et al.'s interpolation of gamma and beta). AdaIN: ``painting`` (a name, path or tensor;
        default the run's first style), ``painting2`` mixed in by ``mix2`` (AdaIN §7.3), ``alpha``
        (eq. 14), ``preserve_color``. The style loss is measured with the run's own loss against
        the single-style run's painting, the CIN style ``style``, or AdaIN's ``painting``.
        """
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f"size must be a positive integer, got {size!r}")
        for name, v in (("mix", mix), ("mix2", mix2), ("alpha", alpha)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        style_size = info.run.config.data.style_size  # where the run's style targets were taken
        x = self.image(photo, size).to(self.device)
        kw: dict = {}
        target = info.styles[0]
        if info.kind == "cin":
            n = len(info.styles)
            if not 0 <= style < n or (mix_with is not None and not 0 <= mix_with < n):
                raise ValueError(f"style indices must be in 0..{n - 1}, got {style} and {mix_with}")
            weights = [0.0] * n
            weights[style] += 1.0 - (mix if mix_with is not None else 0.0)
            if mix_with is not None:
                weights[mix_with] += mix
            kw["style"], target = weights, info.styles[style]
        elif info.kind == "adain":
            painting = info.styles[0] if painting is None else painting
            target = painting_name or (str(painting) if not isinstance(painting, torch.Tensor) else "upload")
            styles = [self.image(painting, style_size, "style")]
            if painting2 is not None and mix2 > 0:
                styles.append(self.image(painting2, style_size, "style"))
                kw["style_weights"] = [1.0 - mix2, mix2]
            kw.update(style=styles, alpha=alpha, preserve_color=preserve_color)
        model = self.model(info)  # loaded before the clock starts: the time is the generator's
        t0 = time.perf_counter()
        y = stylize(model, x, precision="fp32", device=self.device, **kw)
        seconds = time.perf_counter() - t0
        s = kw["style"][0] if info.kind == "adain" else self.image(target, style_size, "style")
        loss = self.loss(info)
        targets = loss.compute_style_targets(s[None].to(self.device))

        def style_loss(img):
            return float(loss(img[None].float(), x[None], style_targets=targets, weighted=False)["style"])

        return Rendered(y.cpu(), seconds, style_loss(y), style_loss(x), str(target))


def png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    images.to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def photo_names() -> list[str]:
    """The data's photos: held-out ones first (the generators never saw them)."""
    return [p.stem for p in data.content_paths("test")] + [p.stem for p in data.content_paths("train")]


def painting_names() -> list[str]:
    return [p.stem for p in data.style_paths()]


def build_ui(explorer: Explorer, *, photo: str | None = None, size: int = 256):
    """The explorer's widgets (ipywidgets), wired to :meth:`Explorer.render`; returns an
    :class:`ExplorerUI` (display ``ui.widget``)."""
    return ExplorerUI(explorer, photo=photo, size=size)


class ExplorerUI:
    """Photo, run and size controls; CIN's style and mixing slider; AdaIN's painting, alpha,
    colour preservation and second painting; the result (and the IN/BN counterpart) with its time
    and style loss, updated on every change. Errors (a bad upload) show in ``status``."""

    def __init__(self, explorer: Explorer, *, photo: str | None = None, size: int = 256):
        import ipywidgets as w  # a dev dependency: only the notebook needs it

        if not explorer.runs:
            raise ValueError("no trained runs to explore: explore.runs_to_explore() trains smoke ones")
        self.explorer = explorer
        photos, paintings = photo_names(), painting_names()
        # uploads by name, photos and paintings apart (one name may be both)
        self.uploaded: dict[str, dict[str, torch.Tensor]] = {"photo": {}, "painting": {}}
        self.photo = w.Dropdown(options=photos, value=photo or photos[0], description="photo")
        self.photo_upload = w.FileUpload(accept="image/*", description="upload photo")
        self.run = w.Dropdown(options=[(r.label, i) for i, r in enumerate(explorer.runs)], value=0,
                              description="run", layout=w.Layout(width="640px"))
        self.size = w.IntSlider(value=size, min=64, max=1024, step=32, description="size",
                                continuous_update=False)
        self.style = w.Dropdown(description="style")
        self.mix_with = w.Dropdown(description="mix with")
        self.mix = w.FloatSlider(value=0.0, min=0, max=1, step=0.05, description="mix",
                                 continuous_update=False)
        self.painting = w.Dropdown(options=paintings, description="painting")
        self.painting_upload = w.FileUpload(accept="image/*", description="upload painting")
        self.alpha = w.FloatSlider(value=1.0, min=0, max=1, step=0.05, description="alpha",
                                   continuous_update=False)
        self.preserve_color = w.Checkbox(value=False, description="preserve colour")
        self.painting2 = w.Dropdown(options=["(none)"] + paintings, description="2nd painting")
        self.mix2 = w.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="2nd weight",
                                  continuous_update=False)
        self.result, self.other = w.Image(format="png"), w.Image(format="png")
        self.caption, self.other_caption = w.HTML(), w.HTML()
        self.status = w.HTML()
        self.cin_box = w.VBox([self.style, w.HBox([self.mix_with, self.mix])])
        self.adain_box = w.VBox([w.HBox([self.painting, self.painting_upload]),
                                 w.HBox([self.alpha, self.preserve_color]),
                                 w.HBox([self.painting2, self.mix2])])
        self.other_box = w.VBox([self.other, self.other_caption])
        self.widget = w.VBox([
            w.HBox([self.photo, self.photo_upload]), self.run, self.size, self.cin_box, self.adain_box,
            w.HBox([w.VBox([self.result, self.caption]), self.other_box]), self.status])
        self.renders = 0
        self._quiet = True
        self._on_run()
        for c in (self.photo, self.size, self.style, self.mix_with, self.mix, self.painting,
                  self.alpha, self.preserve_color, self.painting2, self.mix2):
            c.observe(lambda _: self.update(), names="value")
        self.run.observe(lambda _: (self._on_run(), self.update()), names="value")
        self.photo_upload.observe(lambda ch: self._on_upload(ch, "photo"), names="value")
        self.painting_upload.observe(lambda ch: self._on_upload(ch, "painting"), names="value")
        self._quiet = False
        self.update()

    @property
    def info(self) -> RunInfo:
        return self.explorer.runs[self.run.value]

    def _on_run(self) -> None:
        """Show the controls of the chosen run's kind; fill CIN's style lists."""
        info, quiet = self.info, self._quiet
        self._quiet = True
        if info.kind == "cin":
            opts = [(_short(s), i) for i, s in enumerate(info.styles)]
            self.style.options, self.mix_with.options = opts, opts
            self.style.value, self.mix_with.value = 0, min(1, len(opts) - 1)
        self.cin_box.layout.display = "" if info.kind == "cin" else "none"
        self.adain_box.layout.display = "" if info.kind == "adain" else "none"
        self._quiet = quiet

    def _on_upload(self, change, what: str) -> None:
        try:
            name, img = read_upload(change["new"])
        except ValueError as e:
            self.status.value = f"<b>error:</b> {e}"
            return
        self.uploaded[what][name] = img
        box = self.photo if what == "photo" else self.painting
        quiet, self._quiet = self._quiet, True  # one render, after the lists are filled
        try:
            for b in [box] if what == "photo" else [box, self.painting2]:
                if name not in b.options:
                    b.options = [*b.options, name]
            box.value = name
        finally:
            self._quiet = quiet
        self.update()  # also when the same name comes again with new pixels

    def _source(self, name: str, what: str = "painting"):
        return self.uploaded[what].get(name, name)

    @staticmethod
    def _show(widget, image: torch.Tensor) -> None:
        # at its own pixel width (up to 512 px on screen), not stretched to the notebook's
        widget.value = png_bytes(image)
        widget.layout.width = f"{min(image.shape[-1], 512)}px"

    def update(self) -> None:
        if self._quiet:
            return
        info = self.info
        kw = {}
        if info.kind == "cin":
            kw = dict(style=self.style.value, mix_with=self.mix_with.value, mix=self.mix.value)
        elif info.kind == "adain":
            second = None if self.painting2.value == "(none)" else self._source(self.painting2.value)
            kw = dict(painting=self._source(self.painting.value), painting_name=self.painting.value,
                      alpha=self.alpha.value, preserve_color=self.preserve_color.value,
                      painting2=second, mix2=self.mix2.value)
        photo = self._source(self.photo.value, "photo")
        try:
            r = self.explorer.render(info, photo, self.size.value, **kw)
            self._show(self.result, r.image)
            self.caption.value = f"<b>{html.escape(info.label)}</b><br>{r.caption()}"
            twin = counterpart(info, self.explorer.runs)
            self.other_box.layout.display = "" if twin else "none"
            if twin:
                t = self.explorer.render(twin, photo, self.size.value)
                self._show(self.other, t.image)
                self.other_caption.value = f"<b>{html.escape(twin.label)}</b><br>{t.caption()}"
            self.status.value = ""
            self.renders += 1
        except (ValueError, OSError) as e:  # bad sizes, unreadable files: said, not raised
            self.status.value = f"<b>error:</b> {html.escape(' '.join(str(e).split()))}"


def describe(runs_found: list[RunInfo]) -> str:
    """One line per run: what the explorer offers."""
    return "\n".join(f"{r.kind:6s} {r.label}" for r in runs_found)


__all__ = ["Explorer", "ExplorerUI", "Rendered", "RunInfo", "build_ui", "counterpart", "describe",
           "find_runs", "read_upload", "run_info", "runs_to_explore"]
