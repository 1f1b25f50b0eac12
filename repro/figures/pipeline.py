"""The figure pipeline: ``make figures`` runs every figure notebook with papermill.

- Figure notebooks are ``notebooks/*.ipynb`` except ``index.ipynb`` and ``explore.ipynb`` (the
  explorer: widgets on the trained runs, no figure); a figure's name is its notebook's stem
  (``in_fig2_contrast``). Their sources are ``notebooks/*.py`` (py:percent,
  reviewable diffs), paired with the ``.ipynb`` by jupytext (``notebooks/jupytext.toml``);
  ``python -m repro notebooks`` rebuilds each ``.ipynb`` from its source and stores the outputs
  of a smoke run in it, which nbval compares against.
- Parameters: every notebook gets ``profile`` plus its section of ``notebooks:`` in
  ``configs/<profile>.yaml``. The defaults in a notebook's ``parameters`` cell are the smoke ones.
- Outputs: the notebook writes ``<figure>.png``, ``.pdf`` and ``.json`` into the profile's
  ``figures: {dir: ...}`` (``config.figures_dir``): ``figures/`` for ``cpu`` (committed),
  ``figures/paper/`` for ``paper``, ``build/figures/smoke/`` for ``smoke`` (never committed).
  Executed copies go to ``build/notebooks/<profile>/``, never back onto the sources.
- ``REPORT.md`` in the same folder is rebuilt from every ``<figure>.json`` there: one row per
  claim (paper's statement, our number, holds or not), the deviations, and each notebook's time.
  The profile with ``figures: {readme: true}`` (``cpu``) also refreshes README.md's table.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jupytext
import nbformat
import papermill

from repro import config, paths
from repro.atomic import atomic_write_bytes, atomic_write_json, replace_between


class FigureError(RuntimeError):
    """A figure notebook failed; the message carries the notebook's error."""


KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
"""The kernel every notebook is stored with and papermill runs it on."""


NOT_FIGURES = ("index", "explore")
"""Notebooks that make no figure: the index (a plain notebook, unpaired) and the explorer."""


def figure_notebooks() -> list[Path]:
    return sorted(p for p in paths.NOTEBOOKS.glob("*.ipynb") if p.stem not in NOT_FIGURES)


def notebook_sources() -> list[Path]:
    """Every paired notebook's py:percent source: the figures' and the explorer's."""
    return sorted(paths.NOTEBOOKS.glob("*.py"))


def figure_sources() -> list[Path]:
    """The figure notebooks' py:percent sources."""
    return [p for p in notebook_sources() if p.stem not in NOT_FIGURES]


# short names of the notebooks that are not a paper's numbered figure (make adain, cin, quality,
# sweep, trends)
ALIASES = {"adain": "adain_arbitrary", "cin": "cin_multistyle", "quality": "in_quality_time",
           "sweep": "in_sweep_bn_vs_in", "trends": "in_trends_budget"}


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


def _absolute(profile: str) -> str:
    """A profile given as a YAML path (or its dry run), made absolute; a profile name as it is."""
    base = config.dry_run_of(profile)
    path = Path(base or profile)
    if path.suffix not in (".yaml", ".yml"):
        return profile
    return str(path.resolve()) + (config.DRY_SUFFIX if base else "")


def run_figures(profile: str = "cpu", only: list[str] | None = None, log=print) -> dict[str, float]:
    """Execute the figure notebooks for ``profile``; return the seconds of each one run."""
    profile = _absolute(profile)  # the notebooks run in notebooks/: a relative YAML path would miss
    config.check_figure_profile(profile)  # real figures never use the dry runs' random VGG
    notebooks = figure_notebooks()
    if only:
        notebooks = [nb for name in only for nb in resolve_figure(name, notebooks)]
    params = config.profile_section(profile, "notebooks")
    out_nb = paths.ROOT / "build" / "notebooks" / profile
    out_nb.mkdir(parents=True, exist_ok=True)
    out_dir = config.figures_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    ran = {}
    for nb in notebooks:
        log(f"[{profile}] {nb.stem} ...")
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(out_nb / nb.name),
                parameters={"profile": profile, **params.get(nb.stem, {})},
                kernel_name=KERNELSPEC["name"], cwd=str(paths.NOTEBOOKS), progress_bar=False)
        except papermill.PapermillExecutionError as e:
            raise FigureError(f"{nb.name} failed at profile {profile}: {e.ename}: {e.evalue} "
                              f"(executed copy: {out_nb / nb.name})") from None
        timings[nb.stem] = ran[nb.stem] = round(time.perf_counter() - t0, 1)
        log(f"[{profile}] {nb.stem} done in {timings[nb.stem]:.0f} s")
        atomic_write_json(timings_path, timings)
        write_report(profile)  # current after every notebook: a run cut off keeps its report
    return ran


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


NOT_RECORDED = "not recorded"
"""The machine of a record written before records named theirs."""


def total_time_line(records: list[dict], timings: dict[str, float]) -> str:
    """REPORT.md's total of the notebook times, and whether that is one machine's time: a
    profile's runs took 3-4x longer on an AVX2-only CPU (fp32) than on one with AMX (bf16), so
    times from different machines are summed per machine, never into one budget."""
    machine = {rec["figure"]: rec.get("machine", NOT_RECORDED) for rec in records}
    per: dict[str, float] = {}
    for figure, seconds in timings.items():
        m = machine.get(figure, NOT_RECORDED)
        per[m] = per.get(m, 0.0) + seconds
    total = f"Total notebook time: {sum(timings.values()):.0f} s"
    if len(per) == 1:
        (m,) = per
        return f"{total} on one machine ({m})." if m != NOT_RECORDED else f"{total} (machine not recorded)."
    parts = "; ".join(f"{s:.0f} s on {m}" for m, s in sorted(per.items(), key=lambda kv: -kv[1]))
    return (f"{total}, but the notebooks last ran on {len(per)} machines ({parts}), so this is not "
            "one machine's time for the profile.")


def write_report(profile: str) -> Path:
    """Rebuild REPORT.md from the figure JSON files of ``profile``."""
    out_dir = config.figures_dir(profile)
    records = []
    for p in sorted(out_dir.glob("*.json")):
        if p.name == "timings.json":
            continue
        rec = json.loads(p.read_text())
        if isinstance(rec, dict) and "claims" in rec:
            records.append(rec)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    lines = [f"# Figures report: profile `{profile}`", ""]
    if config.is_dry_run(profile):
        lines += [f"**DRY RUN** of `{config.dry_run_of(profile)}`: its code path with tiny images, a few "
                  "steps and a random VGG-19 stand-in for downloaded weights. The numbers mean nothing.", ""]
    lines += [f"Regenerated by `make figures PROFILE={profile}`. Each row is one claim of the papers, "
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
    lines += ["", "## Runs", "", "| figure | commit | notebook time (s) | machine |", "|---|---|---|---|"]
    for rec in records:
        lines.append(f"| {rec['figure']} | {rec.get('git_commit', '')} | {timings.get(rec['figure'], '')} "
                     f"| {_cell(rec.get('machine', NOT_RECORDED))} |")
    if timings:
        lines += ["", total_time_line(records, timings)]
    path = out_dir / "REPORT.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    if config.refreshes_readme(profile):
        update_readme(records, profile=profile)
    return path


README_START, README_END = "<!-- figures:start -->", "<!-- figures:end -->"


def update_readme(records: list[dict], readme: Path | None = None, profile: str = "cpu") -> None:
    """Refresh the README's claims table and gallery (between the figures markers) from the
    records of ``profile``, the one with ``figures: {readme: true}``, so the README always shows
    what REPORT.md measured. Images are linked relative to the README's folder."""
    readme = Path(readme or paths.ROOT / "README.md")
    rel = Path(os.path.relpath(config.figures_dir(profile), readme.parent)).as_posix()
    block = ["", f"| figure | paper's claim | measured (`{profile}` profile) | holds |", "|---|---|---|---|"]
    for rec in records:
        for c in rec["claims"]:
            block.append(f"| {rec['figure']} | {_cell(c['statement'])} | {_cell(c['measured'])} | "
                         f"{'yes' if c['holds'] else '**no**'} |")
    block.append("")
    for rec in records:
        block += [f"**{rec['figure']}**: {rec.get('title', '')}", "",
                  f"![{rec['figure']}]({rel}/{rec['figure']}.png)", ""]
    replace_between(readme, README_START, README_END, "\n" + "\n".join(block) + "\n")


# ---------------------------------------------------------------------------------------------
# Notebook sources (py:percent) -> .ipynb with stored smoke outputs


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook of a py:percent source, read by jupytext (cells and their ``parameters``
    tag), with the kernel papermill runs it on and no jupytext bookkeeping in its metadata:
    the pairing is declared once, in ``notebooks/jupytext.toml``."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nb


def rebuild_notebooks(only: list[str] | None = None, execute: bool = True, log=print) -> list[Path]:
    """Rebuild ``notebooks/*.ipynb`` from ``notebooks/*.py`` and store a smoke run's outputs."""
    written = []
    for src in notebook_sources():
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
                papermill.execute_notebook(str(tmp), str(tmp), kernel_name=KERNELSPEC["name"],
                                           cwd=str(paths.NOTEBOOKS), progress_bar=False)
            except papermill.PapermillExecutionError as e:
                raise FigureError(f"{src.name}: {e.ename}: {e.evalue}") from None
            nb = nbformat.read(tmp, as_version=4)
            # papermill's bookkeeping (timestamps, paths) would make every rebuild a diff, and
            # the empty tag lists it adds would reach the .py the next time jupytext syncs the pair
            nb.metadata.pop("papermill", None)
            # the explorer's widget state: new model ids (and its images again) at every rebuild
            nb.metadata.pop("widgets", None)
            for cell in nb.cells:
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
                if cell.metadata.get("tags") == []:
                    del cell.metadata["tags"]
        atomic_write_bytes(target, nbformat.writes(nb).encode())
        written.append(target)
    return written
