"""Dataset readers on small files written in each dataset's exact on-disk format."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.image.data import DataConfig, load_split
from kdtemp.tasks.image.data import formats


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
