"""The figure wing: what a figure notebook writes, and the pipeline that runs the notebooks.

- ``FigureRecord`` (``record``): a figure's numbers and claims, saved as ``<figure>.json`` in the
  profile's figures folder (``config.figures_dir``).
- ``plots``: image grids, loss curves, lean PNG + PDF output.
- ``pipeline``: papermill runs of the notebooks, REPORT.md, the README table, rebuilding the
  ``.ipynb`` files from their py:percent sources (jupytext). Import it explicitly: notebooks use
  only the two above, so ``import repro.figures`` loads neither papermill nor jupytext.
"""
from repro.figures import plots
from repro.figures.record import FigureRecord

__all__ = ["FigureRecord", "plots"]
