"""``python -m repro <command>``: the command-line entry point.

Errors a user can cause (a missing or corrupt file, a bad parameter) end with a one-line
message and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from repro import config, data, gatys, video
from repro.checkpoint import load_generator
from repro.config import load_config
from repro.data import DataError
from repro.export import export_onnx, read_metadata
from repro.images import check_output_path, save_image
from repro.inference import stylize
from repro.models import AdaINNet
from repro.precision import PRECISIONS, resolve_device
from repro.runs import RunLocked
from repro.train import train


def _cmd_data(args) -> int:
    data.fetch(mirror=args.mirror, dest=args.dest, download=args.download or None,
               verbose=not args.quiet)
    return 0


def _cmd_train(args) -> int:
    cfg = load_config(args.config, args.set)
    run = train(cfg, progress=False if args.no_progress else None, wait=not args.no_wait)
    # the last line of output: scripts read the run directory from it (under torchrun only
    # rank 0 prints, so two ranks never interleave their lines)
    if os.environ.get("RANK", "0") == "0":
        print(run, flush=True)
    return 0


def _style_weights(args) -> list[float] | None:
    """--style-weights parsed (before the model is loaded)."""
    if args.style_weights is None:
        return None
    try:
        weights = [float(w) for w in args.style_weights.split(",")]
    except ValueError:
        weights = None
    if weights is None or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"--style-weights must be comma-separated non-negative numbers, got "
                         f"{args.style_weights!r}")
    return weights


def _style_options(args, model, weights) -> dict:
    """The style keyword arguments of stylize / Stylizer / stylize_video for this model, the
    combinations that do not fit it refused."""
    if isinstance(model, AdaINNet):
        if not args.style:
            raise ValueError(f"{args.checkpoint} is an AdaIN model: give --style IMAGE [IMAGE ...]")
        if args.style_index is not None:
            raise ValueError("--style-index is for conditional-IN generators; an AdaIN model takes --style")
        return dict(style=args.style, style_weights=weights, alpha=args.alpha,
                    preserve_color=args.preserve_color, style_size=args.style_size)
    if args.style or args.alpha != 1.0 or args.preserve_color:
        raise ValueError("--style, --alpha and --preserve-color are for AdaIN models; "
                         f"{args.checkpoint} is a single-style or conditional-IN generator")
    if args.style_index is not None and weights is not None:
        raise ValueError("give --style-index or --style-weights, not both")
    return dict(style=args.style_index if args.style_index is not None else weights)


def _cmd_stylize(args) -> int:
    # everything that can be checked is checked before the model is loaded or a pixel computed
    check_output_path(args.output, [args.input, args.checkpoint, *(args.style or [])], "OUTPUT")
    device = resolve_device(args.device)
    weights = _style_weights(args)
    model = load_generator(args.checkpoint, device=device)
    # args.input stays a path: errors about it name the file
    out = stylize(model, args.input, size=args.size, **_style_options(args, model, weights),
                  precision=args.precision, exact=args.exact, tile=args.tile)
    save_image(out, args.output)
    print(args.output)
    return 0


def _cmd_video(args) -> int:
    # the output path, the input's streams and the options are checked before the model loads
    video.preflight(args.input, args.output, [args.checkpoint, *(args.style or [])],
                    size=args.size, batch=args.batch, crf=args.crf)
    device = resolve_device(args.device)
    weights = _style_weights(args)
    model = load_generator(args.checkpoint, device=device)
    result = video.stylize_video(model, args.input, args.output, size=args.size, batch=args.batch,
                                 **_style_options(args, model, weights), device=device,
                                 precision=args.precision, compile=not args.no_compile,
                                 crf=args.crf, progress=False if args.no_progress else None)
    print(result.summary(), file=sys.stderr)
    print(args.output)
    return 0


def _cmd_gatys(args) -> int:
    check_output_path(args.output, [args.content, args.style], "OUTPUT")
    result = gatys.stylize(args.content, args.style, steps=args.steps, optimizer=args.optimizer,
                     init=args.init, size=args.size, style_weight=args.style_weight,
                     content_weight=args.content_weight, tv_weight=args.tv_weight,
                     progress=False if args.no_progress else None, device=resolve_device(args.device))
    save_image(result.image, args.output)
    f = result.final
    print(f"{args.output}: {result.steps} steps in {result.seconds:.1f} s, "
          f"content {f.get('content', float('nan')):.3g}, style {f.get('style', float('nan')):.3g}")
    return 0


def _cmd_export(args) -> int:
    # OUT is checked, and the checkpoint read, before a graph is traced (export_onnx)
    out = export_onnx(args.run, args.output, opset=args.opset, check=not args.no_check)
    check = read_metadata(out).get("repro.check")
    if check:
        c = json.loads(check)
        print(f"onnxruntime vs PyTorch on a random {'x'.join(map(str, c['image_shape']))} batch: "
              f"max abs difference {c['max_abs_diff']:.2g}")
    print(out)
    return 0


def _cmd_figures(args) -> int:
    # imported here: papermill and jupytext load nbformat's JSON schemas, seconds that every other
    # command would pay
    from repro.figures.pipeline import FigureError, run_figures

    profile = args.profile + config.DRY_SUFFIX if args.dry_run else args.profile
    try:
        timings = run_figures(profile, args.only or None)
    except (FigureError, config.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"figures ({profile}): {len(timings)} notebooks, {sum(timings.values()):.0f} s in all")
    return 0


def _cmd_notebooks(args) -> int:
    from repro.figures.pipeline import rebuild_notebooks  # see _cmd_figures

    for p in rebuild_notebooks(args.only or None, execute=not args.no_execute):
        print(p)
    return 0


def _add_style_arguments(p, colours: str = "keep the content image's colours") -> None:
    p.add_argument("--style-index", type=int,
                   help="conditional-IN generators: which of its styles to apply")
    p.add_argument("--style-weights",
                   help="comma-separated mixing weights: one per style of a conditional-IN "
                   "generator, or one per --style image of an AdaIN model")
    p.add_argument("--style", nargs="+", metavar="IMAGE",
                   help="AdaIN models: the style image(s), any painting (several: interpolated)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="AdaIN models: content-style trade-off in [0, 1] (default 1: full style)")
    p.add_argument("--preserve-color", action="store_true",
                   help=f"AdaIN models: {colours}")
    p.add_argument("--style-size", type=int, help="AdaIN models: resize the style's shorter side first")


def _add_device_arguments(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: cpu)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default): bf16 autocast where the hardware has native bf16, else "
                   "fp32; fp32: exact")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="fetch and verify the VGG weights and images into data/",
                       description="Fill data/ from a mirror directory (REPRO_DATA_MIRROR, default "
                       "../shared/data) or, with no mirror, from the public sources recorded in "
                       "data/manifests; every file is checked against its sha256.")
    d.add_argument("--mirror", help="mirror directory with images/ and weights/ (default: "
                   "$REPRO_DATA_MIRROR or ../shared/data when it exists)")
    d.add_argument("--dest", help="destination (default: $REPRO_DATA or data/)")
    d.add_argument("--download", action="store_true",
                   help="ignore any mirror and download from the public sources")
    d.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    d.set_defaults(func=_cmd_data)

    t = sub.add_parser("train", help="train a feed-forward generator (prints the run directory last)",
                       description="Train a generator from a profile plus overrides. A finished run "
                       "with the same resolved config is reused; an unfinished one resumes from its "
                       "last checkpoint. Runs live under runs/ (or $REPRO_RUNS).")
    t.add_argument("--config", default="cpu",
                   help="profile name in configs/ (smoke, cpu, gpu, paper; NAME-dry for a dry run) or a "
                   "YAML file (default: cpu)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.norm=batch --set optim.steps=200 "
                   "(repeatable; values are parsed as YAML)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (there is one only when stderr is a terminal)")
    t.add_argument("--no-wait", action="store_true",
                   help="if another process is training the same run, stop at once (default: wait for it)")
    t.set_defaults(func=_cmd_train)

    st = sub.add_parser("stylize", help="apply a trained generator to an image",
                        description="Stylize INPUT with the generator in CHECKPOINT (a model.pt / "
                        "checkpoint.pt file or a run directory) and write OUTPUT (PNG or JPEG).")
    st.add_argument("checkpoint", help="checkpoint file or run directory")
    st.add_argument("input", help="content image")
    st.add_argument("output", help="where to write the stylized image")
    st.add_argument("--size", type=int, help="resize the input's shorter side to SIZE first")
    _add_style_arguments(st)
    st.add_argument("--tile", type=int, metavar="N",
                    help="stylize in overlapping tiles of N px with instance norm's statistics "
                    "taken over the whole image: the same result at bounded memory (huge images)")
    _add_device_arguments(st)
    st.add_argument("--exact", action="store_true", help="the same as --precision fp32")
    st.set_defaults(func=_cmd_stylize)

    v = sub.add_parser("video", help="stylize every frame of a video (prints the output path last)",
                       description="Stylize the frames of INPUT with the generator in CHECKPOINT and "
                       "write OUTPUT (.mp4, .mkv or .mov: H.264, yuv420p) with the input's time "
                       "stamps and frame rate; audio is copied (re-encoded to AAC where the "
                       "container does not take its codec). Sides are made even (the last odd "
                       "row or column dropped). The output appears only when complete.")
    v.add_argument("checkpoint", help="checkpoint file or run directory")
    v.add_argument("input", help="the video to stylize (anything FFmpeg reads)")
    v.add_argument("output", help="where to write the stylized video (.mp4, .mkv or .mov)")
    v.add_argument("--size", type=int, help="resize the frames' shorter side to SIZE first")
    v.add_argument("--batch", type=int, default=4, help="frames per network call (default 4)")
    v.add_argument("--crf", type=int, default=video.CRF,
                   help=f"libx264 quality, 0 (lossless) to 51 (default {video.CRF})")
    _add_style_arguments(v, "keep the video's colours (the style takes the first frame's "
                         "colours once, so it is the same for every frame)")
    _add_device_arguments(v)
    v.add_argument("--no-compile", action="store_true",
                   help="run the network eagerly; by default it is compiled (torch.compile), whose "
                   "first call costs tens of seconds on a CPU and pays off over many frames")
    v.add_argument("--no-progress", action="store_true", help="no progress bar (there is one only when stderr is a terminal)")
    v.set_defaults(func=_cmd_video)

    g = sub.add_parser("gatys", help="optimization-based stylization (Gatys et al. 2016)",
                       description="Optimize OUTPUT's pixels so its VGG features match CONTENT's "
                       "and its Gram matrices match STYLE's (IN Fig. 1).")
    g.add_argument("content", help="content image")
    g.add_argument("style", help="style image")
    g.add_argument("output", help="where to write the result (PNG or JPEG)")
    g.add_argument("--size", type=int, default=256, help="shorter side of both images (default 256)")
    g.add_argument("--steps", type=int, default=200, help="iterations (default 200)")
    g.add_argument("--optimizer", default="lbfgs", choices=gatys.OPTIMIZERS)
    g.add_argument("--init", default="content", choices=gatys.INITS)
    g.add_argument("--style-weight", type=float, default=100.0, help="default 100 (IN Fig. 1 at cpu)")
    g.add_argument("--content-weight", type=float, default=1.0)
    g.add_argument("--tv-weight", type=float, default=0.0)
    g.add_argument("--no-progress", action="store_true", help="no progress bar (there is one only when stderr is a terminal)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    g.set_defaults(func=_cmd_gatys)

    ex = sub.add_parser("export", help="export a trained generator to ONNX (prints the file last)",
                        description="Write the generator in RUN as an ONNX model for any batch, "
                        "height and width (repro/export.py: inputs, outputs, metadata), checked "
                        "first in onnxruntime against PyTorch; written atomically. Takes 10-30 s.")
    ex.add_argument("run", metavar="RUN", help="run directory or checkpoint file")
    ex.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    ex.add_argument("--opset", type=int, help="ONNX opset, 18 or newer (default: the exporter's, 20)")
    ex.add_argument("--no-check", action="store_true",
                    help="skip the onnxruntime check (measured: under a second; the export takes 10-30 s)")
    ex.set_defaults(func=_cmd_export)

    f = sub.add_parser("figures", help="regenerate the figures by running the notebooks (papermill)",
                       description="Run every figure notebook (or --only some) with the profile's "
                       "parameters; write PNG, PDF and JSON per figure and REPORT.md.")
    f.add_argument("--profile", default="cpu", help="smoke, cpu (default), gpu or paper")
    f.add_argument("--dry-run", action="store_true",
                   help="the profile's whole code path in seconds on the CPU: tiny images, a few "
                   "steps, a random VGG-19 stand-in for downloaded weights; writes "
                   "build/figures/dry-run/PROFILE, never figures/")
    f.add_argument("--only", nargs="*", metavar="FIGURE",
                   help="figure names (notebook stems) or aliases such as fig2, adain_fig1")
    f.set_defaults(func=_cmd_figures)

    nb = sub.add_parser("notebooks", help="rebuild notebooks/*.ipynb from their .py sources "
                        "and store a smoke run's outputs (for nbval)")
    nb.add_argument("--only", nargs="*", metavar="NAME", help="notebook stems")
    nb.add_argument("--no-execute", action="store_true", help="rebuild without running")
    nb.set_defaults(func=_cmd_notebooks)
    return p


# Exceptions that mean "the user gave bad input": reported in one line.
def _user_errors():
    # ConfigError, CheckpointError, ImageLoadError are ValueErrors; TrainingDiverged is a
    # FloatingPointError with the run directory in its message.
    errors = [DataError, FileNotFoundError, ValueError, PermissionError, FloatingPointError,
              RunLocked, OSError]  # OSError: read-only or full disks, paths that are folders
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        # one line, whatever the message: a user error is never a wall of text
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
