import pytest
import torch

from repro import data, experiments, runs

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
    m = experiments.measure_stylize(run, data.content_path("karya"), size=40, threads=1)
    assert m["shape"] == [3, 40, 40] and m["seconds"] > 0 and m["extra_bytes"] >= 0


def test_profile_arch_defaults_apply_per_architecture():
    from repro.config import profile_section

    section = profile_section("cpu", "arch_defaults")
    assert section["residual"]["model"]["width"] == 0.5
    res = experiments.generator_config("cpu", arch="residual")
    ms = experiments.generator_config("cpu", arch="multiscale")
    assert res.model.width == 0.5 and ms.model.width == 1.0
    # explicit overrides still win
    assert experiments.generator_config("cpu", arch="residual", overrides=["model.width=0.75"]).model.width == 0.75
