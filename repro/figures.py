"""The figure pipeline: ``make figures`` runs every figure notebook with papermill.

- Figure notebooks are ``notebooks/*.ipynb`` except ``index.ipynb``; a figure's name is its
  notebook's stem (``in_fig2_contrast``). Their sources are ``notebooks/*.py`` (py:percent,
  reviewable diffs); ``python -m repro notebooks`` rebuilds each ``.ipynb`` from its source and
  stores the outputs of a smoke run in it, which nbval compares against.
- Parameters: every notebook gets ``profile`` plus its section of ``notebooks:`` in
  ``configs/<profile>.yaml``. The defaults in a notebook's ``parameters`` cell are the smoke ones.
- Outputs: the notebook writes ``<figure>.png``, ``.pdf`` and ``.json`` into
  ``figures_dir(profile)``: ``figures/`` for ``cpu`` (committed), ``figures/paper/`` for
  ``paper``, ``build/figures/smoke/`` for ``smoke`` (never committed). Executed copies go to
  ``build/notebooks/<profile>/``, never back onto the sources.
- ``REPORT.md`` in the same folder is rebuilt from every ``<figure>.json`` there: one row per
  claim (paper's statement, our number, holds or not), the deviations, and each notebook's time.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from repro import paths
from repro.runs import atomic_write_bytes, atomic_write_json


class FigureError(RuntimeError):
    """A figure notebook failed; the message carries the notebook's error."""


def figures_dir(profile: str) -> Path:
    if profile == "cpu":
        return paths.FIGURES
    if profile == "smoke":
        return paths.ROOT / "build" / "figures" / "smoke"
    return paths.FIGURES / profile


def figure_notebooks() -> list[Path]:
    return sorted(p for p in paths.NOTEBOOKS.glob("*.ipynb") if p.stem != "index")


# short names of the notebooks that are not a paper's numbered figure (make adain, make cin)
ALIASES = {"adain": "adain_arbitrary", "cin": "cin_multistyle"}


def resolve_figure(name: str, notebooks: list[Path] | None = None) -> list[Path]:
    """A notebook stem, or an alias: ``fig2`` -> ``in_fig2_*``, ``adain_fig1`` -> ``adain_fig1_*``,
    ``adain`` / ``cin`` -> the AdaIN / conditional-IN notebooks."""
    notebooks = figure_notebooks() if notebooks is None else notebooks
    name = ALIASES.get(name, name)
    exact = [nb for nb in notebooks if nb.stem == name]
    if exact:
        return exact
    hits = [nb for nb in notebooks if nb.stem.startswith((f"in_{name}_", f"{name}_"))]
    if not hits:
        raise ValueError(f"unknown figure {name!r}; available: {', '.join(nb.stem for nb in notebooks)}")
    return hits


def notebook_params(profile: str) -> dict[str, dict]:
    from repro.config import profile_path

    doc = yaml.safe_load(profile_path(profile).read_text()) or {}
    return doc.get("notebooks", {}) or {}


def run_figures(profile: str = "cpu", only: list[str] | None = None, log=print) -> dict[str, float]:
    """Execute the figure notebooks for ``profile``; return each one's seconds."""
    import papermill

    notebooks = figure_notebooks()
    if only:
        notebooks = [nb for name in only for nb in resolve_figure(name, notebooks)]
    params = notebook_params(profile)
    out_nb = paths.ROOT / "build" / "notebooks" / profile
    out_nb.mkdir(parents=True, exist_ok=True)
    out_dir = figures_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for nb in notebooks:
        log(f"[{profile}] {nb.stem} ...")
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(out_nb / nb.name),
                parameters={"profile": profile, **params.get(nb.stem, {})},
                kernel_name="python3", cwd=str(paths.NOTEBOOKS), progress_bar=False)
        except papermill.PapermillExecutionError as e:
            raise FigureError(f"{nb.name} failed at profile {profile}: {e.ename}: {e.evalue} "
                              f"(executed copy: {out_nb / nb.name})") from None
        timings[nb.stem] = round(time.perf_counter() - t0, 1)
        log(f"[{profile}] {nb.stem} done in {timings[nb.stem]:.0f} s")
        atomic_write_json(timings_path, timings)
    write_report(profile)
    return timings


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(profile: str) -> Path:
    """Rebuild REPORT.md from the figure JSON files of ``profile``."""
    out_dir = figures_dir(profile)
    records = []
    for p in sorted(out_dir.glob("*.json")):
        if p.name == "timings.json":
            continue
        rec = json.loads(p.read_text())
        if isinstance(rec, dict) and "claims" in rec:
            records.append(rec)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    lines = [f"# Figures report: profile `{profile}`", "",
             f"Regenerated by `make figures PROFILE={profile}`. Each row is one claim of the papers, "
             "measured by the figure's notebook; the numbers are in `<figure>.json` beside this file.",
             "", "| figure | paper's claim | our measurement | holds |", "|---|---|---|---|"]
    for rec in records:
        for c in rec["claims"]:
            verdict = "holds" if c["holds"] else "does not hold"
            where = f"{rec['figure']}" + (f" ({c['paper']})" if c.get("paper") else "")
            lines.append(f"| {_cell(where)} | {_cell(c['statement'])} | {_cell(c['measured'])} | {verdict} |")
    lines += ["", "## Deviations from the papers", ""]
    for rec in records:
        for d in rec.get("deviations", []):
            lines.append(f"- **{rec['figure']}**: {d}")
    notes = [f"- **{rec['figure']}**: {n}" for rec in records for n in rec.get("notes", [])]
    if notes:
        lines += ["", "## Findings at this profile", ""] + notes
    lines += ["", "## Runs", "", "| figure | commit | notebook time (s) |", "|---|---|---|"]
    for rec in records:
        lines.append(f"| {rec['figure']} | {rec.get('git_commit', '')} | {timings.get(rec['figure'], '')} |")
    if timings:
        lines += ["", f"Total notebook time: {sum(timings.values()):.0f} s on this profile's machine."]
    path = out_dir / "REPORT.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    if profile == "cpu":
        update_readme(records)
    return path


README_START, README_END = "<!-- figures:start -->", "<!-- figures:end -->"


def update_readme(records: list[dict], readme: Path | None = None) -> None:
    """Refresh the README's gallery and claims table (between the figures markers) from the
    committed ``cpu`` figures, so the README always shows what REPORT.md measured."""
    readme = readme or paths.ROOT / "README.md"
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    rel = paths.FIGURES.relative_to(paths.ROOT)
    block = [README_START, "", "| figure | paper's claim | measured (`cpu` profile) | holds |",
             "|---|---|---|---|"]
    for rec in records:
        for c in rec["claims"]:
            block.append(f"| {rec['figure']} | {_cell(c['statement'])} | {_cell(c['measured'])} | "
                         f"{'yes' if c['holds'] else '**no**'} |")
    block.append("")
    for rec in records:
        block += [f"**{rec['figure']}**: {rec.get('title', '')}", "",
                  f"![{rec['figure']}]({rel}/{rec['figure']}.png)", ""]
    block.append(README_END)
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    atomic_write_bytes(readme, (text[:start] + "\n".join(block) + text[end:]).encode())


# ---------------------------------------------------------------------------------------------
# Notebook sources (py:percent) -> .ipynb with stored smoke outputs

_HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?P<rest>.*)$")


def parse_percent(text: str) -> list[dict]:
    """Cells of a py:percent file: ``{"type": "code"|"markdown", "source": str, "tags": [...]}``."""
    cells: list[dict] = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            tags = re.findall(r'"([^"]+)"', m.group("rest").split("tags=", 1)[1]) if "tags=" in m.group("rest") else []
            cells.append({"type": "markdown" if m.group("md") else "code", "lines": [], "tags": tags})
        elif cells:
            cells[-1]["lines"].append(line)
    out = []
    for c in cells:
        lines = c.pop("lines")
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if c["type"] == "markdown":
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in lines]
        out.append({**c, "source": "\n".join(lines)})
    return out


def build_notebook(source: Path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for c in parse_percent(source.read_text()):
        cell = (new_markdown_cell if c["type"] == "markdown" else new_code_cell)(c["source"])
        if c["tags"]:
            cell.metadata["tags"] = c["tags"]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def rebuild_notebooks(only: list[str] | None = None, execute: bool = True, log=print) -> list[Path]:
    """Rebuild ``notebooks/*.ipynb`` from ``notebooks/*.py`` and store a smoke run's outputs."""
    import nbformat
    import papermill

    written = []
    for src in sorted(paths.NOTEBOOKS.glob("*.py")):
        if only and src.stem not in only:
            continue
        nb = build_notebook(src)
        target = src.with_suffix(".ipynb")
        tmp = paths.ROOT / "build" / "notebooks" / "src" / target.name
        tmp.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, tmp)
        if execute:
            log(f"executing {target.name} (smoke defaults) ...")
            try:
                papermill.execute_notebook(str(tmp), str(tmp), kernel_name="python3",
                                           cwd=str(paths.NOTEBOOKS), progress_bar=False)
            except papermill.PapermillExecutionError as e:
                raise FigureError(f"{src.name}: {e.ename}: {e.evalue}") from None
            nb = nbformat.read(tmp, as_version=4)
            # papermill's bookkeeping (timestamps, paths) would make every rebuild a diff
            nb.metadata.pop("papermill", None)
            for cell in nb.cells:
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
        atomic_write_bytes(target, nbformat.writes(nb).encode())
        written.append(target)
    return written
