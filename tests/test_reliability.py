"""What the project promises when things go wrong: read this file as that list.

- A run directory has one writer; a killed writer's run is finished exactly by the next.
- A run marked done holds every step exactly once, or it is repaired on the next call.
- A changed file named by path in the config is a new run.
- A failed call leaves no run directory behind; written files keep the user's umask.
- An output path that is an input, a directory, under a file, or of an unknown format is
  refused before any work, and nothing is written.
- Memory is estimated from the pixels before a network runs; beyond the budget, one line says
  how much and what to do; huge images stylize in tiles with the untiled result.
- Bad input (tensors, files, parameters, devices) is one line naming what is wrong.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from repro import budget, cli, runs
from repro import config as config_mod
from repro.images import as_image, load_image, save_image
from repro.checkpoint import CheckpointError, load_generator, save_checkpoint
from repro.inference import stylize
from repro.models import build_generator
from repro.train import train
from tiny import TINY, tiny
from tiny import cli as _cli

@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch, data_ready):
    monkeypatch.setenv("REPRO_RUNS", str(tmp_path / "runs"))


def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def _steps(rows):
    return [r["step"] for r in rows]


def _losses(run):
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in runs.metrics(run)]


# ---------------------------------------------------------------------------------------------
# One writer per run


@pytest.mark.slow
def test_two_processes_on_one_run_kill_9_the_first_every_step_logged_once(tmp_path):
    sets = TINY[3:] + ["optim.steps=300", "train.checkpoint_every=10", "train.eval_every=100",
                       "data.image_size=32", "data.content_size=48", "optim.batch_size=1"]
    cmd = ["train", "--config", "smoke", *sum((["--set", s] for s in sets), []), "--no-progress"]
    run = runs.run_dir(config_mod.load_config("smoke", sets))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    err_b = tmp_path / "b.err"
    a = subprocess.Popen([sys.executable, "-m", "repro", *cmd], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = None
    try:
        deadline = time.time() + 240
        while len(runs.metrics(run)) < 25:  # the first is well into its run
            assert a.poll() is None and time.time() < deadline, "the first process stopped early"
            time.sleep(0.05)
        with open(err_b, "w") as f:
            b = subprocess.Popen([sys.executable, "-m", "repro", *cmd], env=env,
                                 stdout=subprocess.PIPE, stderr=f, text=True)
        while "waiting for run" not in err_b.read_text():  # the second queues behind the lock
            assert b.poll() is None and time.time() < deadline, err_b.read_text()
            time.sleep(0.05)
        assert a.poll() is None, "the first finished before the second queued: no overlap tested"
        assert f"pid {a.pid}" in err_b.read_text()  # it names the holder
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        out, _ = b.communicate(timeout=300)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    assert b.returncode == 0, err_b.read_text()[-2000:]
    assert out.strip().splitlines()[-1] == str(run)
    assert _steps(runs.metrics(run)) == list(range(1, 301))
    assert _steps(runs.evals(run)) == [100, 200, 300]
    assert runs.summary(run)["final_eval"] == runs.evals(run)[-1]
    # and it is the run an uninterrupted process computes, bit for bit (on as many threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = train(config_mod.load_config("smoke", sets), runs_root=tmp_path / "ref", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert _losses(ref) == _losses(run)
    assert runs.evals(ref) == runs.evals(run)


@pytest.mark.slow
def test_no_wait_under_torchrun_refuses_on_every_rank(tmp_path):
    run = runs.run_dir(tiny("optim.batch_size=4"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with runs.lock(run):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2", "-m", "repro", "train", "--config", "smoke",
                            *sum((["--set", s] for s in TINY + ["optim.batch_size=4"]), []),
                            "--no-progress", "--no-wait"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    assert r.stderr.count("is being trained by") == 2, r.stderr[-2000:]  # both ranks stop at once
    assert not run.exists()


def test_a_sound_finished_run_is_returned_without_taking_the_lock():
    run = train(tiny(), progress=False)
    locks = run.parent / ".locks"
    import shutil
    shutil.rmtree(locks)
    assert train(tiny(), progress=False) == run
    assert not locks.exists()  # so a finished run in a read-only runs/ folder stays usable


def test_the_lock_file_keeps_the_umask():
    run = runs.run_dir(tiny())
    old = os.umask(0o022)
    try:
        with runs.lock(run):
            pass
    finally:
        os.umask(old)
    assert (run.parent / ".locks" / f"{run.name}.lock").stat().st_mode & 0o777 == 0o644


def test_no_wait_refuses_at_once_naming_the_run_and_holder():
    sets = TINY
    run = runs.run_dir(tiny())
    with runs.lock(run):
        r = _cli("train", "--config", "smoke", *sum((["--set", s] for s in sets), []),
                 "--no-progress", "--no-wait", timeout=120)
    _one_line_error(r, str(run), f"pid {os.getpid()}")
    assert not run.exists()


def test_done_run_with_a_missing_step_is_trained_again_exactly():
    cfg = tiny()
    run = train(cfg, progress=False)
    ref_losses, ref_evals = _losses(run), runs.evals(run)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(rows[:3] + rows[4:]) + "\n")  # step 4 lost
    with pytest.warns(UserWarning, match="metrics.jsonl"):
        assert train(cfg, progress=False) == run
    assert _losses(run) == ref_losses and runs.evals(run) == ref_evals
    assert runs.done_problems(run, cfg) == []


def test_done_json_disagreeing_with_whole_logs_is_rewritten_without_training():
    cfg = tiny()
    run = train(cfg, progress=False)
    good = runs.summary(run)
    (run / "done.json").write_text(json.dumps({**good, "final_eval": runs.evals(run)[0]}))
    mtime = (run / "model.pt").stat().st_mtime_ns
    with pytest.warns(UserWarning, match="final_eval"):
        train(cfg, progress=False)
    assert runs.summary(run)["final_eval"] == good["final_eval"]
    assert (run / "model.pt").stat().st_mtime_ns == mtime  # not retrained


def test_resume_with_doubled_rows_before_the_checkpoint_starts_afresh():
    cfg = tiny()
    ref = train(cfg, runs_root=runs.paths.runs_dir() / "ref", progress=False)

    def stop(step, logs):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callback=stop)
    run = runs.run_dir(cfg)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(rows[:2] + rows[1:]) + "\n")  # step 2 twice
    with pytest.warns(UserWarning, match="repeated"):
        train(cfg, progress=False)
    assert _losses(run) == _losses(ref)


def test_changed_style_file_is_a_new_run(tmp_path):
    style = tmp_path / "style.png"
    save_image(torch.rand(3, 64, 64), style)
    first = runs.run_dir(tiny(f"data.style=[{style}]"))
    assert runs.run_dir(tiny(f"data.style=[{style}]")) == first
    save_image(torch.rand(3, 64, 64), style)
    assert runs.run_dir(tiny(f"data.style=[{style}]")) != first


def test_a_failed_train_leaves_no_run_directory(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"data.style\[0\]"):
        train(tiny(f"data.style=[{tmp_path / 'missing.png'}]"), progress=False)
    import repro.losses

    monkeypatch.setattr(repro.losses.PerceptualLoss, "forward",
                        lambda self, *a, **k: {"total": torch.tensor(float("nan"), requires_grad=True)})
    with pytest.raises(FloatingPointError):
        train(tiny(), progress=False)
    assert not runs.run_dir(tiny()).exists()
    assert not any(p.name != ".locks" for p in runs.paths.runs_dir().iterdir())


def test_written_files_keep_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        runs.atomic_write_json(tmp_path / "a.json", {})
        save_checkpoint(tmp_path / "m.pt", model=build_generator("residual", width=0.25), step=0,
                        config=tiny())
        save_image(torch.rand(3, 8, 8), tmp_path / "i.png")
    finally:
        os.umask(old)
    for name in ("a.json", "m.pt", "i.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


# ---------------------------------------------------------------------------------------------
# Outputs never destroy inputs


@pytest.fixture
def model_file(tmp_path):
    return save_checkpoint(tmp_path / "model.pt", model=build_generator("residual", width=0.25),
                           step=0, config=tiny())


def test_output_equal_to_input_is_refused_and_the_input_kept(tmp_path, model_file):
    photo = tmp_path / "a.png"
    save_image(torch.rand(3, 20, 24), photo)
    before = photo.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    for out in (photo, link):
        _one_line_error(_cli("stylize", str(model_file), str(photo), str(out)), "is the input")
        _one_line_error(_cli("gatys", str(photo), str(photo), str(out), "--steps", "1",
                             "--size", "32"), "is the input")
    assert photo.read_bytes() == before


@pytest.mark.parametrize("output, needle", [
    ("file.txt/out.png", "is a file, not a directory"),
    ("adir", "is a directory"),
    ("out.xyz", "unknown image format"),
])
def test_bad_output_paths_are_refused_before_any_work(tmp_path, model_file, monkeypatch, capsys,
                                                      output, needle):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "adir").mkdir()
    photo = tmp_path / "a.png"
    save_image(torch.rand(3, 20, 24), photo)
    import repro.gatys
    import repro.inference

    def boom(*a, **k):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(repro.gatys, "stylize", boom)
    monkeypatch.setattr(repro.inference, "load_generator", boom)
    for argv in (["stylize", str(model_file), str(photo), str(tmp_path / output)],
                 ["gatys", str(photo), str(photo), str(tmp_path / output), "--steps", "60"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "adir", "file.txt", "model.pt"]


# ---------------------------------------------------------------------------------------------
# Bounded memory


def test_memory_beyond_the_budget_is_one_line_before_any_work(tmp_path, model_file, monkeypatch):
    big = tmp_path / "big.png"
    save_image(torch.rand(3, 600, 800), big)
    r = _cli("stylize", str(model_file), str(big), str(tmp_path / "o.png"),
             env={"REPRO_MEMORY_BUDGET": "60M"})
    err = _one_line_error(r, "big.png", "800x600", "--tile")
    assert "60 MB" in err and not (tmp_path / "o.png").exists()
    # the estimate is what the budget module computes from the measured bytes per pixel
    model = load_generator(model_file)
    assert budget.generator_bytes(model.config, 800 * 600) > 60 * 2**20
    monkeypatch.setenv("REPRO_MEMORY_BUDGET", "60M")
    with pytest.raises(budget.MemoryBudgetError, match="Gatys"):
        from repro import gatys
        gatys.stylize(torch.rand(3, 600, 800), torch.rand(3, 64, 64), steps=1,
                      network_weights="random")
    # in tiles the same image fits
    y = stylize(model, load_image(big), tile=128)
    assert y.shape == (3, 600, 800)


def test_budget_estimate_bounds_a_measured_call():
    """The estimate is an upper bound of what a call adds to the process (measured in a child
    whose allocator returns freed memory, as bench/memory.py does)."""
    from bench import memory

    extra = memory.measure("residual_w0.5", 512, "fp32")
    est = budget.generator_bytes({"arch": "residual", "width": 0.5}, 512 * 512)
    assert extra <= est < 4 * extra


def test_extreme_aspect_ratio_under_size_is_refused_before_resizing(tmp_path, model_file):
    sliver = tmp_path / "sliver.png"
    Image.fromarray(np.zeros((3, 5000, 3), np.uint8)).save(sliver)
    _one_line_error(_cli("stylize", str(model_file), str(sliver), str(tmp_path / "o.png"),
                         "--size", "256"), "sliver.png", "aspect ratio")
    _one_line_error(_cli("gatys", str(sliver), str(sliver), str(tmp_path / "o.png"), "--size", "32"),
                    "sliver.png", "aspect ratio")


def test_tiled_equals_untiled_for_every_kind_of_generator():
    torch.manual_seed(0)
    from repro import data

    x = load_image(data.content_paths("test")[0], size=200)
    wide = load_image(data.content_paths("test")[0], size=480)  # the multi-scale net reaches 189 px
    blurs = dict(downsample="antialiased", upsample="antialiased")  # the residual's widest reach
    for arch, norm, img, tile, kw in (("residual", "batch", x, 64, {}), ("residual", "instance", x, 64, {}),
                                      ("residual", "instance", x, 64, blurs),
                                      ("multiscale", "batch", wide, 256, {}),
                                      ("multiscale", "instance", wide, 256, {})):
        model = build_generator(arch, norm=norm, width=0.25, **kw).eval()
        whole = stylize(model, img, precision="fp32")
        tiled = stylize(model, img, precision="fp32", tile=tile)
        psnr = -10 * math.log10(float(((whole - tiled) ** 2).mean()) + 1e-20)
        assert psnr >= 60.0, (arch, norm, kw, psnr)  # the same image to float rounding
    # conditional IN (a style index, and a mix) and the AdaIN encoder-decoder, also via Stylizer
    from repro import Stylizer
    from repro.models import AdaINNet

    cin = build_generator("residual", norm="conditional_instance", n_styles=2, width=0.25).eval()
    with torch.no_grad():
        for p in cin.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = torch.stack([x, x.flip(-1)])
    for style in (1, [0.3, 0.7]):
        whole = stylize(cin, batch, style=style, precision="fp32")
        tiled = Stylizer(cin, precision="fp32", tile=64)(batch, style=style)
        assert -10 * math.log10(float(((whole - tiled) ** 2).mean()) + 1e-20) >= 60.0, style
    net = AdaINNet(vgg_weights="random").eval()
    s = torch.rand(3, 64, 64)
    whole = stylize(net, x, style=s, precision="fp32", alpha=0.8)
    tiled = stylize(net, x, style=s, precision="fp32", alpha=0.8, tile=64)
    assert -10 * math.log10(float(((whole - tiled) ** 2).mean()) + 1e-20) >= 60.0
    # each tile normalized by its own statistics would not do: that is what the passes are for
    from repro import tiling
    model = build_generator("residual", width=0.25).eval()
    whole = stylize(model, x, precision="fp32")
    own = tiling.generator_tiled(model, x[None], tile=64, statistics="tile")[0]
    assert -10 * math.log10(float(((whole - own) ** 2).mean())) < 30


# ---------------------------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize("bad, needle", [
    (torch.full((3, 8, 8), float("nan")), "NaN or infinite"),
    (torch.full((3, 8, 8), float("inf")), "NaN or infinite"),
    (torch.rand(3, 8, 8) * 255, "divide by 255"),
    (torch.rand(3, 8, 8) * 2 - 1, "(x + 1) / 2"),
    (torch.zeros(3, 0, 8), "empty"),
    (torch.zeros(3, 8, 8, dtype=torch.int64), "dtype"),
    (torch.rand(4, 8, 8), "RGB"),
    ("not a path-like object".encode(), "got bytes"),
])
def test_api_refuses_bad_image_values_saying_what_was_expected(bad, needle):
    model = build_generator("residual", width=0.25)
    with pytest.raises(ValueError, match=".*") as e:
        stylize(model, bad)
    assert needle in str(e.value)


def test_api_accepts_uint8_numpy_and_pil_as_the_same_image():
    model = build_generator("residual", width=0.25)
    arr = (np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)
    ref = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    outs = [stylize(model, x, precision="fp32") for x in
            (ref, arr, Image.fromarray(arr), torch.from_numpy(arr).permute(2, 0, 1).contiguous())]
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
    assert torch.equal(as_image(arr), ref)


def test_adain_with_a_one_pixel_image_is_one_line(tmp_path):
    from repro.models import AdaINNet

    net = AdaINNet(vgg_weights="random")
    ckpt = save_checkpoint(tmp_path / "adain.pt", model=net, step=0,
                           config=tiny("model.arch=adain", "model.norm=none",
                                       "model.encoder_weights=random",
                                       "loss.content_layers=[relu3_1]", "data.style=[feathers,mosaic]"))
    one, ok = tmp_path / "one.png", tmp_path / "ok.png"
    save_image(torch.rand(3, 1, 1), one)
    save_image(torch.rand(3, 32, 32), ok)
    _one_line_error(_cli("stylize", str(ckpt), str(one), str(tmp_path / "o.png"), "--style", str(ok)),
                    "one.png", "at least")
    _one_line_error(_cli("stylize", str(ckpt), str(ok), str(tmp_path / "o.png"), "--style", str(one)),
                    "one.png", "at least")


def test_checkpoint_errors_are_one_line_and_name_the_problem(tmp_path, model_file):
    photo = tmp_path / "a.png"
    save_image(torch.rand(3, 20, 24), photo)
    out = str(tmp_path / "o.png")
    random_file = tmp_path / "random" / "model.pt"
    random_file.parent.mkdir()
    random_file.write_bytes(os.urandom(4096))
    err = _one_line_error(_cli("stylize", str(random_file), str(photo), out), "model.pt")
    assert "weights_only" not in err
    import argparse
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": argparse.Namespace(a=1)}, evil)  # not plain data
    err = _one_line_error(_cli("stylize", str(evil), str(photo), out), "evil.pt", "not unpickled")
    assert "weights_only" not in err
    wide = tmp_path / "wide.pt"
    ckpt = torch.load(model_file, weights_only=True)
    ckpt["generator"]["width"] = 0.5
    torch.save(ckpt, wide)
    _one_line_error(_cli("stylize", str(wide), str(photo), out), "wide.pt", "of another shape")
    nan = tmp_path / "nan.pt"
    ckpt = torch.load(model_file, weights_only=True)
    next(iter(ckpt["model"].values())).fill_(float("nan"))
    torch.save(ckpt, nan)
    _one_line_error(_cli("stylize", str(nan), str(photo), out), "nan.pt", "NaN")
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(nan)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args, needles", [
    (["--style-weights", "nan,1"], ["--style-weights"]),
    (["--device", "bogus"], ["bogus"]),
    (["--tile", "3"], ["tile"]),
])
def test_stylize_parameter_errors_name_the_parameter(tmp_path, model_file, args, needles):
    photo = tmp_path / "a.png"
    save_image(torch.rand(3, 20, 24), photo)
    _one_line_error(_cli("stylize", str(model_file), str(photo), str(tmp_path / "o.png"), *args),
                    *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, model_file):
    photo = tmp_path / "a.png"
    save_image(torch.rand(3, 20, 24), photo)
    _one_line_error(_cli("stylize", str(model_file), str(photo), str(tmp_path / "o.png"),
                         "--device", "cuda"), "CUDA is not available")


def test_config_errors_are_one_line_and_a_float_field_takes_1e_minus_3(tmp_path):
    assert config_mod.load_config("smoke", ["optim.lr=1e-3"]).optim.lr == 1e-3
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_defaults:\n  optim: {lr: [1\n")
    _one_line_error(_cli("train", "--config", str(bad)), "bad.yaml", "line")
    _one_line_error(_cli("train", "--config", "smoke", "--set", "optim.lr=.nan"), "optim.lr", "finite")


def test_data_dest_naming_a_file_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(_cli("data", "--dest", str(f / "data")), str(f), "not a directory")
    _one_line_error(_cli("data", "--dest", str(f)), str(f), "not a directory")
