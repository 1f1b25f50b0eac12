"""Reproduction of *Instance Normalization: The Missing Ingredient for Fast Stylization*
(Ulyanov, Vedaldi, Lempitsky 2016), with the AdaIN analysis and method (Huang & Belongie 2017)
and conditional instance normalization (Dumoulin et al. 2017).

Submodules are imported lazily so ``import repro`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "paths", "images", "data", "vgg", "norms", "models", "losses", "gatys", "train", "runs",
    "metrics", "cli", "config", "inference", "experiments", "figures", "atomic",
    "precision", "budget", "tiling", "checkpoint", "tasks", "explore", "video",
    "export",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"repro.{name}")
    if name in ("stylize", "Stylizer"):  # public: repro.stylize, repro.Stylizer
        from repro import inference
        return getattr(inference, name)
    raise AttributeError(f"module 'repro' has no attribute {name!r}")
