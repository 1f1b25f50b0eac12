"""ONNX export of every generator: ``export_onnx(run_or_model, "out.onnx")``,
``python -m repro export RUN OUT.onnx``.

The exported graph computes what ``repro.stylize(model, x, precision="fp32")`` computes, for any
batch, height and width (H, W >= the model's ``min_size``, stored in the file's metadata):

- residual and multi-scale generators (instance, batch (eval mode: running statistics) or no
  normalization): input ``image`` (N, 3, H, W) float32 RGB in [0, 1];
- conditional-IN generators: also ``style_weights`` (N or 1, n_styles) float32, the mixing
  weights of Dumoulin et al. (a one-hot row is one style; a single row applies to the whole batch);
- AdaIN: also ``style`` (N or 1, 3, Hs, Ws), any size of at least ``min_size``, and ``alpha``, a
  float32 scalar (AdaIN eq. 14) that is optional: the file gives it the default 1 (full style).
  ``alpha`` is clamped to [0, 1] in the graph, where ``stylize`` would refuse other values.

Output ``stylized`` (N, 3, H, W) in [0, 1] (clamped, as ``stylize`` does).

Why not ``torch.onnx.export(model)``: the models pad H and W up to a multiple of their stride
(``_common.pad_to_multiple``, ``AdaINNet.forward``) behind Python ``if``\\s on the size, which an
exporter evaluates once, at the example's size: another size then gave wrong pixels (residual) or
a graph that fails (multi-scale). :class:`GeneratorGraph` and :class:`AdaINGraph` wrap the same
modules with a forward that always pads (``(-h) % multiple``, split top/bottom as the models
split it, reflection padding that may be zero) and crops back, with the amounts computed in the
graph. For H, W >= ``min_size`` the models themselves pad with reflection too (replication only
takes over below it), so this is the models' own function. With a batch of N images, a single
style row (or style image) is applied to all of them, as ``stylize`` does; rows are picked as
``row[i % rows]``, so another row count (not 1, not N) cycles instead of failing.

The exporter is torch's recommended one (``torch.onnx.export(..., dynamo=True)``, via
``torch.export`` with ``Dim`` dynamic shapes and onnxscript; opset 20 by default, 18 at the
least). ``torch.export.export`` alone refuses these wrappers (it cannot prove that the crop stays
inside the padded map, which is always true); ``torch.onnx.export`` defers such guards to
run-time assertions, which ONNX has no operator for. An export takes 5-25 s on 2 busy CPU cores,
most of it torch.export's symbolic shape arithmetic. A multi-scale generator with
``noise_channels > 0`` (fresh noise at every call) is refused.

Before anything is written the graph runs in onnxruntime on a random batch of 2 at a size
different from the export example and not a multiple of the stride, against PyTorch; a
difference above ``tolerance`` is an :class:`ExportError` and no file. The file is written
atomically (``repro.atomic``); its ``metadata_props`` say what it is (keys ``repro.*``).

``onnx`` (and with it onnxscript) is imported only when used: a second or more of import that
every other ``python -m repro`` command would pay.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import onnxruntime
import torch
import torch.nn.functional as F
from torch import nn

from repro.atomic import atomic_write_bytes
from repro.checkpoint import load_checkpoint, load_generator
from repro.images import check_output_path
from repro.models import ARCHS, AdaINNet
from repro.norms import adain

__all__ = ["AdaINGraph", "ExportError", "GeneratorGraph", "check_onnx", "export_onnx", "read_metadata",
           "run_onnx", "session", "to_onnx"]

MIN_OPSET = 18  # torch.onnx's dynamo exporter has no implementations below it
TOLERANCE = 1e-3  # largest max abs difference onnxruntime vs PyTorch accepted (outputs in [0, 1])


class ExportError(ValueError):
    """A model that cannot be exported, or an export that does not compute the model's function."""


def _pad(x: torch.Tensor, multiple: int):
    """``x`` reflection-padded to multiples of ``multiple`` (the amounts computed from its size,
    so in the graph) and the function that crops a result back to ``x``'s H, W."""
    h, w = x.shape[-2], x.shape[-1]
    # Written as a remainder on purpose: the same amounts as ceil(h / m) * m - h exported (torch
    # 2.14) to a graph that cropped the wrong pixels (max error 0.49), which the check refuses.
    ph, pw = (-h) % multiple, (-w) % multiple
    top, left = ph // 2, pw // 2
    xp = F.pad(x, (left, pw - left, top, ph - top), mode="reflect")
    return xp, lambda y: y[..., top:top + h, left:left + w]


def _rows_for(rows: torch.Tensor, n) -> torch.Tensor:
    """``n`` rows of ``rows`` (1 or n of them): row i is ``rows[i % len(rows)]``. A gather, not a
    broadcast, so that a batch of 1 and a batch of n are the same graph."""
    # (the divisor as a tensor: the ONNX translator has no remainder by a symbolic Python int)
    return rows[torch.remainder(torch.arange(n, device=rows.device),
                                torch.full((), rows.shape[0], device=rows.device))]


class GeneratorGraph(nn.Module):
    """A residual or multi-scale generator as exported: ``forward(image[, style_weights])``, the
    function of ``stylize(model, image, style=style_weights, precision="fp32")``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        check_exportable(model)
        self.model = model

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        xp, crop = _pad(image, self.model.multiple)
        style = None if style_weights is None else _rows_for(style_weights, image.shape[0])
        y = crop(self.model.body(xp, style))
        if self.model.config["output"] == "sigmoid":
            y = torch.sigmoid(y)
        return y.clamp(0, 1)


class AdaINGraph(nn.Module):
    """An :class:`AdaINNet` as exported: ``forward(image, style, alpha)``, the function of
    ``stylize(model, image, style=style, alpha=alpha, precision="fp32")`` for one style image."""

    def __init__(self, model: AdaINNet):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        xp, crop = _pad(image, self.model.down)
        fc = self.model.encode(xp)
        t = adain(fc, _rows_for(self.model.encode(style), image.shape[0]))
        a = alpha.clamp(0, 1)
        t = a * t + (1 - a) * fc  # AdaIN eq. 14; exactly t at alpha = 1 (AdaINNet.target)
        return crop(self.model.decoder(t)).clamp(0, 1)


def check_exportable(model) -> None:
    """Refuse a module that is not one of ours, and a generator whose output is random."""
    arch = getattr(model, "config", {}).get("arch") if isinstance(model, nn.Module) else None
    if arch not in ARCHS:
        raise ExportError(f"only the generators of repro.models export (build_generator's "
                          f"{', '.join(ARCHS)}), got {type(model).__name__}")
    if model.config.get("noise_channels"):
        raise ExportError(f"this multi-scale generator has noise_channels="
                          f"{model.config['noise_channels']} (fresh noise at every call): not exportable")


def check_opset(opset) -> None:
    """Refuse an opset the exporter cannot write: below 18 it has no implementations (and would
    quietly write 18), above onnx's newest there is no such opset."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)
                              or not MIN_OPSET <= opset <= newest):
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")


def _min_size(model: nn.Module) -> int:
    # AdaIN: the encoder pools by ``down`` and reflect-pads 3x3 convs (inference._check_adain_size)
    return 2 * model.down if isinstance(model, AdaINNet) else model.min_size


def _multiple(model: nn.Module) -> int:
    return model.down if isinstance(model, AdaINNet) else model.multiple


def _inputs(model: nn.Module, n: int, size: tuple[int, int], seed: int,
            style_rows: int) -> dict[str, torch.Tensor]:
    """Random named inputs of the exported graph: ``n`` images of ``size`` and, where the model
    takes them, ``style_rows`` style images (of another size) or mixing-weight rows."""
    g = torch.Generator().manual_seed(seed)
    inputs = {"image": torch.rand(n, 3, *size, generator=g)}
    if isinstance(model, AdaINNet):
        m = model.down
        inputs["style"] = torch.rand(style_rows, 3, size[0] + 2 * m + 1, size[1] + m + 3, generator=g)
        inputs["alpha"] = torch.tensor(0.75)
    elif getattr(model, "conditional", False):
        inputs["style_weights"] = torch.rand(style_rows, model.config["n_styles"], generator=g)
    return inputs


def _sizes(model: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the export example's H, W; the check's H, W): all different, the check's not multiples of
    the stride (for a stride > 1)."""
    m, base = _multiple(model), max(32, 2 * _min_size(model))
    return (base, base + 2 * m), (base + 2 * m + 1, base + 5 * m + 3)


def _graph(model: nn.Module) -> nn.Module:
    return (AdaINGraph if isinstance(model, AdaINNet) else GeneratorGraph)(model).eval()


def metadata(model: nn.Module) -> dict[str, str]:
    """What the exported file says about itself (``metadata_props``, keys ``repro.*``):
    arch, norm, config (JSON), n_styles (conditional IN), what each input and the output is,
    min_size, multiple; :func:`export_onnx` adds source, step and check."""
    cfg = dict(model.config)
    lo = _min_size(model)
    meta = {"arch": cfg["arch"], "norm": cfg.get("norm", "none"), "config": json.dumps(cfg, sort_keys=True),
            "image": f"float32 RGB NCHW in [0, 1], any N, H and W >= {lo}",
            "stylized": "float32 RGB NCHW in [0, 1], the input's N, H and W",
            "min_size": str(lo), "multiple": str(_multiple(model))}
    if isinstance(model, AdaINNet):
        meta["style"] = f"float32 RGB NCHW in [0, 1], 1 or N images, any H and W >= {lo}"
        meta["alpha"] = "float32 scalar in [0, 1] (clamped), content-style trade-off; default 1"
    elif getattr(model, "conditional", False):
        meta["n_styles"] = str(cfg["n_styles"])
        meta["style_weights"] = (f"float32 (N or 1, {cfg['n_styles']}) mixing weights; a one-hot row "
                                 "is one style")
    return {f"repro.{k}": v for k, v in meta.items()}


def to_onnx(model: nn.Module, *, opset: int | None = None):
    """The ``onnx.ModelProto`` of ``model`` (any generator ``build_generator`` makes), dynamic in
    batch, height and width, with named inputs, the output ``stylized`` and ``metadata``.
    ``opset``: the ONNX opset (None: the exporter's default). Nothing is checked or written."""
    import onnx
    from torch.export import Dim

    check_exportable(model)
    check_opset(opset)
    model = copy.deepcopy(model).float().cpu().eval()
    graph = _graph(model)
    # every dynamic size different from the others in the example, so none is taken for another
    inputs = _inputs(model, 2, _sizes(model)[0], seed=0, style_rows=3)
    lo = _min_size(model)
    dims = {"image": {0: Dim("batch", min=1), 2: Dim("height", min=lo), 3: Dim("width", min=lo)}}
    if "style" in inputs:
        dims["style"] = {0: Dim("style_batch", min=1), 2: Dim("style_height", min=lo),
                         3: Dim("style_width", min=lo)}
        dims["alpha"] = {}
    if "style_weights" in inputs:
        dims["style_weights"] = {0: Dim("style_batch", min=1)}
    program = torch.onnx.export(graph, (), kwargs=inputs, dynamo=True, opset_version=opset,
                                input_names=list(inputs), output_names=["stylized"],
                                dynamic_shapes=dims, verbose=False)
    proto = program.model_proto
    # the output has the input's N, H, W; the exporter names them by its own expressions
    for dim, name in zip(proto.graph.output[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    if "alpha" in inputs:
        # an initializer named like a graph input is that input's default (ONNX IR >= 4)
        proto.graph.initializer.append(onnx.numpy_helper.from_array(
            torch.tensor(1.0).numpy(), "alpha"))
    onnx.helper.set_model_props(proto, metadata(model))
    proto.doc_string = (f"repro {model.config['arch']} generator: image (and style inputs) -> "
                        "stylized, RGB in [0, 1]; see metadata_props repro.*")
    onnx.checker.check_model(proto)
    return proto


def _reference(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """PyTorch's output for the graph's inputs: the model in eval mode, fp32, clamped (stylize)."""
    model = copy.deepcopy(model).float().cpu().eval()
    with torch.inference_mode():
        if isinstance(model, AdaINNet):
            y = model(inputs["image"], inputs["style"], alpha=float(inputs.get("alpha", 1.0)))
        elif "style_weights" in inputs:
            y = model(inputs["image"], inputs["style_weights"])  # 1 row or one per image
        else:
            y = model(inputs["image"])
    return y.clamp(0, 1)


def session(onnx_model):
    """An onnxruntime CPU session of ``onnx_model`` (a path, bytes or ``ModelProto``)."""
    if hasattr(onnx_model, "SerializeToString"):
        onnx_model = onnx_model.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # not the warning that alpha's default is also an input
    try:
        return onnxruntime.InferenceSession(
            onnx_model if isinstance(onnx_model, bytes) else str(onnx_model), options,
            providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types: an unsupported opset, a bad file
        raise ExportError(f"onnxruntime {onnxruntime.__version__} cannot load the model: {e}") from None


def run_onnx(onnx_model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """``stylized`` for the named ``inputs``, from ``onnx_model`` (a :func:`session`, or what
    :func:`session` takes)."""
    sess = onnx_model if hasattr(onnx_model, "run") else session(onnx_model)
    return torch.from_numpy(sess.run(["stylized"], {k: v.numpy() for k, v in inputs.items()})[0])


def check_onnx(onnx_model, model: nn.Module, *, n: int = 2, size: tuple[int, int] | None = None,
               seed: int = 0) -> tuple[float, tuple[int, ...]]:
    """Max abs difference between onnxruntime running ``onnx_model`` and PyTorch running ``model``
    on random inputs (``n`` images of ``size``; default: a size the export did not see, not a
    multiple of the stride), and the image batch's shape."""
    inputs = _inputs(model, n, size or _sizes(model)[1], seed, style_rows=n)
    diff = (run_onnx(onnx_model, inputs) - _reference(model, inputs)).abs().max()
    return float(diff), tuple(inputs["image"].shape)


def check_destination(out_path, source=None) -> Path:
    """Refuse, before any work, an ``out_path`` that is not a writable ``.onnx`` file path or that
    is ``source`` (the checkpoint or run directory) itself."""
    out = Path(out_path)
    if not out.is_dir() and out.suffix.lower() != ".onnx":  # (a folder: check_output_path says so)
        raise ValueError(f"OUT {out}: an ONNX model's file name ends in .onnx, got "
                         f"{out.suffix or '(no extension)'!r}")
    inputs = [source]
    if source is not None and Path(source).is_dir():
        inputs.append(Path(source) / "model.pt")  # what load_checkpoint reads from a run directory
    return check_output_path(out, inputs, "OUT", suffixes=(".onnx",))


def export_onnx(checkpoint_or_model, out_path, *, opset: int | None = None, check: bool = True,
                tolerance: float = TOLERANCE) -> Path:
    """Export a generator (a module, a checkpoint file or a run directory) to ``out_path`` (.onnx),
    written atomically. With ``check`` (cheap: one small batch) the graph is first run by
    onnxruntime against PyTorch (:func:`check_onnx`); above ``tolerance`` it is an
    :class:`ExportError` and nothing is written. The measured difference is stored in the
    file's metadata (``repro.check``). Returns the path."""
    # everything that can be refused is refused before the export's seconds
    source = None if isinstance(checkpoint_or_model, nn.Module) else checkpoint_or_model
    out = check_destination(out_path, source)
    check_opset(opset)
    if source is None:
        model, step = checkpoint_or_model, None
    else:  # errors name the file (load_generator), the step is for the metadata
        model, step = load_generator(source), load_checkpoint(source).get("step")
    check_exportable(model)
    proto = to_onnx(model, opset=opset)
    extra = {} if source is None else {"repro.source": str(source)}
    if step is not None:
        extra["repro.step"] = str(step)
    if check:
        diff, shape = check_onnx(proto, model)
        if not diff <= tolerance:
            raise ExportError(f"the exported graph differs from PyTorch by {diff:.3g} (> {tolerance:g}) "
                              f"at input shape {shape}; nothing written to {out}")
        extra["repro.check"] = json.dumps({"max_abs_diff": diff, "image_shape": list(shape),
                                           "runtime": "onnxruntime CPUExecutionProvider"})
    for key, value in extra.items():
        proto.metadata_props.add(key=key, value=value)
    atomic_write_bytes(out, proto.SerializeToString())
    return out


def read_metadata(path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (weights not loaded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
