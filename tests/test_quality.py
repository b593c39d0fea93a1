"""vaebench.quality and the families' median images: the Fréchet distance against closed forms and scipy,
blur and Sobel against scipy.ndimage, sharpness, each family's median against its CDF, and the evaluate
record with and without a classifier (every other number unchanged)."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from eval_models import TinyMLPVAE, fake_dataset, fake_images, real_model
from scipy import ndimage, special, stats

from vaebench import evaluate as ev
from vaebench import posterior as pst
from vaebench import quality
from vaebench.classifier import Classifier
from vaebench.families import FAMILIES, make_family

# ---------------------------------------------------------------- Fréchet distance


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    got = quality.gaussian_moments_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(closed, rel=1e-12)


def test_frechet_distance_of_general_gaussians_matches_scipy_sqrtm():
    rng = np.random.default_rng(1)
    for d in (2, 7, 40):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
        reference = (
            ((mu1 - mu2) ** 2).sum()
            + np.trace(s1)
            + np.trace(s2)
            - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
        )
        assert quality.gaussian_moments_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)


def test_frechet_distance_of_feature_sets():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 5))
    assert quality.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)
    assert quality.frechet_distance(a, a) >= 0.0
    b = rng.normal(loc=3.0, scale=2.0, size=(100_000, 3))  # N(3, 4 I) against N(0, I): 3*9 + 3*(2-1)^2
    c = rng.normal(size=(100_000, 3))
    assert quality.frechet_distance(b, c) == pytest.approx(30.0, rel=0.01)
    few = rng.normal(size=(10, 40))  # fewer images than features: singular covariances are fine
    assert math.isfinite(quality.frechet_distance(few, rng.normal(size=(12, 40))))
    a[3, 1] = np.nan
    assert math.isnan(quality.frechet_distance(a, rng.normal(size=(50, 5))))


# ---------------------------------------------------------------- blur, gradients, sharpness


def _digits(n=6, side=12, seed=0):
    """Blocky random images [n, 2, side, side] in [0, 1] with sharp edges."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 2, side // 3, side // 3, generator=g, dtype=torch.float64)
        .repeat_interleave(3, 2)
        .repeat_interleave(3, 3)
    )


def test_gaussian_blur_matches_scipy():
    images = _digits()
    expected = ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1.0, 1.0), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(quality.gaussian_blur(images, 1.0).numpy(), expected, rtol=1e-12, atol=1e-14)


def test_gradient_magnitude_matches_scipy_sobel():
    images = _digits()
    # per channel in 2-D: on a 4-D array scipy's Sobel would smooth across images and channels too
    expected = [
        sum(
            np.hypot(ndimage.sobel(plane, axis=1), ndimage.sobel(plane, axis=0))[1:-1, 1:-1].sum()
            for plane in image
        )
        for image in images.numpy()
    ]
    np.testing.assert_allclose(quality.gradient_magnitude(images).numpy(), expected, rtol=1e-12)


def test_sharpness_is_one_for_the_data_and_below_one_blurred():
    images = _digits().float()
    assert quality.sharpness(images, images) == pytest.approx(1.0, rel=1e-12)
    blurred = quality.sharpness(quality.gaussian_blur(images), images)
    assert 0.0 < blurred < 0.9
    assert quality.sharpness(quality.gaussian_blur(images, 2.0), images) < blurred


# ---------------------------------------------------------------- the families' median images

SYMMETRIC = {
    "squared_error",
    "gaussian_fixed",
    "gaussian",
    "gaussian_shared",
    "absolute_error",
    "laplace_fixed",
    "laplace",
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_median_is_none_exactly_for_the_symmetric_families(name):
    family = make_family(name)
    params = torch.randn(2, family.n_params, 1, 3, 3, dtype=torch.float64)
    median = family.median(params)
    assert (median is None) == (name in SYMMETRIC)
    if median is not None:
        assert median.shape == (2, 1, 3, 3) and bool(((median >= 0) & (median <= 1)).all())


@pytest.mark.parametrize("name", ["continuous_bernoulli", "bernoulli"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_continuous_bernoulli_median_solves_its_cdf(name, dtype):
    eta = np.array([-80.0, -20, -3, -0.21, -0.19, -0.05, -1e-4, 0.0, 1e-4, 0.05, 0.19, 0.21, 3, 20, 80])
    median = make_family(name).median(torch.tensor(eta, dtype=dtype).view(1, 1, 1, 1, -1)).double().flatten()
    x = median.numpy()
    safe = np.where(eta == 0, 1.0, eta)
    cdf = np.where(eta == 0, x, np.expm1(safe * x) / np.expm1(safe))  # F(x) = (e^(eta x) - 1) / (e^eta - 1)
    tol = 1e-5 if dtype == torch.float32 else 1e-12  # float32: the CDF's slope at the median reaches eta/2
    np.testing.assert_allclose(cdf, 0.5, atol=tol)
    family_cdf = make_family(name).cdf(torch.tensor(eta).view(1, 1, 1, 1, -1), median.view(1, 1, 1, -1))
    np.testing.assert_allclose(family_cdf.numpy().flatten(), 0.5, atol=tol)


@pytest.mark.parametrize("name", ["logit_normal", "logit_laplace"])
def test_logit_space_median_is_sigmoid_of_the_location(name):
    family = make_family(name)
    params = torch.randn(3, 2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    median = family.median(params)
    torch.testing.assert_close(family.cdf(params, median), torch.full_like(median, 0.5), rtol=0, atol=1e-12)
    noise = stats.norm if name == "logit_normal" else stats.laplace
    loc = params[:, 0].numpy()
    np.testing.assert_allclose(noise.cdf(special.logit(median.numpy()) - loc), 0.5, atol=1e-9)


def test_discretized_logistic_median_is_the_median_bin():
    family = make_family("discretized_logistic")
    g = torch.Generator().manual_seed(0)
    loc = torch.cat(
        [
            torch.rand(400, generator=g, dtype=torch.float64) * 1.2 - 0.1,
            torch.arange(256, dtype=torch.float64) / 256,
        ]
    )  # bin edges exactly
    raw = torch.randn(loc.shape, generator=g, dtype=torch.float64) * 3 - 3
    params = torch.stack([loc, raw]).view(1, 2, 1, 1, -1)
    v = (family.median(params).flatten() * 255).numpy()
    np.testing.assert_allclose(v, np.round(v), atol=1e-9)
    mu, s = loc.numpy(), (torch.nn.functional.softplus(raw) + family.scale_floor).numpy()
    below_or_at = np.where(v >= 255, 1.0, stats.logistic.cdf(((v + 1) / 256 - mu) / s))  # P(v' <= v)
    below = np.where(v <= 0, 0.0, stats.logistic.cdf((v / 256 - mu) / s))  # P(v' <= v - 1)
    assert (below_or_at >= 0.5).all() and (below < 0.5).all()


def test_beta_median_is_close_to_scipys():
    grid = np.exp(np.linspace(np.log(1e-3), np.log(5e3), 60))
    a, b = (t.ravel() for t in np.meshgrid(grid, grid, indexing="ij"))
    family = make_family("beta")
    raw = torch.tensor(np.stack([np.log(a), np.log(b)]))  # inverts log a = L tanh(raw / L) below
    raw = family.log_bound * torch.atanh(raw / family.log_bound)
    ca, cb = family.concentrations(raw.view(1, 2, 1, 1, -1))
    np.testing.assert_allclose(ca.flatten().numpy(), a, rtol=1e-9)
    median = family.median(raw.view(1, 2, 1, 1, -1)).flatten().numpy()
    exact = stats.beta.median(a, b)
    both = (a >= 1) & (b >= 1)
    assert np.abs(median - exact)[both].max() < 0.008  # Kerman's approximation
    one = (np.minimum(a, b) < 1) & (np.maximum(a, b) >= 1)
    assert np.abs(median - exact)[one].max() < 0.04  # the piled-up end's power-law tail
    assert ((median >= 0) & (median <= 1)).all()
    assert np.array_equal((median <= 0.5)[a != b], (a <= b)[a != b])  # the side of 1/2 is always right


# ---------------------------------------------------------------- the evaluate record


def _classifier(data, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(tuple(data.shape), int(data.train_labels.max()) + 1).eval()


@pytest.mark.parametrize("family", ["continuous_bernoulli", "gaussian"])
def test_quality_metrics_leave_every_other_number_unchanged(family):
    data = fake_dataset(n_test=60)
    model = real_model(family, side=8, dtype=torch.float32)
    cfg = ev.EvalConfig(k=8, n_test=60, batch=25, n_train=100)
    without, art_without = ev.evaluate(model, data, cfg)
    with_, art_with = ev.evaluate(model, data, cfg, _classifier(data))
    existing = set(without) - set(quality.unscored(""))
    assert {key: with_[key] for key in existing} == {key: without[key] for key in existing}  # bit-identical
    assert set(with_) <= set(without)  # the same keys; null with a note without a classifier
    assert set(art_with) == set(art_without)
    assert all(np.array_equal(art_with[key], art_without[key]) for key in art_with)
    assert without["fd_n"] is None and all(without[key] is None for key in quality.METRIC_KEYS)
    assert "--classifier" in without["fd_samples_mean_note"]
    assert with_["fd_n"] == 60
    for name in quality.IMAGE_METRICS:
        assert with_[f"{name}_mean"] >= 0 and math.isfinite(with_[f"{name}_mean"])
    if family == "gaussian":
        assert all(with_[f"{name}_median"] is None for name in quality.IMAGE_METRICS)
        assert "median image is the mean image" in with_["sharpness_median_note"]
        assert "recon_median" not in art_with
    else:
        assert all(math.isfinite(with_[f"{name}_median"]) for name in quality.IMAGE_METRICS)
        assert art_with["recon_median"].shape == art_with["recon"].shape
        assert art_with["samples_median"].shape == art_with["samples"].shape


@pytest.mark.parametrize("family", ["logit_normal", "discretized_logistic", "gaussian"])
def test_the_posterior_pass_hands_over_the_reconstructions_the_decoder_gives(family):
    """The reconstructions scored are the posterior pass's own (decoded once): the pictures of the decoder
    at the posterior mean, up to float32 rounding, for the first keep_pictures images only; keeping them
    changes none of the pass's other numbers."""
    model = real_model(family, side=8, dtype=torch.float32)
    x, v = fake_images(30, side=8)
    passes = [pst.posterior_pass(model, x, v, 8, torch.Generator().manual_seed(3), keep) for keep in (0, 21)]
    for key in ("elbo", "kl", "mu", "sq_err"):
        assert torch.equal(passes[0][key], passes[1][key])
    assert passes[0]["recon"] == {"mean": None, "median": None}
    kept = quality.on_screen(passes[1]["recon"])
    decoded = quality.decoded_pictures(model, passes[1]["mu"][:21].float())
    assert kept.keys() == decoded.keys()
    for picture, image in decoded.items():
        if image is None:
            assert kept[picture] is None
            continue
        assert kept[picture].shape == (21, 1, 8, 8)
        torch.testing.assert_close(kept[picture], image, rtol=0, atol=1e-5)


def test_prior_samples_follow_the_seed_and_n_is_at_most_fd_max_n(monkeypatch):
    data = fake_dataset(n_test=50)
    model, classifier = TinyMLPVAE(z=3), _classifier(data)
    v = data.test_images
    recon = quality.decoded_pictures(model, torch.randn(50, 3))
    labels = data.test_labels
    seeds = [quality.quality_metrics(model, classifier, v, recon, 3, labels, seed) for seed in (0, 1)]
    assert seeds[0]["fd_samples_mean"] != seeds[1]["fd_samples_mean"]
    assert seeds[0]["fd_recon_mean"] == seeds[1]["fd_recon_mean"]
    monkeypatch.setattr(quality, "FD_MAX_N", 20)
    assert quality.quality_metrics(model, classifier, v, recon, 3, data.test_labels, seed=0)["fd_n"] == 20


def test_a_perfect_reconstruction_is_as_sharp_as_the_data_and_classified_like_it():
    """A model whose reconstruction is the test image itself: sharpness 1, the classifier's own accuracy."""
    data = fake_dataset(n_test=40)
    v = data.test_images

    classifier = _classifier(data)
    model = real_model("gaussian_fixed", side=8, dtype=torch.float32)
    recon = {"mean": v.double() / 255, "median": None}  # what the posterior pass would hand over
    metrics = quality.quality_metrics(model, classifier, v, recon, 2, data.test_labels, seed=0)
    assert metrics["sharpness_mean"] == pytest.approx(1.0, rel=1e-12)
    assert metrics["fd_recon_mean"] == pytest.approx(0.0, abs=1e-8)
    own = (quality.features(classifier, v.float() / 255)[1] == data.test_labels).double().mean().item()
    assert metrics["recon_class_acc_mean"] == pytest.approx(own)
