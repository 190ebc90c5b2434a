"""The data page (semalign.report.data_overview): aggregates only, and the SynthCXR gallery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semalign.report import data_overview


def test_gallery_images_are_inline_and_captioned():
    imgs = np.zeros((3, 16, 16), np.uint8)
    g = data_overview.gallery_chart(imgs, ["a", "b (mild)", "c"], details=["r1", "r2", "r3"], columns=2).to_dict()
    rows = g["datasets"][g["data"]["name"]]
    assert len(rows) == 3 and all(d["url"].startswith("data:image/png;base64,") for d in rows), "images are inline"
    assert [d["short"] for d in rows] == ["a", "b", "c"] and rows[1]["details"] == "r2"
    with pytest.raises(ValueError, match="captions"):
        data_overview.gallery_chart(imgs, ["a"])


def test_balance_reading_and_length_numbers():
    balance = pd.DataFrame({"task": ["t"] * 4 + ["u"] * 2, "split": ["test", "test", "train", "anchors", "test", "test"],
                            "label": ["a", "b", "a", "(unlabelled pool)", "x", "y"], "count": [50, 50, 9, 7, 10, 40]})
    text = data_overview.reading(balance)
    assert "`t`: 100 test samples in 2 classes (balanced)" in text
    assert "`u`: 50 test samples in 2 classes (smallest/largest class 0.25)" in text
    assert data_overview.chart(balance).to_dict()["encoding"]["row"]["field"] == "task"
    k = data_overview.lengths_numbers(pd.DataFrame({"words": list(range(1, 12))}))
    assert k == {"reports": 11, "median": 6.0, "p10": 2.0, "p90": 10.0}


def test_profiles_table_reads_the_profile_files():
    from semalign.book import PROFILES, load_profile

    t = data_overview.profiles_table()
    assert list(t.index) == list(PROFILES)
    assert t.loc["offline", "text task"] == load_profile("offline")["common"]["text_task"]
    assert t.loc["offline", "baselines"] == "synthclip" and "clip" in t.loc["paper", "baselines"]
