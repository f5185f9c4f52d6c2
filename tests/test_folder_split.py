"""A folder dataset that is one pool of class folders: split per class by a seeded fraction, by a
split file, or by CUB-200-2011's own files."""

import numpy as np
import pytest
from PIL import Image

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.image.data import DataConfig


def pool(root, counts, size=8):
    """``root/<class>/<n>.png`` with ``counts[class]`` images each, pixel value = class * 10 + n."""
    for index, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            Image.fromarray(np.full((size, size, 3), index * 10 + n, np.uint8)).save(root / name / f"{n:03d}.png")
    return root


def values(split):
    return sorted(int(image[0, 0, 0]) for image in split.images)


def test_seeded_per_class_fraction(tmp_path):
    root = pool(tmp_path / "pool", {"ant": 10, "bee": 5, "cat": 2})
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "test_fraction": 0.2, "resolution": 8})
    train, test = data.load("train"), data.load("test")
    assert train.classes == test.classes == ["ant", "bee", "cat"]
    assert np.bincount(test.labels.numpy()).tolist() == [2, 1, 1]  # round(0.2 n), at least 1, at most n - 1
    assert np.bincount(train.labels.numpy()).tolist() == [8, 4, 1]
    assert sorted(values(train) + values(test)) == list(range(10)) + list(range(10, 15)) + [20, 21]
    again = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "test_fraction": 0.2, "resolution": 8,
                                   "cache_dir": str(tmp_path / "other-cache")})
    assert values(again.load("test")) == values(test)  # the same seed gives the same split
    other = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "test_fraction": 0.2, "split_seed": 7,
                                   "resolution": 8})
    assert values(other.load("test")) != values(test)


def test_split_file(tmp_path):
    root = pool(tmp_path / "pool", {"ant": 3, "bee": 3})
    lines = ["# path split", "ant/000.png train", "ant/001.png 1", "ant/002.png test", "bee/000.png 0",
             "bee/001.png train", "bee/002.png train"]
    (tmp_path / "split.txt").write_text("\n".join(lines) + "\n")
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "split_file": str(tmp_path / "split.txt"),
                                  "resolution": 8})
    assert values(data.load("test")) == [2, 10] and values(data.load("train")) == [0, 1, 11, 12]
    (tmp_path / "bad.txt").write_text("ant/000.png maybe\n")
    bad = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "split_file": str(tmp_path / "bad.txt")})
    with pytest.raises(ConfigError, match="data.split_file: .* marks 000.png with 'maybe'"):
        bad.index("train")


def test_cub_layout_is_read_without_options(tmp_path):
    root = tmp_path / "CUB_200_2011"
    pool(root / "images", {"001.Albatross": 2, "002.Auklet": 2})
    (root / "images.txt").write_text("1 001.Albatross/000.png\n2 001.Albatross/001.png\n3 002.Auklet/000.png\n"
                                     "4 002.Auklet/001.png\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 0\n")
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "resolution": 8})
    assert data.index("train").classes == ["001.Albatross", "002.Auklet"]
    assert values(data.load("train")) == [0, 10] and values(data.load("test")) == [1, 11]


def test_a_pool_without_split_options_gets_a_hint(tmp_path):
    root = pool(tmp_path / "pool", {"ant": 3, "bee": 3})
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root)})
    with pytest.raises(ConfigError, match="one pool of class folders: set data.test_fraction"):
        data.index("train")


@pytest.mark.parametrize("fields, message", [
    ({"dataset": "digits", "test_fraction": 0.2}, "data.test_fraction: splits a folder pool"),
    ({"dataset": "folder", "test_fraction": 1.5}, "data.test_fraction: must be in (0, 1)"),
    ({"dataset": "folder", "split_file": "/no/such.txt"}, "data.split_file: '/no/such.txt' does not exist"),
    ({"dataset": "folder", "test_fraction": 0.2, "split_file": "/no/such.txt"}, "give test_fraction or split_file"),
])
def test_bad_split_options_name_the_field(tmp_path, fields, message):
    pool(tmp_path / "pool", {"ant": 2})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict(DataConfig, {"root": str(tmp_path / "pool"), **fields}, "data")
