import json
import math

import pytest
import torch

from bench import adain_trend
from repro import experiments
from repro.checkpoint import load_generator


def test_adain_trend_measures_the_longer_run_which_starts_as_the_profile_run(tmp_path, data_ready):
    assert adain_trend.main(["--quick", "--steps", "8", "--n-heldout", "1", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("adain-trend-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke" and res["profile_steps"] == 6 and res["steps"] == 8
    # the smoke profile's snapshots (1/4, 1/2 of 6 steps), its last step, and the longer run's end
    for style, r in res["styles"].items():
        assert sorted(r["ratio"], key=int) == ["2", "3", "6", "8"], style
        assert all(math.isfinite(v) and v > 0 for v in r["ratio"].values())
        assert isinstance(r["at_profile_budget"]["holds"], bool) and isinstance(r["at_steps"]["holds"], bool)
    # the longer run's snapshot at the profile's last step is the profile run's own generator
    longer = experiments.train_generator("smoke", arch="adain", overrides=res["overrides"])
    profile_run = experiments.train_generator("smoke", arch="adain")
    kept = load_generator(longer.snapshots()[6]).state_dict()
    own = load_generator(profile_run).state_dict()
    assert kept.keys() == own.keys()
    assert all(torch.equal(kept[k], own[k]) for k in own)
    # ... and training went on after it
    assert not torch.equal(load_generator(longer).state_dict()["decoder.0.weight"], own["decoder.0.weight"])


def test_adain_trend_refuses_a_shorter_run_and_no_photos(tmp_path):
    for bad in (["--steps", "6"], ["--n-heldout", "0"]):
        with pytest.raises(SystemExit):
            adain_trend.main(["--quick", *bad, "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_adain_style_ratios_refuses_a_generator_that_is_not_adain(tmp_path, data_ready):
    run = experiments.train_generator("smoke", arch="residual", norm="instance", style="candy")
    with pytest.raises(ValueError, match="not AdaIN"):
        experiments.adain_style_ratios(run, ["candy"], [], {})
