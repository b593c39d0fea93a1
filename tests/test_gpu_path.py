"""The GPU path on a CPU: the decoder's channels-last upsampling."""

import torch

from vaebench import models
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
