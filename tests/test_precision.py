"""The fast paths: run-time precision choice, the fused instance norm, bf16-safe pieces of the
generators, ``stylize(precision=...)`` and the compiled ``Stylizer``."""
import pytest
import torch
import torch.nn.functional as F

from repro import cli, precision, runs
from repro import config as config_mod
from repro.inference import Stylizer, stylize
from repro.models import build_generator
from repro.norms import ConditionalInstanceNorm, InstanceNorm
from repro.train import resolve_precision, train


def psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("flag, expected", [("1", torch.bfloat16), ("0", None)])
def test_auto_precision_follows_the_cpu(monkeypatch, flag, expected):
    monkeypatch.setenv("REPRO_CPU_BF16", flag)
    assert precision.resolve_precision("auto", "cpu") is expected
    assert precision.resolve_precision("fp32", "cpu") is None
    assert precision.resolve_precision("bf16", "cpu") is torch.bfloat16


def test_cpu_detection_reads_the_flags(monkeypatch):
    monkeypatch.delenv("REPRO_CPU_BF16", raising=False)
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert precision.cpu_has_native_bf16()
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not precision.cpu_has_native_bf16()


def test_machine_description_names_the_cpu_threads_and_bf16(monkeypatch):
    assert precision.cpu_model().strip() not in ("", "unknown CPU")  # this machine's, read for real
    monkeypatch.setattr(precision, "cpu_model", lambda: "Some CPU 9000")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setenv("REPRO_CPU_BF16", "1")
    assert precision.machine_description() == "Some CPU 9000, 3 threads, native bf16"
    monkeypatch.setenv("REPRO_CPU_BF16", "0")
    assert precision.machine_description() == "Some CPU 9000, 3 threads, no native bf16 (fp32)"


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="precision"):
        precision.resolve_precision("int8", "cpu")


@torch.no_grad()
def test_instance_norm_is_eq3_and_accurate_under_autocast():
    torch.manual_seed(0)
    norm = InstanceNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 20, 24) * 3 + 5
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    eq3 = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), eq3, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    # statistics in float32: only the output's own bf16 rounding (~2^-8 relative) remains
    assert float((y.float() - eq3).abs().max()) < 0.03


def test_conditional_mixing_weights_are_exact_under_autocast():
    norm = ConditionalInstanceNorm(4, n_styles=3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        by_index = norm(x, torch.tensor([1]))
        by_weights = norm(x, torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(by_index, by_weights)


def test_multiscale_branches_stay_fp32_under_autocast():
    model = build_generator("multiscale", width=0.5, n_scales=3).eval()
    dtypes = {}
    for name, mod in (("branch", model.branches[-1]), ("join", model.joins[-1].block)):
        mod.register_forward_hook(lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.rand(1, 3, 32, 32))
    assert dtypes == {"branch": torch.float32, "join": torch.bfloat16}


@pytest.fixture
def trained_like():
    torch.manual_seed(0)
    model = build_generator("residual", width=0.25).eval()
    return model


def test_stylize_fp32_is_plain_fp32_and_fast_path_is_close(trained_like, monkeypatch):
    x = torch.rand(3, 40, 52)
    with torch.no_grad():
        plain = trained_like(x[None])[0].clamp(0, 1)
    assert torch.equal(stylize(trained_like, x, precision="fp32"), plain)
    assert torch.equal(stylize(trained_like, x, exact=True), plain)  # the synonym
    monkeypatch.setenv("REPRO_CPU_BF16", "0")  # no native bf16: the fast path is fp32
    assert torch.equal(stylize(trained_like, x), plain)
    monkeypatch.setenv("REPRO_CPU_BF16", "1")
    fast = stylize(trained_like, x)
    assert not torch.equal(fast, plain) and psnr(fast, plain) > 35


def test_stylizer_compiles_matches_and_leaves_the_model_alone(trained_like, monkeypatch):
    monkeypatch.setenv("REPRO_CPU_BF16", "1")
    trained_like.train()
    x = torch.rand(3, 36, 44)
    plain = stylize(trained_like, x, precision="fp32")
    assert trained_like.training  # stylize restores the caller's mode
    exact = Stylizer(trained_like, precision="fp32")  # a Stylizer keeps the module in eval mode
    assert not exact.compiled and exact.dtype is None and not trained_like.training
    assert torch.equal(exact(x), plain)
    fast = Stylizer(trained_like)
    assert fast.compiled and fast.dtype is torch.bfloat16
    y = fast(x)
    assert y.shape == x.shape and psnr(y, plain) > 35
    assert next(trained_like.parameters()).is_contiguous()  # layout untouched on the CPU
    with pytest.raises(ValueError, match="AdaIN"):
        fast(x, alpha=0.5)


def test_trainer_records_the_precision_auto_chose(tmp_path, monkeypatch, data_ready):
    monkeypatch.setenv("REPRO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("REPRO_CPU_BF16", "0")
    cfg = config_mod.load_config("smoke", ["optim.steps=2", "train.eval_every=0", "data.n_train=2",
                                           "data.test_images=[]", "loss.vgg_weights=random"])
    assert cfg.train.precision == "auto"
    run = train(cfg, progress=False)
    assert runs.summary(run)["precision"] == "fp32"


def test_fused_norm_falls_back_on_1x1_maps():
    x = torch.randn(2, 3, 1, 1)
    with pytest.raises((ValueError, RuntimeError)):
        F.instance_norm(x)  # what the fallback is for
    assert torch.equal(InstanceNorm(3, affine=False)(x), torch.zeros_like(x))


@pytest.mark.parametrize("bf16_ok, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_fast_dtype_and_the_trainers_fp16_fallback(monkeypatch, bf16_ok, expected):
    # no GPU here: the CUDA choice is exercised through what it asks torch
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    assert precision.resolve_precision("auto", "cuda") is expected
    # fp16 would need loss scaling: the trainer uses fp32 on an fp16-only GPU
    assert resolve_precision("auto", torch.device("cuda")) is (torch.bfloat16 if bf16_ok else None)
    assert resolve_precision("fp32", torch.device("cuda")) is None


def test_one_precision_vocabulary_for_stylize_stylizer_config_and_cli(trained_like, monkeypatch):
    x = torch.rand(3, 32, 32)
    monkeypatch.setenv("REPRO_CPU_BF16", "0")
    # "auto" without native bf16 is fp32 arithmetic, but the Stylizer still compiles: only an
    # explicit fp32 request means plain eager fp32
    auto = Stylizer(trained_like)
    assert auto.dtype is None and auto.compiled
    forced = Stylizer(trained_like, precision="bf16", compile=False)
    assert forced.dtype is torch.bfloat16
    assert not torch.equal(stylize(trained_like, x, precision="bf16"), stylize(trained_like, x, precision="fp32"))
    with pytest.raises(ValueError, match="exact=True means precision='fp32'"):
        stylize(trained_like, x, exact=True, precision="bf16")
    for bad in ("fp16", "double"):
        with pytest.raises(ValueError, match="precision must be one of"):
            stylize(trained_like, x, precision=bad)
        with pytest.raises(config_mod.ConfigError, match="train.precision"):
            config_mod.load_config("smoke", [f"train.precision={bad}"])
    parser = cli.build_parser()
    assert parser.parse_args(["stylize", "c.pt", "in.png", "out.png", "--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["stylize", "c.pt", "in.png", "out.png", "--precision", "fp16"])
