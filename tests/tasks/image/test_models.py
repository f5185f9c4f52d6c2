"""Models (``kdtemp.tasks.image.models``): the CIFAR ResNets, timm by name, initialisation modes,
the shared checkpoints, and the normalisation each model's weights expect."""

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.tasks.image.data import DataConfig, eval_images
from kdtemp.tasks.image.evaluate import accuracy, predict
from kdtemp.tasks.image.models import (
    CIFAR_MODELS,
    IMAGENET_NORMALIZATION,
    ModelConfig,
    create_model,
    load_weights,
    resolve_normalization,
)


# Parameter counts of the classic CIFAR ResNets with 10 classes (worked out by hand: stem 464, three stages, classifier 650).
EXPECTED_PARAMETERS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
                       "resnet56": 853_018, "resnet110": 1_727_962}


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_cifar_resnets_by_name(name):
    model = create_model(ModelConfig(name), num_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    if name in EXPECTED_PARAMETERS:
        assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMETERS[name]


def test_option_a_shortcut_has_no_parameters_and_pads_channels():
    model = create_model(ModelConfig("resnet20"), num_classes=10)
    block = model.layer2[0]
    assert list(block.shortcut.parameters()) == []
    x = torch.randn(1, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2]) and out[:, :8].abs().sum() == 0


def test_wide_variants_use_projection_shortcuts():
    model = create_model(ModelConfig("resnet8x4"), num_classes=100)
    assert isinstance(model.layer2[0].shortcut[0], torch.nn.Conv2d)
    assert model.linear.in_features == 256


def test_shared_checkpoints_load_strictly(resnet_checkpoints):
    assert set(resnet_checkpoints) == {"resnet20", "resnet32", "resnet44", "resnet56"}
    for name, path in resnet_checkpoints.items():
        model = CIFAR_MODELS[name](num_classes=10)
        assert load_weights(model, path, strict=True) == []
        stored = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert torch.equal(model.linear.weight, stored["module.linear.weight"])


@pytest.mark.slow
def test_resnet20_checkpoint_scores_80_percent_on_cifar10_jpeg(cifar10_jpeg_root, resnet_checkpoints):
    data = DataConfig(dataset="folder", root=str(cifar10_jpeg_root), resolution=32)
    test = data.load("test")
    assert len(test) == 10_000 and test.classes[0] == "airplane"
    model = create_model(ModelConfig("resnet20", init="checkpoint", weights=str(resnet_checkpoints["resnet20"])), 10)
    logits = predict(model, eval_images(test.images, 32, False), 500, lambda: torch.autocast("cpu", enabled=False))
    top1 = float(accuracy(logits, test.labels)["top1"])
    print(f"resnet20 on the CIFAR-10 JPEG test set: {top1:.2f}%")
    assert top1 >= 80.0


def test_timm_model_by_name_and_local_pretrained_weights(tmp_path):
    import timm

    source = timm.create_model("resnet10t", num_classes=1000)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pth")
    model = create_model(ModelConfig("resnet10t", init="pretrained", weights=str(tmp_path / "w.pth")), num_classes=7)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)  # backbone copied
    assert model.fc.weight.shape == (7, model.fc.in_features)  # classifier replaced for 7 classes


def test_load_weights_rejects_a_mismatching_backbone(tmp_path):
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), tmp_path / "r32.pt")
    with pytest.raises(ValueError, match="does not fit the model"):
        load_weights(create_model(ModelConfig("resnet20"), 10), tmp_path / "r32.pt")


@pytest.mark.parametrize(
    "model, message",
    [
        ({"name": "resnet9000"}, "model.name: unknown model 'resnet9000'"),
        ({"name": "resnet20", "init": "checkpoint"}, "model.weights: init 'checkpoint' needs a weights path"),
        ({"name": "resnet20", "init": "pretrained"}, "model.init: 'resnet20' has no published pretrained weights"),
        ({"name": "resnet20", "init": "imagenet"}, "model.init: 'imagenet' is not allowed; allowed: 'random'"),
        ({"name": "resnet20", "init": "checkpoint", "weights": "/no/file.pt"}, "model.weights: '/no/file.pt' does not exist"),
    ],
)
def test_bad_model_config_names_the_field(model, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ModelConfig, model, "model")


def test_normalisation_comes_from_the_weights_or_the_config():
    assert resolve_normalization(ModelConfig("vit_small_patch16_224"), None, None) == ((0.5,) * 3, (0.5,) * 3)
    assert resolve_normalization(ModelConfig("mobilevitv2_150"), None, None) == ((0.0,) * 3, (1.0,) * 3)
    assert resolve_normalization(ModelConfig("resnet20"), None, None) == IMAGENET_NORMALIZATION
    explicit = ModelConfig("resnet20", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    assert resolve_normalization(explicit, None, None) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    recorded = {"normalization": {"mean": [0.1, 0.2, 0.3], "std": [0.3, 0.3, 0.3]}}
    assert resolve_normalization(ModelConfig("resnet20"), None, recorded) == ((0.1, 0.2, 0.3), (0.3, 0.3, 0.3))
