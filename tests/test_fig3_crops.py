import json
import math

import pytest
import torch

from bench import fig3_crops
from repro import data, experiments


class _Photo(torch.nn.Module):
    """Gives the photo back, or the photo with stripes parallel to every edge (a frame)."""

    def __init__(self, frame: bool):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.frame = frame

    def forward(self, x, style=None):
        y = x.clone()
        if self.frame:
            y[..., 0:8:2, :] = 0
            y[..., -8::2, :] = 0
            y[..., :, 0:8:2] = 0
            y[..., :, -8::2] = 0
        return y + self.w


def test_border_excess_is_the_outputs_score_over_the_photos_own(data_ready):
    paths = data.content_paths("test")[:2]
    ex = experiments.border_excess(paths, 64, 8, {"photo": _Photo(False), "frame": _Photo(True)})
    assert ex["photo"] == 0.0          # the photo's own frame-like structure is not counted
    assert ex["frame"] > 0.5           # a drawn frame is, above in_fig3_padding's threshold


def test_fig3_crops_quick_run_trains_each_variant_at_each_crop(tmp_path, data_ready):
    assert fig3_crops.main(["--quick", "--crops", "32", "48", "--n-heldout", "2", "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("fig3-crops-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke" and sorted(res["crops"]) == ["32", "48"]
    names = set()
    for crop, by_variant in res["crops"].items():
        assert sorted(by_variant) == sorted(fig3_crops.VARIANTS)
        for name, r in by_variant.items():
            assert f"data.image_size={crop}" in r["overrides"]
            # the smoke profile keeps snapshots at 1/4 and 1/2 of the steps, then the end
            assert sorted(r["border_excess"], key=int) == ["2", "4", "8"]
            assert all(math.isfinite(v) for v in r["border_excess"].values())
            bound, below = fig3_crops.CLAIMS[name]
            last = r["border_excess"]["8"]
            assert r["trend"]["holds"] == (last <= bound if below else last > bound)
            assert math.isfinite(r["hatch_db"])
            names.add(r["run"])
            # the run trained at that crop
            padding, norm = fig3_crops.VARIANTS[name]
            run = experiments.train_generator("smoke", arch="multiscale", norm=norm, padding=padding,
                                              style="starry_night", overrides=r["overrides"], progress=False)
            assert run.path.name == r["run"] and run.config.data.image_size == int(crop)
    assert len(names) == 6   # six different runs: no crop reuses another's


def test_fig3_crops_refuses_a_crop_larger_than_the_photos_and_a_bad_count(tmp_path, data_ready):
    for bad in (["--crops", "4096"], ["--n-heldout", "0"], ["--n-heldout", "13"], ["--only", "zero + GN"]):
        with pytest.raises(SystemExit):
            fig3_crops.main(["--quick", *bad, "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())
