import json
import math

import pytest

from bench import hatch


def test_hatch_study_quick_run_writes_every_variant(tmp_path, data_ready):
    assert hatch.main(["--quick", "--n-heldout", "2", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("hatch-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke"
    assert sorted(res["variants"]) == ["plain output conv", "profile default"]
    for name, r in res["variants"].items():
        assert math.isfinite(r["excess_db"]) and r["style"] > 0 and r["content"] > 0
        assert r["overrides"][:len(hatch.VARIANTS[name])] == hatch.VARIANTS[name]
        assert isinstance(r["fix"], bool)
        # the decoder from its first upsampling to the output conv, each layer a finite dB
        assert "Upsample" in r["decoder"][0]["layer"] and "Conv2d" in r["decoder"][-1]["layer"]
        assert all(math.isfinite(d["period2_db"]) for d in r["decoder"])
        assert len(r["vgg_phase_style"]) == 4 and all(v > 0 for v in r["vgg_phase_style"])
    # the two variants are different generators (the profile default has the equalized output conv)
    assert res["variants"]["profile default"]["run"] != res["variants"]["plain output conv"]["run"]


def test_hatch_study_rejects_unknown_variant_and_bad_count(tmp_path, data_ready):
    with pytest.raises(SystemExit):
        hatch.main(["--only", "blur", "--out", str(tmp_path)])
    for n in ("0", "13"):   # the test split has 12 photos
        with pytest.raises(SystemExit):
            hatch.main(["--n-heldout", n, "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_hatch_trend_measures_every_snapshot_of_one_longer_run(tmp_path, data_ready):
    assert hatch.main(["--quick", "--trend", "8", "--n-heldout", "2", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("hatch-trend-*.json")
    r = json.loads(out.read_text())["trend"]
    # the smoke profile keeps snapshots at 1/4 and 1/2 of the steps, then the end
    assert sorted(r["steps"], key=int) == ["2", "4", "8"]
    assert "optim.steps=8" in r["overrides"]
    assert all(math.isfinite(v["excess_db"]) and v["style"] > 0 for v in r["steps"].values())
    # the snapshots are different generators
    assert len({v["style"] for v in r["steps"].values()}) == 3
    for bad in (["--trend", "4"], ["--trend", "16", "--only", "tv 500"]):
        with pytest.raises(SystemExit):
            hatch.main([*bad, "--out", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()


def test_a_variant_that_trains_on_other_loss_terms_is_judged_by_the_default_loss(tmp_path, data_ready):
    from repro import data, experiments

    name = "style without relu1_1"
    assert hatch.main(["--quick", "--n-heldout", "2", "--only", "profile default", name,
                       "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("hatch-*.json")
    r = json.loads(out.read_text())["variants"]
    extra = ["optim.steps=4", "train.eval_every=0", "train.checkpoint_every=0"]
    kw = dict(arch="residual", norm="instance", style="starry_night", progress=False)
    default = experiments.train_generator("smoke", overrides=extra, **kw)
    variant = experiments.train_generator("smoke", overrides=hatch.VARIANTS[name] + extra, **kw)
    assert variant.path.name == r[name]["run"] and variant.config.loss.style_layers == ["relu2_1", "relu3_1"]
    heldout = data.content_paths("test")[:2]
    size = variant.config.data.test_size
    judged = experiments.heldout_losses(default, heldout, size, model=variant.load_model("cpu"))
    own = experiments.heldout_losses(variant, heldout, size)
    assert r[name]["style"] == pytest.approx(judged["style"], rel=1e-6)
    # its own loss leaves relu1_1 out: a different (lower) number the bench must not report
    assert own["style"] < judged["style"] * 0.99
