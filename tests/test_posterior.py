"""The posterior metrics against closed forms and direct scikit-learn / numpy / scipy computations:
ELBO and KL, kNN accuracy, active units, reconstruction error and calibration."""

import numpy as np
import pytest
import torch
from eval_models import LinearGaussianVAE, TinyMLPVAE, fake_dataset, fake_images
from scipy import stats
from sklearn.neighbors import KNeighborsClassifier

from vaebench import evaluate as ev
from vaebench import posterior as pst
from vaebench.seeding import STREAM_TEST_DEQ, stream_generator
from vaebench.units import bpd_deq


def test_posterior_pass_elbo_matches_the_closed_form_and_its_kl_is_analytic():
    """One posterior sample per image: its mean matches the closed-form ELBO within sampling error."""
    model = LinearGaussianVAE(shift=0.2, scale=1.5)
    x, v = fake_images(2000)
    elbo, kl = model.closed_form_elbo(x)
    post = pst.posterior_pass(model, x, v, 500, torch.Generator().manual_seed(6))
    diff = post["elbo"].numpy() - elbo
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))
    np.testing.assert_allclose(post["kl"].numpy(), kl, rtol=1e-12)


# ---------------------------------------------------------------- latent metrics vs scikit-learn / numpy


def test_knn_accuracy_matches_scikit_learn():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 4)) * 1.5
    train_y, test_y = rng.integers(0, 5, 700), rng.integers(0, 5, 300)
    train_z = centres[train_y] + rng.normal(size=(700, 4))
    test_z = centres[test_y] + rng.normal(size=(300, 4))
    expected = KNeighborsClassifier(n_neighbors=15).fit(train_z, train_y).score(test_z, test_y)
    got = pst.knn_accuracy(
        torch.tensor(train_z), torch.tensor(train_y), torch.tensor(test_z), torch.tensor(test_y)
    )
    assert got == expected
    assert 0.3 < got < 1.0  # the data is neither trivial nor hopeless, so a wrong vote would show


def test_active_units_match_numpy():
    rng = np.random.default_rng(1)
    scales = np.array([0.0, 0.05, 0.09, 0.11, 1.0, 3.0])  # variances 0, .0025, .0081, .0121, 1, 9
    mu = rng.normal(size=(4000, 6)) * scales
    expected = int((mu.var(axis=0) > 0.01).sum())
    assert pst.active_units(torch.tensor(mu)) == expected == 3


# ---------------------------------------------------------------- reconstruction, calibration, figure arrays


def test_evaluate_metrics_against_direct_computation():
    data, model = fake_dataset(), TinyMLPVAE(z=2)
    n = 40
    metrics, arts = ev.evaluate(model, data, ev.EvalConfig(k=16, n_test=n, batch=16))
    x = pst.dequantize_blocks(data.test_images, n, stream_generator(0, STREAM_TEST_DEQ, "cpu"))
    with torch.no_grad():
        mu = model.encode(x)[0]
        mean = model.decode(mu).double().flatten(1).numpy()
    v = data.test_images[:n].flatten(1).double().numpy()
    assert metrics["recon_mse"] == pytest.approx(((v / 255 - mean) ** 2).mean(), rel=1e-12)
    u = stats.norm(mean, 0.2).cdf(x.flatten(1).double().numpy())
    assert metrics["coverage90"] == pytest.approx(((u >= 0.05) & (u <= 0.95)).mean(), abs=1e-12)
    np.testing.assert_array_equal(arts["pit_counts"], np.histogram(u, bins=20, range=(0, 1))[0])
    np.testing.assert_allclose(arts["latent_mu"], mu.numpy())
    np.testing.assert_array_equal(arts["latent_labels"], data.test_labels[:n].numpy())
    assert arts["data"].shape == arts["recon"].shape == (16, 1, 8, 8)
    assert arts["samples"].shape == arts["samples_std"].shape == (64, 1, 8, 8)
    assert metrics["bpd_deq"] == pytest.approx(bpd_deq(metrics["ll_deq_nats"], 64))
    assert metrics["kl_nats"] > 0 and metrics["n_test"] == n and metrics["k"] == 16
