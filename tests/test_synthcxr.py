"""SynthCXR: determinism, pictures that carry their findings, reports that say exactly what is present."""

from __future__ import annotations

import numpy as np
import pytest

from semalign.data import DataError, get_pairs
from semalign.data.synthcxr import FINDINGS, generate, gallery, mentions


def test_shapes_and_labels():
    b = generate(5, seed=1, size=128)
    assert b.images.shape == (5, 128, 128) and b.images.dtype == np.uint8
    assert len(b.reports) == 5 and all(r.startswith("FINDINGS:") for r in b.reports)
    for f in FINDINGS:
        assert set(b.labels[f]) <= {0, 1}
        assert {f + "_severity", f + "_location"} <= set(b.labels.columns)
    assert b.images.std() > 20  # not a blank picture


def test_byte_identical_and_prefix_stable():
    a, b = generate(6, seed=3, size=96), generate(6, seed=3, size=96)
    assert a.images.tobytes() == b.images.tobytes() and a.reports == b.reports
    assert a.labels.equals(b.labels)
    c = generate(3, seed=3, size=96, chunk=2)  # image i depends on (seed, i) only
    assert c.images.tobytes() == a.images[:3].tobytes() and c.reports == a.reports[:3]
    assert generate(6, seed=4, size=96).images.tobytes() != a.images.tobytes()


def _row(img: np.ndarray, y: float, half: int = 2) -> np.ndarray:
    r = int(round(y * img.shape[0]))
    prof = img[max(r - half, 0): r + half + 1].astype(float).mean(0)
    return np.convolve(prof, np.ones(5) / 5, mode="same")


def measure_ctr(img: np.ndarray, geo) -> float:
    """Cardiothoracic ratio measured on the pixels.

    The geometry only says which rows to look at (the heart's centre row, the costophrenic
    row); the widths come from the intensity profile: the heart is the bright run around the
    midline, the thorax spans the dark lungs between the bright chest walls.
    """
    W = img.shape[1]
    prof = _row(img, geo.heart_y)
    c = int(round((geo.heart_left + geo.heart_right) / 2 * W))
    lung = np.percentile(prof[int(0.15 * W): int(0.85 * W)], 3)
    thr = lung + 0.4 * (np.median(prof[c - 8: c + 9]) - lung)
    lft = c
    while lft > 0 and prof[lft - 1] > thr:
        lft -= 1
    rgt = c
    while rgt < W - 1 and prof[rgt + 1] > thr:
        rgt += 1
    heart = rgt - lft + 1
    # thorax: the widest row of dark lung between the bright chest walls, above the angles
    thorax = 0
    for y in np.arange(geo.heart_y - 0.15, min(geo.cpa_right_y, geo.cpa_left_y) - 0.03, 0.01):
        prof2 = _row(img, y)
        wall = np.percentile(prof2, 90)
        lung2 = np.percentile(prof2[int(0.1 * W): int(0.9 * W)], 10)
        thr2 = lung2 + 0.35 * (wall - lung2)
        bright = np.nonzero(prof2 > thr2)[0]  # from the left chest wall to the right one
        if bright.size == 0:
            continue
        inside = np.arange(bright.min(), bright.max() + 1)
        dark = inside[prof2[inside] < thr2]
        if dark.size:
            thorax = max(thorax, dark.max() - dark.min() + 1)
    return heart / thorax


def test_cardiomegaly_iff_ctr_above_half_on_pixels():
    b = generate(40, seed=7, size=224, findings=["cardiomegaly"], prevalence={"cardiomegaly": 0.5})
    ctr = np.array([measure_ctr(im, g) for im, g in zip(b.images, b.geometry.itertuples())])
    y = b.labels["cardiomegaly"].to_numpy()
    assert 10 < y.sum() < 30
    # the drawn ratio is exact; the measured one carries a few pixels of error
    assert np.all((b.geometry["ctr"] > 0.5) == (y == 1))
    agree = ((ctr > 0.5) == (y == 1)).mean()
    assert agree >= 0.95, (agree, np.round(ctr, 3), y)


def test_effusion_blunts_the_costophrenic_angle_of_its_side():
    n = 12
    on = generate(n, seed=11, findings=[], force={"pleural_effusion": 1})
    off = generate(n, seed=11, findings=[], force={"pleural_effusion": 0})
    H = W = 224
    for i in range(n):
        diff = on.images[i].astype(float) - off.images[i].astype(float)
        g = on.geometry.iloc[i]
        side = on.labels.loc[i, "pleural_effusion_location"]
        assert side in ("right", "left", "bilateral")
        for s in ("right", "left"):
            x, yy = g[f"cpa_{s}_x"], g[f"cpa_{s}_y"]
            # a box just inside the costophrenic angle
            x0 = int((x + (0.03 if s == "right" else -0.07)) * W)
            box = diff[int((yy - 0.06) * H): int((yy - 0.01) * H), x0: x0 + int(0.04 * W)]
            if side in (s, "bilateral"):
                assert box.mean() > 8, (i, s, box.mean())
            else:
                assert abs(box.mean()) < 2, (i, s, box.mean())
        # nothing changes in the upper half of the picture
        assert np.abs(diff[: H // 3]).mean() < 0.5


@pytest.mark.parametrize("f", FINDINGS)
def test_each_finding_changes_the_lungs_only_where_it_should(f):
    on = generate(4, seed=5, findings=[], force={f: 1})
    off = generate(4, seed=5, findings=[], force={f: 0})
    diff = np.abs(on.images.astype(float) - off.images.astype(float))
    assert diff.mean(axis=(1, 2)).min() > 0.05, f"{f} leaves some pictures unchanged"
    # outside the body (image corners) nothing moves
    assert diff[:, -10:, :10].max() == 0 and diff[:, -10:, -10:].max() == 0


def test_reports_mention_exactly_what_is_present():
    b = generate(300, seed=2, size=64)
    negated = hedged = 0
    for rep, (_, lab) in zip(b.reports, b.labels.iterrows()):
        m = mentions(rep)
        for f in FINDINGS:
            assert (m[f] == "positive") == bool(lab[f]), (f, rep)
        negated += sum(v == "negated" for v in m.values())
        hedged += any(w in rep for w in ("Possible", "Probable", "Suspected"))
    assert negated > 300 and hedged > 10
    assert len(set(b.reports)) > 250  # varied phrasing


def test_force_and_bad_arguments():
    b = generate(6, seed=0, size=64, force={"tuberculosis": [1, 0, 1, 0, 1, 0]})
    assert b.labels["tuberculosis"].tolist() == [1, 0, 1, 0, 1, 0]
    with pytest.raises(DataError, match="unknown finding"):
        generate(2, findings=["pneumothorax"])
    with pytest.raises(DataError, match="3 values for n=2"):
        generate(2, force={"edema": [1, 0, 1]})


def test_gallery_and_pairs():
    g = gallery(size=96)
    assert [it["finding"] for it in g] == ["normal", *FINDINGS]
    assert all(it["image"].shape == (96, 96) and it["report"] for it in g)
    assert all(it["severity"] in ("moderate", "severe") for it in g[1:])
    p = get_pairs("synthcxr-pairs", n=8, seed=0, size=64)
    assert list(p.columns) == ["id", "image", "text"] and len(p) == 8
    assert p.attrs["dataset_key"].startswith("synthcxr-pairs@")
    assert p["id"].is_unique
