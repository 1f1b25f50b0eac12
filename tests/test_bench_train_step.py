"""``python -m bench.train_step``: it times every case both ways and leaves the trainer as it was."""
import json

from bench import train_step
from repro import tasks
from repro.models import residual


def test_train_step_bench_quick_run_times_each_case_both_ways(tmp_path, data_ready):
    body, layout = residual.ResidualGenerator.body, tasks.loss_layout
    assert train_step.main(["--quick", "--out", str(tmp_path)]) == 0
    assert residual.ResidualGenerator.body is body  # the NCHW variants are undone
    assert tasks.loss_layout is layout
    (out,) = tmp_path.glob("train-step-*.json")
    res = json.loads(out.read_text())
    assert res["profile"] == "smoke" and set(res["cases"]) == set(train_step.CASES)
    for case, row in res["cases"].items():
        variants = ["now"] + train_step.BEFORE[case]
        assert all(row[v]["s_per_step"] > 0 for v in variants), case
        assert all(row[v]["speedup"] > 0 for v in variants[1:]), case
    # one VGG pass over the paintings computes what two did
    assert res["cases"]["AdaIN"]["two VGG passes"]["same_first_loss"] is True
