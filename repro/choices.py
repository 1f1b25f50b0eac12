"""One way to refuse a value outside a vocabulary. Each vocabulary (``norms.NORM_KINDS``,
``models.PADDINGS``, ``precision.PRECISIONS``, ...) lives in the module that implements it, and
``config`` checks a profile against those same tuples."""
from __future__ import annotations


def check_choice(name: str, value, allowed) -> None:
    """``ValueError`` naming the parameter unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {name}={value!r}")
