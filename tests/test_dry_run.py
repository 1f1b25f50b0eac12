"""Dry runs (``<profile>-dry``): every figure notebook on a profile's code path in seconds, with a
random VGG-19 stand-in where the profile downloads weights; never written where real figures go."""
import json
from pathlib import Path

import pytest
import yaml

from repro import config, experiments, paths
from repro.figures import pipeline


def test_dry_run_profile_shrinks_every_cost_and_stands_in_random_vgg_for_the_download():
    real, dry = config.read_profile("paper"), config.read_profile("paper-dry")
    assert real["train_defaults"]["loss"]["vgg_weights"] == "imagenet"
    assert dry["train_defaults"]["loss"]["vgg_weights"] == config.RANDOM_STAND_IN
    assert dry["arch_defaults"]["adain"]["model"]["encoder_weights"] == config.RANDOM_STAND_IN
    assert config.gatys_settings("paper")["vgg_weights"] == "imagenet"
    assert config.gatys_settings("paper-dry")["vgg_weights"] == config.RANDOM_STAND_IN
    # the deep taps stay: the dry run exercises the paper's layers, not the cpu ones
    assert config.gatys_settings("paper-dry")["style_layers"][-1] == "relu5_1"
    for arch in ("residual", "multiscale", "adain"):
        cfg = experiments.generator_config("paper-dry", arch=arch)
        assert cfg.optim.steps <= 4 and cfg.data.image_size <= 32 and cfg.data.test_size <= 48
        assert cfg.train.device == "cpu" and not cfg.train.compile
    assert experiments.generator_config("paper-dry", arch="adain").model.encoder_layer == "relu4_1"
    # a notebook's own training overrides cannot undo the shrink
    cin = dry["notebooks"]["cin_multistyle"]
    assert real["notebooks"]["cin_multistyle"]["train_overrides"] and cin["train_overrides"] == []
    # nor another figure's, which a notebook passes on to reuse its run (in_quality_time's CIN)
    assert real["notebooks"]["in_quality_time"]["cin_overrides"]
    assert dry["notebooks"]["in_quality_time"]["cin_overrides"] == []
    assert dry["notebooks"]["in_fig6_resolution"]["sizes"] == config.DRY_NOTEBOOK["sizes"]
    assert dry["notebooks"]["in_fig1_gatys"]["steps"] == config.DRY_NOTEBOOK["steps"]
    # the sweep: two style weights, one seed, held-out photos at the dry size
    sweep = dry["notebooks"]["in_sweep_bn_vs_in"]
    assert len(real["notebooks"]["in_sweep_bn_vs_in"]["style_weights"]) == 6
    assert (sweep["style_weights"], sweep["seeds"], sweep["test_size"]) == ([3.0, 1000.0], [0], 48)
    # local weights need no stand-in; a dry run is named as one
    assert config.load_config("gpu-dry").loss.vgg_weights == "normalised"
    assert config.load_config("paper-dry").name == "paper-dry"
    # where a dry run writes, and that it asserts nothing
    assert config.figures_dir("paper-dry") == paths.ROOT / "build" / "figures" / "dry-run" / "paper"
    assert not config.asserts_claims("paper-dry") and not config.refreshes_readme("paper-dry")
    assert config.dry_run_of("paper-dry") == "paper" and config.dry_run_of("paper") is None


def test_a_dry_run_never_downloads_whatever_a_notebook_or_a_flat_yaml_says(tmp_path, monkeypatch):
    doc = config.read_profile("cpu")
    doc["notebooks"]["cin_multistyle"]["train_overrides"] += ["loss.vgg_weights=imagenet"]
    profile = tmp_path / "mine.yaml"
    profile.write_text(yaml.safe_dump(doc))
    dry = config.read_profile(f"{profile}-dry")
    assert dry["notebooks"]["cin_multistyle"]["train_overrides"] == ["loss.vgg_weights=random"]
    assert config.figures_dir(f"{profile}-dry") == paths.ROOT / "build" / "figures" / "dry-run" / "mine"
    # a flat YAML (training settings only) keeps them, shrunk
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump({"model": {"width": 0.75}, "loss": {"vgg_weights": "imagenet"}}))
    cfg = config.load_config(f"{flat}-dry")
    assert cfg.model.width == 0.75 and cfg.loss.vgg_weights == "random" and cfg.optim.steps <= 4
    # without the local file, "auto" would mean a download: the stand-in instead
    monkeypatch.setattr(paths, "normalised_vgg19_path", lambda: tmp_path / "absent.pth")
    assert config.load_config("cpu-dry").loss.vgg_weights == "random"
    assert config.gatys_settings("cpu-dry")["vgg_weights"] == "random"


def test_a_real_profile_that_names_the_random_stand_in_is_refused_before_any_notebook(tmp_path):
    doc = config.read_profile("cpu")
    doc["arch_defaults"]["adain"]["model"]["encoder_weights"] = "random"
    profile = tmp_path / "mine.yaml"
    profile.write_text(yaml.safe_dump(doc))
    with pytest.raises(config.ConfigError, match=r"arch_defaults\.adain\.model\.encoder_weights"):
        pipeline.run_figures(str(profile), log=lambda *a: pytest.fail("a notebook ran"))
    doc = config.read_profile("cpu")
    doc["gatys"] = {"vgg_weights": "random"}
    profile.write_text(yaml.safe_dump(doc))
    with pytest.raises(config.ConfigError, match=r"gatys\.vgg_weights"):
        config.check_figure_profile(str(profile))
    doc = config.read_profile("cpu")
    doc["notebooks"]["in_fig3_padding"]["train_overrides"] += ["loss.vgg_weights=random"]
    profile.write_text(yaml.safe_dump(doc))
    with pytest.raises(config.ConfigError, match=r"notebooks\.in_fig3_padding\.train_overrides"):
        config.check_figure_profile(str(profile))
    profile.write_text(yaml.safe_dump({"loss": {"vgg_weights": "random"}}))  # flat: all training
    with pytest.raises(config.ConfigError, match=r"train_defaults\.loss\.vgg_weights"):
        config.check_figure_profile(str(profile))
    for name in ("smoke", "cpu", "gpu", "paper", "paper-dry"):
        config.check_figure_profile(name)  # the shipped profiles are clean


def test_a_relative_yaml_path_reaches_the_notebooks_as_an_absolute_one(monkeypatch):
    # papermill runs the notebooks in notebooks/, where configs/paper.yaml does not resolve
    monkeypatch.chdir(paths.ROOT)
    for given, dry in (("configs/paper.yaml", False), ("configs/paper.yaml-dry", True)):
        absolute = pipeline._absolute(given)
        assert config.is_dry_run(absolute) is dry
        base = config.dry_run_of(absolute) or absolute
        assert Path(base).is_absolute() and Path(base) == paths.ROOT / "configs" / "paper.yaml"
    assert pipeline._absolute("paper-dry") == "paper-dry"


def test_gatys_settings_reject_unknown_keys_and_weights(tmp_path):
    doc = config.read_profile("cpu")
    profile = tmp_path / "mine.yaml"
    for gatys, key in (({"content_layer": ["relu2_2"]}, "gatys.content_layer"),
                       ({"vgg_weights": "caffe"}, "gatys.vgg_weights")):
        profile.write_text(yaml.safe_dump({**doc, "gatys": gatys}))
        with pytest.raises(config.ConfigError, match=key):
            config.gatys_settings(str(profile))


@pytest.mark.slow
@pytest.mark.dry_run
@pytest.mark.parametrize("profile", ["paper", "gpu"])
def test_every_figure_notebook_runs_on_the_profile_code_path(profile, data_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RUNS", str(tmp_path / "runs"))  # the notebooks' kernels inherit it
    figures_before = sorted((p.name, p.stat().st_mtime_ns) for p in (paths.ROOT / "figures").rglob("*"))
    timings = pipeline.run_figures(f"{profile}-dry", log=lambda *a: None)
    assert set(timings) == {nb.stem for nb in pipeline.figure_notebooks()}
    out = config.figures_dir(f"{profile}-dry")
    records = {}
    for name in timings:
        rec = json.loads((out / f"{name}.json").read_text())
        assert rec["dry_run"] is True and rec["title"].startswith("DRY RUN")
        assert rec["profile"] == f"{profile}-dry" and (out / f"{name}.png").is_file()
        records[name] = rec
    assert (out / "REPORT.md").read_text().count("**DRY RUN**") == 1
    # nothing a dry run does reaches the committed figures
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (paths.ROOT / "figures").rglob("*")) == figures_before
    runs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/config.json")]
    assert runs and all(r["optim"]["steps"] <= 4 for r in runs)
    if profile == "paper":
        # the deep taps, the relu4_1 AdaIN decoder and the random stand-in were all exercised
        adain = records["adain_arbitrary"]["params"]["train_config"]
        assert adain["model"]["encoder_layer"] == "relu4_1" and adain["model"]["encoder_weights"] == "random"
        assert records["in_fig1_gatys"]["params"]["content_layers"] == ["relu4_2"]
        assert records["in_fig1_gatys"]["params"]["style_layers"][-1] == "relu5_1"
        assert {r["loss"]["vgg_weights"] for r in runs} == {"random"}
        assert any(r["loss"]["content_layers"] == ["relu4_2"] for r in runs)
    else:
        assert {r["data"]["test_size"] for r in runs} == {48}
