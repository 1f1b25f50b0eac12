"""The trainer: learning, exact resume, run cache, checkpoints, stylize, distributed, CLI errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from repro import config as config_mod
from repro import runs
from repro.checkpoint import CheckpointError, load_checkpoint, load_generator
from repro.inference import stylize
from repro.train import TrainingDiverged, train
from tiny import TINY, tiny
from tiny import cli as _cli

@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch, data_ready):
    monkeypatch.setenv("REPRO_RUNS", str(tmp_path / "runs"))


def _loss_rows(run):
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in runs.metrics(run)]


def test_a_few_steps_lower_the_loss():
    run = train(tiny("optim.steps=24", "optim.lr=0.01", "train.checkpoint_every=0"), progress=False)
    totals = [r["total"] for r in runs.metrics(run)]
    assert len(totals) == 24
    assert sum(totals[-4:]) / 4 < 0.7 * sum(totals[:4]) / 4


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    cfg = tiny()
    ref = train(cfg, runs_root=tmp_path / "a", progress=False)

    class Killed(Exception):
        pass

    def kill(step, logs):
        if step == 5:  # after the step-4 checkpoint, with step 5 already logged
            raise Killed

    with pytest.raises(Killed):
        train(cfg, runs_root=tmp_path / "b", progress=False, callback=kill)
    interrupted = runs.run_dir(cfg, tmp_path / "b")
    assert not runs.is_done(interrupted)
    assert load_checkpoint(interrupted / "checkpoint.pt")["step"] == 4
    # a torn last line, as a kill in the middle of a write leaves
    with open(interrupted / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "tot')
    resumed = train(cfg, runs_root=tmp_path / "b", progress=False)

    a, b = load_checkpoint(ref / "model.pt"), load_checkpoint(resumed / "model.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k  # bit for bit on the CPU
    assert _loss_rows(ref) == _loss_rows(resumed)
    assert [r["step"] for r in runs.metrics(resumed)] == [1, 2, 3, 4, 5, 6]
    assert runs.evals(ref) == runs.evals(resumed)
    # the snapshots written before the kill and after the resume are those of the uninterrupted run
    snaps_a, snaps_b = runs.Run(ref).snapshots(), runs.Run(resumed).snapshots()
    assert sorted(snaps_a) == sorted(snaps_b) == [*config_mod.snapshot_steps(cfg), 6]
    for step in config_mod.snapshot_steps(cfg):
        a, b = load_checkpoint(snaps_a[step]), load_checkpoint(snaps_b[step])
        assert a["step"] == b["step"] == step
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), step


def test_finished_run_is_reused_without_retraining():
    cfg = tiny()
    run = train(cfg, progress=False)
    stamp = (run / "model.pt").stat().st_mtime_ns

    def fail(step, logs):
        raise AssertionError("a finished run must not train again")

    assert train(cfg, progress=False, callback=fail) == run
    assert (run / "model.pt").stat().st_mtime_ns == stamp
    # the progress flag does not change what is computed, so it does not change the run
    assert train(tiny("train.progress=false"), callback=fail) == run
    # any other change is a different run
    assert runs.run_dir(tiny("model.norm=batch")) != run
    # ... except options only another architecture reads (AdaIN's encoder)
    assert runs.run_dir(tiny("model.encoder_layer=relu2_1")) == run
    adain = ["model.arch=adain", "model.norm=none", "loss.content_layers=[relu3_1]", "data.style=[candy]"]
    assert runs.run_dir(tiny(*adain)) != runs.run_dir(tiny(*adain, "model.encoder_weights=random"))


def test_run_directory_holds_resolved_config_and_logs():
    run = train(tiny("model.norm=batch"), progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved == config_mod.to_dict(tiny("model.norm=batch"))
    row = runs.metrics(run)[0]
    for key in ("total", "content", "style", "tv", "lr", "images_per_s", "style/relu1_1",
                "content/relu2_2"):
        assert key in row
    assert [e["step"] for e in runs.evals(run)] == [3, 6]
    assert (run / "samples" / "step000006.png").is_file()
    summary = runs.summary(run)
    assert summary["steps"] == 6 and summary["final_eval"]["step"] == 6


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_generator():
    run = train(tiny(), progress=False)
    ckpt = torch.load(run / "model.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["config"]["model"]["arch"] == "residual"
    assert {"model", "optimizer", "rng", "config"} <= set(ckpt)
    model = load_generator(run)
    assert not model.training


def test_stylize_keeps_odd_sizes_and_uses_eval_mode_for_batch_norm():
    run = train(tiny("model.norm=batch"), progress=False)
    model = load_generator(run)
    x = torch.rand(3, 97, 130)
    y = stylize(model, x)
    assert y.shape == (3, 97, 130) and 0 <= y.min() and y.max() <= 1
    # eval mode: an image's result does not depend on the rest of the batch
    batch = torch.stack([x, torch.rand(3, 97, 130)])
    assert torch.allclose(stylize(model, batch)[0], y, atol=1e-5)
    assert stylize(run / "model.pt", x, size=40).shape == (3, 40, 54)


def test_nan_loss_stops_with_a_clear_error_and_keeps_last_checkpoint(monkeypatch):
    from repro import losses

    real = losses.PerceptualLoss.forward
    calls = {"n": 0}

    def poisoned(self, output, *a, **k):
        out = real(self, output, *a, **k)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 3:
                out["total"] = out["total"] * float("nan")
        return out

    monkeypatch.setattr(losses.PerceptualLoss, "forward", poisoned)
    cfg = tiny("train.eval_every=0")
    with pytest.raises(TrainingDiverged, match="step 3"):
        train(cfg, progress=False)
    run = runs.run_dir(cfg)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    assert not runs.is_done(run)


def test_config_errors_name_the_key():
    with pytest.raises(config_mod.ConfigError, match="model.nrom"):
        config_mod.load_config("smoke", ["model.nrom=batch"])
    with pytest.raises(config_mod.ConfigError, match="optim.steps"):
        config_mod.load_config("smoke", ["optim.steps=many"])
    with pytest.raises(config_mod.ConfigError, match="model.norm"):
        config_mod.load_config("smoke", ["model.norm=layer"])
    with pytest.raises(config_mod.ConfigError, match="no profile 'tpu'"):
        config_mod.load_config("tpu")
    with pytest.raises(config_mod.ConfigError, match="no profile 'tpu'"):
        config_mod.load_config("tpu-dry")  # a dry run of a profile that does not exist
    with pytest.raises(config_mod.ConfigError, match="key=value"):
        config_mod.load_config("smoke", ["model.norm"])


def test_truncated_checkpoint_is_named(tmp_path):
    run = train(tiny(), progress=False)
    bad = tmp_path / "half.pt"
    raw = (run / "model.pt").read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="half.pt"):
        load_generator(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not a repro checkpoint"):
        load_generator(other)


def test_cli_train_prints_run_dir_last_and_stylize_writes(tmp_path):
    r = _cli("train", "--config", "smoke", *sum((["--set", s] for s in TINY), []), "--no-progress")
    assert r.returncode == 0, r.stderr
    run = r.stdout.strip().splitlines()[-1]
    assert runs.is_done(run)
    out = tmp_path / "out.png"
    r = _cli("stylize", run, str(tmp_path / "in.png"), str(out))
    assert r.returncode != 0 and "in.png" in r.stderr and "Traceback" not in r.stderr
    from repro.images import load_image, save_image
    save_image(torch.rand(3, 33, 45), tmp_path / "in.png")
    r = _cli("stylize", run, str(tmp_path / "in.png"), str(out))
    assert r.returncode == 0, r.stderr
    assert load_image(out).shape == (3, 33, 45)


@pytest.mark.parametrize("args, needle", [
    (["stylize", "missing.pt", "a.png", "b.png"], "missing.pt"),
    (["train", "--config", "smoke", "--set", "optim.stepz=3"], "optim.stepz"),
    (["train", "--config", "nope"], "nope"),
])
def test_cli_bad_input_is_one_line(args, needle):
    r = _cli(*args)
    assert r.returncode != 0
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_corrupt_image_and_wrong_checkpoint(tmp_path):
    run = train(tiny(), progress=False)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = _cli("stylize", str(run), str(bad), str(tmp_path / "o.png"))
    assert r.returncode != 0 and "bad.jpg" in r.stderr and "Traceback" not in r.stderr
    wrong = tmp_path / "wrong.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "config": config_mod.to_dict(tiny())}, wrong)
    r = _cli("stylize", str(wrong), str(bad), str(tmp_path / "o.png"))
    assert r.returncode != 0 and "wrong.pt" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    env = {**os.environ, "REPRO_RUNS": str(tmp_path / "ddp"), "OMP_NUM_THREADS": "1"}
    sets = sum((["--set", s] for s in TINY + ["optim.batch_size=4"]), [])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "repro", "train", "--config", "smoke", *sets, "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    run = lines[-1]
    assert lines.count(run) == 1  # rank 0 alone prints the run directory
    assert runs.is_done(run) and runs.summary(run)["world_size"] == 2
    assert [m["step"] for m in runs.metrics(run)] == [1, 2, 3, 4, 5, 6]  # rank 0 logs once per step
    ckpt = load_checkpoint(os.path.join(run, "model.pt"))
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved unwrapped
    # the two ranks train on different crops: a single process with batch 2 on rank 0's data
    # would differ; here we check the run resumes (is reused) in a single process
    env.pop("WORLD_SIZE", None)
    r2 = subprocess.run([sys.executable, "-m", "repro", "train", "--config", "smoke", *sets,
                         "--no-progress"], capture_output=True, text=True, env=env)
    assert r2.returncode == 0 and r2.stdout.strip().splitlines()[-1] == run


def test_bf16_autocast_on_the_cpu_trains_and_stays_finite():
    run = train(tiny("train.precision=bf16", "train.eval_every=0"), progress=False)
    assert runs.summary(run)["precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in runs.metrics(run))
    # the checkpoint stays fp32 (autocast changes compute, not parameters)
    ckpt = load_checkpoint(run / "model.pt")
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())


def test_cli_stylize_conditional_in_by_index_and_mixing(tmp_path):
    from repro.images import load_image, save_image

    run = train(tiny("model.norm=conditional_instance", "model.n_styles=2", "data.style=[candy,mosaic]"),
                progress=False)
    save_image(torch.rand(3, 30, 34), tmp_path / "in.png")
    outs = {}
    for name, args in {"0": ["--style-index", "0"], "1": ["--style-index", "1"],
                       "mix10": ["--style-weights", "1,0"]}.items():
        r = _cli("stylize", str(run), str(tmp_path / "in.png"), str(tmp_path / f"{name}.png"), *args)
        assert r.returncode == 0, r.stderr
        outs[name] = load_image(tmp_path / f"{name}.png")
    assert not torch.equal(outs["0"], outs["1"])
    assert torch.allclose(outs["0"], outs["mix10"], atol=1 / 255)  # weights (1, 0) are style 0
    for args, needle in [(["--style-index", "2"], "out of range"), (["--style-weights", "1,0,0"], "must be 2 numbers"),
                         (["--style", "x.jpg"], "--style")]:
        r = _cli("stylize", str(run), str(tmp_path / "in.png"), str(tmp_path / "bad.png"), *args)
        assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not (tmp_path / "bad.png").exists()


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_a_plain_checkpoint(tmp_path):
    """The paper profile's ``train.compile=true``: the compiled generator trains to the
    eager run's losses, and the checkpoint holds the plain module's keys (no ``_orig_mod.``)."""
    steps = ["optim.steps=3", "train.eval_every=0", "train.checkpoint_every=0", "train.precision=fp32"]
    eager = train(tiny(*steps), runs_root=tmp_path / "a", progress=False)
    compiled = train(tiny(*steps, "train.compile=true"), runs_root=tmp_path / "b", progress=False)
    a, b = _loss_rows(eager), _loss_rows(compiled)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    # step 1 is the same network on the same batch; later steps drift a little, because Adam
    # turns the rounding noise of zero-gradient parameters (conv biases before IN) into lr-sized moves
    assert b[0]["total"] == pytest.approx(a[0]["total"], rel=1e-5)
    for ra, rb in zip(a, b):
        assert rb["total"] == pytest.approx(ra["total"], rel=1e-2)
    state = load_checkpoint(compiled / "model.pt")["model"]
    assert not any(k.startswith("_orig_mod.") for k in state)
    load_generator(compiled / "model.pt")


def test_channels_last_training_step_matches_contiguous():
    """The CUDA profiles train in channels_last (``train.channels_last``): the same step on NHWC
    tensors gives the contiguous step's loss and gradients, here on the CPU."""
    from repro import tasks
    from repro.checkpoint import model_kwargs
    from repro.models import build_generator
    from repro.train import training_step

    cfg = tiny()
    task = tasks.make_task(cfg, "cpu")
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        model = build_generator(**model_kwargs(cfg.model)).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = task.sample(2, torch.Generator().manual_seed(1), fmt)
        assert batch["x"].is_contiguous(memory_format=fmt)
        terms = training_step(model, task, opt, batch, None)
        results.append((float(terms["total"].detach()), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-4)
    # gradients, not Adam's first update: that is lr * sign(grad), which flips on near-zero grads
    # compared as one vector: a conv bias before instance norm has a zero gradient in exact
    # arithmetic, so its entries are rounding noise in either layout
    ga, gb = torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b])
    # 1e-2: oneDNN's fp32 kernels sum in another order per layout; the two layouts differed by
    # 1e-5 on an AVX2 CPU and by 1.0e-3-1.9e-3 on an AVX-512 one (an AMD EPYC, 2026-12-08);
    # the losses above still agree to 1e-5 / 1e-4
    assert float((ga - gb).norm() / ga.norm()) < 1e-2


@pytest.mark.parametrize("norm", ["instance", "conditional_instance"])
def test_training_loss_reads_nhwc_on_the_cpu_with_the_nchw_loss(monkeypatch, norm):
    """The style tasks feed the loss's VGG passes NHWC on the CPU (``tasks.loss_layout``, a
    faster step in oneDNN): the loss network sees channels_last input and the loss and the
    generator's gradients are the NCHW step's."""
    from repro import tasks, vgg
    from repro.checkpoint import model_kwargs
    from repro.models import build_generator

    extra = ["model.norm=conditional_instance", "model.n_styles=2", "data.style=[starry_night,candy]"]
    cfg = tiny(*(extra if norm == "conditional_instance" else []))
    task = tasks.make_task(cfg, "cpu")
    seen, forward = [], vgg.LossNetwork.forward

    def spy(self, x, layers=None):
        seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return forward(self, x, layers)

    monkeypatch.setattr(vgg.LossNetwork, "forward", spy)
    results = []
    for layout in (tasks.loss_layout, lambda *images: images):
        monkeypatch.setattr(tasks, "loss_layout", layout)
        torch.manual_seed(0)
        model = build_generator(**model_kwargs(cfg.model))
        seen.clear()
        total = task.loss(model, task.sample(2, torch.Generator().manual_seed(1)))["total"]
        total.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((seen[:], float(total.detach()), grads))
    (seen_a, loss_a, ga), (seen_b, loss_b, gb) = results
    assert seen_a and all(seen_a) and not any(seen_b)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    # 1e-2: oneDNN's fp32 kernels sum in another order per layout; the two layouts differed by
    # 1e-5 on an AVX2 CPU and by 1.0e-3-1.9e-3 on an AVX-512 one (an AMD EPYC, 2026-12-08);
    # the losses above still agree to 1e-5 / 1e-4
    assert float((ga - gb).norm() / gb.norm()) < 1e-2


def test_snapshots_keep_the_generator_at_fractions_of_the_steps(tmp_path):
    cfg = tiny("train.snapshots=[0.5, 0.25, 0.5]")  # unsorted and repeated: each step once
    assert config_mod.snapshot_steps(cfg) == [2, 3]
    # a fraction rounding to step 0 or to the last step keeps step 1 or the one before the end
    assert config_mod.snapshot_steps(tiny("train.snapshots=[0.01, 0.99]")) == [1, 5]
    run = runs.Run(train(cfg, progress=False))
    snaps = run.snapshots()
    assert sorted(snaps) == [2, 3, 6] and snaps[6] == run.path / "model.pt"
    # the snapshot at step 3 is the generator after 3 steps: a 3-step run ends there
    short = train(tiny("optim.steps=3", "train.snapshots=[]"), runs_root=tmp_path / "short", progress=False)
    mid, end = load_generator(snaps[3]).state_dict(), load_generator(short).state_dict()
    assert all(torch.equal(mid[k], end[k]) for k in mid)
    early = load_generator(snaps[2]).state_dict()
    assert any(not torch.equal(early[k], mid[k]) for k in mid)  # a step later, another generator
    snaps[2].unlink()
    with pytest.raises(FileNotFoundError, match="step000002.pt"):
        run.snapshots()


def test_snapshot_fractions_are_checked_and_none_keeps_the_run_key():
    for bad in ("[0]", "[1.0]", "[0.5, 1.5]", "[-0.25]"):
        with pytest.raises(config_mod.ConfigError, match="train.snapshots"):
            config_mod.load_config("smoke", [f"train.snapshots={bad}"])
    # runs trained before snapshots existed keep their directories; asking for any changes it
    plain = tiny("train.snapshots=[]")
    d = config_mod.to_dict(plain)
    del d["train"]["snapshots"]
    assert runs.config_hash(plain) == runs.config_hash(d)
    assert runs.run_dir(tiny("train.snapshots=[0.5]")) != runs.run_dir(plain)


def test_loss_jitter_crops_each_sample_at_its_own_offset_and_leaves_other_runs_alone():
    from repro import tasks
    plain, jit = tiny(), tiny("loss.jitter=4")
    tp, tj = tasks.make_task(plain, "cpu"), tasks.make_task(jit, "cpu")
    bp, bj = tp.sample(4, torch.Generator().manual_seed(3)), tj.sample(4, torch.Generator().manual_seed(3))
    # the photos are drawn first: the same crops with and without jitter; no offsets without it
    assert torch.equal(bp["x"], bj["x"]) and bp["offsets"] is None
    assert len(bj["offsets"]) == 4 and all(0 <= a < 4 and 0 <= b < 4 for a, b in bj["offsets"])
    y = torch.rand_like(bj["x"])
    cy, cx = tasks.jitter_crops(y, bj["x"], bj["offsets"], 4)
    n = bj["x"].shape[-1]
    assert cy.shape[-2:] == (n - 3, n - 3) and cx.shape == cy.shape
    for i, (a, b) in enumerate(bj["offsets"]):
        assert torch.equal(cy[i], y[i, :, a:a + n - 3, b:b + n - 3])
        assert torch.equal(cx[i], bj["x"][i, :, a:a + n - 3, b:b + n - 3])
    # keyed only when on (earlier runs keep their directories), and checked
    assert runs.config_hash(tiny("loss.jitter=0")) == runs.config_hash(plain) != runs.config_hash(jit)
    for bad, msg in (("-1", "must be >= 0"), ("40", "at most a quarter")):
        with pytest.raises(config_mod.ConfigError, match=f"loss.jitter.*{msg}"):
            tiny(f"loss.jitter={bad}")
    # the trainer runs it, conditional IN included (its style index is drawn after the offsets)
    run = train(tiny("loss.jitter=2", "train.checkpoint_every=0", "model.norm=conditional_instance",
                     "model.n_styles=2", "data.style=[candy,mosaic]"), progress=False)
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in runs.metrics(run))


def test_downsample_is_keyed_only_when_antialiased_and_only_for_the_residual_generator():
    plain, aa = tiny(), tiny("model.downsample=antialiased")
    assert runs.config_hash(tiny("model.downsample=strided")) == runs.config_hash(plain) != runs.config_hash(aa)
    # the multi-scale generator has no stride-2 convs: the key does not split its runs
    ms = tiny("model.arch=multiscale", "model.downsample=antialiased")
    assert runs.config_hash(ms) == runs.config_hash(tiny("model.arch=multiscale"))
    with pytest.raises(config_mod.ConfigError, match="model.downsample"):
        tiny("model.downsample=blurpool")
