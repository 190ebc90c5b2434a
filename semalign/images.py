"""One function reads every image an encoder sees: DICOM, PNG, JPEG or an array.

>>> img = read_image("chest.dcm")          # np.uint8 (H, W), 0 = black, 255 = white
>>> rgb = read_image("photo.jpg", mode="rgb")   # np.uint8 (H, W, 3)

DICOM goes through the standard's display pipeline: stored values → modality LUT (rescale
slope/intercept) → VOI (a VOI LUT sequence if present, else the first window centre/width,
else the image's own min–max) → MONOCHROME1 inverted (there, high values are *dark*) → uint8.
16-bit PNGs and arrays are rescaled min–max to 0–255. Nothing is resized here: each encoder's
own preprocessing does that.
"""

from __future__ import annotations

from semalign.errors import SemalignError

import os
from pathlib import Path
from typing import Any

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


class ImageReadError(SemalignError, ValueError):
    """An image could not be read; the message names the file and what to do."""


def _to_uint8(x: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Linear map of ``[lo, hi]`` (default: the array's min and max) to 0..255, clipped."""
    x = np.asarray(x, dtype=np.float64)
    lo = float(np.nanmin(x)) if lo is None else lo
    hi = float(np.nanmax(x)) if hi is None else hi
    if hi <= lo:  # a constant image: mid grey would invent contrast; keep it black
        return np.zeros(x.shape, dtype=np.uint8)
    y = (x - lo) / (hi - lo)
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def _as_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, like PIL's convert('L')."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return np.clip(np.round(0.299 * r + 0.587 * g + 0.114 * b), 0, 255).astype(np.uint8)


def _finish(img: np.ndarray, mode: str) -> np.ndarray:
    if mode == "gray":
        return img if img.ndim == 2 else _as_gray(img)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def _from_array(a: np.ndarray, mode: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]  # drop alpha
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ImageReadError(f"an image array must be (H, W) or (H, W, 3), got shape {a.shape}")
    if a.size == 0:
        raise ImageReadError(f"empty image array (shape {a.shape})")
    if a.dtype == np.uint8:
        img = a
    elif a.dtype == bool:
        img = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating) and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0:
        img = _to_uint8(a, 0.0, 1.0)  # float images in [0, 1]
    else:
        img = _to_uint8(a)  # 16-bit or arbitrary range: min–max
    return _finish(np.ascontiguousarray(img), mode)


def is_dicom(path: str | os.PathLike) -> bool:
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def _first(value: Any) -> float:
    """Window centre/width may be multi-valued; the first is the default view."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def read_dicom(path: str | os.PathLike, mode: str = "gray") -> np.ndarray:
    """A DICOM file -> uint8 (H, W) (or (H, W, 3) for colour DICOM with mode="rgb")."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # noqa: BLE001 — pydicom raises many types for bad files
        raise ImageReadError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from None
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data")
    try:
        px = ds.pixel_array
    except Exception as e:  # noqa: BLE001
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        hint = ""
        if ts is not None and ts.is_compressed:
            hint = (f" The pixels are compressed ({ts.name}); install a decoder: "
                    f"`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg`.")
        raise ImageReadError(f"{path}: cannot decode the DICOM pixels ({type(e).__name__}: "
                             f"{e}).{hint}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        px = px[0]  # a radiograph is one frame; multi-frame files: the first
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR", "YBR_ICT", "YBR_RCT"):
        from pydicom.pixels import apply_color_lut, convert_color_space

        if photometric == "PALETTE COLOR":
            px = apply_color_lut(px, ds)
        elif photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
            px = convert_color_space(px, photometric, "RGB")
        img = px if px.dtype == np.uint8 else _to_uint8(px)
        return _finish(img, mode)

    arr = apply_modality_lut(px, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        # the LUT indexes integer values; the modality LUT gives floats even when integral
        lut_in = np.round(arr).astype(np.int64) if np.allclose(arr, np.round(arr)) else arr
        arr = np.asarray(apply_voi_lut(lut_in, ds), dtype=np.float64)
        img = _to_uint8(arr)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c, w = _first(ds.WindowCenter), _first(ds.WindowWidth)
        # DICOM PS3.3 C.11.2.1.2.1 linear window, mapped to [0, 1]
        y = ((arr - (c - 0.5)) / max(w - 1.0, 1.0)) + 0.5
        img = _to_uint8(np.clip(y, 0.0, 1.0), 0.0, 1.0)
    else:
        img = _to_uint8(arr)
    if photometric == "MONOCHROME1":
        img = 255 - img  # MONOCHROME1: minimum value is white
    return _finish(img, mode)


def read_image(src: str | os.PathLike | np.ndarray, mode: str = "gray") -> np.ndarray:
    """Read a DICOM, PNG or JPEG file (or pass an array through) as uint8.

    ``mode="gray"`` -> ``(H, W)``; ``mode="rgb"`` -> ``(H, W, 3)`` (grey replicated).
    Raises :class:`ImageReadError` for a missing, unreadable or truncated file.
    """
    if mode not in ("gray", "rgb"):
        raise ValueError(f"mode must be 'gray' or 'rgb', got {mode!r}")
    if isinstance(src, np.ndarray):
        return _from_array(src, mode)
    if not isinstance(src, (str, os.PathLike)):
        raise ImageReadError(f"read_image expects a path or a numpy array, got {type(src).__name__}")
    path = Path(src)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    if is_dicom(path):
        return read_dicom(path, mode)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im)
                return _finish(_to_uint8(arr), mode)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if mode == "gray":
                return np.asarray(im.convert("L"), dtype=np.uint8).copy()
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image PIL can read (expected DICOM, PNG or JPEG)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: unreadable or truncated image ({e}); re-copy the file") from None


def to_pil_rgb(src: str | os.PathLike | np.ndarray):
    """An RGB PIL image for an encoder's image processor (grey images are replicated)."""
    from PIL import Image

    return Image.fromarray(read_image(src, mode="rgb"), mode="RGB")
