"""Local copies of the downloadable datasets: their tables read against the manifest, the
image files a recipe selected checked, and seeded draws of ids.

Shared by the source modules of MIMIC-CXR, RSNA, VinDr-CXR and IU X-ray. Every failure is one
:class:`DataError` that says what is wrong and what to do. Recipes built on these helpers read
only label / metadata / report files (never pixels: images are passed on as paths), are seeded
and deterministic (same files + same seed -> same ids in the same order), and nothing of these
datasets is ever written into the repository or the book; only counts are shown.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from semalign.data.errors import DataError
from semalign.data.manifests import check_columns, get_manifest

__all__ = ["read_table", "require_images", "draw", "draw_with_text"]


def _file_spec(dataset: str, path: str) -> dict:
    for f in get_manifest(dataset)["files"]:
        if f["path"] == path:
            return f
    raise KeyError(path)


def read_table(dataset: str, folder: Path, path: str) -> pd.DataFrame:
    """A label / metadata CSV of a local copy, its columns checked against the manifest."""
    spec = _file_spec(dataset, path)
    p = folder / path
    if p.exists() and not p.is_file():
        raise DataError(f"{dataset}: {p} is a folder, but the manifest expects a file there: move it "
                        f"away and put the file itself there (`semalign data check {dataset}`).")
    if spec.get("columns"):
        check_columns(p, spec["columns"], dataset, exact=spec.get("columns_exact", True))
    try:
        return pd.read_csv(p)
    except Exception as e:  # noqa: BLE001 — pandas raises many types for damaged files
        raise DataError(f"{dataset}: cannot parse {p} ({type(e).__name__}: {e}); download it again.") from None


def require_images(dataset: str, folder: Path, paths, what: str) -> None:
    """One DataError when any of the image files a recipe selected is not in the local copy:
    how many, an example path, which manifest entry (folder pattern) they belong to, and where
    to download them to. (``semalign data check`` only sees whether a folder holds *some* images.)
    """
    paths = list(dict.fromkeys(str(p) for p in paths))
    missing = [p for p in paths if not Path(p).is_file()]
    if not missing:
        return
    m = get_manifest(dataset)
    specs = [f for f in m["files"] if f.get("glob")]
    by_spec: dict[str, int] = {}
    for p in missing:
        try:
            rel = PurePosixPath(Path(p).relative_to(folder).as_posix())
        except ValueError:
            rel = PurePosixPath(Path(p).as_posix())
        spec = next((f for f in specs if rel.match(f["path"])), None)
        key = spec["path"] if spec else f"{rel.parent}/"
        by_spec[key] = by_spec.get(key, 0) + 1
    desc = {f["path"]: f["description"] for f in specs}
    where = "; ".join(f"{n:,} in {k}" for k, n in by_spec.items())
    get = "; ".join(f"{k} ({desc[k]})" if k in desc else k for k in by_spec)
    how = f" How to get them: {' '.join(m['access_steps'].split())}" if m.get("access_steps") else ""
    raise DataError(
        f"{dataset}: {len(missing):,} of the {len(paths):,} image files {what} selected "
        f"{'is' if len(missing) == 1 else 'are'} missing from {folder} ({where}; e.g. {missing[0]}). "
        f"Download {get} from {m['homepage']} into {folder}.{how} "
        f"`semalign data check {dataset}` shows what the copy holds.")


def draw(ids: np.ndarray, k: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``k`` ids drawn without replacement, or a DataError naming how many exist."""
    ids = np.sort(np.asarray(ids))
    if k > len(ids):
        raise DataError(f"{what}: the recipe asks for {k} samples but only {len(ids)} exist in this copy. "
                        f"Lower the count to at most {len(ids)} or check that the copy is complete.")
    return rng.permutation(ids)[:k]


def draw_with_text(ids: np.ndarray, k: int, rng: np.random.Generator, what: str, text_of) -> list[tuple]:
    """``k`` ``(id, text)`` drawn without replacement among the ids whose ``text_of(id)`` is not
    empty. Texts are read lazily in the seeded order, so only about ``k`` reports are opened
    (MIMIC-CXR has 227k); the result is deterministic for a seed. A DataError names how many
    usable ids exist when fewer than ``k`` do.
    """
    ids = np.sort(np.asarray(ids))
    if k > len(ids):
        draw(ids, k, rng, what)  # raises the usual "asks for k but only n exist"
    out, empty = [], 0
    for i in rng.permutation(ids):
        t = text_of(i)
        if t and t.strip():
            out.append((i, t))
            if len(out) == k:
                return out
        else:
            empty += 1
    raise DataError(f"{what}: the recipe asks for {k} samples but only {len(out)} of the {len(ids)} candidates "
                    f"have a findings or impression section ({empty} are empty). Lower the count to at most "
                    f"{len(out)} or check that the reports are complete.")
