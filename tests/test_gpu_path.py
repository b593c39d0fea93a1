"""The GPU path on a CPU: the decoder's channels-last upsampling, a granted GPU torch cannot use, out of
memory in evaluation and training, the ladder of chunk sizes, and the numeric flags every record keeps."""

import warnings

import pytest
import torch
from eval_models import estimate, fake_images, real_model

from vaebench import likelihood as lk
from vaebench import models, utils
from vaebench.cli import main
from vaebench.errors import VaebenchError
from vaebench.models import BilinearUpsample, ModelConfig, build_model

# ---------------------------------------------------------------- the conv decoder's fast path


def _upsampled_layouts(model, z) -> tuple[torch.Tensor, list[bool]]:
    """The decoder's output for z and, per upsampling, whether its output came out channels-last."""
    layouts = []
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: layouts.append(out.is_contiguous(memory_format=torch.channels_last))
        )
        for m in model.decoder
        if isinstance(m, BilinearUpsample)
    ]
    with torch.no_grad():
        out = model.decode(z)
    for hook in hooks:
        hook.remove()
    return out, layouts


def test_the_upsampling_takes_channels_last_where_the_device_wants_it(monkeypatch):
    """A CPU tensor keeps NCHW (the numbers of before); where wants_channels_last says so, as it does for
    every CUDA tensor, each upsampling sees channels-last input, and the decoder's output is the same up to
    float rounding and plain contiguous for the family math."""
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 1, 28, 28, 4, "gaussian"))
    z = torch.randn(64, 4)
    assert not models.wants_channels_last(z)
    eager, layouts = _upsampled_layouts(model, z)
    assert layouts == [False, False, False]
    monkeypatch.setattr(models, "wants_channels_last", lambda x: True)
    fast, layouts = _upsampled_layouts(model, z)
    assert layouts == [True, True, True]
    assert fast.is_contiguous() and fast.shape == eager.shape == (64, 2, 1, 28, 28)
    torch.testing.assert_close(fast, eager, rtol=1e-5, atol=1e-6)


def test_the_fast_path_keeps_checkpoints_as_they_were():
    """BilinearUpsample has no parameters: a model's state dict has the keys it had with nn.Upsample."""
    model = build_model(ModelConfig("conv", 1, 8, 8, 2, "bernoulli"))
    assert sum(isinstance(m, BilinearUpsample) for m in model.decoder) == 3
    assert not any(k.startswith("decoder.") and "Upsample" in k for k in model.state_dict())
    assert all(not list(m.parameters()) for m in model.decoder if isinstance(m, BilinearUpsample))


# ---------------------------------------------------------------- a granted GPU torch cannot use


@pytest.fixture
def granted(monkeypatch):
    """A scheduler's grant of GPU 0 (CUDA_VISIBLE_DEVICES=0), nothing else in the environment."""
    for name in utils.GRANTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    return monkeypatch


def test_a_grant_is_read_from_cuda_or_slurm_variables(monkeypatch):
    for name in utils.GRANTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert utils.granted_gpus() is None
    for name, value, grant in (
        ("CUDA_VISIBLE_DEVICES", "", None),
        ("CUDA_VISIBLE_DEVICES", "-1", None),
        ("SLURM_GPUS_ON_NODE", "0", None),
        ("SLURM_GPUS_ON_NODE", "2", "SLURM_GPUS_ON_NODE=2"),
        ("SLURM_JOB_GPUS", "0,3", "SLURM_JOB_GPUS=0,3"),
        ("CUDA_VISIBLE_DEVICES", "0", "CUDA_VISIBLE_DEVICES=0"),
    ):
        monkeypatch.setenv(name, value)
        assert utils.granted_gpus() == grant, (name, value)
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("capability", "arch_list", "runs"),
    [
        ((8, 6), ["sm_80", "sm_90"], True),  # machine code for 8.0 runs on 8.6
        ((8, 9), ["sm_75", "sm_90"], False),  # 7.5's does not run on 8.x, 9.0's not on 8.9
        ((6, 1), ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], False),  # a Pascal GPU
        ((12, 1), ["sm_90", "sm_100", "sm_120"], True),
        ((10, 0), ["sm_80", "compute_90"], True),  # PTX: compiled by the driver for a later device
        ((7, 0), ["sm_80", "compute_75"], False),
        ((9, 0), ["sm_90a"], True),
    ],
)
def test_whether_a_wheel_has_kernels_for_a_device(capability, arch_list, runs):
    assert utils.wheel_runs_on(capability, arch_list) is runs


def test_a_cpu_only_torch_with_a_granted_gpu_stops_with_one_line(granted, tmp_path, capsys):
    granted.setattr(torch.version, "cuda", None)
    assert main(["train", "--device", "auto", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "vaebench train: error: device auto: CUDA_VISIBLE_DEVICES=0 grants a GPU, but torch "
    )
    assert "built without CUDA: install the torch wheel" in err and "--device cpu" in err


def test_a_driver_too_old_for_the_wheel_stops_with_its_own_words(granted):
    def too_old() -> bool:
        warnings.warn(
            "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).",
            stacklevel=2,
        )
        return False

    granted.setattr(torch.version, "cuda", "12.8")
    granted.setattr(torch.cuda, "is_available", too_old)
    for name in ("auto", "cuda"):
        with pytest.raises(VaebenchError) as caught:
            utils.pick_device(name)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(
            f"device {name}: CUDA_VISIBLE_DEVICES=0 grants a GPU"
        )
        assert (
            "(CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).)"
            in message
        )
        assert "what CUDA 12.8 needs (nvidia-smi)" in message and "README: GPU" in message
    assert utils.pick_device("cpu") == torch.device("cpu")  # asked for the CPU: no reason to stop


def test_a_device_the_wheel_has_no_kernels_for_stops_with_one_line(granted):
    granted.setattr(torch.version, "cuda", "12.8")
    granted.setattr(torch.cuda, "is_available", lambda: True)
    granted.setattr(torch.cuda, "device_count", lambda: 1)
    granted.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90"])
    granted.setattr(torch.cuda, "get_device_capability", lambda index: (6, 0))
    granted.setattr(torch.cuda, "get_device_name", lambda index: "Tesla P100")
    with pytest.raises(
        VaebenchError, match=r"^device auto: cuda:0 \(Tesla P100\) has compute capability 6\.0, "
    ):
        utils.pick_device("auto")
    granted.setattr(torch.cuda, "get_device_capability", lambda index: (8, 6))
    assert utils.pick_device("auto") == torch.device("cuda")


def test_without_a_grant_auto_falls_back_to_the_cpu(monkeypatch):
    for name in utils.GRANTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert utils.pick_device("auto") == torch.device("cpu")


# ---------------------------------------------------------------- chunks: a ladder, padded, halved


def test_the_ladder_is_the_block_times_powers_of_two():
    assert [lk.ladder_rung(n) for n in (1, 16, 31, 32, 50, 5000)] == [16, 16, 16, 32, 32, 4096]
    assert [lk.ladder_rung(n, up=True) for n in (1, 16, 17, 33, 904)] == [16, 16, 32, 64, 1024]


def _spy(model, fused: bool):
    """The eager scorer of the model's family, recording the samples per call; `fused` as a compiled one."""
    eager = lk.family_scorer(model.family)
    seen = []

    def score(params, x, v):
        seen.append(params.shape[0] // x.shape[0])
        return eager(params, x, v)

    score.fused = fused
    return score, seen


@pytest.mark.parametrize(("k", "chunk", "shapes"), [(50, 32, [32, 32]), (40, 32, [32, 16]), (40, 64, [64])])
def test_a_compiled_scorer_sees_only_ladder_shapes_and_the_padding_changes_nothing(k, chunk, shapes):
    """The last piece is padded up to a rung (never past the chunk) for a scorer that compiles per shape,
    and the padding's scores dropped: the estimate is the eager one's to the bit."""
    model = real_model("gaussian", dtype=torch.float32)
    x, v = fake_images(6)
    padded, seen = _spy(model, fused=True)
    assert [t.tolist() for t in estimate(model, x, v, k, seed=1, chunk=chunk, score=padded)] == [
        t.tolist() for t in estimate(model, x, v, k, seed=1, chunk=16)
    ]
    assert seen == shapes
    eager, seen = _spy(model, fused=False)
    estimate(model, x, v, k, seed=1, chunk=chunk, score=eager)
    assert sum(seen) == k  # eager kernels take any shape: nothing is padded


def _running_out_above(model, monkeypatch, rows: int) -> list[int]:
    """The model's decoder raises torch.OutOfMemoryError when asked for more than `rows` rows at once;
    returns the list of row counts it was asked for."""
    decode, asked = model.decode, []

    def decode_or_run_out(z):
        asked.append(z.shape[0])
        if z.shape[0] > rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {z.shape[0]} rows")
        return decode(z)

    monkeypatch.setattr(model, "decode", decode_or_run_out)
    return asked


def test_out_of_memory_in_evaluation_halves_the_chunk_once_and_goes_on(monkeypatch, capsys):
    """64 samples of 6 images do not fit, 32 do: one line, the same estimate, and the later batches start
    at the chunk that fitted."""
    model = real_model("bernoulli", dtype=torch.float32)
    x, v = fake_images(12)
    reference = lk.batched_ll(
        model, x, v, 100, 6, 16, torch.Generator().manual_seed(3), lk.family_scorer(model.family)
    )
    asked = _running_out_above(model, monkeypatch, 32 * 6)
    est = lk.batched_ll(
        model, x, v, 100, 6, 64, torch.Generator().manual_seed(3), lk.family_scorer(model.family)
    )
    assert torch.equal(est.deq, reference.deq) and torch.equal(est.disc, reference.disc)
    assert est.chunk == 32 and asked.count(64 * 6) == 1
    err = capsys.readouterr().err
    assert err == (
        "out of memory decoding 64 samples of 6 images at once on cpu: going on with 32 (the estimate does "
        "not depend on it)\n"
    )


def test_out_of_memory_at_one_block_is_one_line(monkeypatch):
    model = real_model("bernoulli", dtype=torch.float32)
    x, v = fake_images(6)
    _running_out_above(model, monkeypatch, 10)
    with pytest.raises(
        VaebenchError,
        match=r"^out of memory decoding 16 samples of 6 images at once on cpu \(.*GiB of RAM\): "
        "lower --batch$",
    ):
        lk.importance_sampled_ll(model, x, v, 40, 32, torch.Generator().manual_seed(0))


def test_out_of_memory_in_training_names_the_batch_size_and_the_memory(monkeypatch, tmp_path, capsys):
    def run_out(self, z):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(models.VAE, "decode", run_out)
    code = main(
        [
            "train",
            "--loss",
            "bernoulli",
            "--latent-dim",
            "2",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "300",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("vaebench train: error: out of memory training at batch size 300 on cpu (")
    assert err.endswith(" GiB of RAM): lower --batch-size\n")


# ---------------------------------------------------------------- what a record says about determinism


def test_provenance_records_the_numeric_flags_as_they_are():
    keys = ("cudnn_deterministic", "cudnn_benchmark", "deterministic_algorithms", "tf32_matmul", "tf32_cudnn")
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=True):
        record = utils.provenance(torch.device("cpu"))
    assert all(isinstance(record[key], bool) for key in keys)
    assert record["cudnn_benchmark"] and record["tf32_cudnn"] and not record["cudnn_deterministic"]
    with lk.full_precision():
        record = utils.provenance(torch.device("cpu"))
    assert not record["tf32_matmul"] and not record["tf32_cudnn"]
    assert record["float32_matmul_precision"] == "highest"
