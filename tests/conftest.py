import os

import pytest
import torch

from repro import data, paths

# The suite runs on 2 cores; keep intra-op threads at the machine's size and results repeatable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_ready():
    """data/ is filled (`make data`). In CI a missing file is a failure, elsewhere a skip."""
    missing = data.verify()
    if missing:
        msg = f"data/ is incomplete ({len(missing)} files, e.g. {missing[0]}); run `make data`"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return paths.data_dir()
