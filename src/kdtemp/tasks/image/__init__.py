"""Image classification: datasets in their standard formats, the augmentation stream, timm models
and the CIFAR zoo, top-1/top-5 evaluation (:class:`~.task.ImageClassification`)."""

from .task import ImageClassification, ImageData, ImageModel

__all__ = ["ImageClassification", "ImageData", "ImageModel"]
