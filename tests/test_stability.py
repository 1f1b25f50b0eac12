"""Issue 18, part 1: the collapse test and the equalized output conv that keeps training off it."""
import json

import pytest

from bench import stability
from repro import metrics


def test_collapse_test_is_a_flat_image_or_no_progress():
    assert not metrics.collapsed(contrast=0.9, style_progress=0.2)
    assert metrics.collapsed(contrast=metrics.COLLAPSE_CONTRAST - 0.01, style_progress=0.2)
    assert metrics.collapsed(contrast=0.9, style_progress=metrics.COLLAPSE_PROGRESS + 0.01)


def test_equalized_output_trains_where_the_plain_one_collapses(data_ready):
    """At style weight 1000 and lr 5e-3 the plain output conv saturates the sigmoid within 20
    steps and the held-out style loss ends above the untrained generator's; the equalized one
    brings it down (the same seed, data and steps)."""
    base = ["model.width=0.25", "optim.lr=0.005", "loss.content_layers=[relu3_1]",
            "loss.style_weight=1000", "data.image_size=48"]
    plain = stability.train_point("smoke", base + ["model.equalized_output=false"], steps=20)
    eq = stability.train_point("smoke", base + ["model.equalized_output=true"], steps=20)
    assert plain["collapsed"] and plain["style_progress"] > 1.0
    assert not eq["collapsed"] and eq["style_progress"] < 0.5
    # the first Adam step moves the plain generator's pre-sigmoid output by ~1, 2.5x the other's
    assert plain["output_step"] > 2 * eq["output_step"]
    assert plain["saturated"] > 2 * eq["saturated"]


def test_stability_study_quick_run_writes_every_point(tmp_path, data_ready):
    assert stability.main(["--quick", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("stability-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke" and res["steps"] == 2
    assert [p["overrides"][-1] for p in res["points"]] == ["model.equalized_output=false",
                                                         "model.equalized_output=true"]
    for p in res["points"]:
        assert {"contrast", "style_progress", "saturated", "output_step", "collapsed"} <= set(p)
        assert p["collapsed"] == metrics.collapsed(p["contrast"], p["style_progress"])
    with pytest.raises(SystemExit):
        stability.main(["--outputs", "plain,tanh", "--out", str(tmp_path)])
