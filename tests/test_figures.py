"""The figure wing: notebook sources in sync, REPORT.md, figure records, runner errors."""
import json
import math
import subprocess
import sys

import jupytext
import nbformat
import numpy as np
import torch
from PIL import Image
import pytest

from repro import config, metrics, paths, precision
from repro.figures import FigureRecord, pipeline, plots


def test_every_notebook_matches_its_py_source():
    sources = pipeline.notebook_sources()
    assert {p.stem for p in sources} - {p.stem for p in pipeline.figure_sources()} == {"explore"}
    assert sources, "no notebook sources"
    for src in sources:
        nb_path = src.with_suffix(".ipynb")
        assert nb_path.is_file(), f"{nb_path.name} missing: run `make notebooks`"
        stored = nbformat.read(nb_path, as_version=4)
        built = pipeline.build_notebook(src)
        assert [c.source for c in stored.cells] == [c.source for c in built.cells], \
            f"{nb_path.name} is out of date with {src.name}: run `make notebooks`"
        tags = [c.metadata.get("tags", []) for c in stored.cells]
        assert sum("parameters" in t for t in tags) == 1, f"{nb_path.name}: one parameters cell"
        # stored smoke outputs exist for nbval to compare
        code = [c for c in stored.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{nb_path.name}: not executed"


def test_index_links_every_figure_notebook():
    index = nbformat.read(paths.NOTEBOOKS / "index.ipynb", as_version=4)
    text = "".join(c.source for c in index.cells)
    for nb in pipeline.figure_notebooks():
        assert f"]({nb.name})" in text, f"index.ipynb does not link {nb.name}"
    # the explorer comes first
    assert text.index("](explore.ipynb)") < min(text.index(f"]({nb.name})") for nb in pipeline.figure_notebooks())


def test_py_percent_source_gives_the_cells_the_parameters_tag_and_the_kernel(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text('# %% [markdown]\n# # Title\n# text\n\n# %% tags=["parameters"]\n'
                   'a = 1\n\n# %%\nprint(a)\n')
    nb = pipeline.build_notebook(src)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert [c.source for c in nb.cells] == ["# Title\ntext", "a = 1", "print(a)"]
    assert [c.metadata.get("tags", []) for c in nb.cells] == [[], ["parameters"], []]
    assert nb.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in nb.metadata
    # and back: the paired .py that jupytext writes is the source itself (notebooks/jupytext.toml)
    nb.metadata["jupytext"] = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "tags,-all"}
    assert jupytext.writes(nb, fmt="py:percent") == src.read_text()


def test_notebooks_are_paired_with_their_py_percent_sources():
    text = (paths.NOTEBOOKS / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in text


def test_report_has_one_row_per_claim_and_the_deviations(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "figures_dir", lambda profile: tmp_path)
    # a cpu report also refreshes the README: keep the repository's own README out of it
    readme = tmp_path / "README.md"
    readme.write_text(f"{pipeline.README_START}\n{pipeline.README_END}\n")
    real_update = pipeline.update_readme
    monkeypatch.setattr(pipeline, "update_readme", lambda records, **kw: real_update(records, readme, **kw))
    rec = FigureRecord("figX", "cpu", params={"a": 1})
    assert rec.out_dir == tmp_path
    rec.claim("IN beats BN", "0.8 vs 1.0", holds=True, paper="IN Fig. 5")
    rec.claim("gap | shrinks", "12%", holds=False)
    rec.deviation("fewer steps")
    rec.note("replicate padding removes the frames here")
    rec.numbers["x"] = float("nan")
    rec.save()
    (tmp_path / "timings.json").write_text(json.dumps({"figX": 12.5}))
    report = pipeline.write_report("cpu").read_text()
    assert "| figX (IN Fig. 5) | IN beats BN | 0.8 vs 1.0 | holds |" in report
    assert "gap \\| shrinks" in report and "does not hold" in report
    assert "**figX**: fewer steps" in report and "12.5" in report
    findings = report.split("## Findings at this profile")[1].split("## Runs")[0]
    assert "**figX**: replicate padding removes the frames here" in findings
    saved = json.loads((tmp_path / "figX.json").read_text())
    assert saved["numbers"]["x"] is None and saved["profile"] == "cpu" and saved["git_commit"] != ""
    assert "| figX | IN beats BN | 0.8 vs 1.0 | yes |" in readme.read_text()


def test_report_names_each_notebooks_machine_and_never_sums_two_machines(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "figures_dir", lambda profile: tmp_path)
    monkeypatch.setattr(config, "refreshes_readme", lambda profile: False)
    for figure, machine in (("figA", "CPU A, 2 threads, native bf16"), ("figB", "CPU B, 2 threads, no native bf16 (fp32)")):
        monkeypatch.setattr(precision, "machine_description", lambda m=machine: m)
        rec = FigureRecord(figure, "cpu")
        rec.claim("c", "m", holds=True)
        assert json.loads(rec.save().read_text())["machine"] == machine
    (tmp_path / "timings.json").write_text(json.dumps({"figA": 100.0, "figB": 400.0}))
    report = pipeline.write_report("cpu").read_text()
    assert "| figB | " in report and "| 400.0 | CPU B, 2 threads, no native bf16 (fp32) |" in report
    total = report.rsplit("Total notebook time", 1)[1]
    assert "2 machines" in total and "400 s on CPU B" in total and "100 s on CPU A" in total
    assert "not one machine's time" in total
    # one machine: said so; a record from before machines were recorded: said so too
    (tmp_path / "timings.json").write_text(json.dumps({"figA": 100.0}))
    (tmp_path / "figB.json").unlink()
    assert "500" not in pipeline.write_report("cpu").read_text().rsplit("Total", 1)[1]
    assert "100 s on one machine (CPU A, 2 threads, native bf16)" in (tmp_path / "REPORT.md").read_text()
    old = json.loads((tmp_path / "figA.json").read_text())
    del old["machine"]
    (tmp_path / "figA.json").write_text(json.dumps(old))
    report = pipeline.write_report("cpu").read_text()
    assert "| 100.0 | not recorded |" in report and "(machine not recorded)" in report


def test_asserted_claims_fail_the_notebook_only_at_asserting_profiles():
    smoke = FigureRecord("f", "smoke")
    smoke.claim("c", "m", holds=False)
    smoke.check()  # recorded, not asserted
    cpu = FigureRecord("f", "cpu")
    cpu.claim("c", "m", holds=False)
    with pytest.raises(AssertionError, match="claims do not hold"):
        cpu.check()


def test_log_slope_is_the_elasticity():
    assert metrics.log_slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert metrics.log_slope([1, 2, 4], [5, 5, 5]) == pytest.approx(0.0)
    assert metrics.log_slope([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)


def test_unknown_figure_names_the_available_ones():
    with pytest.raises(ValueError, match="in_fig1_gatys"):
        pipeline.resolve_figure("fig99")
    assert [p.stem for p in pipeline.resolve_figure("fig2")] == ["in_fig2_contrast"]
    # every make target of the Makefile names exactly one notebook
    import re
    targets = re.search(r"^FIGS := (.*)$", (paths.ROOT / "Makefile").read_text(), re.M).group(1).split()
    resolved = {t: [p.stem for p in pipeline.resolve_figure(t)] for t in targets}
    assert all(len(v) == 1 for v in resolved.values()), resolved
    assert resolved["adain"] == ["adain_arbitrary"] and resolved["adain_fig1"] == ["adain_fig1_in_vs_bn"]
    assert len({v[0] for v in resolved.values()}) == len(targets) == len(pipeline.figure_notebooks())


def test_smoke_outputs_never_go_to_the_committed_figures():
    assert config.figures_dir("cpu") == paths.FIGURES and config.refreshes_readme("cpu")
    assert config.figures_dir("paper") == paths.FIGURES / "paper" and not config.refreshes_readme("paper")
    smoke = config.figures_dir("smoke")
    assert paths.FIGURES not in smoke.parents and smoke != paths.FIGURES
    assert not config.refreshes_readme("smoke")
    assert FigureRecord("f", "smoke").out_dir == smoke


def test_failing_notebook_stops_the_run_with_its_error(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'"),
                nbformat.v4.new_code_cell("raise ValueError('claim broke: 1.5 > 1.2')")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "bad_fig.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS", tmp_path / "nb")
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(config, "figures_dir", lambda profile: tmp_path / "out")
    with pytest.raises(pipeline.FigureError, match="bad_fig.ipynb.*ValueError: claim broke"):
        pipeline.run_figures("smoke", log=lambda *a: None)
    assert not (paths.NOTEBOOKS / "bad_fig.ipynb").read_text().count("claim broke: 1.5 > 1.2\\n")  # source untouched
    assert (tmp_path / "build" / "notebooks" / "smoke" / "bad_fig.ipynb").is_file()


def test_readme_block_is_refreshed_from_the_records(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "figures_dir", lambda profile: tmp_path / "figures")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- figures:start -->\nstale row\n<!-- figures:end -->\noutro\n")
    rec = {"figure": "in_fig9_x", "title": "a title",
           "claims": [{"statement": "IN wins", "measured": "3 vs 4", "holds": False}]}
    pipeline.update_readme([rec], readme)
    text = readme.read_text()
    assert "stale row" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| in_fig9_x | IN wins | 3 vs 4 | **no** |" in text
    assert "![in_fig9_x](figures/in_fig9_x.png)" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="no <!-- figures:start -->"):
        pipeline.update_readme([rec], readme)


def test_notebooks_import_the_figure_wing_without_the_pipeline():
    """Notebooks import ``repro.figures``; papermill and jupytext are the pipeline's alone."""
    code = ("import sys, repro.figures; from repro.figures import FigureRecord, plots; "
            "print(sorted({'papermill', 'jupytext'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_border_artifacts_score_stripes_parallel_to_the_edges():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 96, 96, generator=g)
    clean = metrics.border_artifacts(noise)
    assert abs(clean["score"]) < 0.2
    framed = noise.clone() * 0.3 + 0.35
    for i, v in enumerate([0.0, 1.0, 0.0, 1.0]):  # nested dark/bright frame lines
        framed[:, i, i:96 - i] = framed[:, 95 - i, i:96 - i] = v
        framed[:, i:96 - i, i] = framed[:, i:96 - i, 95 - i] = v
    f = metrics.border_artifacts(framed)
    assert f["score"] > 1.0 and min(f[s] for s in ("top", "bottom", "left", "right")) > 1.0
    # the same stripes *perpendicular* to the edges are not a frame
    combs = noise.clone() * 0.3 + 0.35
    combs[:, :8, ::2] = 0.0
    assert metrics.border_artifacts(combs)["top"] < -1.0
    batch = torch.stack([noise, framed])
    assert metrics.border_artifacts(batch)["score"] == pytest.approx((clean["score"] + f["score"]) / 2)
    with pytest.raises(ValueError, match="larger than"):
        metrics.border_artifacts(torch.rand(3, 20, 20))


def test_committed_figures_stay_within_their_size_bounds():
    """Every regeneration adds the figure files to git history (issue 21): keep each one lean."""
    files = [p for p in paths.FIGURES.rglob("*") if p.is_file()]
    too_big = [f"{p.relative_to(paths.ROOT)}: {p.stat().st_size / 2**20:.2f} MiB"
               for p in files
               if (p.suffix == ".png" and p.stat().st_size > plots.MAX_PNG_BYTES)
               or (p.suffix == ".pdf" and p.stat().st_size > plots.MAX_PDF_BYTES)]
    assert not too_big, f"figures over their bound (PNG {plots.MAX_PNG_BYTES >> 20} MiB, " \
                        f"PDF {plots.MAX_PDF_BYTES >> 20} MiB): {too_big}"
    total = sum(p.stat().st_size for p in files)
    assert total <= plots.MAX_FIGURES_BYTES, f"figures/ holds {total / 2**20:.1f} MiB"


def test_save_figure_writes_palette_png_and_indexed_pdf_panels_byte_stably(tmp_path):
    noise = torch.rand(3, 300, 300, generator=torch.Generator().manual_seed(0))  # incompressible
    fig = plots.image_grid([[noise, noise.flip(-1)]], titles=[["a", "b"]], cell=2.0)
    original = fig.axes[0].get_images()[0].get_array().copy()
    first = plots.save_figure(fig, "f", tmp_path, dpi=80)
    png, pdf = first["png"].read_bytes(), first["pdf"].read_bytes()
    with Image.open(first["png"]) as im:
        assert im.mode == "P" and im.info.get("dpi") is None  # palette, no metadata
        assert im.width < 2 * 2.0 * 80 + 40  # rendered at the dpi asked for
    assert b"/Indexed" in pdf  # panels palette-indexed, a byte per pixel
    # noise does not compress: each panel embedded at ~2 inches x 80 dpi (< 160 px), not at the
    # 300 px source (which alone would take 2 x 300 x 300 bytes)
    assert len(pdf) < 2 * 160 * 160 + 30_000
    # the figure's own panels are left as they were for the inline display
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), original)
    again = plots.save_figure(fig, "g", tmp_path, dpi=80)
    assert again["png"].read_bytes() == png and again["pdf"].read_bytes() == pdf


def test_iterations_worth_is_the_first_iteration_at_or_below_both_losses():
    style = [10.0, 6.0, 4.0, 3.0, 2.0]
    content = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert metrics.iterations_worth(style, content, 4.0) == 2              # style alone
    assert metrics.iterations_worth(style, content, 4.0, content=5.0) == 2
    # content worse than the method's at the style crossing: a later iterate never helps here
    assert metrics.iterations_worth(style, content, 4.0, content=1.5) is None
    assert metrics.iterations_worth(style, content, 1.0) is None            # never reached
    assert metrics.iterations_worth(style, content, 10.0) == 0              # the start already
    with pytest.raises(ValueError, match="curves"):
        metrics.iterations_worth(style, content[:-1], 4.0)


def test_identifiability_divides_by_the_photos_loss_and_finds_the_margin():
    # style 1's losses are 10x larger for everything: raw, row 0 looks closest to style 0 and
    # row 1 too; relative to the photos' own losses each row is closest to its own style
    raw = [[1.0, 8.0], [3.0, 4.0]]
    own = [10.0, 100.0]
    r = metrics.identifiability(raw, own)
    assert np.allclose(r["relative"], [[0.1, 0.08], [0.3, 0.04]])
    assert not r["diagonal_min_relative"]  # row 0: 0.08 (style 1) < 0.1 (its own)
    assert not r["diagonal_min_raw"]
    r = metrics.identifiability([[1.0, 20.0], [3.0, 4.0]], own)
    assert r["diagonal_min_relative"] and not r["diagonal_min_raw"]
    # margins: row 0 0.2 / 0.1 = 2, row 1 0.3 / 0.04 = 7.5 -> the worst row, 2
    assert r["margin"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="S x S"):
        metrics.identifiability([[1.0, 2.0]], own)


def _smooth_photos(torch, n=4, size=96, seed=0):
    """Photo-like test images: low-pass noise (a 1/f-ish spectrum, no periodic structure)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, size // 8, size // 8, generator=g)
    big = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)
    return list((big + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1))


def test_periodic_artifacts_find_a_faint_hatch_and_its_period():
    torch = pytest.importorskip("torch")
    photos = _smooth_photos(torch)
    same = metrics.periodic_artifacts(photos, photos)
    assert same["excess_db"] == 0.0
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    # a diagonal 3 px hatch of 1/100 of the range: hard to see, the statistic's target
    hatch = 0.01 * torch.sin(2 * torch.pi * (xx + yy) / 3.0)
    r = metrics.periodic_artifacts([(p + hatch).clamp(0, 1) for p in photos], photos)
    assert r["excess_db"] > 10
    fy, fx = r["output_peak_frequency"]
    assert abs(abs(fy) - 1 / 3) < 0.02 and abs(abs(fx) - 1 / 3) < 0.02
    # broadband noise of 10x the amplitude is not a pattern; a pattern slower than max_period is
    # outside the band
    g = torch.Generator().manual_seed(1)
    noisy = [(p + 0.1 * torch.randn(p.shape, generator=g)).clamp(0, 1) for p in photos]
    assert abs(metrics.periodic_artifacts(noisy, photos)["excess_db"]) < 4
    slow = 0.05 * torch.sin(2 * torch.pi * xx / 8.0)
    assert metrics.periodic_artifacts([(p + slow).clamp(0, 1) for p in photos], photos)["excess_db"] < 4
    with pytest.raises(ValueError, match="odd neighbourhood"):
        metrics.periodic_artifacts(photos, photos, neighbourhood=4)
    with pytest.raises(ValueError, match="at least 36 px"):
        metrics.periodic_artifacts([torch.rand(3, 20, 20)], photos)


def test_contrast_ratio_is_one_for_the_photo_and_halves_with_its_contrast():
    torch = pytest.importorskip("torch")
    photos = _smooth_photos(torch)
    assert metrics.contrast_ratio(photos, photos) == pytest.approx(1.0)
    halved = [0.5 * p + 0.25 for p in photos]
    assert metrics.contrast_ratio(halved, photos) == pytest.approx(0.5)
    assert metrics.contrast_ratio([torch.full_like(p, 0.4) for p in photos], photos) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="a photo is flat"):
        metrics.contrast_ratio(photos[:1], [torch.full_like(photos[0], 0.3)])
    with pytest.raises(ValueError):
        metrics.contrast_ratio(photos[:2], photos[:1])


def test_budget_trend_reads_direction_and_crossing_off_a_log2_line():
    # 0.1 lower per doubling from 1.0 at step 100: bound 0.5 is met 5 doublings later (3200)
    steps, falling = [100, 200, 400, 800], [1.0, 0.9, 0.8, 0.7]
    t = metrics.budget_trend(steps, falling, 0.5, holds_below=True)
    assert not t["holds"] and t["toward"] and t["per_doubling"] == pytest.approx(-0.1)
    assert t["crossing"] == pytest.approx(3200)
    # the same path where a claim needs the value above the bound moves away: no crossing
    away = metrics.budget_trend(steps, falling, 0.9, holds_below=False)
    assert not away["holds"] and not away["toward"] and away["crossing"] is None
    # already holding at the last step: nothing to extrapolate
    assert metrics.budget_trend(steps, falling, 0.75, holds_below=True) == {
        "holds": True, "per_doubling": pytest.approx(-0.1), "toward": True, "crossing": None}
    # only the last three points set the line: a first point far off does not bend it
    t = metrics.budget_trend(steps, [9.0, 0.9, 0.8, 0.7], 0.5, holds_below=True)
    assert t["crossing"] == pytest.approx(3200)
    # too far beyond the last step to extrapolate (horizon x the last step)
    slow = metrics.budget_trend(steps, [1.0, 0.99, 0.98, 0.97], 0.5, holds_below=True, horizon=64)
    assert slow["toward"] and slow["crossing"] is None
    # a nearly flat line (a crossing at 2**1e6 steps) is too far, not an overflow
    flat = metrics.budget_trend([1, 2, 4], [1.0, 1.0, 1.0 - 1e-9], 0.5, holds_below=True)
    assert flat["toward"] and flat["crossing"] is None
    for bad, match in (([100], "at least 2"), ([200, 100, 400, 800], "increasing"),
                       ([0, 100, 200, 400], "positive")):
        with pytest.raises(ValueError, match=match):
            metrics.budget_trend(bad, falling[:len(bad)], 0.5, holds_below=True)
    with pytest.raises(ValueError, match="finite"):
        metrics.budget_trend(steps, [1.0, float("nan"), 0.8, 0.7], 0.5, holds_below=True)


def test_sweep_and_trend_notebooks_have_make_targets():
    assert [p.stem for p in pipeline.resolve_figure("sweep")] == ["in_sweep_bn_vs_in"]
    assert [p.stem for p in pipeline.resolve_figure("trends")] == ["in_trends_budget"]


def test_every_committed_generator_figure_reports_the_periodic_hatch():
    # issue 18, part 4: the hatch statistic beside every figure that shows a trained generator
    for name in ("in_fig3_padding", "in_fig4_gallery", "in_fig5_bn_vs_in", "in_fig6_resolution",
                 "cin_multistyle", "adain_arbitrary"):
        numbers = json.loads((paths.ROOT / "figures" / f"{name}.json").read_text())["numbers"]
        found = []

        def walk(node, key=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, k if "periodic" in k or "excess_db" in k else key)
            elif isinstance(node, (int, float)) and ("periodic" in key or key == "excess_db"):
                found.append(node)

        walk(numbers)
        assert found and all(math.isfinite(v) for v in found), name
