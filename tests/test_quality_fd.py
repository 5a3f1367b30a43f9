"""Fréchet distance and KID against closed forms, scipy's sqrtm and clean-fid's KID formula."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg

from bench.quality import fd


def _random_psd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / (rank or d)


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    s = _random_psd(rng, 12)
    mu = rng.standard_normal(12)
    assert fd.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(1)
    l1, l2 = rng.uniform(0.1, 3, 20), rng.uniform(0.1, 3, 20)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(l1) - np.sqrt(l2)) ** 2).sum()
    assert fd.frechet_distance(mu1, np.diag(l1), mu2, np.diag(l2)) == pytest.approx(expected, rel=1e-10)
    l2[::3] = 0.0  # singular S2: Cholesky fails, the S1^(1/2) path runs
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(np.diag(l2))
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(l1) - np.sqrt(l2)) ** 2).sum()
    assert fd.frechet_distance(mu1, np.diag(l1), mu2, np.diag(l2)) == pytest.approx(expected, rel=1e-10)


def test_shifted_mean_adds_squared_norm():
    rng = np.random.default_rng(2)
    s1, s2 = _random_psd(rng, 8), _random_psd(rng, 8)
    base = fd.frechet_distance(np.zeros(8), s1, np.zeros(8), s2)
    shift = rng.standard_normal(8)
    assert fd.frechet_distance(shift, s1, np.zeros(8), s2) == pytest.approx(base + shift @ shift, rel=1e-10)


def test_factor_form_is_nuclear_norm():
    # S1 = A A^T, S2 = B B^T  =>  tr sqrt(S1 S2) = ||A^T B||_* (spec of the low-rank path)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((30, 7))
    expected = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    # Singular S1, S2: the zero eigenvalues come back as ~1e-16 noise whose square roots add
    # ~1e-8 each, so this path is good to ~1e-6 here; fd_from_features avoids it when N < dim.
    assert fd.trace_sqrt_product(a @ a.T, b @ b.T) == pytest.approx(expected, rel=1e-6)
    f1, f2 = rng.standard_normal((6, 30)), rng.standard_normal((8, 30))
    mu1, a1 = f1.mean(0), (f1 - f1.mean(0)) / np.sqrt(5)
    mu2, b1 = f2.mean(0), (f2 - f2.mean(0)) / np.sqrt(7)
    exact = ((mu1 - mu2) ** 2).sum() + (a1**2).sum() + (b1**2).sum() - 2 * np.linalg.svd(a1 @ b1.T, compute_uv=False).sum()
    assert fd.fd_from_features(f1, f2) == pytest.approx(exact, rel=1e-12)


@settings(max_examples=30)
@given(d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_matches_scipy_sqrtm_oracle(d, seed):
    rng = np.random.default_rng(seed)
    s1, s2 = _random_psd(rng, d) + 0.1 * np.eye(d), _random_psd(rng, d) + 0.1 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = linalg.sqrtm(s1 @ s2).real
    oracle = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert fd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(oracle, rel=1e-7, abs=1e-9)


@settings(max_examples=30)
@given(n1=st.integers(2, 20), n2=st.integers(2, 20), d=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_low_rank_path_equals_covariance_path(n1, n2, d, seed):
    rng = np.random.default_rng(seed)
    f1 = rng.standard_normal((n1, d)) * rng.uniform(0.5, 2, d)
    f2 = rng.standard_normal((n2, d)) + 0.3
    via_cov = fd.frechet_distance(*fd.statistics(f1), *fd.statistics(f2))
    # the covariance path is the less exact one when N < dim (see the nuclear-norm test)
    assert fd.fd_from_features(f1, f2) == pytest.approx(via_cov, rel=1e-5, abs=1e-6)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        fd.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="at least 2"):
        fd.fd_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def _mmd2_loop(x, y):
    # Direct double loop over pairs, Bińkowski et al. 2018, Eq. 3.
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_mmd2_matches_direct_loop():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((9, 5)), rng.standard_normal((9, 5)) + 0.5
    assert fd.mmd2_unbiased(x, y) == pytest.approx(_mmd2_loop(x, y), rel=1e-12)


def test_kid_full_subset_is_the_unbiased_estimate_and_near_zero_for_same_law():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 1.0
    out = fd.kid(x, y, num_subsets=3, max_subset_size=40)
    assert out["mean"] == pytest.approx(_mmd2_loop(x, y), rel=1e-10) and out["std"] < 1e-12
    same = fd.kid(rng.standard_normal((400, 6)), rng.standard_normal((400, 6)), num_subsets=20, max_subset_size=100)
    assert abs(same["mean"]) < 0.05 * out["mean"]

