"""SynthCXR: procedural frontal chest radiographs with findings, and a report for each.

The offline profile's vision data. Every image is drawn from explicit anatomy — body outline,
two lungs with domed hemidiaphragms and sharp costophrenic angles, heart and mediastinum,
aortic knob, spine, posterior ribs, clavicles, lung markings — whose sizes and positions vary
from patient to patient, plus any of :data:`FINDINGS`, each with a severity and a location.
The report of an image is written from the same findings (varied phrasing, negation of some
absent findings, hedging of some mild ones), so image and report agree by construction.

Conventions: image coordinates are normalised, ``x`` in [0, 1] left to right as displayed,
``y`` in [0, 1] top to bottom. As on a real PA film, the patient's *right* is on the image
*left*. Density is built additively (air dark, soft tissue grey, bone bright) and mapped to
uint8 with a per-image exposure.

Determinism: image ``i`` of ``generate(n, seed)`` depends only on ``(seed, i)`` and the
arguments, not on ``n`` (every image has its own ``SeedSequence(seed).spawn`` child), and the
same call gives byte-identical output. Every random draw is made whether or not a finding is
present, so forcing one finding on or off (``force=``) changes that finding's pixels only.

Speed: anatomy is rendered for a chunk of images at once with separable (row x column)
arrays; findings are rendered only for the images that have them. See
``benchmarks/bench_synthcxr.py`` (target: >= 200 images/s at 224 x 224 on one core).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from semalign.data.errors import DataError

FINDINGS: tuple[str, ...] = (
    "lung_opacity",
    "pneumonia",
    "consolidation",
    "cardiomegaly",
    "aortic_enlargement",
    "pleural_effusion",
    "pleural_thickening",
    "pulmonary_fibrosis",
    "tuberculosis",
    "atelectasis",
    "edema",
)

#: The generator's version: bump it when its pixels, reports or labels change (and record a new
#: golden output, tests/test_synthcxr.py): it is part of every SynthCXR cache key, so the
#: embeddings of the old images are never served for the new ones.
#: 2: locations as drawn (labels, reports).
SYNTHCXR_VERSION = 2

#: Default prevalence of each finding (independent draws). About 35 % of images are normal.
DEFAULT_PREVALENCE: dict[str, float] = {
    "lung_opacity": 0.10,
    "pneumonia": 0.10,
    "consolidation": 0.05,
    "cardiomegaly": 0.10,
    "aortic_enlargement": 0.08,
    "pleural_effusion": 0.08,
    "pleural_thickening": 0.06,
    "pulmonary_fibrosis": 0.05,
    "tuberculosis": 0.05,
    "atelectasis": 0.08,
    "edema": 0.05,
}

SEVERITIES = ("mild", "moderate", "severe")
SIDES = ("right", "left", "bilateral")
ZONES = ("upper", "middle", "lower")
#: Findings that have a side / zone in the lung (the others: heart and aorta).
_LOCATED = tuple(f for f in FINDINGS if f not in ("cardiomegaly", "aortic_enlargement"))
#: Lung findings whose side and/or zone is fixed by how they are drawn, not by the random draw:
#: ``{finding: (side, zone)}``, ``None`` = the drawn value, ``""`` = no zone (location is the
#: side alone). :func:`_site` applies it; reports and labels read the site from there.
_FIXED_SITE: dict[str, tuple[str | None, str | None]] = {
    "pleural_effusion": (None, ""),                # fluid at the base of its side(s)
    "tuberculosis": (None, "upper"),               # apical / upper-zone disease
    "atelectasis": (None, "lower"),                # plate-like, above the hemidiaphragm
    "pulmonary_fibrosis": ("bilateral", "lower"),  # both lungs, basal predominant
    "edema": ("bilateral", ""),                    # both lungs, perihilar (no single zone)
}
#: Location label of the findings outside the lungs (no side / zone).
ORGAN_LOCATION: dict[str, str] = {"cardiomegaly": "cardiac silhouette", "aortic_enlargement": "aortic arch"}

#: Regular expressions a report uses for each finding; every positive sentence of a finding
#: matches its pattern and no other finding's (tests rely on this).
FINDING_TERMS: dict[str, str] = {
    "lung_opacity": r"\bopacit(y|ies)\b",
    "pneumonia": r"\bpneumonia\b",
    "consolidation": r"\bconsolidat",
    "cardiomegaly": r"\bcardiomegaly\b|\benlarged cardiac\b|\bheart is enlarged\b|\bcardiac silhouette is enlarged\b",
    "aortic_enlargement": r"\baort",
    "pleural_effusion": r"\beffusions?\b",
    "pleural_thickening": r"\bpleural thickening\b",
    "pulmonary_fibrosis": r"\bfibros|\bfibrotic\b",
    "tuberculosis": r"\btuberculo",
    "atelectasis": r"\batelecta",
    "edema": r"\bedema\b",
}
#: A sentence matching this is a negation (or a statement of normality) of what it names.
NEGATION = r"^(no|there is no|there are no|without)\b|\bno (evidence|focal|acute|definite)\b|\bnormal\b|\bwithin normal limits\b|\bunremarkable\b"


@dataclass
class SynthBatch:
    """Output of :func:`generate`.

    images: uint8 (n, H, W); reports: list of n str; labels: DataFrame with ``id``, one 0/1
    column per finding, ``<finding>_severity`` and ``<finding>_location`` (``""`` when absent);
    geometry: DataFrame of the anatomy actually drawn (normalised coordinates, e.g. ``ctr``,
    costophrenic angle positions, ``midline_x``, ``lung_top_y``) for tests and teaching.

    ``<finding>_location`` is where the finding is drawn and what its report sentence says:
    ``"<side> <zone>"`` (side in :data:`SIDES`, zone in :data:`ZONES`, sides are the
    patient's) for pneumonia, lung opacity, consolidation and pleural thickening; always
    ``"<side> upper"`` for tuberculosis and ``"<side> lower"`` for atelectasis; ``"<side>"``
    for pleural effusion (always basal); ``"bilateral lower"`` for pulmonary fibrosis (basal
    predominant); ``"bilateral"`` for edema (perihilar); and the fixed
    :data:`ORGAN_LOCATION` (``"cardiac silhouette"``, ``"aortic arch"``) for cardiomegaly
    and aortic enlargement.
    """

    images: np.ndarray
    reports: list[str]
    labels: pd.DataFrame
    geometry: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return len(self.reports)


# ---------------------------------------------------------------------------------------
# Per-image parameters (drawn in python from each image's own generator)
# ---------------------------------------------------------------------------------------
_SEV_NUM = {"": 0.0, "mild": 1.0, "moderate": 2.0, "severe": 3.0}


def _draw_case(rng: np.random.Generator, prevalence: Mapping[str, float], allowed: set[str]) -> dict:
    """All random choices of one image, always in the same order (see module docstring)."""
    p: dict = {}
    # findings: presence, severity, side, zone — drawn for every finding, used if present
    u_presence = rng.random(len(FINDINGS))
    sev = rng.choice(3, size=len(FINDINGS), p=[0.4, 0.35, 0.25])
    side = rng.choice(3, size=len(FINDINGS), p=[0.4, 0.35, 0.25])
    zone = rng.choice(3, size=len(FINDINGS))
    for k, f in enumerate(FINDINGS):
        p[f] = int(f in allowed and u_presence[k] < prevalence.get(f, 0.0))
        p[f + "_sev"] = SEVERITIES[sev[k]]
        p[f + "_side"] = SIDES[side[k]]
        p[f + "_zone"] = ZONES[zone[k]]
    # patient and acquisition
    g = rng.random(32)
    p["sx"], p["sy"] = -0.03 + 0.06 * g[0], -0.025 + 0.05 * g[1]
    p["scale"] = 0.93 + 0.12 * g[2]
    p["body_w"] = 0.40 + 0.07 * g[3]
    p["y_top"] = 0.12 + 0.05 * g[4]
    p["y_base_r"] = 0.72 + 0.07 * g[5]
    p["y_base_l"] = p["y_base_r"] + 0.03 * g[6]
    p["w_r"] = 0.29 + 0.06 * g[7]
    p["w_l"] = p["w_r"] * (0.95 + 0.07 * g[8])
    p["mw"] = 0.05 + 0.02 * g[9]
    p["dome"] = 0.045 + 0.035 * g[10]
    p["ctr_normal"] = 0.39 + 0.08 * g[11]
    p["ctr_u"] = g[12]
    p["heart_h"] = 0.72 + 0.16 * g[13]
    p["knob_r"] = 0.026 + 0.01 * g[14]
    p["rib_space"] = 0.085 + 0.02 * g[15]
    p["rib_phase"] = g[16]
    p["rib_curve"] = 0.9 + 0.6 * g[17]
    p["clav_y"] = 0.14 + 0.04 * g[18]
    p["clav_slope"] = -0.32 + 0.2 * g[19]
    p["gain"] = 0.85 + 0.3 * g[20]
    p["offset"] = -0.06 + 0.12 * g[21]
    p["gamma"] = 0.8 + 0.4 * g[22]
    p["noise"] = 0.015 + 0.025 * g[23]
    p["bubble"] = g[24] < 0.6
    p["bubble_x"] = 0.12 + 0.1 * g[25]
    p["marking"] = 0.6 + 0.8 * g[26]
    p["lesion_u"] = rng.random(24)  # positions / shapes of lesions
    p["tex"] = rng.standard_normal((10, 10)).astype(np.float32)  # lung markings, coarse
    p["tex2"] = rng.standard_normal((28, 28)).astype(np.float32)  # fine texture (fibrosis, patchiness)
    p["phrase"] = int(rng.integers(2**31))  # seed of the report writer
    p["pixel_seed"] = int(rng.integers(2**31))
    return p


def _site(c: dict, f: str) -> tuple[str, str]:
    """``(side, zone)`` at which lung finding ``f`` of case ``c`` is drawn: the random draw,
    except where :data:`_FIXED_SITE` fixes it (``zone == ""``: no zone)."""
    fs, fz = _FIXED_SITE.get(f, (None, None))
    return (c[f + "_side"] if fs is None else fs), (c[f + "_zone"] if fz is None else fz)


def _ctr(p: dict) -> float:
    """Cardiothoracic ratio the heart is drawn with (> 0.5 exactly when cardiomegaly)."""
    if p["cardiomegaly"]:
        lo, hi = {"mild": (0.53, 0.56), "moderate": (0.56, 0.61), "severe": (0.61, 0.68)}[p["cardiomegaly_sev"]]
        return lo + (hi - lo) * p["ctr_u"]
    return p["ctr_normal"]


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix: upsample a coarse grid smoothly."""
    pos = np.linspace(0, n_in - 1, n_out)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    t = pos - i0
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), i0] = 1 - t
    m[np.arange(n_out), i0 + 1] = t
    return m


def _col(a) -> np.ndarray:
    return np.asarray(a, np.float32)[:, None, None]


def _soft(d: np.ndarray, eps: float) -> np.ndarray:
    """Anti-aliased step: 0 outside (d < 0), 1 inside, linear over ``eps``."""
    r = d * np.float32(1.0 / eps)
    r += np.float32(0.5)
    return np.clip(r, 0.0, 1.0, out=r)


def _upsample(Z: np.ndarray, size: int) -> np.ndarray:
    """(m, k, k) coarse fields -> (m, size, size), bilinear, as two batched matmuls."""
    M = _interp_matrix(size, Z.shape[-1])
    return np.matmul(np.matmul(M, Z), M.T)


_NOISE_BANK: dict[int, np.ndarray] = {}


def _noise_bank(size: int) -> np.ndarray:
    """A fixed (2*size, 2*size) float32 white-noise field; images take seeded windows of it
    (drawing fresh normal noise per pixel costs more than all the anatomy)."""
    if size not in _NOISE_BANK:
        _NOISE_BANK[size] = np.random.default_rng(20251123).standard_normal((2 * size, 2 * size), dtype=np.float32)
    return _NOISE_BANK[size]


def _gauss1(z: np.ndarray, c, s) -> np.ndarray:
    return np.exp(-0.5 * ((z - c) / s) ** 2)


class _Chunk:
    """Separable coordinate arrays and the anatomy of a chunk of images."""

    def __init__(self, cases: list[dict], size: int):
        self.n, self.size = len(cases), size
        px = 1.0 / size
        self.eps = 1.5 * px
        g = np.linspace(0.5 * px, 1 - 0.5 * px, size, dtype=np.float32)
        P = {k: _col([c[k] for c in cases]) for k in cases[0] if isinstance(cases[0][k], (int, float, np.floating, bool))}
        self.P = P
        # patient position and size: x' = (x - 0.5 - sx) / scale + 0.5
        self.x = (g[None, None, :] - 0.5 - P["sx"]) / P["scale"] + 0.5   # (n,1,W)
        self.y = (g[None, :, None] - 0.5 - P["sy"]) / P["scale"] + 0.5   # (n,H,1)
        self.a = np.abs(self.x - 0.5)                                      # distance from midline
        self.right = self.x < 0.5                                          # patient's right (image left)


def _render_chunk(cases: list[dict], size: int) -> tuple[np.ndarray, list[dict]]:
    ch = _Chunk(cases, size)
    n, P, x, y, a, eps = ch.n, ch.P, ch.x, ch.y, ch.a, ch.eps
    right = ch.right
    ctr = _col([_ctr(c) for c in cases])
    # lung geometry per side, as (n,1,W) column functions or (n,H,1) row functions
    w_side = np.where(right, P["w_r"], P["w_l"])                          # (n,1,W)
    base_side = np.where(right, P["y_base_r"], P["y_base_l"])             # (n,1,W)
    # atelectasis raises its hemidiaphragm (volume loss); fibrosis raises both
    lift_r = np.zeros((n, 1, 1), np.float32)
    lift_l = np.zeros((n, 1, 1), np.float32)
    for i, c in enumerate(cases):
        if c["atelectasis"]:
            lift = 0.012 * _SEV_NUM[c["atelectasis_sev"]]
            if c["atelectasis_side"] in ("right", "bilateral"):
                lift_r[i] += lift
            if c["atelectasis_side"] in ("left", "bilateral"):
                lift_l[i] += lift
        if c["pulmonary_fibrosis"]:
            lift_r[i] += 0.01 * _SEV_NUM[c["pulmonary_fibrosis_sev"]]
            lift_l[i] += 0.01 * _SEV_NUM[c["pulmonary_fibrosis_sev"]]
    base_side = base_side - np.where(right, lift_r, lift_l)
    # diaphragm dome: highest at the middle of each hemithorax, lowest at the lateral angle
    t_lat = np.clip((a - P["mw"]) / (w_side - P["mw"]), 0, 1.2)          # 0 medial .. 1 lateral
    y_dia = base_side - P["dome"] * (1 - ((t_lat - 0.45) / 0.62) ** 2)  # (n,1,W)
    # lateral edge: the half-width of the thorax grows from the apex to the base
    t = np.clip((y - P["y_top"]) / (0.5 * (P["y_base_r"] + P["y_base_l"]) - P["y_top"]), 0, 1)
    prof = np.sqrt(np.sin(0.5 * np.pi * np.minimum(t * 1.35, 1.0)))       # (n,H,1)
    half_r = P["mw"] + (P["w_r"] - P["mw"]) * prof                       # (n,H,1)
    half_l = P["mw"] + (P["w_l"] - P["mw"]) * prof
    d_lat = np.where(right, half_r, half_l) - a                           # (n,H,W) inside lateral edge
    d_med = a - P["mw"]                                                    # (n,1,W)
    d_dia = y_dia - y                                                      # (n,H,W) above diaphragm
    d_lung = np.minimum(np.minimum(d_lat, d_dia), d_med) * (y > P["y_top"])
    lung = _soft(d_lung, eps)                                              # (n,H,W)

    # body outline: neck, shoulders, chest wall
    bw = P["body_w"] * np.clip(0.25 + 0.75 * np.sqrt(np.clip((y - 0.02) / 0.14, 0, 1)), 0, 1)
    body = _soft(bw - a, 3 * eps)                                          # (n,H,W)

    # heart: ellipse, one third to the patient's right, two thirds to the left
    thor = P["w_r"] + P["w_l"]
    hw = ctr * thor
    ha = 0.5 * hw
    hcx = 0.5 + hw / 6.0
    hb = ha * P["heart_h"]
    hcy = 0.5 * (P["y_base_r"] + P["y_base_l"]) - 0.35 * hb - P["dome"]
    e = ((x - hcx) / ha) ** 2 + ((y - hcy) / hb) ** 2                     # (n,H,W)
    heart = _soft(1 - e, 0.08)
    # mediastinum (upper, narrower) and aortic knob on the patient's left
    aortic = np.array([c["aortic_enlargement"] for c in cases])
    widen = _col([0.012 * _SEV_NUM[c["aortic_enlargement_sev"]] if c["aortic_enlargement"] else 0 for c in cases])
    med_half = P["mw"] * 0.95 + widen * np.clip((y - 0.15) / 0.2, 0, 1) * (y < hcy)
    med = _soft(med_half - np.abs(x - 0.5 - 0.01), eps) * (y > 0.06) * (y < hcy)
    knob_r = P["knob_r"] + _col([0.011 * _SEV_NUM[c["aortic_enlargement_sev"]] + 0.006 if c["aortic_enlargement"] else 0 for c in cases])
    kx, ky = 0.5 + P["mw"] * 0.75 + 0.4 * knob_r, P["y_top"] + 0.14
    knob = _soft(knob_r ** 2 - (x - kx) ** 2 - (y - ky) ** 2, 0.0015)

    # density: soft tissue, minus lung air (where heart/mediastinum are not in front), plus bone
    solid = np.maximum(np.maximum(heart, med), knob)
    air = lung * (1 - solid)
    # lung markings: vessels fan out from the hila -> brighter centrally, coarse texture
    tex = _upsample(np.stack([c["tex"] for c in cases]), size)
    hil = _gauss1(a, 0.12, 0.09) * _gauss1(y, 0.45, 0.15)                 # (n,H,W)
    D = 0.62 * body - air * (0.46 - 0.10 * hil * P["marking"] - 0.03 * tex) + 0.12 * solid

    # spine: a column of vertebrae behind the mediastinum
    spine_c = _soft(0.032 - a, eps)                                        # (n,1,W)
    vert = 0.75 + 0.25 * np.cos(2 * np.pi * (y - P["rib_phase"] * 0.04) / 0.045)
    D += 0.06 * spine_c * vert
    # posterior ribs: curved bright bands inside the thorax
    phase = (y - P["rib_curve"] * (a - 0.1) ** 2 + 0.35 * (a - 0.1)) / P["rib_space"] + P["rib_phase"]
    ribs = np.clip((np.cos(2 * np.pi * phase) - 0.55) * 2.6, 0, 1)
    D += 0.10 * ribs * _soft(np.where(right, half_r, half_l) + 0.02 - a, eps) * _soft(a - 0.045, 0.01) * (y < base_side + 0.02)
    # clavicles
    cl_y = P["clav_y"] + P["clav_slope"] * (a - 0.05) + 0.9 * (a - 0.05) ** 2
    clav = _soft(0.013 - np.abs(y - cl_y), eps) * (a > 0.03) * (a < 0.34)
    D += 0.16 * clav
    # trachea: an air column in the upper mediastinum
    D -= 0.12 * _soft(0.014 - np.abs(x - 0.5), eps) * _soft(P["y_top"] + 0.16 - y, 0.02)
    # gastric bubble under the left hemidiaphragm
    bub = np.array([c["bubble"] for c in cases])
    if bub.any():
        idx = np.nonzero(bub)[0]
        bx = 0.5 + P["bubble_x"][idx]
        by = P["y_base_l"][idx] + 0.04
        D[idx] -= 0.25 * _soft(1 - ((x[idx] - bx) / 0.05) ** 2 - ((y[idx] - by) / 0.03) ** 2, 0.2)

    geo = [dict() for _ in cases]
    # ---- findings, each only on the images that have it --------------------------------
    for f in _LOCATED:
        idx = np.array([i for i, c in enumerate(cases) if c[f]], dtype=int)
        if idx.size == 0:
            continue
        tex2 = _upsample(np.stack([cases[i]["tex2"] for i in idx]), size)
        # findings live where air was (in front of the heart they would not show this way)
        D[idx] += _finding_layer(f, [cases[i] for i in idx], x[idx], y[idx], a[idx], right[idx],
                                 air[idx], d_lat[idx], y_dia[idx], P, idx, tex2, eps)
    # ---- exposure, noise, quantisation ---------------------------------------------------
    img = np.clip(D, 0, 1)
    img = img ** P["gamma"]
    img = img * P["gain"] + P["offset"]
    bank = _noise_bank(size)
    for i, c in enumerate(cases):
        oy, ox = divmod(c["pixel_seed"] % (size * size), size)
        img[i] += bank[oy : oy + size, ox : ox + size] * P["noise"][i, 0, 0]
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    for i, c in enumerate(cases):
        geo[i].update(
            ctr=float(ctr[i, 0, 0]),
            heart_left=float(0.5 + P["sx"][i, 0, 0] + (hcx[i, 0, 0] - ha[i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
            heart_right=float(0.5 + P["sx"][i, 0, 0] + (hcx[i, 0, 0] + ha[i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
            heart_y=float(0.5 + P["sy"][i, 0, 0] + (hcy[i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
            cpa_right_x=float(0.5 + P["sx"][i, 0, 0] - P["w_r"][i, 0, 0] * P["scale"][i, 0, 0]),
            cpa_left_x=float(0.5 + P["sx"][i, 0, 0] + P["w_l"][i, 0, 0] * P["scale"][i, 0, 0]),
            cpa_right_y=float(0.5 + P["sy"][i, 0, 0] + (P["y_base_r"][i, 0, 0] - lift_r[i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
            cpa_left_y=float(0.5 + P["sy"][i, 0, 0] + (P["y_base_l"][i, 0, 0] - lift_l[i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
            knob_r=float(knob_r[i, 0, 0]),
            midline_x=float(0.5 + P["sx"][i, 0, 0]),
            lung_top_y=float(0.5 + P["sy"][i, 0, 0] + (P["y_top"][i, 0, 0] - 0.5) * P["scale"][i, 0, 0]),
        )
    return out, geo


def _zone_y(zone: np.ndarray, y_top: np.ndarray, y_base: np.ndarray) -> np.ndarray:
    """Centre height of a lung zone (upper / middle / lower third)."""
    frac = np.where(zone == "upper", 0.22, np.where(zone == "middle", 0.5, 0.76))
    return y_top + frac * (y_base - y_top)


def _side_weight(sides: Sequence[str], right: np.ndarray) -> np.ndarray:
    """(m,1,W) 1 on the lung(s) named by ``side``, else 0."""
    s = np.array(sides)[:, None, None]
    return ((s == "bilateral") | ((s == "right") & right) | ((s == "left") & ~right)).astype(np.float32)


def _finding_layer(f, cs, x, y, a, right, lung, d_lat, y_dia, P, idx, tex2, eps) -> np.ndarray:
    """Density added by finding ``f`` on the images ``cs`` (all (m,...) arrays)."""
    m = len(cs)
    sev = _col([_SEV_NUM[c[f + "_sev"]] for c in cs])
    zone = np.array([c[f + "_zone"] for c in cs])
    sidew = _side_weight([c[f + "_side"] for c in cs], right)
    L = np.stack([c["lesion_u"] for c in cs]).astype(np.float32)          # (m,24) uniform draws
    y_top, y_base = P["y_top"][idx], 0.5 * (P["y_base_r"][idx] + P["y_base_l"][idx])
    zc = _col(_zone_y(zone, y_top[:, 0, 0], y_base[:, 0, 0]))
    wmid = 0.5 * (P["w_r"][idx] + P["w_l"][idx])
    patch = np.clip(0.65 + 0.5 * tex2, 0, 1.5)                             # patchiness

    def blob(cx_abs, cy, sx_, sy_):
        # gaussian blob mirrored on both lungs (sidew selects), centred at distance cx_abs from midline
        return _gauss1(a, cx_abs, sx_) * _gauss1(y, cy, sy_)

    if f == "pneumonia":
        # patchy airspace disease: a cluster of soft blobs in one zone, patchy texture
        s = 0.035 + 0.018 * sev
        lay = sum(blob(0.5 * wmid * (0.6 + 0.8 * _col(L[:, k])), zc + 0.08 * (_col(L[:, k + 4]) - 0.5), s, s * 0.9)
                  for k in range(3))
        return 0.10 * (0.6 + 0.35 * sev) * np.clip(lay, 0, 1.3) * patch * lung * sidew
    if f == "lung_opacity":
        # one or two rounded, ill-defined opacities (nonspecific)
        s = 0.022 + 0.008 * sev
        lay = blob(0.5 * wmid * (0.5 + 0.9 * _col(L[:, 8])), zc, s, s)
        lay = lay + (sev >= 2) * blob(0.5 * wmid * (0.5 + 0.9 * _col(L[:, 9])), zc + 0.1 * (_col(L[:, 10]) - 0.5), s * 0.8, s * 0.8)
        return 0.13 * (0.7 + 0.25 * sev) * lay * lung * sidew
    if f == "consolidation":
        # dense homogeneous opacity filling part of a zone, with a sharp (fissural) border
        h = 0.06 + 0.03 * sev
        upper_edge = zc - 0.5 * h + 0.02 * (a - 0.15)
        region = _soft(y - upper_edge, eps * 2) * _soft(zc + 0.5 * h - y, 0.03)
        lat = _gauss1(a, 0.5 * wmid * (0.7 + 0.6 * _col(L[:, 11])), 0.05 + 0.025 * sev)
        return 0.16 * (0.7 + 0.2 * sev) * region * np.clip(lat * 1.6, 0, 1) * lung * sidew
    if f == "pleural_effusion":
        # fluid at the base, its meniscus climbing the lateral wall: blunts the costophrenic angle
        h = 0.025 + 0.035 * sev
        lat = np.clip((a - P["mw"][idx]) / (wmid - P["mw"][idx]), 0, 1.3)
        surface = y_dia - h - 0.05 * (0.5 + 0.3 * sev) * lat ** 2
        fluid = _soft(y - surface, 0.012)
        return 0.30 * fluid * lung * sidew
    if f == "pleural_thickening":
        # a band along the lateral chest wall, or an apical cap
        th = 0.008 + 0.006 * sev
        band = _soft(th - d_lat, eps)
        where = np.where(zone[:, None, None] == "upper", _soft(y_top + 0.18 - y, 0.03), _soft(y - zc + 0.1, 0.03) * _soft(zc + 0.16 - y, 0.03))
        return 0.3 * band * lung * where * sidew
    if f == "pulmonary_fibrosis":
        # reticular lines (ridges of a fine random field), basal and peripheral predominance
        ridges = np.exp(-((tex2 * 2.5) ** 2))
        w = np.clip((y - y_top) / (y_base - y_top), 0, 1) ** 1.5 * np.clip(a / wmid, 0, 1)
        return 0.16 * (0.6 + 0.3 * sev) * ridges * np.sqrt(w) * lung
    if f == "tuberculosis":
        # upper-zone fibronodular opacities with a cavity (bright wall, dark centre)
        cx_abs = 0.5 * wmid * (0.7 + 0.5 * _col(L[:, 12]))
        cy = y_top + 0.1 + 0.06 * _col(L[:, 13])
        s = 0.03 + 0.012 * sev
        cloud = blob(cx_abs, cy, s * 1.3, s) * patch
        r2 = (a - cx_abs) ** 2 + (y - cy) ** 2
        rc = 0.012 + 0.005 * sev
        cavity = np.exp(-((np.sqrt(r2) - rc) / 0.006) ** 2) - 0.8 * np.exp(-r2 / (2 * (0.6 * rc) ** 2))
        nod = sum(blob(cx_abs + 0.05 * (_col(L[:, k]) - 0.5), cy + 0.06 * (_col(L[:, k + 3]) - 0.2), 0.008, 0.008) for k in range(14, 17))
        return (0.11 * cloud + 0.10 * cavity * (sev >= 2) + 0.10 * nod) * lung * sidew
    if f == "atelectasis":
        # plate-like linear opacity above the (raised) hemidiaphragm
        yl = y_dia - 0.05 - 0.03 * _col(L[:, 18])
        tilt = 0.08 * (_col(L[:, 19]) - 0.5) * (a - 0.15)
        band = np.exp(-(((y - yl - tilt) / (0.007 + 0.004 * sev)) ** 2)) * _gauss1(a, 0.5 * wmid + 0.05, 0.09)
        return 0.2 * band * lung * sidew
    if f == "edema":
        # bilateral perihilar haze ("bat wing") and Kerley B lines at the lateral bases
        haze = _gauss1(a, 0.1, 0.07 + 0.02 * sev) * _gauss1(y, 0.47, 0.1 + 0.02 * sev)
        kerley_rows = np.clip(np.cos(2 * np.pi * y / 0.018) - 0.7, 0, 1) * 3
        kerley = kerley_rows * _soft(0.025 - d_lat, 0.004) * _soft(y - (y_base - 0.15), 0.02)
        return (0.12 * (0.6 + 0.3 * sev) * haze * patch + 0.06 * kerley * (sev >= 2)) * lung
    raise AssertionError(f)


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------
_LOC_WORD = {"upper": "upper", "middle": "mid", "lower": "lower"}


def _where(c: dict, f: str, rng: np.random.Generator) -> str:
    side, zone = c[f + "_side"], c[f + "_zone"]
    if side == "bilateral":
        return rng.choice([f"bilateral {_LOC_WORD[zone]} zone", f"both {_LOC_WORD[zone]} zones"])
    lobe = {"upper": "upper lobe", "middle": "middle lobe" if side == "right" else "lingula", "lower": "lower lobe"}[zone]
    return rng.choice([f"{side} {lobe}", f"{side} {_LOC_WORD[zone]} zone", f"{side} {_LOC_WORD[zone]} lung"])


def _positive_sentence(f: str, c: dict, rng: np.random.Generator) -> str:
    sev = c[f + "_sev"]
    hedge = sev == "mild" and rng.random() < 0.5
    H = (lambda s: rng.choice(["Possible ", "Probable ", "Suspected "]) + s[0].lower() + s[1:]) if hedge else (lambda s: s)
    sv = {"mild": rng.choice(["mild", "small", "subtle"]), "moderate": "moderate", "severe": rng.choice(["severe", "large", "extensive"])}[sev]
    # _where draws from rng for every lung finding (used or not): keeps the phrasing stream stable
    loc = _where(c, f, rng) if f in _LOCATED else ""
    side = _site(c, f)[0] if f in _LOCATED else ""
    if f == "pneumonia":
        return H(rng.choice([f"Patchy airspace disease in the {loc}, consistent with pneumonia.",
                              f"{sv.capitalize()} {loc} pneumonia.",
                              f"Airspace filling in the {loc} concerning for pneumonia."]))
    if f == "lung_opacity":
        return H(rng.choice([f"{sv.capitalize()} ill-defined opacity in the {loc}.",
                              f"Rounded opacity projecting over the {loc}.",
                              f"There is a {sv} opacity in the {loc}."]))
    if f == "consolidation":
        return H(rng.choice([f"Dense consolidation of the {loc}.",
                              f"{sv.capitalize()} {loc} consolidation.",
                              f"Focal consolidation in the {loc} with a sharp fissural border."]))
    if f == "cardiomegaly":
        return H(rng.choice([f"{sv.capitalize()} cardiomegaly.", "The cardiac silhouette is enlarged.",
                              f"The heart is enlarged, {sv}.", f"{sv.capitalize()} enlarged cardiac silhouette."]))
    if f == "aortic_enlargement":
        adv = {"moderate": "moderately", "severe": "severely"}.get(sv, "markedly")  # not "largely"
        return H(rng.choice([f"{sv.capitalize()} dilatation of the aortic knob.", "The thoracic aorta is ectatic.",
                              f"Prominent, {adv} enlarged aortic arch." if sev != "mild" else "Slightly prominent aortic knob."]))
    if f == "pleural_effusion":
        s = {"bilateral": "bilateral", "right": "right", "left": "left"}[side]
        pl = "s" if side == "bilateral" else ""
        return H(rng.choice([f"{sv.capitalize()} {s} pleural effusion{pl}.",
                              f"Blunting of the {s} costophrenic angle{pl} from a {sv} effusion.",
                              f"{sv.capitalize()} {s} effusion{pl} layering at the base{pl}."]))
    if f == "pleural_thickening":
        where = {"upper": "apical", "middle": "mid lateral", "lower": "lower lateral"}[_site(c, f)[1]]
        return H(rng.choice([f"{side.capitalize()} {where} pleural thickening.",
                              f"{sv.capitalize()} pleural thickening along the {side} {where} chest wall."]))
    if f == "pulmonary_fibrosis":
        # drawn in both lungs, basal predominant (side / zone fixed by _FIXED_SITE)
        return H(rng.choice([f"{sv.capitalize()} bilateral basilar predominant reticular markings suggesting pulmonary fibrosis.",
                              f"Coarse interstitial markings at both bases, {sv} fibrotic change.",
                              f"{sv.capitalize()} bilateral basal fibrosis with reduced lung volumes."]))
    if f == "tuberculosis":
        # drawn in the upper zone of its side(s); a cavity is drawn from moderate on
        cav = " with cavitation" if sev != "mild" else ""
        apex = "apices" if side == "bilateral" else "apex"
        return H(rng.choice([f"Fibronodular changes in the {side} {apex}{cav}, compatible with tuberculosis.",
                              f"{sv.capitalize()} {side} upper lobe disease{cav}, suspicious for tuberculosis.",
                              f"{side.capitalize()} upper zone nodularity{cav} in keeping with tuberculosis."]))
    if f == "atelectasis":
        # drawn above the (raised) hemidiaphragm of its side(s)
        pl = "s" if side == "bilateral" else ""
        return H(rng.choice([f"Plate-like atelectasis at the {side} base{pl}.",
                              f"{sv.capitalize()} {side} basilar atelectasis with elevation of the hemidiaphragm{pl}.",
                              f"Linear {side} lower zone atelectasis."]))
    if f == "edema":
        # drawn in both lungs (perihilar haze, Kerley lines at the bases)
        return H(rng.choice([f"{sv.capitalize()} bilateral pulmonary edema with perihilar haziness.",
                              f"Bilateral perihilar haziness and interstitial edema, {sv}.",
                              f"Findings of {sv} bilateral interstitial edema."]))
    raise AssertionError(f)


_NEGATIONS: dict[str, tuple[str, ...]] = {
    "lung_opacity": ("No focal opacity.", "No suspicious pulmonary opacity."),
    "pneumonia": ("No evidence of pneumonia.", "No focal airspace disease to suggest pneumonia."),
    "consolidation": ("No focal consolidation.", "No consolidation."),
    "cardiomegaly": ("Heart size is normal.", "Normal heart size.", "The cardiac silhouette is within normal limits."),
    "aortic_enlargement": ("Normal aortic contour.", "The aorta is normal in caliber."),
    "pleural_effusion": ("No pleural effusion.", "No effusion or pneumothorax.", "No pleural effusions."),
    "pleural_thickening": ("No pleural thickening.",),
    "pulmonary_fibrosis": ("No fibrotic change.", "No evidence of pulmonary fibrosis."),
    "tuberculosis": ("No evidence of active tuberculosis.",),
    "atelectasis": ("No atelectasis.",),
    "edema": ("No pulmonary edema.", "No edema."),
}
_FILLER = ("PA view of the chest.", "Frontal chest radiograph.", "No pneumothorax.",
           "The osseous structures are intact.", "Lungs are adequately inflated.", "")
_NORMAL_IMPRESSION = ("No acute cardiopulmonary abnormality.", "No acute cardiopulmonary process.",
                      "Normal chest radiograph.", "No acute disease.")


def write_report(c: dict) -> str:
    """The report of one image, written from its findings (``c`` from :func:`_draw_case`).

    Every present finding gets one positive sentence (hedged for about half of the mild ones);
    one to three absent findings are negated; the impression lists the present findings or
    states a normal study.
    """
    rng = np.random.default_rng(c["phrase"])
    present = [f for f in FINDINGS if c[f]]
    absent = [f for f in FINDINGS if not c[f]]
    order = rng.permutation(len(present))
    sents = [_positive_sentence(present[k], c, rng) for k in order]
    n_neg = min(len(absent), int(rng.integers(1, 4)))
    for k in sorted(rng.choice(len(absent), size=n_neg, replace=False)) if n_neg else []:
        sents.append(str(rng.choice(_NEGATIONS[absent[k]])))
    fill = str(rng.choice(_FILLER))
    findings = " ".join(([fill] if fill else []) + sents)
    if present:
        imp = " ".join(sents[: min(2, len(present))])
    else:
        imp = str(rng.choice(_NORMAL_IMPRESSION))
    return f"FINDINGS: {findings} IMPRESSION: {imp}"


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------
def _cases(n: int, seed: int, prevalence, findings, force) -> list[dict]:
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    if prevalence is None:
        prev = dict(DEFAULT_PREVALENCE)
    elif isinstance(prevalence, (int, float)):
        prev = {f: float(prevalence) for f in FINDINGS}
    else:
        unknown = set(prevalence) - set(FINDINGS)
        if unknown:
            raise DataError(f"unknown finding(s) {sorted(unknown)} in prevalence; known: {', '.join(FINDINGS)}")
        prev = {**DEFAULT_PREVALENCE, **prevalence}
    allowed = set(FINDINGS if findings is None else findings)
    unknown = allowed - set(FINDINGS)
    if unknown:
        raise DataError(f"unknown finding(s) {sorted(unknown)}; known: {', '.join(FINDINGS)}")
    force = dict(force or {})
    for f, v in force.items():
        if f not in FINDINGS:
            raise DataError(f"unknown finding {f!r} in force; known: {', '.join(FINDINGS)}")
        if np.ndim(v) and len(v) != n:
            raise DataError(f"force[{f!r}] has {len(v)} values for n={n} images")
    children = np.random.SeedSequence(seed).spawn(n)
    cases = []
    for i, ss in enumerate(children):
        c = _draw_case(np.random.default_rng(ss), prev, allowed)
        for f, v in force.items():
            c[f] = int(bool(v[i] if np.ndim(v) else v))
        cases.append(c)
    return cases


def _location(c: dict, f: str) -> str:
    """Where finding ``f`` of case ``c`` is drawn and reported (see :class:`SynthBatch`)."""
    if f in ORGAN_LOCATION:
        return ORGAN_LOCATION[f]
    side, zone = _site(c, f)
    return f"{side} {zone}" if zone else side


def _labels(cases: list[dict], ids: list[str]) -> pd.DataFrame:
    cols: dict[str, list] = {"id": ids}
    for f in FINDINGS:
        cols[f] = [c[f] for c in cases]
    for f in FINDINGS:
        cols[f + "_severity"] = [c[f + "_sev"] if c[f] else "" for c in cases]
        cols[f + "_location"] = [_location(c, f) if c[f] else "" for c in cases]
    return pd.DataFrame(cols)


def generate(
    n: int = 16,
    seed: int = 0,
    size: int = 224,
    prevalence: float | Mapping[str, float] | None = None,
    findings: Iterable[str] | None = None,
    force: Mapping[str, int | Sequence[int]] | None = None,
    chunk: int = 32,
    id_prefix: str = "synth",
) -> SynthBatch:
    """Generate ``n`` radiographs with their reports and labels.

    Args:
        n: number of images.
        seed: base seed; image ``i`` depends only on ``(seed, i)`` and the other arguments.
        size: image side in pixels (square).
        prevalence: probability of each finding — one float for all, or ``{finding: p}``
            overriding :data:`DEFAULT_PREVALENCE`.
        findings: the findings that may occur (default all of :data:`FINDINGS`).
        force: ``{finding: 0/1 or (n,) 0/1}`` sets presence exactly (e.g. a balanced task).
        chunk: images rendered together (memory ~ 40 * chunk * size**2 bytes).
        id_prefix: ids are ``f"{id_prefix}-{seed}-{i:06d}"``.

    Returns:
        :class:`SynthBatch` with ``images`` uint8 (n, size, size), ``reports``, ``labels``.
    """
    if size < 32:
        raise DataError(f"size must be >= 32 pixels, got {size}")
    cases = _cases(n, seed, prevalence, findings, force)
    ids = [f"{id_prefix}-{seed}-{i:06d}" for i in range(n)]
    images = np.empty((n, size, size), np.uint8)
    geo: list[dict] = []
    for s in range(0, n, chunk):
        img, g = _render_chunk(cases[s : s + chunk], size)
        images[s : s + chunk] = img
        geo.extend(g)
    reports = [write_report(c) for c in cases]
    geometry = pd.DataFrame(geo)
    geometry.insert(0, "id", ids)
    return SynthBatch(images=images, reports=reports, labels=_labels(cases, ids), geometry=geometry)


def mentions(report: str) -> dict[str, str]:
    """What a report says about each finding: ``"positive"``, ``"negated"`` or ``"absent"``.

    A sentence mentions finding ``f`` when it matches ``FINDING_TERMS[f]``; it is a negation
    when it also matches :data:`NEGATION`. The impression repeats the findings, so a finding
    is positive if any sentence mentions it positively.
    """
    out = {f: "absent" for f in FINDINGS}
    body = re.sub(r"\b(FINDINGS|IMPRESSION):\s*", "", report)
    for s in re.split(r"(?<=\.)\s+", body):
        neg = re.search(NEGATION, s, re.IGNORECASE) is not None
        for f, pat in FINDING_TERMS.items():
            if re.search(pat, s, re.IGNORECASE):
                if not neg:
                    out[f] = "positive"
                elif out[f] == "absent":
                    out[f] = "negated"
    return out


def gallery(seed: int = 0, size: int = 224) -> list[dict]:
    """Images for the book's SynthCXR gallery: one normal case and one case per finding.

    Returns a list of dicts ``{"title", "image" (uint8 (size, size)), "report", "finding",
    "severity", "location"}``; findings are shown at moderate-to-severe severity so they are
    visible at thumbnail size. The book engineer draws them.
    """
    out = []
    names = ("normal",) + FINDINGS
    for k, f in enumerate(names):
        force = {g: int(g == f) for g in FINDINGS}
        b = generate(1, seed=seed * 1000 + k, size=size, force=force)
        # re-draw until the severity is at least moderate (deterministic: fixed seed sequence)
        j = 0
        while f != "normal" and b.labels.loc[0, f + "_severity"] == "mild" and j < 20:
            j += 1
            b = generate(1, seed=seed * 1000 + k + 100 * j, size=size, force=force)
        lab = b.labels.iloc[0]
        out.append({
            "title": f.replace("_", " ").capitalize(),
            "image": b.images[0],
            "report": b.reports[0],
            "finding": f,
            "severity": "" if f == "normal" else lab[f + "_severity"],
            "location": "" if f == "normal" else lab[f + "_location"],
        })
    return out
