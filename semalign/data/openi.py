"""Open-i / Indiana University chest X-ray reports, read in place from the torchxrayvision wheel.

The 3,955 XML reports of ``torchxrayvision/data/NLMCXR_reports.tgz`` (CC BY-NC-ND 4.0) are
parsed straight out of the tar archive: nothing is extracted to disk and the torchxrayvision
package is never imported (it imports torchvision, which breaks transformers here). Only
aggregates of this text may be published; ids (``CXR123``) are not content and may be.

Two things live here:

* :func:`parse_reports` — one row per report: ``id, findings, impression, mesh_major,
  image_ids``.
* The ``openi-5class`` recipe (:func:`build_5class`) — a balanced five-class task in the spirit
  of MIMIC-5x200, built from MeSH *major* terms, with every sentence that names one of the five
  classes removed from every report (see :data:`CLASS_KEYWORDS` and :func:`strip_class_sentences`).
"""

from __future__ import annotations

import functools
import os
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from semalign.data.errors import DataError

ASSET = "torchxrayvision"
MEMBER = Path("torchxrayvision") / "data" / "NLMCXR_reports.tgz"
ENV_VAR = "SEMALIGN_OPENI_REPORTS"
N_REPORTS = 3955
#: sha256 of NLMCXR_reports.tgz as shipped in torchxrayvision 1.5.7 (the wheel itself is
#: pinned in semalign/assets.yml; this pins the member we read).
SHA256 = "8fb6de7eec73d8c3665067ad4bb003ccd57f971ae316d2642e1627ac7268667a"

# ---------------------------------------------------------------------------------------
# Classes of openi-5class, from MeSH major terms ("Head/qualifier/qualifier...").
# A report belongs to a class when one of its major terms matches; it is eligible when it
# belongs to exactly one of the five (exclusive within the set), as in the trial recorded in
# DESIGN.md (Normal 1,363, Cardiomegaly 239, Opacity 288, Granuloma 296, Spine degenerative 281).
# ---------------------------------------------------------------------------------------
CLASSES: tuple[str, ...] = ("Normal", "Cardiomegaly", "Opacity", "Granuloma", "Spine degenerative")


def mesh_classes(major_terms: list[str]) -> set[str]:
    """The openi-5class classes named by a report's MeSH major terms.

    Rules (case-insensitive, on the "/"-separated head and qualifiers):
    ``normal`` -> Normal; head ``Cardiomegaly`` -> Cardiomegaly; head ``Opacity`` -> Opacity;
    head ``Calcified Granuloma``, ``Granuloma`` or ``Granulomatous Disease`` -> Granuloma;
    head ``Spine`` or ``Thoracic Vertebrae`` with qualifier ``degenerative`` -> Spine degenerative.
    """
    out: set[str] = set()
    for term in major_terms:
        parts = [p.strip().lower() for p in term.split("/")]
        head, quals = parts[0], parts[1:]
        if head == "normal":
            out.add("Normal")
        elif head == "cardiomegaly":
            out.add("Cardiomegaly")
        elif head == "opacity":
            out.add("Opacity")
        elif head in ("calcified granuloma", "granuloma", "granulomatous disease"):
            out.add("Granuloma")
        elif head in ("spine", "thoracic vertebrae") and "degenerative" in quals:
            out.add("Spine degenerative")
    return out


#: Words that *name* a class. Every sentence containing one of them (whole word, any case) is
#: removed from every report — whatever the report's label — so the removal rule itself carries
#: no label information. What remains is indirect evidence (other findings, descriptions,
#: comparisons), which keeps the task from being trivially solved by one keyword: with the
#: naming sentences kept, every encoder's upper bound is 0.995-0.999 (DESIGN.md trial).
CLASS_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Normal": ("normal", "unremarkable"),
    "Cardiomegaly": ("cardiomegaly",),
    "Opacity": ("opacity", "opacities", "opacification", "opacified"),
    "Granuloma": ("granuloma", "granulomas", "granulomata", "granulomatous"),
    "Spine degenerative": ("degenerative", "spondylosis", "osteophyte", "osteophytes"),
}

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def _keyword_regex(keywords: dict[str, tuple[str, ...]]) -> re.Pattern:
    words = sorted({w for ws in keywords.values() for w in ws}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of a report section; numbering fragments such as ``"1."`` are dropped."""
    parts = [s.strip() for s in _SENT_SPLIT.split(text or "")]
    return [s for s in parts if s and not re.fullmatch(r"\d+\.?", s)]


def strip_class_sentences(text: str, keywords: dict[str, tuple[str, ...]] | None = None) -> str:
    """``text`` without the sentences that contain any class keyword (:data:`CLASS_KEYWORDS`)."""
    rx = _keyword_regex(keywords or CLASS_KEYWORDS)
    return " ".join(s for s in split_sentences(text) if not rx.search(s))


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------
def reports_path() -> Path:
    """Where NLMCXR_reports.tgz is: ``$SEMALIGN_OPENI_REPORTS`` or the torchxrayvision asset."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from semalign.assets import fetch

    return fetch(ASSET) / MEMBER


def _text(el: ET.Element | None) -> str:
    return " ".join((el.text or "").split()) if el is not None else ""


def _parse_one(raw: bytes, member: str) -> dict:
    root = ET.fromstring(raw)
    sections = {a.get("Label"): _text(a) for a in root.iter("AbstractText")}
    uid = root.find("uId")
    return {
        "id": uid.get("id") if uid is not None else Path(member).stem,
        "findings": sections.get("FINDINGS", ""),
        "impression": sections.get("IMPRESSION", ""),
        "mesh_major": [_text(e) for e in root.iter("major") if _text(e)],
        "image_ids": [e.get("id") for e in root.iter("parentImage") if e.get("id")],
    }


@functools.lru_cache(maxsize=4)
def _parse_cached(path: str, mtime: float, size: int) -> pd.DataFrame:
    rows = []
    try:
        with tarfile.open(path, "r:gz") as tf:
            for m in tf:
                if not (m.isfile() and m.name.endswith(".xml")):
                    continue
                try:
                    rows.append(_parse_one(tf.extractfile(m).read(), m.name))
                except ET.ParseError as e:
                    raise DataError(
                        f"{path}: report {m.name} is not valid XML ({e}). The archive is damaged: "
                        f"delete the torchxrayvision asset folder and run `semalign assets fetch "
                        f"torchxrayvision`."
                    ) from None
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as e:
        raise DataError(
            f"cannot read the Open-i report archive {path} ({type(e).__name__}: {e}). It is "
            f"truncated or not a .tgz: run `semalign assets fetch torchxrayvision` (or point "
            f"{ENV_VAR} at a good copy of NLMCXR_reports.tgz)."
        ) from None
    if not rows:
        raise DataError(f"{path} holds no XML reports; expected {N_REPORTS} (ecgen-radiology/*.xml).")
    df = pd.DataFrame(rows).sort_values("id", key=lambda s: s.str.extract(r"(\d+)")[0].astype(int))
    return df.reset_index(drop=True)


def zlib_error():
    import zlib

    return zlib.error


def parse_reports(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """All reports of the archive, sorted by number.

    Returns a DataFrame with columns ``id`` (``"CXR1"``...), ``findings``, ``impression`` (str,
    possibly empty), ``mesh_major`` (list[str]) and ``image_ids`` (list[str]).
    """
    p = Path(path).expanduser() if path is not None else reports_path()
    if p.exists() and not p.is_file():
        where = f"point {ENV_VAR} at the NLMCXR_reports.tgz file itself" if path is None and \
            os.environ.get(ENV_VAR) else "give the NLMCXR_reports.tgz file itself"
        raise DataError(
            f"the Open-i report archive {p} is a folder (or not a regular file), not the .tgz "
            f"archive: {where}, or run `semalign assets fetch torchxrayvision` and use the asset."
        )
    if not p.is_file():
        raise DataError(
            f"Open-i report archive not found at {p}. Run `semalign assets fetch torchxrayvision` "
            f"or set {ENV_VAR} to a copy of NLMCXR_reports.tgz."
        )
    st = p.stat()
    return _parse_cached(str(p), st.st_mtime, st.st_size).copy()


def load_reports(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The ``openi-reports`` dataset: parsed reports plus text, labels and the 5-class split.

    Columns: ``id, text`` (findings + impression), ``findings, impression, mesh_major,
    image_ids``, one 0/1 column per class of :data:`CLASSES`, ``label`` (the class when the
    report is exclusive within the five, else ``None``) and ``split`` (``test`` for the
    openi-5class test set, else ``train``).
    """
    df = parse_reports(path)
    df["text"] = (df["findings"] + " " + df["impression"]).str.strip()
    cls = df["mesh_major"].map(mesh_classes)
    for c in CLASSES:
        df[c] = cls.map(lambda s, c=c: int(c in s))
    df["label"] = cls.map(lambda s: next(iter(s)) if len(s) == 1 else None)
    test_ids = set(build_5class(df_parsed=df)["test"]["id"])
    df["split"] = np.where(df["id"].isin(test_ids), "test", "train")
    cols = ["id", "text", "findings", "impression", "mesh_major", "image_ids", *CLASSES, "label", "split"]
    return df[cols]


# ---------------------------------------------------------------------------------------
# The openi-5class recipe
# ---------------------------------------------------------------------------------------
RECIPE_5CLASS = {
    "classes": list(CLASSES),
    "n_test_per_class": 100,
    "n_train_per_class": 200,
    "seed": 0,
    "text": "findings + impression, sentences naming any class removed",
}


def build_5class(
    *,
    n_test_per_class: int = 100,
    n_train_per_class: int | None = 200,
    seed: int = 0,
    df_parsed: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Build openi-5class: ``{"train", "test", "anchors"}`` DataFrames.

    1. Every report's text = findings + impression with every sentence naming a class removed
       (:func:`strip_class_sentences`); reports left with no text are dropped.
    2. Eligible = exactly one of the five classes among its MeSH major terms (:func:`mesh_classes`).
    3. Test = ``n_test_per_class`` eligible reports per class, drawn with ``seed``.
    4. Train = up to ``n_train_per_class`` of the remaining eligible reports per class (``None``:
       all), drawn with the same generator — the decoder learns from these only.
    5. Anchors = every report not in test (labelled or not, train included, as the paper draws
       anchors from the training set), with the same sentence removal: the translator is fitted
       on the same text distribution that it will translate at test time.

    train/test have columns ``id, input, label``; anchors ``id, input``. Rows are in id order.
    """
    df = df_parsed if df_parsed is not None else parse_reports()
    raw = (df["findings"] + " " + df["impression"]).str.strip()
    text = (df["findings"].map(strip_class_sentences) + " " + df["impression"].map(strip_class_sentences)).str.strip()
    cls = df["mesh_major"].map(mesh_classes)
    base = pd.DataFrame({"id": df["id"].to_numpy(), "input": text.to_numpy(), "raw": raw.to_numpy()})
    base["label"] = cls.map(lambda s: next(iter(s)) if len(s) == 1 else None).to_numpy()
    base = base[base["input"].str.len() > 0]
    rng = np.random.default_rng(seed)
    test_parts, train_parts = [], []
    for c in CLASSES:
        ids = base.loc[base["label"] == c, "id"].to_numpy()
        need = n_test_per_class
        if len(ids) < need:
            raise DataError(
                f"openi-5class: class {c!r} has {len(ids)} eligible reports, the recipe asks "
                f"for {need} test reports. Lower n_test_per_class."
            )
        perm = rng.permutation(ids)
        test_parts.append(perm[:n_test_per_class])
        rest = perm[n_test_per_class:]
        train_parts.append(rest if n_train_per_class is None else rest[:n_train_per_class])
    test_ids = set(np.concatenate(test_parts))
    train_ids = set(np.concatenate(train_parts))
    test = base[base["id"].isin(test_ids)][["id", "input", "label"]].reset_index(drop=True)
    train = base[base["id"].isin(train_ids)][["id", "input", "label"]].reset_index(drop=True)
    anchors = base[~base["id"].isin(test_ids)][["id", "input"]].reset_index(drop=True)
    return {"train": train, "test": test, "anchors": anchors}
