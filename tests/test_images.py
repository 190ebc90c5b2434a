"""read_image: DICOM (the real MONOCHROME1 chest CR of pydicom-data), PNG (8/16-bit), JPEG (the
Kermany chest JPEGs), arrays, and clear errors on missing / truncated / non-image files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semalign.images import ImageReadError, read_image, to_pil_rgb


# ------------------------------------------------------------------ arrays and PNG (fast) -----
def test_uint8_array_passes_through_and_rgb_replicates():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert read_image(a) is a or np.array_equal(read_image(a), a)
    rgb = read_image(a, mode="rgb")
    assert rgb.shape == (3, 4, 3) and np.array_equal(rgb[..., 1], a)


def test_16bit_array_rescaled_min_max():
    a = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    out = read_image(a)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert list(out.ravel()) == sorted(out.ravel())


def test_float_unit_range_and_rgb_to_gray():
    assert read_image(np.full((2, 2), 1.0)).max() == 255
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    g = read_image(rgb)
    assert g.shape == (2, 2) and g[0, 0] == np.uint8(round(0.299 * 255))


@pytest.mark.parametrize("shape", [(2, 2, 2), (5,), (0, 3)])
def test_bad_array_shapes(shape):
    with pytest.raises(ImageReadError):
        read_image(np.zeros(shape, dtype=np.uint8))


def test_png_8_and_16_bit(tmp_path):
    a = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(64, 48)
    Image.fromarray(a).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), a)
    b = (np.arange(64 * 48, dtype=np.uint16) * 20).reshape(64, 48)
    Image.fromarray(b).save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    assert out.dtype == np.uint8 and out.shape == (64, 48) and out[0, 0] == 0 and out.max() == 255


def test_missing_truncated_and_non_image_files(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    a = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "half.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "notes.png")
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    with pytest.raises(ImageReadError, match="DICOM"):
        read_image(tmp_path / "bad.dcm")


def test_to_pil_rgb():
    im = to_pil_rgb(np.zeros((5, 7), dtype=np.uint8))
    assert im.mode == "RGB" and im.size == (7, 5)


def _synthetic_dicom(path, photometric, pixels, window=None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_monochrome1_inverted_and_windowed(tmp_path):
    px = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    _synthetic_dicom(tmp_path / "m2.dcm", "MONOCHROME2", px)
    _synthetic_dicom(tmp_path / "m1.dcm", "MONOCHROME1", px)
    m2, m1 = read_image(tmp_path / "m2.dcm"), read_image(tmp_path / "m1.dcm")
    assert m2[0, 0] == 0 and m2[1, 1] == 255           # min-max without a window
    assert np.array_equal(m1, 255 - m2)                 # MONOCHROME1: high values are dark
    _synthetic_dicom(tmp_path / "w.dcm", "MONOCHROME2", px, window=(2000, 2000))
    w = read_image(tmp_path / "w.dcm")
    # window [1000, 3000]: below -> black, above -> white, the centre -> mid grey
    assert w[0, 0] == 0 and w[0, 1] <= 1 and w[1, 1] == 255 and 120 < w[1, 0] < 136


# ------------------------------------------------------------------ real files (assets) -------
@pytest.mark.slow
def test_real_chest_dicom_monochrome1(asset):
    import pydicom

    path = asset("pydicom-data") / "data_store" / "data" / "RG1_UNCR.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BodyPartExamined == "CHEST"
    assert int(ds.BitsStored) > 8
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (ds.Rows, ds.Columns)
    # After inversion the lungs (dark) lie inside brighter mediastinum/body: the central lung
    # fields are darker than the spine column between them, and the image uses the range.
    h, w = img.shape
    left_lung = img[h // 3: h // 2, w // 5: 2 * w // 5].mean()
    spine = img[h // 3: h // 2, int(0.47 * w): int(0.53 * w)].mean()
    assert left_lung < spine
    assert img.max() - img.min() > 150
    # it is the exact inverse of reading the pixels as MONOCHROME2
    ds_full = pydicom.dcmread(path)
    ds_full.PhotometricInterpretation = "MONOCHROME2"
    from semalign import images

    as_m2 = images._to_uint8(np.clip(((ds_full.pixel_array.astype(float) - (images._first(ds_full.WindowCenter) - 0.5))
                                      / (images._first(ds_full.WindowWidth) - 1)) + 0.5, 0, 1), 0.0, 1.0)
    assert np.array_equal(img, 255 - as_m2)


@pytest.mark.slow
def test_kermany_jpegs(asset):
    folder = asset("pneumonia-jpegs") / "pneumonia_model_package" / "datasets" / "pneumonia-data" / "val"
    files = sorted(folder.glob("*.jpeg"))
    assert len(files) >= 8
    for f in files[:4]:
        g = read_image(f)
        with Image.open(f) as im:
            assert g.shape == (im.height, im.width)
        assert g.dtype == np.uint8 and g.std() > 10
        assert read_image(f, mode="rgb").shape == g.shape + (3,)
