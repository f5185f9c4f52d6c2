"""Image data (``kdtemp.tasks.image.data``): dataset readers on small files written in each
dataset's exact on-disk format, the split cache, folder pools split per class (by a seeded
fraction, a split file or CUB-200-2011's own files), and the data configuration's checks."""

import gzip
import pickle
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine.config import run_id
from kdtemp.tasks.image.data import DataConfig, formats, load_split

from helpers.cli import assert_one_line, run_cli
from helpers.engine import cohort, member
from helpers.trust import BASE, study, write_yaml


def pixels(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_cifar_batch(path, images, labels, label_key):
    # The official rows: 3072 bytes = R plane, G plane, B plane, row-major.
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(path, "wb") as handle:
        pickle.dump({b"data": rows, label_key: list(labels), b"batch_label": b"x"}, handle)


def test_cifar10_pickle_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = [pixels(4, seed=i) for i in range(5)]
    for i, images in enumerate(train, start=1):
        write_cifar_batch(folder / f"data_batch_{i}", images, [i % 10] * 4, b"labels")
    test = pixels(6, seed=9)
    write_cifar_batch(folder / "test_batch", test, [0, 1, 2, 3, 4, 5], b"labels")
    names = [f"class{i}".encode() for i in range(10)]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names}, handle)

    split = load_split("cifar10", "train", root=str(tmp_path))
    assert split.images.shape == (20, 3, 32, 32) and split.images.dtype == torch.uint8
    assert torch.equal(split.images, torch.from_numpy(np.concatenate(train).transpose(0, 3, 1, 2)))
    assert split.labels.tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    assert split.classes[3] == "class3"
    test_split = load_split("cifar10", "test", root=str(tmp_path))
    assert test_split.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert torch.equal(test_split.images[2], torch.from_numpy(test[2].transpose(2, 0, 1)))


def test_cifar100_pickle_format_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_cifar_batch(folder / "train", pixels(5), [7, 99, 0, 7, 42], b"fine_labels")
    write_cifar_batch(folder / "test", pixels(2, seed=1), [1, 2], b"fine_labels")
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)], b"coarse_label_names": []}, handle)
    split = load_split("cifar100", "train", root=str(tmp_path))
    assert split.labels.tolist() == [7, 99, 0, 7, 42] and split.num_classes == 100


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mnist_idx_format(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(7))
    split = load_split("mnist", "test", root=str(tmp_path))
    assert split.images.shape == (7, 3, 28, 28)
    assert torch.equal(split.images[:, 0], torch.from_numpy(images)) and torch.equal(split.images[:, 2], split.images[:, 0])
    assert split.labels.tolist() == list(range(7))
    with pytest.raises(ConfigError, match="data.root: mnist not found"):
        load_split("mnist", "train", root=str(tmp_path))


def save_image(path, array, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array if mode == "RGB" else array[..., 0]).save(path)


def test_tiny_imagenet_layout(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    (base).mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids))
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttiger shark\n")
    for w in wnids:
        for k in range(3):
            save_image(base / "train" / w / "images" / f"{w}_{k}.JPEG", pixels(1, 64, seed=k)[0], "L" if k == 0 else "RGB")
    rows = []
    for k, w in enumerate(["n02", "n01", "n01"]):
        save_image(base / "val" / "images" / f"val_{k}.JPEG", pixels(1, 64, seed=10 + k)[0])
        rows.append(f"val_{k}.JPEG\t{w}\t0\t0\t10\t10")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows))
    train = load_split("tiny_imagenet", "train", root=str(tmp_path))
    assert train.images.shape == (6, 3, 64, 64)  # greyscale images became RGB
    assert train.classes == ["goldfish", "tiger shark"] and sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    test = load_split("tiny_imagenet", "test", root=str(tmp_path))
    assert test.labels.tolist() == [1, 0, 0]


def test_oxford_pets_layout(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    lines = {"trainval": [], "test": []}
    for split, ids in (("trainval", [1, 2]), ("test", [3])):
        for breed, class_id in (("Abyssinian", 1), ("american_bulldog", 2)):
            for k in ids:
                save_image(base / "images" / f"{breed}_{k}.jpg", pixels(1, 40, seed=k)[0])
                lines[split].append(f"{breed}_{k} {class_id} 1 1")
    (base / "annotations" / "trimaps").mkdir(parents=True)
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    train = load_split("pets", "train", root=str(tmp_path), image_size=24)
    assert train.images.shape == (4, 3, 24, 24)
    assert train.classes == ["Abyssinian", "American Bulldog"] and sorted(train.labels.tolist()) == [0, 0, 1, 1]
    assert len(load_split("pets", "test", root=str(tmp_path), image_size=24)) == 2


def test_stanford_cars_layout(tmp_path):
    from scipy.io import savemat

    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(["AM General Hummer", "Acura RL"], dtype=object)})

    def annotations(folder, names, classes):
        records = np.zeros(len(names), dtype=[("fname", "O"), ("class", "O")])
        for i, (name, cls) in enumerate(zip(names, classes)):
            records[i] = (name, np.uint8(cls))
            save_image(base / folder / name, pixels(1, 30, seed=i)[0])
        return {"annotations": records}

    savemat(base / "devkit" / "cars_train_annos.mat", annotations("cars_train", ["00001.jpg", "00002.jpg", "00003.jpg"], [1, 2, 2]))
    savemat(base / "cars_test_annos_withlabels.mat", annotations("cars_test", ["00001.jpg", "00002.jpg"], [2, 1]))
    train = load_split("cars", "train", root=str(tmp_path), image_size=16)
    assert train.labels.tolist() == [0, 1, 1] and train.classes == ["AM General Hummer", "Acura RL"]
    assert load_split("cars", "test", root=str(tmp_path), image_size=16).labels.tolist() == [1, 0]


def make_folder_tree(base, classes=("cat", "dog", "owl"), per_class=5, size=20):
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            for k in range(per_class):
                save_image(base / split / name / f"{k}.png", np.full((size, size, 3), 40 * c + k, dtype=np.uint8))


def test_image_folder_and_subset_builder(tmp_path):
    make_folder_tree(tmp_path)
    full = load_split("folder", "train", root=str(tmp_path))
    assert full.classes == ["cat", "dog", "owl"] and len(full) == 15
    subset = load_split("folder", "train", root=str(tmp_path), per_class=2, classes=["owl", "cat"])
    # the class list's order remaps labels (owl 0, cat 1); samples keep the dataset's order (cat first)
    assert subset.classes == ["owl", "cat"] and subset.labels.tolist() == [1, 1, 0, 0]
    assert subset.images[0].float().mean() < 5 and subset.images[3].float().mean() >= 80  # cat 0..4, owl 80..84
    with pytest.raises(ConfigError, match="data.train_per_class: 6 requested, but class .cat. has only 5 train images"):
        load_split("folder", "train", root=str(tmp_path), per_class=6)
    with pytest.raises(ConfigError, match="data.classes: 'bat' is not a class"):
        load_split("folder", "test", root=str(tmp_path), classes=["bat"])


def test_split_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    make_folder_tree(tmp_path / "data")
    first = load_split("folder", "train", root=str(tmp_path / "data"), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("folder-train-*.pt"))) == 1

    def fail(*args):
        raise AssertionError("the reader ran although the split was cached")

    monkeypatch.setitem(formats.READERS, "folder", fail)
    again = load_split("folder", "train", root=str(tmp_path / "data"), cache_dir=tmp_path / "cache")
    assert torch.equal(first.images, again.images) and first.classes == again.classes


def test_digits_is_the_embedded_default():
    train, test = DataConfig().load("train"), DataConfig().load("test")
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.shape[1:] == (3, 8, 8) and int(train.images.max()) == 255
    assert sorted(set(test.labels.tolist())) == list(range(10))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"dataset": "imagenet22k"}, "data.dataset: unknown dataset 'imagenet22k'; allowed: digits, cifar10"),
        ({"dataset": "cifar10"}, "data.root: dataset 'cifar10' needs a root folder"),
        ({"dataset": "cifar10", "root": "/no/such/folder"}, "data.root: '/no/such/folder' does not exist"),
        ({"resolution": "big"}, "data.resolution: expected an integer"),
        ({"train_per_class": 0}, "data.train_per_class: must be >= 1"),
        ({"colour": True}, "data.colour: unknown field"),
    ],
)
def test_bad_data_config_names_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, data, "data")


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


def test_an_edited_split_file_is_other_data(tmp_path):
    root = pool(tmp_path / "pool", {"ant": 3, "bee": 3})
    split = tmp_path / "split.txt"
    split.write_text("ant/000.png train\nant/001.png train\nant/002.png test\n"
                     "bee/000.png train\nbee/001.png train\nbee/002.png test\n")
    data = from_dict(DataConfig, {"dataset": "folder", "root": str(root), "split_file": str(split), "resolution": 8})
    before_id = run_id(cohort([], data=data), member())
    first = data.load("test")
    split.write_text(split.read_text().replace("ant/002.png test", "ant/002.png train").replace(
        "ant/000.png train", "ant/000.png test"))
    assert run_id(cohort([], data=data), member()) != before_id
    assert not (first.images == data.load("test").images).all()  # not the stale cached split


def test_an_offline_download_is_one_line(tmp_path, capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    base = {**BASE, "data": {"dataset": "cifar10", "root": str(tmp_path / "cifar"), "download": True}}
    code, _, err = run_cli(["study", "run", write_yaml(tmp_path / "s.yaml", study(base=base)),
                            "--output", str(tmp_path / "out"), "--quiet"], capsys)
    assert_one_line(code, err, "data.download: could not download cifar10", "Temporary failure in name resolution")
    assert not (tmp_path / "out").exists()


def test_a_planted_cifar_batch_never_runs(tmp_path, capsys, marker):
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    from helpers.trust import Payload

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": Payload(marker)}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"a", b"b"]}, handle)
    base = {**BASE, "data": {"dataset": "cifar10", "root": str(tmp_path), "resolution": 8}, "batch_size": 2}
    code, _, err = run_cli(["study", "plan", write_yaml(tmp_path / "s.yaml", study(base=base))], capsys)
    assert_one_line(code, err, "data.root:", "is not a CIFAR python batch file", "posix.system")
