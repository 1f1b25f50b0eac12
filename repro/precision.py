"""Which arithmetic the fast paths use, decided at run time.

The generators' convolutions are the cost, and on these machines fp32 already runs near the
matmul ceiling (bench/README.md), so the headroom is in reduced precision: bf16 autocast
(convolutions in bf16, normalization statistics and losses in float32) where the hardware does
bf16 natively, fp32 where it would only be emulated.

- CUDA: bf16 where the GPU supports it (Ampere and later), else fp16.
- CPU: bf16 when the CPU has AVX-512 BF16 or AMX (read from ``/proc/cpuinfo`` flags on Linux;
  ``REPRO_CPU_BF16=0|1`` overrides the detection), else fp32.

The one ``precision`` setting of the config (``train.precision``), ``repro.stylize``,
``repro.Stylizer`` and the CLI (``--precision``): ``"auto"`` (the above), ``"fp32"`` (exact: no
autocast) or ``"bf16"`` (forced). fp16 is only ever what ``"auto"`` picks on a GPU without bf16.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from repro.choices import check_choice

PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def _cpuinfo_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no detection, so no bf16
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products natively (AVX-512 BF16 or AMX)."""
    forced = os.environ.get("REPRO_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return any(f in _cpuinfo_flags() for f in _NATIVE_BF16_FLAGS)


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    import platform
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """What a timing ran on, in one line: the CPU, this process's threads, whether the CPU does
    bf16 natively (what ``auto`` precision picks; a training run took 3-4x longer on an AVX2-only
    CPU in fp32 than on one with AMX), and the GPU if there is one. The same model name covers
    CPUs with and without AVX-512 (an "AMD EPYC" here was either), so the precision is in it."""
    cpu = (f"{cpu_model()}, {torch.get_num_threads()} threads, "
           + ("native bf16" if cpu_has_native_bf16() else "no native bf16 (fp32)"))
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({cpu})"
    return cpu


def fast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of the fast path on ``device``, or None for fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for a ``precision`` string on ``device`` (None: plain fp32)."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "auto":
        return fast_dtype(device)
    return {"fp32": None, "bf16": torch.bfloat16}[precision]


def inference_dtype(precision: str, exact: bool, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``stylize``/``Stylizer``: ``exact=True`` is a synonym of
    ``precision="fp32"``."""
    if exact:
        if precision not in ("auto", "fp32"):
            raise ValueError(f"exact=True means precision='fp32', not precision={precision!r}")
        precision = "fp32"
    return resolve_precision(precision, device)


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` (this process's CUDA device if there is one, else the CPU), ``"cpu"``,
    ``"cuda"``, ``"cuda:N"``; anything else, or a GPU this machine lacks, is a ``ValueError``
    that names the device."""
    if isinstance(name, torch.device):
        dev = name
    elif name == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    else:
        try:
            dev = torch.device(name)
        except (RuntimeError, TypeError):
            raise ValueError(f"device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: only cpu and cuda are supported")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}, but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}, but this machine has {torch.cuda.device_count()} GPU(s)")
    return dev
