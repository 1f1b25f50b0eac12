import statistics
import pytest
import torch

from repro import data, experiments, metrics, runs
from repro.config import ConfigError, to_dict

FAST = ["optim.steps=2", "train.eval_every=0", "train.checkpoint_every=0", "data.n_train=2",
        "loss.vgg_weights=random", "data.test_images=[]"]


@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch, data_ready):
    monkeypatch.setenv("REPRO_RUNS", str(tmp_path / "runs"))


def test_figures_share_a_run_when_their_choices_agree():
    a = experiments.generator_config("smoke", arch="residual", norm="instance", style="candy", overrides=FAST)
    b = experiments.generator_config("smoke", norm="instance", style="candy", overrides=FAST)
    c = experiments.generator_config("smoke", arch="residual", norm="batch", style="candy", overrides=FAST)
    assert a.name == "smoke-residual-instance-reflect-candy"
    assert runs.run_dir(a) == runs.run_dir(b) != runs.run_dir(c)


def test_heldout_losses_bn_eval_and_train_modes_differ():
    run = experiments.train_generator("smoke", norm="batch", overrides=FAST, progress=False)
    photos = data.content_paths("test")[:2]
    ev = experiments.heldout_losses(run, photos, size=48)
    tr = experiments.heldout_losses(run, photos, size=48, bn_mode="train")
    assert len(ev["per_image"]["style"]) == 2 and ev["content_image_style"] > 0
    assert ev["style"] != pytest.approx(tr["style"], rel=1e-6)
    assert ev["content_image_style"] == pytest.approx(tr["content_image_style"])


def test_measure_stylize_runs_in_a_fresh_process():
    run = experiments.train_generator("smoke", overrides=FAST, progress=False)
    m = experiments.measure_stylize(run, data.content_path("karya"), size=40, threads=1, repeats=3)
    assert m["shape"] == [3, 40, 40] and m["seconds"] > 0 and m["extra_bytes"] >= 0
    # the time is the median of the repeated calls after the first call at this size
    assert len(m["times"]) == 3 and m["seconds"] == statistics.median(m["times"])
    assert m["first_seconds"] > 0
    for bad in (0, 2.5, "3", True):
        with pytest.raises(ValueError, match="repeats"):
            experiments.measure_stylize(run, data.content_path("karya"), size=40, repeats=bad)


def test_profile_arch_defaults_apply_per_architecture():
    from repro.config import profile_section

    section = profile_section("cpu", "arch_defaults")
    assert section["residual"]["model"]["width"] == 0.5
    res = experiments.generator_config("cpu", arch="residual")
    ms = experiments.generator_config("cpu", arch="multiscale")
    assert res.model.width == 0.5 and ms.model.width == 1.0
    # explicit overrides still win
    assert experiments.generator_config("cpu", arch="residual", overrides=["model.width=0.75"]).model.width == 0.75
    # issue 18, part 1: every profile trains the residual generator with the equalized output conv
    # (and the multi-scale one with the plain conv its figures were measured with)
    for profile in ("smoke", "cpu", "gpu", "paper"):
        assert experiments.generator_config(profile, arch="residual").model.equalized_output is True, profile
        assert experiments.generator_config(profile, arch="multiscale").model.equalized_output is False, profile
        assert experiments.generator_config(profile, arch="residual", norm="conditional_instance",
                                            style=["candy", "mosaic"]).model.equalized_output is True, profile
    plain = experiments.generator_config("cpu", arch="residual", overrides=["model.equalized_output=false"])
    assert runs.config_hash(plain) != runs.config_hash(res)


def test_transform_and_seed_appear_in_the_run_name_and_separate_the_runs():
    base = experiments.generator_config("smoke", norm="batch", overrides=FAST)
    eq = experiments.generator_config("smoke", norm="batch", overrides=FAST + ["data.transform=equalize"])
    s1 = experiments.generator_config("smoke", norm="batch", overrides=FAST + ["train.seed=1"])
    assert eq.name == base.name + "-equalize" and s1.name == base.name + "-seed1"
    assert len({runs.run_dir(c) for c in (base, eq, s1)}) == 3


def test_several_styles_make_a_conditional_in_run_measured_per_style():
    cfg = experiments.generator_config("smoke", norm="conditional_instance", style=["candy", "mosaic"],
                                       overrides=FAST)
    assert cfg.model.n_styles == 2 and cfg.name == "smoke-residual-conditional_instance-reflect-2styles"
    run = experiments.train_generator("smoke", norm="conditional_instance", style=["candy", "mosaic"],
                                      overrides=FAST, progress=False)
    photos = data.content_paths("test")[:1]
    a = experiments.heldout_losses(run, photos, size=48, style=0)
    b = experiments.heldout_losses(run, photos, size=48, style=1)
    # each style is measured against its own painting
    assert a["content_image_style"] != pytest.approx(b["content_image_style"], rel=1e-3)
    with pytest.raises(ValueError, match="give style="):
        experiments.heldout_losses(run, photos, size=48)
    with pytest.raises(ValueError, match="style=2"):
        experiments.heldout_losses(run, photos, size=48, style=2)


def test_adain_config_comes_from_the_profile_arch_defaults():
    cfg = experiments.generator_config("smoke", arch="adain")
    assert cfg.model.norm == "none" and cfg.loss.style_stat == "meanstd"
    assert cfg.loss.content_layers == [cfg.model.encoder_layer] and len(cfg.data.style) > 1
    assert cfg.name == f"smoke-adain-{cfg.model.encoder_layer}-{len(cfg.data.style)}styles"
    cpu = experiments.generator_config("cpu", arch="adain")
    held_out = {"candy", "the_scream", "starry_night", "delaunay_portrait_de_metzinger"}
    assert not held_out & set(cpu.data.style)  # the styles the figures show stay unseen


def test_collapse_test_scores_a_trained_generator_against_its_untrained_self():
    run = experiments.train_generator("smoke", norm="instance", overrides=FAST, progress=False)
    a = experiments.initial_generator(run)
    assert not a.training
    # the generator the trainer started from: a run whose steps are too small to move its
    # weights (lr 1e-30) ends there, and the same seed's other runs start there too
    still = experiments.train_generator("smoke", norm="instance", overrides=[*FAST, "optim.lr=1e-30"],
                                        progress=False)
    kept = still.load_model(torch.device("cpu")).state_dict()
    assert all(torch.allclose(kept[k], v, rtol=0, atol=1e-20) for k, v in a.state_dict().items())
    assert any(not torch.allclose(kept[k], v, rtol=0, atol=1e-20)
               for k, v in run.load_model(torch.device("cpu")).state_dict().items())
    photos = data.content_paths("test")[:2]
    before = experiments.heldout_losses(run, photos, 48, model=a)["style"]
    assert before != pytest.approx(experiments.heldout_losses(run, photos, 48)["style"], rel=1e-6)
    res = experiments.collapse_test(run, photos, 48)
    assert res["collapsed"] == metrics.collapsed(res["contrast"], res["style_progress"])
    assert res["contrast"] >= 0 and res["style_progress"] > 0


def test_model_deviations_name_the_equalized_output_conv_and_the_resampling_where_they_apply():
    on = experiments.generator_config("smoke", arch="residual")
    upsample, equalized = experiments.model_deviations(on)
    assert "equalized learning rate" in equalized and "residual" in equalized
    assert "nearest x2" in upsample and "fractionally strided" in upsample
    # a run's saved config (a dict) reads the same
    assert experiments.model_deviations(to_dict(on)) == [upsample, equalized]
    assert experiments.model_deviations(experiments.generator_config(
        "smoke", arch="residual", overrides=["model.equalized_output=false"])) == [upsample]
    # Johnson et al.'s own upsampling is no deviation; BlurPool downsampling is one
    assert experiments.model_deviations(experiments.generator_config(
        "smoke", arch="residual", overrides=["model.equalized_output=false", "model.upsample=transposed"])) == []
    blurred = experiments.model_deviations(experiments.generator_config(
        "smoke", arch="residual", overrides=["model.downsample=antialiased"]))
    assert len(blurred) == 3 and "BlurPool" in blurred[1]
    assert experiments.model_deviations(experiments.generator_config("smoke", arch="multiscale")) == []
    assert experiments.model_deviations(experiments.generator_config("smoke", arch="adain")) == []


@pytest.mark.parametrize("arch", ["multiscale", "adain"])
def test_residual_only_upsampling_is_refused_elsewhere(arch):
    with pytest.raises(ConfigError, match=f"model.upsample=bilinear.*residual generator only.*model.arch={arch}"):
        experiments.generator_config("smoke", arch=arch, overrides=["model.upsample=bilinear"])
    # model.downsample is an arch-only key: ignored elsewhere, so a profile may set it for all
    experiments.generator_config("smoke", arch=arch, overrides=["model.downsample=antialiased"])
