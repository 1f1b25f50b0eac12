"""The shape of the library (ARCHITECTURE.md): layers, tasks, the trainer's step, the Run
handle, and the shared helpers (one profile reader, one memory sampler, one README writer)."""
import ast
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from repro import config as config_mod
from repro import budget, data, experiments, paths, runs, tasks
from repro.atomic import replace_between
from repro.budget import PeakRSS
from repro.checkpoint import model_kwargs
from repro.models import build_generator
from repro.train import TrainingDiverged, resolve_precision, step_seed, train, training_step
from tiny import tiny

# bottom to top, as drawn in ARCHITECTURE.md
LAYERS = [
    ["paths", "atomic", "choices", "precision", "budget", "images", "data"],
    ["norms", "models", "vgg", "losses"],
    ["config"],
    ["checkpoint", "inference", "tiling", "gatys", "video", "export"],
    ["runs", "tasks", "train"],
    ["experiments", "figures", "metrics", "explore"],
    ["cli", "__main__", "__init__"],
]


def test_no_module_imports_a_layer_above_its_own():
    layer = {m: i for i, group in enumerate(LAYERS) for m in group}
    sources = sorted((paths.ROOT / "repro").rglob("*.py"))
    mine = {f.relative_to(paths.ROOT / "repro").parts[0].removesuffix(".py") for f in sources}
    assert mine <= set(layer), f"modules missing from ARCHITECTURE.md's layers: {mine - set(layer)}"
    upward = []
    for f in sources:
        me = f.relative_to(paths.ROOT / "repro").parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
                parts = node.module.split(".")
                for dep in parts[1:2] or [a.name for a in node.names]:
                    if layer.get(dep, -1) > layer[me]:
                        upward.append(f"{f.relative_to(paths.ROOT)} imports repro.{dep}")
    assert not upward, upward


def test_make_task_picks_the_task_each_config_trains(data_ready):
    random_vgg = ["loss.vgg_weights=random"]
    single = tasks.make_task(config_mod.load_config("smoke", random_vgg), train=False)
    assert type(single) is tasks.SingleStyle and single.styles() == [None] and single.photos is None
    cin = tasks.make_task(experiments.generator_config(
        "smoke", norm="conditional_instance", style=["candy", "mosaic"], overrides=random_vgg), train=False)
    assert type(cin) is tasks.ConditionalStyles and cin.styles() == [0, 1]
    adain = tasks.make_task(experiments.generator_config("smoke", arch="adain"), train=False)
    assert type(adain) is tasks.ArbitraryStyle and len(adain.styles()) == 3 and adain.paintings is None
    g = torch.Generator().manual_seed(0)
    trainable = tasks.make_task(experiments.generator_config(
        "smoke", norm="conditional_instance", style=["candy", "mosaic"], overrides=random_vgg))
    batch = trainable.sample(3, g)
    assert batch["x"].shape == (3, 3, 48, 48) and set(batch["idx"].tolist()) <= {0, 1}


def test_training_step_is_the_step_the_trainer_logs(tmp_path, data_ready):
    cfg = tiny("optim.steps=1")
    run = train(cfg, runs_root=tmp_path, progress=False)
    # step 1 by hand, seeded as the trainer seeds it
    torch.manual_seed(cfg.train.seed)
    model = build_generator(**model_kwargs(cfg.model))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    task = tasks.make_task(cfg)
    seed = step_seed(cfg.train.seed, 1, 0)
    torch.manual_seed(seed)
    batch = task.sample(cfg.optim.batch_size, torch.Generator().manual_seed(seed))
    terms = training_step(model, task, optimizer, batch, resolve_precision(cfg.train.precision, torch.device("cpu")))
    assert float(terms["total"].detach()) == runs.metrics(run)[0]["total"]
    trained = runs.Run(run).load_model().state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_training_step_refuses_a_non_finite_loss_before_touching_the_weights():
    model = torch.nn.Conv2d(3, 3, 1)
    before = [p.detach().clone() for p in model.parameters()]

    class NaNTask:
        device = torch.device("cpu")

        def loss(self, model, batch):
            return {"total": model(batch["x"]).sum() * float("nan")}

    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        training_step(model, NaNTask(), torch.optim.Adam(model.parameters()), {"x": torch.rand(1, 3, 4, 4)}, None)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_run_handle_is_a_path_with_config_logs_and_model(tmp_path, data_ready):
    path = train(tiny("optim.steps=2"), runs_root=tmp_path, progress=False)
    run = runs.Run(str(path))  # a string works as well as a Path
    assert os.fspath(run) == str(run) == str(path) and Path(run) == path and run.name == path.name
    assert (run / "model.pt").is_file()
    assert run.config == config_mod.from_dict(config_mod.to_dict(tiny("optim.steps=2")))
    assert run.metrics() == runs.metrics(path) and [r["step"] for r in run.metrics()] == [1, 2]
    assert run.evals() == runs.evals(path) and run.summary()["steps"] == 2
    model = run.load_model()
    assert not model.training
    # functions that take a run directory take the handle
    assert experiments.stylize_paths(run, [data.content_path("karya")], 32)[0].shape[-2] == 32


def _touch_64mib():
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched, freed again at once
    del x


def test_peak_rss_sees_an_allocation_inside_the_block():
    # a sampling interval far longer than the block: only the kernel's high-water mark sees it
    # (a busy machine could starve the sampler just so; CI once saw 28 KB of 64 MiB)
    with PeakRSS(interval=60) as memory:
        _touch_64mib()
    assert memory.peak - memory.start > 48 * 2**20


def test_peak_rss_nested_block_keeps_the_outer_peak():
    with PeakRSS(interval=60) as outer:
        _touch_64mib()
        with PeakRSS(interval=60) as inner:  # resets the high-water mark
            pass
    assert outer.peak - outer.start > 48 * 2**20
    assert inner.peak - inner.start < 16 * 2**20


def test_peak_rss_samples_where_the_kernel_mark_cannot_be_reset(monkeypatch):
    monkeypatch.setattr(budget, "_reset_kernel_peak", lambda: False)
    with PeakRSS(interval=0.0005) as memory:
        x = torch.ones(64 * 2**20 // 4)
        time.sleep(0.2)  # held long enough for the sampler
        del x
    assert not memory._kernel and memory.peak - memory.start > 48 * 2**20


def test_profiles_are_read_once_per_version_and_callers_get_a_copy(tmp_path):
    profile = tmp_path / "mine.yaml"
    shutil.copy(config_mod.profile_path("smoke"), profile)
    doc = config_mod.read_profile(profile)
    doc["train_defaults"]["optim"]["steps"] = 999  # a caller's change stays its own
    assert config_mod.load_config(profile).optim.steps == 6
    profile.write_text(profile.read_text().replace("steps: 6", "steps: 7"))
    assert config_mod.load_config(profile).optim.steps == 7  # an edited file is read again
    assert config_mod.figures_dir(profile) == paths.ROOT / "build" / "figures" / "smoke"


def test_replace_between_rewrites_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- a -->\nold\n<!-- b -->\noutro\n")
    replace_between(readme, "<!-- a -->", "<!-- b -->", "\nnew\n")
    assert readme.read_text() == "intro\n<!-- a -->\nnew\n<!-- b -->\noutro\n"
    with pytest.raises(ValueError, match="README.md has no <!-- x -->"):
        replace_between(readme, "<!-- x -->", "<!-- b -->", "")
