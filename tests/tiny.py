"""Helpers the trainer's tests share: a run of a few steps, and the CLI in a subprocess."""
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
