"""Memory estimates made from the pixels before any network runs, and the budget they must fit.

The networks are fully convolutional: the memory of one call grows with the pixels and nothing
else. The bytes per pixel below were measured by ``python -m bench.memory`` (peak resident bytes
a call adds, in a process whose allocator returns freed memory; slope between 512 and 1024 px
squares; ``bench/results/memory-*.json``) and carry a 25% margin. Beyond the budget a call is
refused with one line naming the image, the estimate and the way out (``--tile``, ``--size``).

The budget: ``$REPRO_MEMORY_BUDGET`` (e.g. ``8G``, ``512M``, bytes) if set, else 80% of the
memory available now (``MemAvailable``; on CUDA the free device memory).
"""
from __future__ import annotations

import math
import os
import threading

import torch

MARGIN = 1.25

BYTES_PER_PIXEL = {
    # measured at width 1 (residual: 897 at width 1, 449 at width 0.5: linear in width);
    # fp32 and the bf16 fast path measured alike
    "residual": 897,
    "multiscale": 1193,
    "adain": 1153,  # relu3_1 encoder; relu4_1 (paper) assumed 25% more: its extra layers are at 1/8 size
    # VGG to relu3_1, forward + backward, and the image, its gradient and L-BFGS's state
    "gatys": 1984,
}
LBFGS_BYTES_PER_PIXEL_PER_PAIR = 2 * 3 * 4  # one (s, y) curvature pair of an RGB float image


class MemoryBudgetError(ValueError):
    """A call would need more memory than the budget; says how much and what to do."""


def parse_bytes(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t[-1:] in "KMGT" else t) * scale
    except ValueError:
        raise ValueError(f"REPRO_MEMORY_BUDGET={text!r}: expected a size such as 8G or 512M") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"REPRO_MEMORY_BUDGET={text!r}: must be a positive, finite size")
    return int(value)


def available_bytes(device: torch.device | str = "cpu") -> int:
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def budget_bytes(device: torch.device | str = "cpu") -> int:
    env = os.environ.get("REPRO_MEMORY_BUDGET")
    return parse_bytes(env) if env else int(0.8 * available_bytes(device))


def generator_bytes(config: dict, pixels: int) -> int:
    """Estimated peak bytes of one generator call on ``pixels`` pixels (per image of a batch)."""
    arch = config.get("arch", "residual")
    per = BYTES_PER_PIXEL[arch]
    if arch == "adain":
        per *= 1.25 if config.get("encoder_layer", "relu3_1") != "relu3_1" else 1.0
    else:
        per *= float(config.get("width", 1.0))
    return int(MARGIN * per * pixels)


def gatys_bytes(pixels: int, style_pixels: int, history_size: int = 50) -> int:
    per = BYTES_PER_PIXEL["gatys"] + history_size * LBFGS_BYTES_PER_PIXEL_PER_PAIR
    return int(MARGIN * (per * pixels + BYTES_PER_PIXEL["gatys"] * style_pixels))


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def check(estimate: int, what: str, way_out: str, device: torch.device | str = "cpu") -> None:
    """Raise :class:`MemoryBudgetError` when ``estimate`` bytes exceed the budget."""
    budget = budget_bytes(device)
    if estimate > budget:
        source = ("REPRO_MEMORY_BUDGET" if os.environ.get("REPRO_MEMORY_BUDGET")
                  else "80% of the memory available now")
        raise MemoryBudgetError(f"{what} needs about {_gb(estimate)}, more than the budget of "
                                f"{_gb(budget)} ({source}); {way_out}")


def resident_bytes() -> int:
    """This process's resident size now (Linux ``/proc``; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource  # POSIX only, and only needed off Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _kernel_peak_bytes() -> int | None:
    """The kernel's resident high-water mark (``VmHWM``), or None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_kernel_peak() -> bool:
    """Reset ``VmHWM`` to the resident size now (Linux >= 4.0: ``clear_refs`` 5); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_ACTIVE: list["PeakRSS"] = []  # blocks open now: a reset of VmHWM hands them the peak so far
_ACTIVE_LOCK = threading.Lock()


class PeakRSS:
    """The peak resident size while a block runs: ``start`` (before), ``peak``.

    On Linux the kernel's high-water mark is reset on entry and read on exit, so an allocation
    freed again inside the block is seen however short it was. A thread also samples the resident
    size every ``interval`` seconds (the fallback where ``/proc/self/clear_refs`` is refused).
    Nested blocks are safe: a reset first hands the mark so far to every enclosing block.
    Measures a call in-process (``bench``) and in a fresh child (``experiments.measure_stylize``,
    whose allocator returns freed blocks so ``peak - start`` follows the live tensors)."""

    def __init__(self, interval: float = 0.0005):
        self.interval = interval

    def __enter__(self) -> "PeakRSS":
        with _ACTIVE_LOCK:
            mark = _kernel_peak_bytes()
            for outer in _ACTIVE:
                outer.peak = max(outer.peak, mark or 0)
            self._kernel = _reset_kernel_peak() and _kernel_peak_bytes() is not None
            _ACTIVE.append(self)
        self.peak = self.start = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        with _ACTIVE_LOCK:
            self.peak = max(self.peak, resident_bytes())
            if self._kernel:
                self.peak = max(self.peak, _kernel_peak_bytes() or 0)
            _ACTIVE.remove(self)
