"""Image classification as a task of the engine (:mod:`kdtemp.tasks.base`).

Data: the splits of :class:`~.data.DataConfig` as uint8 tensors on the training device, the
augmented training stream of :class:`~.data.TrainStream`, and the test split's evaluation view
(centre crop or resize to the model resolution). Models: timm, the CIFAR zoo and plug-ins
(:mod:`.models`), each behind an :class:`ImageModel` that owns its input normalisation. Metrics:
top-1 (the primary metric), top-5 and the mean test cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...config import ConfigError
from ..base import MemoryEstimate, MetricName, ModelAdapter, Task, register_task
from ..memory import optimizer_states
from .data import KNOWN_SIZES, AugmentConfig, DataConfig, ImageSplit, TrainStream, eval_images
from .data.augment import Batch
from .evaluate import accuracy, predict
from .models import LoadedModel, ModelConfig, forward_flops, load_model, memory_profile
from .normalization import Normalization
from ..validation import carve


@dataclass
class ImageData:
    """The data of one image cohort on its device."""

    train: ImageSplit
    test: ImageSplit
    test_images: Tensor
    stream: TrainStream
    resolution: int
    center_crop: bool
    validation: ImageSplit | None = None  # held out of the training split (``data.validation``)
    validation_images: Tensor | None = None  # in the evaluation view

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def classes(self) -> list[str]:
        return self.train.classes


class ImageModel(ModelAdapter):
    """A classifier of images with the normalisation its weights expect: called on a training
    batch, it normalises the batch's images its own way (computed once per batch and
    normalisation) and returns logits ``[B, C]``. ``classes``: the class names of its outputs, in
    order (the data's), recorded with every checkpoint of it."""

    def __init__(self, loaded: LoadedModel, channels_last: bool = False, classes: list[str] | None = None,
                 dtype: torch.dtype = torch.float32, stochastic_depth: bool = False) -> None:
        self.module: nn.Module = loaded.module.to(memory_format=torch.channels_last) if channels_last else loaded.module
        self.normalization: Normalization = loaded.normalization
        self.channels_last = channels_last
        self.classes = list(classes) if classes is not None else None
        self.dtype = dtype  # of its weights and inputs (float64 under ``precision: fp64``)
        # it calls its module on one tensor: members of one architecture may train fused (engine/fused.py),
        # unless stochastic depth draws inside the module
        self.fuses = not stochastic_depth

    def __call__(self, batch: Batch) -> Tensor:
        return self.module(batch.normalized(self.normalization, self.dtype))

    def predict(self, images: Tensor, batch_size: int, runtime: Any) -> Tensor:
        """Logits (float32; float64 for a float64 model) in eval mode for uint8 ``images``, batch by batch."""
        return predict(self.module, images, batch_size, runtime.autocast, self.channels_last, self.normalization,
                       self.dtype)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"normalization": {"mean": list(self.normalization[0]), "std": list(self.normalization[1])}}
        if self.classes is not None:
            meta["classes"] = list(self.classes)
        return meta


@register_task("image_classification")
class ImageClassification(Task):
    """Image classification: top-1 is the primary metric (higher is better)."""

    name = "image_classification"
    primary_metric = "top1"
    primary_goal = "max"
    precisions = ("auto", "fp32", "bf16", "fp64")  # fp64: weights, inputs and logits in float64
    sample_noun = "images"
    step_unit = "image-steps"
    metric_names = {"top1": MetricName("top-1 (%)", "top-1", "%", "accuracy"),
                    "top5": MetricName("top-5 (%)", "top-5", "%", "top-5 accuracy")}
    data_config = DataConfig
    validation_split = True  # data.validation
    augment_config = AugmentConfig
    model_config = ModelConfig

    def open(self, shared: Any, runtime: Any, progress: bool = False) -> ImageData:
        """Load (or read from the cache) both splits onto ``runtime.device`` and build the stream."""
        train = shared.data.load("train", progress=progress)
        validation = None
        if shared.data.validation is not None:  # held out before anything trains on it
            kept, held = carve(len(train), shared.data.validation)
            validation = ImageSplit(train.images[held], train.labels[held], train.classes).to(runtime.device)
            train = ImageSplit(train.images[kept], train.labels[kept], train.classes)
        train = train.to(runtime.device)
        test = shared.data.load("test", progress=progress).to(runtime.device)
        center_crop = shared.augment.random_resized_crop
        stream = TrainStream(train, shared.batch_size, shared.augment, shared.data.resolution, shared.data_seed,
                             runtime.channels_last)
        view = lambda split: eval_images(split.images, shared.data.resolution, center_crop)  # noqa: E731
        return ImageData(train, test, view(test), stream, shared.data.resolution, center_crop, validation,
                         None if validation is None else view(validation))

    def create_model(self, config: Any, data: ImageData, runtime: Any, role: str) -> ImageModel:
        """A ``role`` (``teacher`` or ``student``) model on ``runtime.device``; a teacher never gets
        a new classifier."""
        allow_new_head = False if role == "teacher" else None
        loaded = load_model(config, data.num_classes, allow_new_head=allow_new_head, classes=data.classes)
        loaded.module = loaded.module.to(runtime.device, runtime.dtype)
        return ImageModel(loaded, runtime.channels_last, classes=data.classes, dtype=runtime.dtype,
                          stochastic_depth=bool(config.drop_path_rate))

    def evaluate(self, model: ImageModel, data: ImageData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """``top1``, ``top5`` (percent, from integer hit counts) and ``loss`` on the test split."""
        return accuracy(model.predict(data.test_images, batch_size, runtime), data.test.labels)

    def validation_scores(self, model: ImageModel, data: ImageData, runtime: Any, batch_size: int) -> dict[str, Tensor]:
        """``top1``, ``top5`` and ``loss`` on the validation split held out of training (none without one)."""
        if data.validation is None:
            return {}
        return accuracy(model.predict(data.validation_images, batch_size, runtime), data.validation.labels)

    def split_logits(self, model: ImageModel, data: ImageData, split: str, runtime: Any,
                     batch_size: int) -> tuple[Tensor, Tensor]:
        """The model's logits on the un-augmented ``split`` (``train`` or ``test``), and its labels."""
        if split == "test":
            return model.predict(data.test_images, batch_size, runtime), data.test.labels
        images = eval_images(data.train.images, data.resolution, data.center_crop)
        return model.predict(images, batch_size, runtime), data.train.labels

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The evaluation's metrics of given logits (for diagnostics)."""
        return accuracy(logits, labels)

    def memory(self, shared: Any, model: Any, role: str, optimizer: Any, facts: Any) -> MemoryEstimate | None:
        """A model's bytes on the device, from its meta-device profile at the data's resolution
        (float32; :func:`~kdtemp.tasks.image.models.memory_profile`): a student's weights, gradients,
        optimizer state (AdamW: two moments; SGD: a momentum buffer) and the activations it saves for
        backward at the batch size; a teacher's weights and an inference pass (three times its
        largest module output: the input, the output and a residual branch live at once), at the
        batch size, or at the evaluation batch size for ``role="evaluation"``."""
        resolution = _resolution(shared.data, facts)
        if facts is None or resolution is None:
            return None
        profile = memory_profile(model.name, len(facts.classes), resolution)
        if profile is None:
            return None
        if role in ("teacher", "evaluation"):
            batch = shared.batch_size if role == "teacher" else getattr(shared, "eval_batch_size", 512)
            weights = profile.parameter_bytes if role == "teacher" else 0
            return MemoryEstimate(parameters=weights, activations=3 * profile.largest_output_per_image * batch)
        states = optimizer_states(optimizer)
        return MemoryEstimate(profile.parameter_bytes, profile.parameter_bytes, states * profile.parameter_bytes,
                              profile.saved(shared.batch_size))

    def data_memory(self, shared: Any, facts: Any) -> int | None:
        """The uint8 training and test images kept on the device (3 channels at the stored size)."""
        size = getattr(facts, "image_size", None) if facts is not None else None
        if size is None:
            resolution = _resolution(shared.data, facts)
            size = (resolution, resolution) if resolution else None
        if size is None:
            return None
        return (facts.train + facts.test) * 3 * int(size[0]) * int(size[1])

    def data_classes(self, data: DataConfig) -> list[str] | None:
        """The class names of the data's cached or listed training split (no image is decoded)."""
        try:
            return data.index("train", download=False).classes
        except ConfigError:  # the data is gone
            return None

    def teacher_view(self, augment: AugmentConfig) -> dict[str, Any]:
        """A random-resized-crop recipe evaluates on centre crops of larger images."""
        return {"crop": augment.random_resized_crop}

    def expected_sizes(self, data: DataConfig) -> tuple[int, int, int] | None:
        """A downloadable dataset's known size (:data:`~.data.KNOWN_SIZES`) after its subsets."""
        expected = data.expected_sizes()
        if expected is None:
            return None
        classes = len(data.classes) if data.classes else KNOWN_SIZES[data.dataset][2]
        return expected[0], expected[1], classes

    def forward_flops(self, model: ModelConfig, data: DataConfig, classes: int) -> float | None:
        """Counted on the meta device at the data's resolution (:func:`~.models.forward_flops`)."""
        resolution = data.resolution
        counted = forward_flops(model.name, classes, resolution) if resolution is not None else None
        return None if counted is None else float(counted)

    def preflight(self, cohorts, device: str = "auto", download: bool = True, member_field: str = "student",
                  state=None):
        """:func:`kdtemp.tasks.image.preflight.preflight`."""
        from .preflight import preflight

        return preflight(cohorts, device=device, download=download, member_field=member_field, state=state)


def _resolution(data: Any, facts: Any) -> int | None:
    """The side of the images a model sees: the data's resolution, else the stored size's."""
    if getattr(data, "resolution", None):
        return int(data.resolution)
    size = getattr(facts, "image_size", None) if facts is not None else None
    return int(size[0]) if size else None
