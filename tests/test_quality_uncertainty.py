"""The bootstrap CI of FD and KID, checked against a simulation: Gaussian "features" whose law we
choose, so the truth is known. Two draws of one distribution must not be called different; a
degraded set must be; the interval must cover the statistic's expectation at this N."""
import numpy as np
import pytest

from bench.quality import fd, metrics, uncertainty

D, N, TRIALS = 16, 64, 40


def _stat(kind):
    return fd.fd_from_features if kind == "fd" else fd.mmd2_unbiased


@pytest.mark.parametrize("kind", ["fd", "kid"])
def test_same_law_overlaps_degraded_separates_and_ci_covers_the_expectation(kind):
    rng = np.random.default_rng(0)
    stat = _stat(kind)

    def draw(shift=0.0):
        return rng.standard_normal((N, D)) + shift

    expected = np.mean([stat(draw(), draw()) for _ in range(400)])  # E[statistic at this N], same law
    covered = same = separated = 0
    for _ in range(TRIALS):
        ref = draw()
        a, b, worse = draw(), draw(), draw(shift=0.6)
        va, vb, vw = stat(a, ref), stat(b, ref), stat(worse, ref)
        ra, rb, rw = (uncertainty.replicates(kind, x, ref, seed=0) for x in (a, b, worse))
        lo, hi = uncertainty.interval(va, ra)
        covered += lo <= expected <= hi
        same += uncertainty.difference(va, ra, vb, rb)["distinguishable"]
        separated += uncertainty.difference(vw, rw, va, ra)["distinguishable"]
    assert covered >= 0.9 * TRIALS
    assert same <= 0.1 * TRIALS  # two draws of one law: indistinguishable (nominal rate 5%)
    assert separated >= 0.95 * TRIALS  # a mean shift of 0.6 per dimension: told apart


def test_interval_is_recentred_on_the_value():
    reps = np.arange(1000.0)  # median 499.5, 2.5% / 97.5% at 24.975 / 974.025
    lo, hi = uncertainty.interval(10.0, reps)
    assert lo == pytest.approx(10.0 - (499.5 - 24.975)) and hi == pytest.approx(10.0 + (974.025 - 499.5))


def test_difference_needs_paired_replicates():
    with pytest.raises(ValueError, match="paired replicates"):
        uncertainty.difference(1.0, np.ones(50), 2.0, np.ones(40))


def test_kid_has_a_real_interval_when_n_equals_the_subset_size():
    # the subsets' std is ~0 when every subset is the whole set; the bootstrap CI is not
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((N, D)) + 0.3, rng.standard_normal((N, D))
    row = metrics._statistic("kid", x, y, seed=0)
    assert row["std"] < 1e-12
    lo, hi = row["ci95"]
    assert lo < row["value"] < hi and hi - lo > 0.01
    assert len(row["bootstrap"]["replicates"]) == uncertainty.RESAMPLES


def test_records_sharing_a_reference_draw_the_same_reference_indices():
    # pairing: the reference stream depends on the seed only, not on the generated set
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((N, D))
    a = uncertainty.replicates("fd", rng.standard_normal((N, D)), ref, resamples=30, seed=3)
    b = uncertainty.replicates("fd", rng.standard_normal((N, D)), ref, resamples=30, seed=3)
    assert np.corrcoef(a - a.mean(), b - b.mean())[0, 1] > 0.2  # both move with the shared reference draw


@pytest.mark.parametrize("n,m,d", [(12, 9, 20), (30, 30, 7), (9, 14, 5)])
def test_gathered_replicates_equal_recomputing_on_the_resampled_features(n, m, d):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((n, d)) + 0.2, rng.standard_normal((m, d))
    for kind in ("fd", "kid"):
        fast = uncertainty.replicates(kind, x, y, resamples=15, seed=5)
        rng_ref, rng_gen = uncertainty._rngs(5)
        slow = []
        for _ in range(15):
            ix, iy = rng_gen.integers(0, n, n), rng_ref.integers(0, m, m)
            k = min(n, m)
            slow.append(fd.fd_from_features(x[ix], y[iy]) if kind == "fd" else fd.mmd2_unbiased(x[ix[:k]], y[iy[:k]]))
        assert fast == pytest.approx(slow, rel=1e-6)  # eigvalsh of C C^T: ~1e-8 on the zero eigenvalues
