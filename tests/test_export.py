"""ONNX export (repro/export.py, ``python -m repro export``): every generator kind, run by
onnxruntime at batches and sizes the export never saw (odd ones, not multiples of the stride),
against PyTorch's output (``stylize(..., precision="fp32")``: eval mode, clamped); the CLI's
refusals, all before any export; no partial file after a failed export.

Each export takes 5-25 s on 2 busy cores (torch.onnx's dynamo exporter), so each kind is exported
once per module; the kinds beyond one of each family are marked slow (the file: ~90 s, ~65 s
without them). Measured maxima of |onnxruntime - PyTorch| over these tests' sizes and a 127x93
image (TOL is 1e-4): residual IN 2.8e-6, BN 1.0e-7, none 8.9e-8; multi-scale IN 4.1e-6, BN
1.2e-7, none 8.9e-8; conditional IN 3.5e-6; AdaIN (relu2_1) 9.0e-7.
"""
import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from repro import export
from repro.checkpoint import save_checkpoint
from repro.cli import main
from repro.inference import stylize
from repro.models import build_generator
from tiny import unwritable_folder

TOL = 1e-4
SLOW = pytest.mark.slow
KINDS = {
    "residual instance": dict(arch="residual", norm="instance", width=0.25),
    "multiscale instance": dict(arch="multiscale", norm="instance", n_scales=3, width=0.5),
    "residual conditional_instance": dict(arch="residual", norm="conditional_instance", n_styles=3,
                                          width=0.25),
    "adain": dict(arch="adain", encoder_layer="relu2_1", vgg_weights="random"),
    # the other options ride along with the other norms
    "residual batch": dict(arch="residual", norm="batch", width=0.25, padding="zero",
                           upsample="transposed", output="linear"),
    "residual none": dict(arch="residual", norm="none", width=0.25, padding="replicate",
                          downsample="antialiased", upsample="antialiased"),
    "multiscale batch": dict(arch="multiscale", norm="batch", n_scales=2, width=0.5,
                             activation="leaky_relu"),
    "multiscale none": dict(arch="multiscale", norm="none", n_scales=2, width=0.5, output="linear"),
}
FAST = ["residual instance", "multiscale instance"]
PLAIN = FAST + [pytest.param(k, marks=SLOW) for k in
                ("residual batch", "residual none", "multiscale batch", "multiscale none")]


def _model(kind):
    """The generator of ``kind`` with weights and batch-norm statistics far from their initial
    values (trained models have neither unit gammas nor zero running means)."""
    torch.manual_seed(0)
    model = build_generator(**KINDS[kind])
    if kind == "adain":  # no norm parameters; its random VGG gives outputs of order 1 as it is
        return model.eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4:  # conv kernels: the same scale (a network without norm stays tame)
                p.mul_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:  # biases, IN / BN / CIN gammas and betas
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(kind)`` -> (model, the .onnx file), each kind exported once. The residual IN
    generator goes through the CLI, from a checkpoint, as a user exports one."""
    cache = {}

    def get(kind):
        if kind not in cache:
            model, out = _model(kind), tmp_path_factory.mktemp("onnx") / "model.onnx"
            if kind == "residual instance":
                ckpt = save_checkpoint(out.with_name("model.pt"), model=model, step=3, config={})
                assert main(["export", str(ckpt.parent), str(out)]) == 0
            else:
                export.export_onnx(model, out)
            cache[kind] = model, out
        return cache[kind]
    return get


@functools.cache
def _session(path):
    return export.session(path)


def _ort(path, **inputs):
    return export.run_onnx(_session(path), inputs)


def _err(a, b) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


@pytest.mark.parametrize("kind", PLAIN)
def test_plain_generators_match_pytorch_at_unseen_sizes_and_batches(kind, exported):
    model, path = exported(kind)
    for shape in ((2, 3, 41, 53), (1, 3, 8, 13), (3, 3, 30, 67)):  # (1, 3, 8, 13): the smallest
        x = torch.rand(shape)
        assert _err(_ort(path, image=x), stylize(model, x, precision="fp32")) < TOL, shape


@pytest.mark.parametrize("kind", FAST)
def test_every_remainder_of_the_stride_pads_and_crops_like_the_model(kind, exported):
    # the bug the export wraps around: a size baked in at the example's, wrong at other remainders
    model, path = exported(kind)
    lo, m = model.min_size, model.multiple
    # every remainder of H and of W (each new size costs PyTorch ~0.1 s of kernel set-up)
    for h, w in [(lo + i, lo + 2 * m - 1 - i) for i in range(m + 1)] + [(3 * lo + 2, lo)]:
        x = torch.rand(1, 3, h, w)
        assert _err(_ort(path, image=x), stylize(model, x, precision="fp32")) < TOL, (h, w)


def test_conditional_in_takes_mixing_weights(exported):
    model, path = exported("residual conditional_instance")
    x = torch.rand(2, 3, 37, 45)
    for s in range(3):  # a one-hot row is style s, for the whole batch
        onehot = torch.eye(3)[s:s + 1]
        assert _err(_ort(path, image=x, style_weights=onehot), stylize(model, x, style=s, precision="fp32")) < TOL
    mix = torch.tensor([[0.2, 0.5, 0.3]])
    assert _err(_ort(path, image=x, style_weights=mix),
                stylize(model, x, style=mix[0].tolist(), precision="fp32")) < TOL
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.1, 0.1, 0.8]])  # one row per image
    with torch.no_grad():
        expected = model(x, rows).clamp(0, 1)
    assert _err(_ort(path, image=x, style_weights=rows), expected) < TOL
    one = _ort(path, image=x[1:], style_weights=rows[1:])  # a batch of one
    assert _err(one, expected[1:]) < TOL


def test_adain_takes_a_style_image_of_any_size_and_an_optional_alpha(exported):
    model, path = exported("adain")
    x, style = torch.rand(2, 3, 37, 45), torch.rand(1, 3, 50, 29)
    full = stylize(model, x, style=style[0], precision="fp32")
    assert _err(_ort(path, image=x, style=style), full) < TOL  # alpha left out: 1
    assert _err(_ort(path, image=x, style=style, alpha=torch.tensor(1.0)), full) < TOL
    half = stylize(model, x, style=style[0], alpha=0.5, precision="fp32")
    assert _err(_ort(path, image=x, style=style, alpha=torch.tensor(0.5)), half) < TOL
    assert _err(half, full) > 0.01  # alpha reaches the graph
    styles = torch.rand(2, 3, 24, 33)  # one style per image
    with torch.no_grad():
        expected = model(x, styles).clamp(0, 1)
    assert _err(_ort(path, image=x, style=styles), expected) < TOL


def test_names_dynamic_axes_and_metadata(exported):
    import onnx

    for kind, inputs in (("residual instance", ["image"]),
                         ("residual conditional_instance", ["image", "style_weights"]),
                         ("adain", ["image", "style", "alpha"])):
        model, path = exported(kind)
        proto = onnx.load(str(path))
        assert [i.name for i in proto.graph.input] == inputs
        assert [o.name for o in proto.graph.output] == ["stylized"]
        dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        meta = export.read_metadata(path)
        assert meta["repro.arch"] == KINDS[kind]["arch"] and meta["repro.norm"] == KINDS[kind].get("norm", "none")
        assert "[0, 1]" in meta["repro.image"] and "NCHW" in meta["repro.image"]
        assert int(meta["repro.min_size"]) == export._min_size(model)
        assert json.loads(meta["repro.check"])["max_abs_diff"] < TOL
    assert export.read_metadata(exported("residual conditional_instance")[1])["repro.n_styles"] == "3"
    assert export.read_metadata(exported("residual instance")[1])["repro.step"] == "3"


def test_cli_prints_the_check_and_the_path_last(exported, tmp_path, capsys, monkeypatch):
    model, path = exported("residual instance")  # exported by the CLI; its output, here again:
    proto = _proto_of(path)
    monkeypatch.setattr(export, "to_onnx", lambda *a, **k: _copy(proto))  # no second export
    ckpt = save_checkpoint(tmp_path / "model.pt", model=model, step=3, config={})
    out = tmp_path / "sub" / "m.onnx"
    assert main(["export", str(ckpt), str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(out) and out.is_file()
    assert "max abs difference" in lines[-2]


def _proto_of(path):
    import onnx
    return onnx.load(str(path))


def _copy(proto):
    import onnx
    c = onnx.ModelProto()
    c.CopyFrom(proto)
    return c


@pytest.fixture
def no_export(monkeypatch):
    """Any refusal must come before the export's seconds: reaching the exporter is a failure."""
    def fail(*a, **k):
        raise AssertionError("the exporter was reached")
    monkeypatch.setattr(export, "to_onnx", fail)


def _one_line_error(capsys, *args) -> str:
    assert main(["export", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_cli_refuses_bad_input_before_any_work(tmp_path, capsys, no_export):
    model = build_generator("residual", width=0.25)
    ckpt = save_checkpoint(tmp_path / "run" / "model.pt", model=model, step=1, config={})
    assert "ends in .onnx" in _one_line_error(capsys, ckpt, tmp_path / "out.png")
    assert "not found" in _one_line_error(capsys, tmp_path / "missing.pt", tmp_path / "a.onnx")
    assert "is a directory" in _one_line_error(capsys, ckpt, tmp_path)
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _one_line_error(capsys, ckpt, tmp_path / "afile" / "a.onnx")
    # a checkpoint that happens to end in .onnx, given as both: never overwritten
    same = tmp_path / "weird.onnx"
    same.write_bytes(ckpt.read_bytes())
    assert "is the input" in _one_line_error(capsys, same, same)
    assert same.read_bytes() == ckpt.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    assert "truncated or corrupt" in _one_line_error(capsys, truncated, tmp_path / "t.onnx")
    assert "opset" in _one_line_error(capsys, ckpt, tmp_path / "a.onnx", "--opset", "12")
    noisy = build_generator("multiscale", n_scales=2, width=0.25, noise_channels=1)
    noisy_ckpt = save_checkpoint(tmp_path / "noisy.pt", model=noisy, step=1, config={})
    assert "noise_channels=1" in _one_line_error(capsys, noisy_ckpt, tmp_path / "n.onnx")
    ro = unwritable_folder(tmp_path)
    assert f"the folder {ro} is not writable" in _one_line_error(capsys, ckpt, ro / "a.onnx")
    assert sorted(p.name for p in tmp_path.rglob("*.onnx")) == ["weird.onnx"]


def test_no_partial_file_after_a_failed_export(exported, tmp_path, monkeypatch):
    model, path = exported("residual instance")
    proto = _proto_of(path)
    monkeypatch.setattr(export, "to_onnx", lambda *a, **k: _copy(proto))
    out = tmp_path / "m.onnx"
    # a graph that does not compute the model's function is refused, nothing written
    monkeypatch.setattr(export, "check_onnx", lambda *a, **k: (0.5, (2, 3, 41, 55)))
    with pytest.raises(export.ExportError, match="differs from PyTorch by 0.5"):
        export.export_onnx(model, out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    # the disk fails while writing: no .onnx, no temporary file, an older file left as it was
    monkeypatch.setattr(export, "to_onnx", lambda *a, **k: _copy(proto))
    out.write_bytes(b"older")

    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("repro.atomic.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        export.export_onnx(model, out, check=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and out.read_bytes() == b"older"


def test_the_api_refuses_what_it_cannot_export(tmp_path, no_export):
    with pytest.raises(export.ExportError, match="noise_channels"):
        export.export_onnx(build_generator("multiscale", n_scales=2, width=0.25, noise_channels=2),
                           tmp_path / "a.onnx")
    with pytest.raises(export.ExportError, match="only the generators"):
        export.export_onnx(torch.nn.Conv2d(3, 3, 1), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="opset"):
        export.export_onnx(build_generator("residual", width=0.25), tmp_path / "a.onnx", opset=17)
    assert list(tmp_path.iterdir()) == []


def test_an_exported_graph_runs_as_numpy_for_a_batch_of_one(exported):
    # what a user does: numpy in, numpy out, with onnxruntime alone
    import onnxruntime

    _, path = exported("multiscale instance")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 21, 35), dtype=np.float32)
    (y,) = session.run(None, {"image": x})
    assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
