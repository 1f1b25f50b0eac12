"""Helpers the tests share: a run of a few steps, the CLI in a subprocess, an unwritable folder."""
import os
import subprocess
import sys

from repro import config as config_mod

TINY = ["optim.steps=6", "train.eval_every=3", "train.checkpoint_every=2", "data.n_train=3",
        "data.test_images=[karya]", "data.test_size=48", "loss.vgg_weights=random"]


def tiny(*extra):
    """The smoke profile cut to 6 steps on 3 photos, loss network with random weights."""
    return config_mod.load_config("smoke", TINY + list(extra))


def cli(*args, env=None, **kw):
    """``python -m repro ARGS`` in a fresh process (stdout and stderr captured)."""
    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def unwritable_folder(tmp_path):
    """A folder where no file can be created: a read-only one, or for root (who writes into
    any mode) sysfs, which refuses new files even to root; skips where there is none."""
    import pytest
    from pathlib import Path

    if os.geteuid() != 0:
        ro = Path(tmp_path) / "ro"
        ro.mkdir(mode=0o500)
        return ro
    sys_dir = Path("/sys")
    try:
        os.close(os.open(sys_dir / ".repro-writable-test", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return sys_dir  # refused: what the tests need
    os.unlink(sys_dir / ".repro-writable-test")
    pytest.skip("running as root with a writable /sys: no unwritable folder to test with")
