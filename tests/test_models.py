"""The VAE models: shapes for any image size, the KL term against torch's closed form, and the model file."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaebench.errors import CheckpointError, UnknownNameError
from vaebench.families import FAMILIES
from vaebench.models import ARCHITECTURES, ModelConfig, build_model, gaussian_kl, load_model, save_model


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 7, 9)])
def test_every_architecture_decodes_the_image_shape_it_encodes(arch, shape):
    c, h, w = shape
    model = build_model(ModelConfig(arch, c, h, w, latent_dim=3, family="gaussian", hidden=16))
    x = torch.rand(5, c, h, w)
    params, mu, logvar = model(x, torch.randn(5, 3))
    assert params.shape == (5, FAMILIES["gaussian"].n_params, c, h, w)  # odd sizes are not padded
    assert mu.shape == logvar.shape == (5, 3)


def test_decoder_emits_as_many_parameter_maps_as_the_family_needs():
    for name, cls in FAMILIES.items():
        model = build_model(ModelConfig("mlp", 1, 4, 4, 2, name, hidden=8))
        assert model.decode(torch.zeros(3, 2)).shape == (3, cls.n_params, 1, 4, 4)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), kl_divergence(q, p).sum(1))
    assert torch.equal(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))  # q = prior


def test_unknown_architecture_is_a_one_line_error_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'conv'"):
        build_model(ModelConfig("convv", 1, 4, 4, 2, "gaussian"))


def test_saved_model_loads_with_the_same_config_weights_and_family_options(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 1, 8, 8, 2, "gaussian_fixed", {"sigma": 0.25}))
    path = save_model(model, tmp_path / "model.pt")
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.family.options == {"sigma": 0.25}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    z = torch.randn(4, 2)
    assert torch.equal(model.decode(z), loaded.decode(z))


def test_gaussian_shared_keeps_its_sigma_in_the_model_file(tmp_path):
    model = build_model(ModelConfig("mlp", 1, 4, 4, 2, "gaussian_shared", hidden=8))
    with torch.no_grad():
        model.family.log_sigma.fill_(-2.5)
    assert load_model(save_model(model, tmp_path / "model.pt")).family.log_sigma.item() == -2.5


def test_missing_model_file_says_to_train_first(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist: train the run first"):
        load_model(tmp_path / "nope.pt")
