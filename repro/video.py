"""Video stylization (``python -m repro video``, :func:`stylize_video`) and flicker measures.

``stylize_video(model, "in.mp4", "out.mp4", size=512)`` decodes a video with PyAV (FFmpeg),
runs its frames through :class:`repro.inference.Stylizer` in batches and encodes the result:

- **Output**: H.264 (libx264, yuv420p, CRF 18 unless ``crf=``) in .mp4, .mkv or .mov; other
  suffixes are refused. yuv420p needs even sides: a frame whose side is odd (after the resize
  that ``size`` asks for: shorter side ``size``, as ``repro.stylize`` resizes) loses its last
  row or column before it is stylized, never resampled again.
- **Time**: every frame keeps its time stamp (in the input stream's time base), so the frame
  rate, the frame count, variable frame rates and the start offset are the input's. The display
  rotation (phone videos), the pixel aspect ratio and the colour tags are copied; frames are
  converted to RGB and back with the input's colour matrix and range.
- **Audio**: every audio stream is copied packet by packet (no re-encoding) when the output
  container takes its codec, else re-encoded to AAC with its time stamps (e.g. Opus into
  .mov); :attr:`VideoResult.audio` says which. Subtitle and data streams are dropped.
- **Batches**: ``batch`` frames per call; the last batch is padded with copies of its last frame
  so that the compiled path sees one shape only (a new shape recompiles). Every frame is
  stylized on its own (instance norm, AdaIN and batch norm in eval mode are per image), so the
  result does not depend on ``batch`` (beyond floating-point rounding). AdaIN's
  ``preserve_color`` recolours the style once, with the first frame's colours, so the style
  does not change from frame to frame.
- **Streams**: the video stream is FFmpeg's best one (``streams.best``: not a cover picture);
  frames whose size changes mid-stream are scaled to the first frame's size.
- **Failures**: everything that can be checked is checked before a frame is stylized
  (:func:`preflight`: the output path, that the input opens, has a video stream and a first
  frame, and that its sample index lies inside the file; with the model, the memory of a batch
  and the style options). The output is written to a hidden
  temporary file in the output's folder (``repro.atomic``) and renamed only when complete: a
  failure (a decoding error, a full disk, Ctrl-C) leaves neither the output nor a temporary file.
- **Truncated input**: a cut-off MP4/MOV whose index points past the end of the file is refused
  before any work; a decoding error mid-way is refused naming the file and the frame. A file
  whose demuxer just stops early without an error (a cut-off Matroska file) is detected by its
  time stamps: when no stream (every stream is read, the ones not written too) reaches to
  within ``max(0.1 s, 2 frames)`` of the duration the container declares, it is refused as
  truncated (no output). A decoded frame count that
  differs from the count the container declares, with the streams complete, is not refused
  (edit lists legitimately drop frames) and :attr:`VideoResult.declared_frames` records it.

Flicker (temporal instability), on ``(T, 3, H, W)`` clips in [0, 1]:

- :func:`flicker`: the mean absolute frame-to-frame change of the output over the pixels where
  the input does not change: the instability that the content does not cause.
- :func:`pan_flicker`: a slow pan (``step`` px per frame) across a photo (:func:`pan_clip`);
  the mean change between each output frame shifted back by the pan and the frame before it,
  over their overlap, beside the same measure on the input (exactly 0: the motion is undone).
"""
from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from tqdm.auto import tqdm

from repro import budget
from repro.atomic import atomic_open
from repro.checkpoint import load_generator
from repro.images import check_output_path, check_resize_shorter, load_image, match_color, resize_shorter
from repro.inference import Stylizer, check_style_options, load_styles

CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
"""Output suffixes and the FFmpeg muxer each one gets."""

CRF = 18
"""libx264's constant rate factor: visually near-lossless (0 lossless, 23 FFmpeg's default)."""

_COLORSPACES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020"}
"""FFmpeg's AVColorSpace values that swscale converts with (others: its default, BT.601)."""


class VideoError(ValueError):
    """A video file that cannot be read or stylized: missing streams, truncated, damaged."""


@dataclass
class VideoInfo:
    """What :func:`probe` reads from a video before any frame is stylized."""
    path: Path
    width: int                  # of the decoded frames (before any resize)
    height: int
    rate: Fraction | None       # average frame rate, if the container tells it
    frames: int | None          # the frame count the container declares, if it does
    duration: float | None      # seconds, the container's declared duration
    rotation: int               # display rotation, degrees counter-clockwise
    audio: list[str] = field(default_factory=list)  # codec of each audio stream

    @property
    def expected_frames(self) -> int | None:
        """The declared frame count, else one estimated from duration x rate (progress bar)."""
        if self.frames:
            return self.frames
        if self.duration and self.rate:
            return max(1, round(self.duration * self.rate))
        return None


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote."""
    path: Path
    frames: int
    width: int
    height: int
    rate: Fraction | None
    audio: list[str]            # per audio stream: "copied (aac)" or "re-encoded to AAC (opus ...)"
    seconds: float              # the whole call: decoding, stylizing, encoding
    model_seconds: float        # inside the Stylizer only
    declared_frames: int | None = None

    def summary(self) -> str:
        rate = f"{float(self.rate):.3g} fps" if self.rate else "an unknown rate"
        audio = "; audio " + ", ".join(self.audio) if self.audio else "; no audio"
        declared = (f" (the container declares {self.declared_frames})"
                    if self.declared_frames and self.declared_frames != self.frames else "")
        return (f"{self.path}: {self.frames} frames{declared}, {self.width}x{self.height} at {rate}"
                f"{audio}; {self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.2f} frames/s, "
                f"{self.model_seconds:.1f} s in the model)")


# ---------------------------------------------------------------------------------------------
# Checks before any work


def _damaged(path, e: Exception, what: str) -> VideoError:
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return VideoError(f"{path}: {what} ({reason})")


def _open_input(path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "video file not found", os.fspath(path))
    if path.is_dir():
        raise VideoError(f"{path} is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty")
    try:
        return av.open(os.fspath(path))
    except av.error.EOFError:
        raise VideoError(f"{path}: the file ends before its first frame (a video with no frames, "
                         "or one cut short)") from None
    except av.error.FFmpegError as e:
        raise _damaged(path, e, "cannot read it as a video: not a video file, or truncated or "
                                "damaged") from None


def _video(c):
    """The container's main video stream (FFmpeg's choice: not an attached cover picture), or None."""
    return c.streams.best("video")


def check_options(size: int | None = None, batch: int = 4, crf: int = CRF) -> None:
    """Refuse bad numbers, naming the parameter."""
    for name, value, low in (("size", size, 1), ("batch", batch, 1), ("crf", crf, 0)):
        if name == "size" and value is None:
            continue
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")
    if crf > 51:
        raise ValueError(f"--crf must be at most 51 (libx264's range is 0-51), got {crf}")


def check_output(path, inputs=()) -> Path:
    """Refuse, before any work, an output that is not .mp4/.mkv/.mov, is a directory, is one of
    ``inputs``, or lies in a folder where no file can be created."""
    return check_output_path(path, inputs, "OUT", suffixes=tuple(CONTAINERS))


def probe(path) -> VideoInfo:
    """Open a video and read what the stylization needs (decoding its first frame), or raise a
    one-line error naming the file: missing, not a video, no video stream, no frame, truncated."""
    path = Path(path)
    with _open_input(path) as c:
        s = _video(c)
        if s is None:
            kinds = ", ".join(s.type for s in c.streams) or "none"
            hint = "" if c.streams.audio else "; a video cut short can look like this"
            raise VideoError(f"{path} has no video stream (streams: {kinds}{hint})")
        _check_index(path, c)
        try:
            first = next(c.decode(s), None)
        except av.error.FFmpegError as e:
            raise _damaged(path, e, "damaged or truncated: its first frame does not decode") from None
        if first is None:
            raise VideoError(f"{path}: its video stream has no frames")
        rate = s.average_rate or s.guessed_rate
        return VideoInfo(path=path, width=first.width, height=first.height,
                         rate=Fraction(rate) if rate else None, frames=s.frames or None,
                         duration=c.duration / av.time_base if c.duration else None,
                         rotation=int(first.rotation or 0),
                         audio=[a.codec_context.name for a in c.streams.audio])


def _check_index(path: Path, c) -> None:
    """An MP4/MOV cut short keeps its index (moov at the front): samples past the file's end."""
    size = path.stat().st_size
    for s in c.streams:
        entries = s.index_entries
        if len(entries) and (last := entries[len(entries) - 1]).pos + last.size > size:
            raise VideoError(f"{path} is truncated: its index locates {s.type} data up to byte "
                             f"{last.pos + last.size:,}, the file has {size:,} bytes")


def output_shape(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(H, W) of the stylized frames: shorter side ``size`` (or the input's), sides made even."""
    h, w = (check_resize_shorter((info.height, info.width), size, str(info.path))
            if size is not None else (info.height, info.width))
    if h < 2 or w < 2:
        raise VideoError(f"{info.path}: frames of {w}x{h} px are too small to encode")
    return h - h % 2, w - w % 2


def check_memory(model, info: VideoInfo, shape, batch: int, device="cpu") -> None:
    """Refuse, naming the file, ``--size`` and ``--batch``, a batch of frames whose estimated
    memory (``repro.budget``: the network on ``batch`` frames, the decoded frames beside
    them) exceeds the budget."""
    config = getattr(model, "config", {})
    if not config:
        return  # a module of the user's own: nothing measured to estimate from
    h, w = shape
    frames = 4 * 3 * batch * (info.height * info.width + 2 * h * w)  # float: decoded, in, out
    est = budget.generator_bytes(config, h * w) * batch + frames
    budget.check(est, f"stylizing {info.path} ({w}x{h} px frames, {batch} a batch)",
                 "use a smaller --size N (frames' shorter side) or --batch N", device)


def preflight(input, output, inputs=(), *, size=None, batch=4, crf=CRF) -> tuple[VideoInfo, tuple[int, int]]:
    """Every check that needs no model: options, output path, the input's streams."""
    check_options(size, batch, crf)
    check_output(output, [input, *inputs])
    info = probe(input)
    return info, output_shape(info, size)


def check_model(stylizer: Stylizer, info: VideoInfo, shape, batch: int, *, style=None,
                alpha=1.0, style_weights=None, preserve_color=False) -> None:
    """The checks that need the loaded model, before any frame is decoded: the style options,
    and a batch's memory (a tiled Stylizer checks each tile's at every call instead)."""
    check_style_options(stylizer.model, style, alpha=alpha, style_weights=style_weights,
                        preserve_color=preserve_color)
    if not stylizer.tile:
        check_memory(stylizer.model, info, shape, batch, stylizer.device)


# ---------------------------------------------------------------------------------------------
# Audio


def _can_copy(stream, fmt: str) -> bool:
    """Whether ``fmt`` takes ``stream``'s packets as they are: tried on an in-memory file."""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as test:
            test.add_stream_from_template(stream)
            test.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


class _Audio:
    """One input audio stream's way into the output: packets copied, or decoded and re-encoded."""

    def __init__(self, out, stream, fmt: str):
        self.src = stream
        name = stream.codec_context.name
        self.copy = _can_copy(stream, fmt)
        if self.copy:
            self.dst = out.add_stream_from_template(stream)
            self.note = f"copied ({name})"
        else:
            self.dst = out.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
            layout = stream.codec_context.layout
            if layout is not None and layout.nb_channels:
                self.dst.layout = layout
            self.note = f"re-encoded to AAC ({name} cannot be copied into .{fmt.replace('matroska', 'mkv')})"

    def packet(self, out, packet, decoded) -> None:
        if self.copy:
            if packet.dts is not None:  # demux ends each stream with an empty packet
                packet.stream = self.dst
                out.mux(packet)
            return
        for frame in decoded:  # with its time stamp: the track keeps its start offset
            out.mux(self.dst.encode(frame))

    def flush(self, out) -> None:
        if not self.copy:
            out.mux(self.dst.encode(None))


# ---------------------------------------------------------------------------------------------
# Frames


def _to_tensor(frame, colorspace, size=None) -> torch.Tensor:
    """RGB uint8 (3, H, W); ``size`` (w, h): scaled to it if the frame's size differs."""
    w, h = size or (frame.width, frame.height)
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=colorspace, width=w, height=h,
                           src_color_range=frame.color_range or None)
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _to_frame(img: torch.Tensor, colorspace) -> av.VideoFrame:
    rgb = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range="MPEG")


def _load_styles(stylizer: Stylizer, style, style_size):
    """AdaIN styles loaded and resized once for all frames (before any frame is decoded)."""
    if not stylizer.arbitrary or style is None:
        return style
    return load_styles(style, style_size, stylizer.model.down)


class _Batches:
    """Decoded frames (uint8) to stylized ones (float), one batch a call: resized, cut to the
    output's even sides, the last batch padded to ``batch`` frames; seconds in the network."""

    def __init__(self, stylizer: Stylizer, batch: int, size, shape, style, recolour: bool, **options):
        self.stylizer, self.batch, self.size, (self.h, self.w) = stylizer, batch, size, shape
        self.style, self.recolour, self.options = style, recolour, options
        self.frames, self.seconds = 0, 0.0

    def __call__(self, frames: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack(frames).float().div_(255)
        if self.size is not None:
            x = resize_shorter(x, self.size)
        x = x[..., :self.h, :self.w]
        if self.recolour:  # AdaIN §7.3, once: the style takes the first frame's colours
            self.style, self.recolour = [match_color(s, x[0]) for s in self.style], False
        n = x.shape[0]
        if n < self.batch:  # one shape for the compiled path
            x = torch.cat([x, x[-1:].expand(self.batch - n, -1, -1, -1)])
        t = time.perf_counter()
        y = self.stylizer(x, style=self.style, **self.options)[:n].cpu()
        self.seconds += time.perf_counter() - t
        self.frames += n
        return y


def _video_stream(out, vin, info: VideoInfo, shape, crf: int):
    """The H.264 output stream: the input's time base, frame rate, colour tags, pixel aspect
    and display rotation."""
    vout = out.add_stream("libx264", rate=info.rate or 25)
    vout.height, vout.width = shape
    vout.pix_fmt = "yuv420p"
    vout.time_base = vout.codec_context.time_base = vin.time_base
    vout.options = {"crf": str(crf)}
    for attr in ("colorspace", "color_primaries", "color_trc"):
        setattr(vout.codec_context, attr, getattr(vin.codec_context, attr))
    vout.codec_context.color_range = 1  # MPEG (limited), what _to_frame writes
    if vin.sample_aspect_ratio:
        vout.codec_context.sample_aspect_ratio = vin.sample_aspect_ratio
    if info.rotation:
        vout.set_display_rotation(info.rotation)
    return vout


@torch.inference_mode()
def stylize_video(model, input, output, *, size: int | None = None, batch: int = 4, style=None,
                  alpha: float = 1.0, style_weights=None, preserve_color: bool = False,
                  style_size: int | None = None, device=None, precision: str = "auto",
                  compile: bool = True, crf: int = CRF, progress: bool | None = None) -> VideoResult:
    """Stylize every frame of the video ``input`` and write ``output`` (.mp4, .mkv or .mov).

    ``model``: a :class:`Stylizer` (used as it is: ``device``, ``precision`` and ``compile``
    are then its own), a generator module, a checkpoint or a run directory. ``size``: resize
    the frames' shorter side first. ``style`` and the AdaIN options as for
    :func:`repro.stylize`. ``compile=True`` compiles the network (``torch.compile``): the first
    batch then costs tens of seconds on a CPU, every later one runs faster. ``progress``: a
    progress bar (None: when stderr is a terminal). See the module docstring for audio, time
    stamps, even sides and failures.
    """
    t0 = time.perf_counter()
    info, shape = preflight(input, output, size=size, batch=batch, crf=crf)  # before the model loads
    if isinstance(model, Stylizer):
        stylizer = model
    else:
        if not isinstance(model, torch.nn.Module):
            model = load_generator(model, device=device or "cpu")
        stylizer = Stylizer(model, device=device, precision=precision, compile=compile)
    check_model(stylizer, info, shape, batch, style=style, alpha=alpha, style_weights=style_weights,
                preserve_color=preserve_color)
    batches = _Batches(stylizer, batch, size, shape, _load_styles(stylizer, style, style_size),
                       stylizer.arbitrary and preserve_color, alpha=alpha, style_weights=style_weights)
    fmt = CONTAINERS[Path(output).suffix.lower()]
    with _open_input(input) as inp, atomic_open(output) as f, av.open(f, "w", format=fmt) as out, \
            tqdm(total=info.expected_frames, unit="frame", desc=Path(input).name,
                 disable=None if progress is None else not progress) as bar:
        vin = _video(inp)
        cs = _COLORSPACES.get(int(vin.codec_context.colorspace or 2))
        vout = _video_stream(out, vin, info, shape, crf)
        audio = {s.index: _Audio(out, s, fmt) for s in inp.streams.audio}
        step = max(1, round(1 / (info.rate * vin.time_base))) if info.rate else 1
        pending: list = []  # (pts, decoded frame as uint8 (3, H, W))

        def encode_pending():
            for (pts, _), img in zip(pending, batches([t for _, t in pending])):
                frame = _to_frame(img, cs)
                frame.pts, frame.time_base = pts, vin.time_base
                out.mux(vout.encode(frame))
            bar.update(len(pending))
            pending.clear()

        last_pts, ends = None, {}
        decode = {vin.index, *(i for i, a in audio.items() if not a.copy)}
        # every stream is demuxed (those not written only for their time stamps): a file whose
        # longest stream is one we drop (subtitles, a second video track) is not truncated
        for packet, decoded in _demux(input, inp, list(inp.streams), decode, batches):
            if packet.pts is not None and packet.time_base is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                ends[packet.stream.index] = max(ends.get(packet.stream.index, end), end)
            if packet.stream.index in audio:
                audio[packet.stream.index].packet(out, packet, decoded)
                continue
            if packet.stream.index != vin.index:
                continue
            for frame in decoded:
                pts = frame.pts
                if pts is None or (last_pts is not None and pts <= last_pts):
                    pts = 0 if last_pts is None else last_pts + step  # no usable time stamp
                last_pts = pts
                pending.append((pts, _to_tensor(frame, cs, (info.width, info.height))))
                if len(pending) == batch:
                    encode_pending()
        if pending:
            encode_pending()
        if not batches.frames:
            raise VideoError(f"{input}: no frame decoded")
        _check_complete(input, info, ends, step * vin.time_base)
        out.mux(vout.encode(None))
        for a in audio.values():
            a.flush(out)
    return VideoResult(path=Path(output), frames=batches.frames, width=shape[1], height=shape[0],
                       rate=info.rate, audio=[a.note for a in audio.values()],
                       seconds=time.perf_counter() - t0, model_seconds=batches.seconds,
                       declared_frames=info.frames)


def _demux(path, inp, streams, decode, batches):
    """(packet, its decoded frames) for ``streams``, decoding those in ``decode``; a decoding
    error becomes a VideoError naming the file and how far it got."""
    it = inp.demux(*streams)
    while True:
        try:
            packet = next(it)
            decoded = packet.stream.decode(packet) if packet.stream.index in decode else []
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            raise _damaged(path, e, f"damaged or truncated: decoding failed after "
                                    f"{batches.frames} stylized frames") from None
        yield packet, decoded


def _check_complete(path, info: VideoInfo, ends: dict, frame_s) -> None:
    """A demuxer that stops early without an error: the streams end well before the duration
    the container declares."""
    if not info.duration or not ends:
        return
    reached = max(ends.values())
    if reached < info.duration - max(0.1, 2 * float(frame_s)):
        raise VideoError(f"{path} is truncated: its streams end at {reached:.2f} s of the "
                         f"{info.duration:.2f} s its container declares")


def read_frames(path, max_frames: int | None = None) -> tuple[torch.Tensor, list[float]]:
    """The frames of a video's main video stream as ``(T, 3, H, W)`` float in [0, 1] (RGB,
    converted and scaled to the first frame's size as :func:`stylize_video` does) and their time
    stamps in seconds."""
    frames, times = [], []
    with _open_input(path) as c:
        s = _video(c)
        if s is None:
            raise VideoError(f"{path} has no video stream")
        cs = _COLORSPACES.get(int(s.codec_context.colorspace or 2))
        size = None
        try:
            for frame in c.decode(s):
                size = size or (frame.width, frame.height)  # later frames scaled to the first's
                frames.append(_to_tensor(frame, cs, size))
                times.append(float(frame.time) if frame.time is not None else math.nan)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as e:
            raise _damaged(path, e, f"damaged or truncated after {len(frames)} frames") from None
    if not frames:
        raise VideoError(f"{path}: its video stream has no frames")
    return torch.stack(frames).float().div_(255), times


def write_frames(path, clip: torch.Tensor, rate=24, crf: int = CRF, audio=None) -> Path:
    """Encode ``clip`` ``(T, 3, H, W)`` in [0, 1] (even sides) as H.264 at ``rate`` frames/s
    into ``path`` (.mp4, .mkv, .mov), atomically. ``audio``: ``(samples (C, N) float32 in
    [-1, 1], sample rate, codec name)`` for an audio track. T = 0 writes a video stream without
    frames. Test clips and the benchmark's synthetic clips are made with it."""
    path = Path(path)
    check_output_path(path, (), "path", suffixes=tuple(CONTAINERS))
    with atomic_open(path) as f, av.open(f, "w", format=CONTAINERS[path.suffix.lower()]) as out:
        v = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        v.height, v.width, v.pix_fmt = clip.shape[-2], clip.shape[-1], "yuv420p"
        v.options = {"crf": str(crf)}
        if audio is not None:
            samples, sample_rate, codec = audio
            a = out.add_stream(codec, rate=sample_rate)
            a.layout = {1: "mono", 2: "stereo"}[samples.shape[0]]
        out.start_encoding()
        for img in clip:
            out.mux(v.encode(_to_frame(img, None)))
        out.mux(v.encode(None))
        if audio is not None:
            # interleaved float samples in chunks of 1024 (the encoder's resampler re-frames them)
            for i in range(0, samples.shape[1], 1024):
                chunk = np.ascontiguousarray(samples[:, i:i + 1024].T.reshape(1, -1), dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=a.layout.name)
                frame.sample_rate = sample_rate
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
    return path


# ---------------------------------------------------------------------------------------------
# Flicker


def _check_clip(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected a clip shaped (T, 3, H, W) with T >= 2, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


def flicker(inputs: torch.Tensor, outputs: torch.Tensor, threshold: float = 1 / 255) -> float:
    """The mean absolute frame-to-frame change of ``outputs`` over the pixels (and channels) where
    ``inputs`` does not change (``|in_t - in_{t-1}| < threshold`` in every channel), over all
    pairs of consecutive frames: temporal instability that the content does not cause.
    Both clips ``(T, 3, H, W)`` in [0, 1]; a ``ValueError`` if no pixel is static."""
    _check_clip(inputs, "inputs")
    _check_clip(outputs, "outputs")
    if inputs.shape != outputs.shape:
        raise ValueError(f"inputs {tuple(inputs.shape)} and outputs {tuple(outputs.shape)} differ")
    static = ((inputs[1:] - inputs[:-1]).abs() < threshold).all(dim=1, keepdim=True)
    n = int(static.sum())
    if not n:
        raise ValueError(f"no pixel of the input is static (threshold {threshold}); flicker is undefined")
    change = (outputs[1:].float() - outputs[:-1].float()).abs()
    return float((change * static).sum() / (3 * n))


def pan_clip(photo, size, frames: int = 8, step: int = 2) -> torch.Tensor:
    """``frames`` windows of ``size`` (int: square, or (h, w)) sliding right by ``step`` px per
    frame across the middle of ``photo`` (a path or (3, H, W) tensor): (T, 3, h, w), no
    resampling, so frame t shifted left by ``step`` px is frame t-1 exactly."""
    img = load_image(photo) if isinstance(photo, (str, Path)) else photo
    h, w = (size, size) if isinstance(size, int) else size
    if not (isinstance(step, int) and step >= 1 and frames >= 2 and step < w):
        raise ValueError(f"need frames >= 2 and 1 <= step < width, got frames={frames}, step={step}")
    span = w + step * (frames - 1)
    H, W = img.shape[-2:]
    if h > H or span > W:
        raise ValueError(f"a pan of {frames} frames of {w}x{h} px by {step} px needs a photo of at "
                         f"least {span}x{h} px, got {W}x{H}")
    top, left = (H - h) // 2, (W - span) // 2
    return torch.stack([img[:, top:top + h, left + t * step:left + t * step + w] for t in range(frames)])


def pan_change(clip: torch.Tensor, step: int) -> float:
    """Mean |frame t shifted back by the pan - frame t-1| over their overlap and all t."""
    _check_clip(clip, "clip")
    return float((clip[1:, ..., :-step].float() - clip[:-1, ..., step:].float()).abs().mean())


def pan_flicker(stylizer, photo, size, frames: int = 8, step: int = 2, batch: int = 4) -> dict:
    """Flicker under a known motion: the pan of :func:`pan_clip` through ``stylizer`` (any
    callable (N, 3, H, W) -> (N, 3, H, W), e.g. a :class:`Stylizer`), ``batch`` frames a call.
    ``{"output": pan_change of the stylized clip, "input": of the clip itself (0)}``: a model
    that follows the content moves with it (0); statistics of the whole frame (instance norm)
    or position-dependent patterns do not."""
    clip = pan_clip(photo, size, frames, step)
    out = torch.cat([stylizer(clip[i:i + batch]).float().cpu() for i in range(0, frames, batch)])
    return {"output": pan_change(out, step), "input": pan_change(clip, step)}
