"""The explorer's logic (repro.explore) and its widgets, driven headless: no browser needed."""
import datetime
import io
import json
import shutil

import pytest
import torch
from PIL import Image

from repro import data, experiments, explore, images
from repro.inference import stylize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, data_ready):
    """One run of each kind at the smoke profile, in a private runs/ (about 20 s)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("REPRO_RUNS", str(tmp_path_factory.mktemp("runs")))
    said = []
    found = explore.runs_to_explore("smoke", log=said.append)
    yield found, said
    mp.undo()


@pytest.fixture
def runs_env(smoke_runs, monkeypatch):
    found, _ = smoke_runs
    monkeypatch.setenv("REPRO_RUNS", str(found[0].run.path.parent))
    return found


def by(found, kind, norm=None):
    return next(r for r in found if r.kind == kind and (norm is None or r.run.config.model.norm == norm))


def test_missing_kinds_are_trained_once_and_said(smoke_runs, runs_env):
    found, said = smoke_runs
    assert {r.kind for r in found} == set(explore.KINDS)
    assert said and "training the smoke profile's" in said[0]
    # IN sorts before BN among the single-style generators: the explorer opens on IN
    assert found[0].kind == "single" and found[0].run.config.model.norm == "instance"
    again = []
    assert [r.run.path for r in explore.runs_to_explore("smoke", log=again.append)] == [r.run.path for r in found]
    assert again == []


def test_unfinished_and_foreign_runs_are_not_listed(runs_env, tmp_path):
    src = runs_env[0].run.path
    for name, damage in (("unfinished", "done.json"), ("foreign", "config.json")):
        d = tmp_path / name
        shutil.copytree(src, d)
        if name == "unfinished":
            (d / damage).unlink()
        else:
            (d / damage).write_text(json.dumps({"model": {"arch": "transformer"}}))
    shutil.copytree(src, tmp_path / "whole")
    assert [r.run.name for r in explore.find_runs(tmp_path)] == ["whole"]
    assert explore.find_runs(tmp_path / "nowhere") == []


def test_counterpart_is_the_other_normalization_with_every_other_setting_equal(runs_env, tmp_path):
    inst, batch = by(runs_env, "single", "instance"), by(runs_env, "single", "batch")
    assert explore.counterpart(inst, runs_env).run.path == batch.run.path
    assert explore.counterpart(batch, runs_env).run.path == inst.run.path
    assert explore.counterpart(by(runs_env, "cin"), runs_env) is None
    # a BN run trained for more steps is not IN's twin
    other = tmp_path / batch.run.name
    shutil.copytree(batch.run.path, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["optim"]["steps"] += 1
    (other / "config.json").write_text(json.dumps(cfg))
    assert explore.counterpart(inst, [inst, explore.run_info(other)]) is None


def test_single_style_render_measures_what_the_heldout_evaluation_does(runs_env):
    inst = by(runs_env, "single", "instance")
    ex = explore.Explorer(runs_env)
    r = ex.render(inst, "karya", 64)
    x = images.load_image(data.content_path("karya"), size=64)
    assert torch.equal(r.image, stylize(inst.run.path, x, precision="fp32"))
    ref = experiments.heldout_losses(inst.run, [data.content_path("karya")], 64)
    assert r.style_loss == pytest.approx(ref["style"], rel=1e-4)
    assert r.photo_style_loss == pytest.approx(ref["content_image_style"], rel=1e-4)
    assert r.seconds > 0 and "ms | style loss" in r.caption()


def test_cin_style_and_mixing(runs_env):
    cin = by(runs_env, "cin")
    ex = explore.Explorer(runs_env)
    x = images.load_image(data.content_path("karya"), size=64)
    model = cin.run.load_model()
    for k in range(len(cin.styles)):
        r = ex.render(cin, x, 64, style=k)
        assert torch.allclose(r.image, stylize(model, x, style=k, precision="fp32"), atol=1e-6)
        assert r.painting == cin.styles[k]
    # all the weight on the second style is that style; half-half is neither
    full = ex.render(cin, x, 64, style=0, mix_with=1, mix=1.0).image
    assert torch.allclose(full, stylize(model, x, style=1, precision="fp32"), atol=1e-6)
    half = ex.render(cin, x, 64, style=0, mix_with=1, mix=0.5).image
    assert torch.allclose(half, stylize(model, x, style=[0.5, 0.5], precision="fp32"), atol=1e-6)
    with pytest.raises(ValueError, match="style indices"):
        ex.render(cin, x, 64, style=len(cin.styles))
    with pytest.raises(ValueError, match="mix must be in"):
        ex.render(cin, x, 64, style=0, mix_with=1, mix=1.5)


def test_adain_painting_alpha_colour_and_mix(runs_env):
    ada = by(runs_env, "adain")
    ex = explore.Explorer(runs_env)
    base = ex.render(ada, "karya", 64, painting="candy")
    assert base.painting == "candy"
    same = ex.render(ada, "karya", 64, painting="candy", painting2="udnie", mix2=0.0).image
    assert torch.equal(base.image, same)
    for kw in (dict(alpha=0.3), dict(preserve_color=True), dict(painting2="udnie", mix2=0.5),
               dict(painting="mosaic")):
        out = ex.render(ada, "karya", 64, **{"painting": "candy", **kw}).image
        assert not torch.allclose(out, base.image, atol=1e-3), kw
    # an uploaded painting is a tensor; its loss is measured against it
    s = images.load_image(data.style_path("candy"))
    up = ex.render(ada, "karya", 64, painting=s, painting_name="my.png")
    assert up.painting == "my.png" and torch.allclose(up.image, base.image, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        ex.render(ada, "karya", 64, alpha=-0.1)
    with pytest.raises(ValueError, match="size"):
        ex.render(ada, "karya", 0)


def _png(color=(200, 30, 30), size=(80, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_read_upload_decodes_with_the_image_checks():
    name, img = explore.read_upload(({"name": "red.png", "content": memoryview(_png())},))
    assert name == "red.png" and img.shape == (3, 60, 80) and img[0].mean() > 0.7
    with pytest.raises(ValueError, match="no file"):
        explore.read_upload(())
    with pytest.raises(ValueError, match="broken.jpg"):
        explore.read_upload(({"name": "broken.jpg", "content": b"not an image"},))


def _upload(name: str, content: bytes) -> tuple:
    # what ipywidgets 8's FileUpload holds after a browser upload
    return ({"name": name, "type": "image/png", "size": len(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc), "content": memoryview(content)},)


def test_widgets_update_on_every_change(runs_env):
    pytest.importorskip("ipywidgets")
    ex = explore.Explorer(runs_env)
    ui = explore.build_ui(ex, photo="karya", size=64)
    assert ui.renders == 1 and ui.result.value and "style loss" in ui.caption.value
    # IN opens with its BN twin beside it; the CIN and AdaIN controls are hidden
    assert ui.other_box.layout.display == "" and "batch" in ui.other_caption.value
    assert ui.cin_box.layout.display == "none" and ui.adain_box.layout.display == "none"
    first = ui.result.value
    ui.size.value = 96
    assert ui.renders == 2 and ui.result.value != first and ui.result.layout.width == "96px"
    ui.run.value = next(i for i, r in enumerate(ex.runs) if r.kind == "cin")
    assert ui.cin_box.layout.display == "" and ui.other_box.layout.display == "none"
    before = ui.result.value
    ui.mix.value = 1.0
    assert ui.result.value != before and not ui.status.value
    ui.run.value = next(i for i, r in enumerate(ex.runs) if r.kind == "adain")
    assert ui.adain_box.layout.display == "" and ui.cin_box.layout.display == "none"
    n = ui.renders
    ui.alpha.value = 0.5
    ui.preserve_color.value = True
    assert ui.renders == n + 2 and not ui.status.value
    # uploads: a photo becomes the chosen photo; a broken file is reported, not raised
    ui.photo_upload.value = _upload("red.png", _png())
    assert ui.photo.value == "red.png" and "red.png" in ui.photo.options and not ui.status.value
    n = ui.renders
    ui.painting_upload.value = _upload("bad.png", b"garbage")
    assert ui.renders == n and "bad.png" in ui.status.value
    # an uploaded painting can be mixed in too; the same name again with new pixels re-renders
    ui.painting_upload.value = _upload("mine.png", _png((20, 40, 220)))
    assert ui.painting.value == "mine.png" and "mine.png" in ui.painting2.options
    assert not ui.status.value
    ui.preserve_color.value = False  # (with it, two flat paintings recolour alike)
    n, before = ui.renders, ui.result.value
    ui.painting_upload.value = _upload("mine.png", _png((240, 200, 20)))
    assert ui.renders == n + 1 and ui.result.value != before
