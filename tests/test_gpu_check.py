"""``make gpu-check`` (bench/gpu_check.py) without a GPU: ``--quick`` runs every cuda sub-check
on the CPU and records it, results reach the disk stage by stage (a failing or interrupted stage
leaves the earlier ones), and without ``--quick`` it refuses in one line."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from bench import gpu_check
from repro import paths

# CUDA hidden, so the CPU path runs on any machine; bf16 forced so the autocast comparison is a
# real one even on a CPU without native bf16 (emulated: slow, but the sizes are tiny)
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "REPRO_CPU_BF16": "1"}


def gpu_check_cli(*args):
    return subprocess.run([sys.executable, "-m", "bench.gpu_check", *args], cwd=paths.ROOT,
                          capture_output=True, text=True, env=NO_GPU, timeout=600)


def results(out):
    files = sorted(out.glob("gpu-check-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_quick_on_the_cpu_records_every_stage_and_sub_check(tmp_path, data_ready):
    p = gpu_check_cli("--quick", "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    doc = results(tmp_path)
    assert doc["status"] == "passed" and doc["quick"] and doc["profile"] == "smoke"
    assert doc["torch"] == torch.__version__ and doc["git_commit"] and doc["machine"]["cpu"]
    assert set(doc["stages"]) == set(gpu_check.STAGES)  # the file's keys are sorted

    cuda = doc["stages"]["cuda"]
    # nothing about CUDA was checked, and the file says so; the sub-checks still ran, on the CPU
    assert cuda["status"] == "skipped" and cuda["details"].startswith("skipped: no CUDA device")
    assert cuda["device"] == "cpu" and set(cuda["checks"]) == set(gpu_check.CHECKS)
    for name, check in cuda["checks"].items():
        assert check["status"] == "passed", (name, check)
        assert check["seconds"] >= 0 and check["detail"], (name, check)
    checks = cuda["checks"]
    assert checks["bf16_autocast"]["detail"].startswith("bf16 loss")  # a real bf16 vs fp32 comparison
    assert checks["ddp"]["detail"].startswith("gloo on cpu, world size 1")
    assert checks["stylizer"]["detail"].startswith("bf16")
    assert "smoke profile, 3 steps on cpu (bf16" in checks["train"]["detail"]
    for stage in ("bench", "figures"):
        assert doc["stages"][stage] == {"status": "skipped", "seconds": 0,
                                        "details": "skipped: --quick without a GPU"}

    # one console line per sub-check, in order, as each finished
    lines = [l for l in p.stdout.splitlines() if l.startswith("cuda/")]
    assert [l.split()[0] for l in lines] == [f"cuda/{c}" for c in gpu_check.CHECKS]
    assert all(l.split()[1] == "passed" for l in lines)


def test_a_failing_sub_check_and_a_failing_or_interrupted_stage_keep_what_finished(
        tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("simulated\nsecond line")

    def fine(self):
        return "fine"

    monkeypatch.setattr(gpu_check.Checks, "broken", broken, raising=False)
    monkeypatch.setattr(gpu_check.Checks, "fine", fine, raising=False)
    monkeypatch.setattr(gpu_check, "CHECKS", ("broken", "fine"))
    # bench: reads the results file as it is on disk when the stage starts, then fails;
    # figures: a time limit's SIGTERM arrives while it runs
    peek = textwrap.dedent("""
        import glob, json, sys
        doc = json.load(open(glob.glob(sys.argv[1] + "/gpu-check-*.json")[0]))
        print(json.dumps({"stages": {k: v["status"] for k, v in doc["stages"].items()},
                          "checks": {k: v["status"] for k, v in doc["stages"]["cuda"]["checks"].items()}}))
        sys.exit(3)""")
    term = "import os, signal; os.kill(os.getppid(), signal.SIGTERM)"
    monkeypatch.setattr(gpu_check, "stage_commands", lambda *a: {
        "bench": ([sys.executable, "-c", peek, str(tmp_path)], "nothing"),
        "figures": ([sys.executable, "-c", term], "nothing")})
    handler = signal.getsignal(signal.SIGTERM)

    assert gpu_check.main(["--quick", "--out", str(tmp_path), "--skip", ""]) == 1
    assert signal.getsignal(signal.SIGTERM) is handler
    doc = results(tmp_path)
    assert doc["status"] == "failed"
    cuda = doc["stages"]["cuda"]
    assert cuda["checks"]["broken"]["status"] == "failed"
    assert cuda["checks"]["broken"]["detail"] == "RuntimeError: second line"
    assert cuda["checks"]["fine"]["status"] == "passed"  # the failure before it did not stop it
    assert cuda["status"] == ("failed" if torch.cuda.is_available() else "skipped")

    bench = doc["stages"]["bench"]
    assert len(bench["output_tail"]) == 1
    assert json.loads(bench["output_tail"][0]) == {  # the file as the bench stage found it
        "stages": {"cuda": cuda["status"], "bench": "running", "figures": "pending"},
        "checks": {"broken": "failed", "fine": "passed"}}
    assert bench["status"] == "failed" and bench["returncode"] == 3
    assert bench["details"] == f"exit status 3: {bench['output_tail'][0]}"
    assert doc["stages"]["figures"]["status"] == "failed"
    assert doc["stages"]["figures"]["details"] == "interrupted (SIGTERM)"


def test_without_cuda_and_without_quick_it_exits_2_in_one_line(tmp_path):
    p = gpu_check_cli("--out", str(tmp_path))
    assert p.returncode == 2
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("error: gpu-check needs a CUDA GPU")
    assert "--quick" in p.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was run or written
