"""semalign.stats: AUROC standard errors against known answers and a bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from semalign.stats import auroc_se_hanley, delong, macro_auroc_se_hanley, se_of_mean


def _binormal(n_pos, n_neg, shift, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    s = np.r_[rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)]
    return y, s


@pytest.mark.parametrize("seed", range(3))
def test_delong_auc_equals_sklearn_with_ties(seed):
    y, s = _binormal(37, 53, 0.8, seed)
    s = np.round(s, 1)  # many ties
    auc, se = delong(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert 0 < se < 0.1


def test_delong_se_matches_bootstrap_and_hanley():
    y, s = _binormal(200, 200, 1.0, 7)
    auc, se = delong(y, s)
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boot = []
    for _ in range(400):  # stratified bootstrap: the class counts stay fixed, as in the SE's model
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        boot.append(roc_auc_score(y[idx], s[idx]))
    assert se == pytest.approx(np.std(boot), rel=0.2)
    assert auroc_se_hanley(auc, 200, 200) == pytest.approx(se, rel=0.2)


def test_delong_perfect_and_reversed_separation_have_zero_se():
    y = np.r_[np.ones(5, int), np.zeros(5, int)]
    assert delong(y, np.r_[np.arange(5) + 10.0, np.arange(5)]) == (1.0, 0.0)
    assert delong(y, np.r_[np.arange(5), np.arange(5) + 10.0]) == (0.0, 0.0)


@pytest.mark.parametrize("y, s, match", [
    ([0, 0, 0], [1, 2, 3], "both classes"),
    ([0, 2, 1], [1, 2, 3], "0/1"),
    ([0, 1], [1.0, np.nan], "finite"),
    ([0, 1, 1], [1.0, 2.0], "one length"),
])
def test_delong_refuses_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        delong(y, s)


def test_hanley_known_values_and_shrinkage():
    # Hanley & McNeil 1982, Table: A = 0.5 with 1 + 1 samples has var 0.25 / 1 = 0.25 (eq. 2)
    assert auroc_se_hanley(0.5, 1, 1) == pytest.approx(0.5, abs=1e-12)
    a = [auroc_se_hanley(0.75, n, n) for n in (40, 160, 640)]
    assert a[0] > a[1] > a[2] > 0
    assert a[0] / a[1] == pytest.approx(2.0, rel=0.05)  # ~ 1 / sqrt(n)
    assert np.isnan(auroc_se_hanley(0.7, 0, 10)) and np.isnan(auroc_se_hanley(float("nan"), 5, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        auroc_se_hanley(1.2, 5, 5)


def test_macro_se():
    binary = macro_auroc_se_hanley(0.8, [50, 30])
    assert binary == pytest.approx(auroc_se_hanley(0.8, 30, 50))
    five = macro_auroc_se_hanley(0.8, {c: 100 for c in "abcde"})
    assert five == pytest.approx(auroc_se_hanley(0.8, 100, 400) / np.sqrt(5))
    with pytest.raises(ValueError, match="2 classes"):
        macro_auroc_se_hanley(0.8, [10])


def test_se_of_mean():
    assert se_of_mean([0.1, 0.1, 0.1, 0.1]) == pytest.approx(0.05)
    assert np.isnan(se_of_mean([])) and np.isnan(se_of_mean([0.1, float("nan")]))


@pytest.mark.parametrize("seed", range(5))
def test_binary_auroc_is_sklearns_roc_auc(seed):
    from sklearn.metrics import roc_auc_score

    from semalign.stats import binary_auroc

    rng = np.random.default_rng(seed)
    n = 50 + 40 * seed
    pos = rng.random(n) < 0.3 + 0.1 * seed
    for scores in (rng.normal(size=n) + pos, np.round(rng.normal(size=n) + pos, 1),   # ties
                   rng.integers(0, 3, n).astype(float)):                               # many ties
        assert binary_auroc(pos, scores) == pytest.approx(roc_auc_score(pos, scores), abs=1e-12)
    assert binary_auroc(pos, pos.astype(float)) == 1.0
    assert binary_auroc(pos, -pos.astype(float)) == 0.0
    assert binary_auroc(pos, np.zeros(n)) == 0.5


def test_binary_auroc_refuses_what_has_no_auroc():
    from semalign.stats import binary_auroc

    with pytest.raises(ValueError, match="both classes"):
        binary_auroc([True, True], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN/inf"):
        binary_auroc([True, False], [np.nan, 0.2])
    with pytest.raises(ValueError, match="one length"):
        binary_auroc([True, False], [0.1])
