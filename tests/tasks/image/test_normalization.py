"""Input normalisation (``kdtemp.tasks.image.normalization``): constants made once."""

import torch

from kdtemp.tasks.image.data.augment import normalization_tensors, normalize_float


def test_normalisation_constants_made_once_normalise_as_numbers_do():
    images = torch.rand(2, 3, 4, 4)
    numbers = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    made = normalization_tensors(numbers, images.device)
    again = normalization_tensors(made, images.device)
    assert again[0] is made[0] and again[1] is made[1]  # reused as they are
    assert torch.equal(normalize_float(images, made), normalize_float(images, numbers))
    assert torch.allclose(normalize_float(images, numbers)[:, 1], (images[:, 1] - 0.4) / 0.25)
