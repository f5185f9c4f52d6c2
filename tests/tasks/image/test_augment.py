"""Augmentation (``kdtemp.tasks.image.data``: ``batched_ops``, ``batched_augment``, ``augment``):
the batched, on-device RandAugment and random-resized crop against torchvision, their random draws,
the classic pad-4 crop, the training stream built on them, and the test-time resize.

Tolerances against torchvision (on uint8 images):
- Identity, Brightness, Color, Contrast, Sharpness, Posterize, Solarize, AutoContrast, Equalize:
  exact, every magnitude bin and sign (the blends' fused multiply-add is emulated in float64).
- ShearX, ShearY, TranslateX, TranslateY, Rotate (nearest, fill 0): exact at even sizes, where the
  float32 grid steps of torchvision are reproduced; at odd sizes torchvision's vectorised kernels
  round a few coordinates that lie on a nearest-neighbour tie the other way: <= 0.5% of pixels.
- Random-resized crop: one bilinear ``grid_sample``. Enlarged crops: torchvision's float bilinear
  resize within 1 level on < 0.1% of pixels (float rounding of the grid), its uint8 CPU kernel
  within 1 level (fixed-point weights). Shrunk crops: no antialiasing filter, so on smooth images
  mean |difference| <= 0.5 and max <= 4 levels (noise would alias).
- Horizontal flip: exact.
- On CUDA (when present) the batch matches the CPU batch on >= 99.9% of pixels, the crop within 1
  level: the devices' kernels round some float steps differently."""

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from kdtemp.tasks.image.data import batched_ops as ops
from kdtemp.tasks.image.data import AugmentConfig, TrainStream, augment
from kdtemp.tasks.image.data.augment import eval_images, pad_crop
from kdtemp.tasks.image.data.batched_augment import (
    NUM_BINS,
    OPS,
    RandAugmentDraw,
    SIGNED,
    draw_crop_boxes,
    draw_randaugment,
    magnitude_table,
    rand_augment,
    random_resized_crop,
)
from kdtemp.tasks.image.data.cache import ImageSplit

from helpers.engine import tiny_augment, tiny_data


NEAREST = F.InterpolationMode.NEAREST


def sample_images(size: int, seed: int = 0) -> torch.Tensor:
    """uint8 ``[8, 3, size, size]``: noise, smooth, grey (R = G = B), dark, constant, and
    few-valued images (equalize's and autocontrast's edge cases)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)
    smooth = smooth_images(2, size, g)
    grey = smooth[:1, :1].expand(1, 3, size, size)
    dark = smooth[1:] // 5
    constant = torch.full((1, 3, size, size), 77, dtype=torch.uint8)
    few = torch.full((1, 3, size, size), 200, dtype=torch.uint8)
    few[..., 0, :3] = torch.tensor([10, 11, 12], dtype=torch.uint8)
    return torch.cat([noise, smooth, grey, dark, constant, few]).contiguous()


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(n, 3, 6, 6, generator=generator) * 255
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine.clamp(0, 255).round().to(torch.uint8)


def reference(image: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """torchvision's RandAugment op ``name`` with the signed ``magnitude``, through the public
    functional API exactly as ``v2.RandAugment`` calls it (interpolation nearest, fill None)."""
    if name == "Identity":
        return image
    if name in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(magnitude))
        shear = [degrees, 0.0] if name == "ShearX" else [0.0, degrees]
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=NEAREST,
                        fill=None, center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        translate = [int(magnitude), 0] if name == "TranslateX" else [0, int(magnitude)]
        return F.affine(image, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0], interpolation=NEAREST,
                        fill=None)
    if name == "Rotate":
        return F.rotate(image, angle=magnitude, interpolation=NEAREST, fill=None)
    if name == "Brightness":
        return F.adjust_brightness(image, 1.0 + magnitude)
    if name == "Color":
        return F.adjust_saturation(image, 1.0 + magnitude)
    if name == "Contrast":
        return F.adjust_contrast(image, 1.0 + magnitude)
    if name == "Sharpness":
        return F.adjust_sharpness(image, 1.0 + magnitude)
    if name == "Posterize":
        return F.posterize(image, int(magnitude))
    if name == "Solarize":
        return F.solarize(image, 255.0 * magnitude)
    if name == "AutoContrast":
        return F.autocontrast(image)
    return F.equalize(image)


def every_bin_and_sign(name: str, images: torch.Tensor) -> tuple[torch.Tensor, RandAugmentDraw, list[float]]:
    """Each image repeated for every (bin, sign): the batch, a one-slot draw of op ``name``, and
    the signed magnitudes torchvision would use."""
    table = magnitude_table(images.shape[-2], images.shape[-1])
    k = OPS.index(name)
    combos = [(b, neg) for b in range(NUM_BINS) for neg in ((False, True) if name in SIGNED else (False,))]
    batch = images.repeat(len(combos), 1, 1, 1)
    bins = torch.tensor([b for b, _ in combos]).repeat_interleave(len(images))
    negative = torch.tensor([neg for _, neg in combos]).repeat_interleave(len(images))
    draw = RandAugmentDraw(torch.full((len(batch), 1), k), bins.view(-1, 1), negative.view(-1, 1))
    values = [float(table[k, b]) * (-1 if neg else 1) for b, neg in zip(bins.tolist(), negative.tolist())]
    return batch, draw, values


# ---------------------------------------------------------------- the op set and magnitudes

def test_op_set_signs_and_magnitudes_are_torchvision_s():
    space = v2.RandAugment._AUGMENTATION_SPACE
    assert tuple(space) == OPS
    assert {name for name, (_, signed) in space.items() if signed} == SIGNED
    for height, width in ((32, 32), (224, 224), (24, 40)):
        table = magnitude_table(height, width)
        for k, (name, (magnitudes, _)) in enumerate(space.items()):
            expected = magnitudes(NUM_BINS, height, width)
            if expected is None:
                assert torch.all(table[k] == 0), name
            else:
                assert torch.equal(table[k], expected.double()), name


# ---------------------------------------------------------------- each op against torchvision

@pytest.mark.parametrize("name", ["Identity", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                                  "AutoContrast", "Equalize"])
@pytest.mark.parametrize("size", [32, 8])
def test_pointwise_and_blend_ops_equal_torchvision_exactly(name, size):
    batch, draw, values = every_bin_and_sign(name, sample_images(size))
    out = rand_augment(batch, draw)
    expected = torch.stack([reference(image, name, v) for image, v in zip(batch, values)])
    assert out.dtype == torch.uint8
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", ["Brightness", "Color", "Contrast", "Sharpness"])
def test_blends_stay_exact_where_rounding_order_matters(name):
    """Many smooth images: values land next to integers often enough that a blend which rounds
    ``y * (1 - r)`` before adding (no fused multiply-add) would differ somewhere."""
    images = smooth_images(48, 16, torch.Generator().manual_seed(12))
    batch, draw, values = every_bin_and_sign(name, images)
    expected = torch.stack([reference(image, name, v) for image, v in zip(batch, values)])
    assert torch.equal(rand_augment(batch, draw), expected)


@pytest.mark.parametrize("name", ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"])
@pytest.mark.parametrize("size", [32, 8])
def test_geometric_ops_pick_torchvision_s_pixels_exactly(name, size):
    batch, draw, values = every_bin_and_sign(name, sample_images(size))
    out = rand_augment(batch, draw)
    expected = torch.stack([reference(image, name, v) for image, v in zip(batch, values)])
    assert torch.equal(out, expected)


def test_arbitrary_rotations_and_odd_sizes_within_rounding_ties():
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (48, 3, 32, 32), generator=g, dtype=torch.uint8)
    angles = (torch.rand(48, generator=g, dtype=torch.float64) * 360 - 180)
    zero = torch.zeros(48, dtype=torch.float64)
    matrices = ops.inverse_affine_matrix(-torch.remainder(angles, 360.0), zero, zero, zero, zero, zero, zero)
    expected = torch.stack([F.rotate(im, float(a), interpolation=NEAREST) for im, a in zip(images, angles)])
    assert torch.equal(ops.affine_nearest(images, matrices), expected)
    # odd sizes: torchvision's vectorised kernels may round a tie the other way
    for name in ("ShearX", "ShearY", "Rotate"):
        batch, draw, values = every_bin_and_sign(name, sample_images(31))
        expected = torch.stack([reference(image, name, v) for image, v in zip(batch, values)])
        assert (rand_augment(batch, draw) != expected).float().mean() <= 0.005, name


def test_rand_augment_replays_torchvision_s_rand_augment():
    """With the op and sign torchvision draws for a seed, two op slots in order equal
    ``v2.RandAugment(2, m)`` under that seed, image by image."""
    with torch.random.fork_rng(devices=[]):  # seeds the global RNG, as torchvision draws from it
        replay_torchvision(sample_images(32, seed=5).repeat(6, 1, 1, 1))


def replay_torchvision(images):
    space = v2.RandAugment._AUGMENTATION_SPACE
    for magnitude in (9, 14, 30):
        transform = v2.RandAugment(num_ops=2, magnitude=magnitude)
        chosen, negative, expected = [], [], []
        for i, image in enumerate(images):
            seed = 1000 * magnitude + i
            torch.manual_seed(seed)
            row_ops, row_neg = [], []
            for _ in range(2):
                k = int(torch.randint(len(OPS), ()))
                signed_with_values = space[OPS[k]][1] and space[OPS[k]][0](NUM_BINS, 32, 32) is not None
                row_ops.append(k)
                row_neg.append(bool(torch.rand(()) <= 0.5) if signed_with_values else False)
            chosen.append(row_ops)
            negative.append(row_neg)
            torch.manual_seed(seed)
            expected.append(transform(image))
        draw = RandAugmentDraw(torch.tensor(chosen), torch.full((len(images), 2), magnitude), torch.tensor(negative))
        assert torch.equal(rand_augment(images, draw), torch.stack(expected)), magnitude


def test_every_op_at_224_pixels_equals_torchvision():
    g = torch.Generator().manual_seed(7)
    images = torch.cat([smooth_images(len(OPS), 224, g)[: len(OPS) // 2],
                        torch.randint(0, 256, (len(OPS) - len(OPS) // 2, 3, 224, 224), generator=g, dtype=torch.uint8)])
    table = magnitude_table(224, 224)
    draw = RandAugmentDraw(torch.arange(len(OPS)).view(-1, 1), torch.full((len(OPS), 1), 14),
                           (torch.arange(len(OPS)) % 2 == 0).view(-1, 1))
    values = [float(table[k, 14]) * (-1 if (k % 2 == 0 and OPS[k] in SIGNED) else 1) for k in range(len(OPS))]
    expected = torch.stack([reference(im, OPS[k], values[k]) for k, im in enumerate(images)])
    assert torch.equal(rand_augment(images, draw), expected)


def test_horizontal_flip_of_the_stream_is_torchvision_s():
    images = sample_images(16)
    split = ImageSplit(images, torch.arange(len(images)) % 2, ["a", "b"])
    recipe = AugmentConfig(randaugment_ops=0, horizontal_flip=True, mix=False)
    seen = set()
    for batch in TrainStream(split, 4, recipe, 16, data_seed=1).epoch(1):
        for image in (batch.images * 255).round().to(torch.uint8):
            source = next(i for i in range(len(images)) if torch.equal(image, images[i])
                          or torch.equal(image, F.horizontal_flip(images[i])))
            seen.add(torch.equal(image, images[source]))
    assert seen == {True, False}  # some images flipped, some not (noise images are not symmetric)


# ---------------------------------------------------------------- the random-resized crop

def test_crop_boxes_follow_get_params():
    g = torch.Generator().manual_seed(0)
    n = 4000
    boxes = draw_crop_boxes(n, 48, 64, (0.08, 1.0), g)
    assert torch.all((boxes.top >= 0) & (boxes.left >= 0) & (boxes.height >= 1) & (boxes.width >= 1))
    assert torch.all((boxes.top + boxes.height <= 48) & (boxes.left + boxes.width <= 64))
    transform = v2.RandomResizedCrop(32, scale=(0.08, 1.0))
    canvas = torch.zeros(3, 48, 64, dtype=torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs = [transform.make_params([canvas]) for _ in range(n)]

    def summary(h, w, top, left):
        area, aspect = (h * w).double() / (48 * 64), torch.log(w.double() / h.double())
        centre = (top + h / 2).double() / 48
        return torch.stack([area.mean(), area.std(), aspect.mean(), aspect.std(), centre.mean(),
                            (left + w / 2).double().mean() / 64])

    ours = summary(boxes.height, boxes.width, boxes.top, boxes.left)
    ref = summary(*(torch.tensor([p[k] for p in theirs]) for k in ("height", "width", "top", "left")))
    # standard errors of these means over 4000 draws are < 0.005; allow 5 of them
    assert torch.allclose(ours, ref, atol=0.03), (ours, ref)


def test_crop_fallback_is_get_params_fallback():
    g = torch.Generator().manual_seed(0)
    for height, width in ((40, 10), (10, 40), (20, 20)):
        boxes = draw_crop_boxes(50, height, width, (1.0, 1.0), g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            params = v2.RandomResizedCrop(8, scale=(1.0, 1.0)).make_params([torch.zeros(3, height, width)])
        if height == width:  # area 1 fits only when the aspect ratio rounds to 1
            assert torch.all((boxes.height == height) & (boxes.width == width))
        else:  # nothing fits: every box is the clipped centre crop
            for key in ("top", "left", "height", "width"):
                assert torch.all(getattr(boxes, key) == params[key]), key


def crops_and_references(images, size, boxes, as_float):
    def one(i):
        image = images[i].float() if as_float else images[i]
        out = F.resized_crop(image, int(boxes.top[i]), int(boxes.left[i]), int(boxes.height[i]), int(boxes.width[i]),
                             [size, size], antialias=True)
        return out.round().clamp(0, 255).to(torch.uint8) if as_float else out
    return random_resized_crop(images, boxes, size), torch.stack([one(i) for i in range(len(images))])


def test_enlarged_crops_equal_torchvision_bilinear_resize():
    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    boxes = draw_crop_boxes(64, 32, 32, (0.08, 1.0), g)  # at most 32 x 32: enlarged or kept
    ours, float_path = crops_and_references(images, 32, boxes, as_float=True)
    difference = (ours.int() - float_path.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 0.001
    _, uint8_path = crops_and_references(images, 32, boxes, as_float=False)
    assert (ours.int() - uint8_path.int()).abs().max() <= 1


def test_shrunk_crops_stay_close_to_the_antialiased_resize():
    g = torch.Generator().manual_seed(5)
    images = smooth_images(48, 72, g)
    boxes = draw_crop_boxes(48, 72, 72, (0.7, 1.0), g)  # mostly larger than the 64 x 64 output
    ours, theirs = crops_and_references(images, 64, boxes, as_float=False)
    difference = (ours.int() - theirs.int()).abs()
    assert difference.float().mean() <= 0.5 and difference.max() <= 4


# ---------------------------------------------------------------- the random draws

def test_ops_signs_and_bins_are_drawn_uniformly():
    g = torch.Generator().manual_seed(0)
    draws = [draw_randaugment(64, 2, 14, g) for _ in range(100)]
    chosen = torch.cat([d.ops.reshape(-1) for d in draws])
    negative = torch.cat([d.negative.reshape(-1) for d in draws])
    n, p = len(chosen), 1 / len(OPS)
    counts = torch.bincount(chosen, minlength=len(OPS)).double()
    bound = 5 * math.sqrt(n * p * (1 - p))  # five binomial standard deviations
    assert torch.all((counts - n * p).abs() <= bound), counts
    assert abs(negative.double().sum() - n / 2) <= 5 * math.sqrt(n / 4)
    assert all(torch.all(d.bins == 14) for d in draws)
    # the two slots are independent draws, not the same op twice
    pairs = torch.cat([d.ops for d in draws])
    assert (pairs[:, 0] == pairs[:, 1]).double().mean() < 2 * p


def test_magnitude_signs_reach_the_ops():
    """A drawn negative sign darkens (Brightness 1 - m), a positive one brightens."""
    images = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8)
    draw = RandAugmentDraw(torch.full((2, 1), OPS.index("Brightness")), torch.full((2, 1), 10),
                           torch.tensor([[True], [False]]))
    out = rand_augment(images, draw)
    assert out[0].max() < 100 < out[1].min()


# ---------------------------------------------------------------- the stream

def stream(data_seed=7, **recipe):
    g = torch.Generator().manual_seed(11)
    images = torch.cat([torch.randint(0, 256, (48, 3, 20, 20), generator=g, dtype=torch.uint8),
                        smooth_images(48, 20, g)])
    split = ImageSplit(images, torch.arange(96) % 4, list("abcd"))
    config = AugmentConfig(random_resized_crop=True, randaugment_ops=2, randaugment_magnitude=14, **recipe)
    return TrainStream(split, 16, config, 16, data_seed=data_seed)


def batches(s, epoch, start_batch=0):
    return [(b.images.clone(), b.soft_labels.clone(), b.dominant_labels.clone()) for b in s.epoch(epoch, start_batch)]


def same(a, b):
    return all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb)) and len(a) == len(b)


def test_same_seed_and_epoch_give_identical_batches_and_epochs_differ():
    rng_before = torch.random.get_rng_state()
    first = batches(stream(), 2)
    assert same(first, batches(stream(), 2))
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is untouched
    assert not torch.equal(first[0][0], batches(stream(), 3)[0][0])
    assert not torch.equal(first[0][0], batches(stream(data_seed=8), 2)[0][0])
    assert first[0][0].shape == (16, 3, 16, 16)


def test_a_batch_does_not_depend_on_who_consumes_the_stream():
    whole = batches(stream(), 1)
    assert same(whole[3:], batches(stream(), 1, start_batch=3))  # resuming mid-epoch
    one, other = stream(), stream()
    interleaved = []
    for a, _ in zip(one.epoch(1), other.epoch(4)):  # another consumer drawing other epochs
        interleaved.append((a.images, a.soft_labels, a.dominant_labels))
    assert same(whole, interleaved)
    last = stream()  # channels-last (the CUDA layout) changes the memory layout only
    last.channels_last = True
    assert same(whole, batches(last, 1))


def test_the_stream_forks_no_rng_per_image(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("per-image RNG fork in the training stream")

    monkeypatch.setattr(torch.random, "fork_rng", forbidden)
    assert len(batches(stream(), 1)) == 6


def test_a_cohort_and_a_solo_run_see_identical_batches(monkeypatch):
    from helpers.engine import cohort, member

    from kdtemp.engine import run_cohort
    from kdtemp.tasks.image import task as task_module

    seen: dict[str, list] = {}

    class Recording(TrainStream):
        label = "?"

        def epoch(self, epoch, start_batch=0):
            for batch in super().epoch(epoch, start_batch):
                seen.setdefault(Recording.label, []).append(batch.images.clone())
                yield batch

    monkeypatch.setattr(task_module, "TrainStream", Recording)  # the image task builds the cohort's stream
    recipe = AugmentConfig(random_resized_crop=True, randaugment_ops=2, randaugment_magnitude=14)
    Recording.label = "cohort"
    run_cohort(cohort([member(epochs=1, temperature=t) for t in (1.0, 4.0, 16.0)], augment=recipe), progress=False)
    Recording.label = "solo"
    run_cohort(cohort([member(epochs=1, temperature=4.0)], augment=recipe), progress=False)
    assert len(seen["cohort"]) == len(seen["solo"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(seen["cohort"], seen["solo"]))


def test_chunking_on_the_cpu_does_not_change_any_image(monkeypatch):
    """On the CPU each per-pixel op runs over chunks of images (to keep its temporaries in the
    caches); the batch must be the one the whole-batch ops give, whatever the chunk size, and an
    op writing into its own input (``out=images``) must give what it returns."""
    g = torch.Generator().manual_seed(3)
    images = torch.cat([sample_images(24), torch.randint(0, 256, (9, 3, 24, 24), generator=g, dtype=torch.uint8)])
    draw = draw_randaugment(len(images), 2, 14, g)
    boxes = draw_crop_boxes(len(images), 24, 24, (0.08, 1.0), g)
    def results():
        return rand_augment(images, draw), random_resized_crop(images, boxes, 20)

    monkeypatch.setattr(ops, "CPU_CHUNK_BYTES", 1 << 40)  # one chunk: the whole batch
    whole = results()
    for chunk_bytes in (1, 3 * 24 * 24 * 2, 3 * 24 * 24 * 5):  # one image, two, five (the last chunk shorter)
        monkeypatch.setattr(ops, "CPU_CHUNK_BYTES", chunk_bytes)
        chunked = results()
        assert all(torch.equal(a, b) for a, b in zip(whole, chunked)), chunk_bytes
    for chunk_bytes in (1, 1 << 40):  # an empty batch stays an empty batch, chunked or not
        monkeypatch.setattr(ops, "CPU_CHUNK_BYTES", chunk_bytes)
        assert ops.adjust_sharpness(images[:0], torch.ones(0, dtype=torch.float64)).shape == (0, 3, 24, 24)
    factors = torch.linspace(0.1, 1.9, len(images), dtype=torch.float64)
    for op in (ops.adjust_sharpness, ops.adjust_saturation):
        expected = op(images, factors)
        in_place = images.clone()
        assert op(in_place, factors, out=in_place) is in_place
        assert torch.equal(in_place, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_batch_matches_the_cpu_batch():
    """The same draws give the same batch on CUDA, up to the devices' own float roundings (e.g.
    ``torch.mean``'s final scaling, bilinear weights): <= 0.1% of pixels, the crop within 1 level."""
    g = torch.Generator().manual_seed(9)
    images = torch.cat([sample_images(32), torch.randint(0, 256, (56, 3, 32, 32), generator=g, dtype=torch.uint8)])
    draw = draw_randaugment(len(images), 2, 14, g)
    on_cuda = rand_augment(images.cuda(), draw)
    assert on_cuda.device.type == "cuda"
    assert (on_cuda.cpu() != rand_augment(images, draw)).float().mean() <= 0.001
    boxes = draw_crop_boxes(len(images), 32, 32, (0.08, 1.0), g)
    on_cuda = random_resized_crop(images.cuda(), boxes, 24).cpu()
    assert (on_cuda.int() - random_resized_crop(images, boxes, 24).int()).abs().max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_making_a_batch_never_waits_for_the_device():
    """Every per-image draw crosses in non-blocking copies and no op reads a value back to the
    host: under CUDA's sync debug mode "error" whole batches build (crop, RandAugment with every
    op group, flip, MixUp/CutMix; and the classic pad-and-crop)."""
    g = torch.Generator().manual_seed(11)
    images = torch.cat([torch.randint(0, 256, (48, 3, 20, 20), generator=g, dtype=torch.uint8), smooth_images(48, 20, g)])
    split = ImageSplit(images.cuda(), (torch.arange(96) % 4).cuda(), list("abcd"))
    recipes = [AugmentConfig(random_resized_crop=True, randaugment_ops=2, randaugment_magnitude=14),
               AugmentConfig(pad_crop=4, randaugment_ops=2, randaugment_magnitude=14, mix=False)]
    for recipe in recipes:
        s = TrainStream(split, 16, recipe, 16, data_seed=7)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:  # and each model's normalisation of the batch (its constants made once per stream)
            made = [batch.normalized(((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))) for batch in s.epoch(1)]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert len(made) == 6 and made[0].device.type == "cuda"


def test_pad_crop_is_an_exact_window_of_the_padded_image():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [8, 8], [4, 4], [0, 8], [8, 0], [3, 5]])
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    expected = torch.stack([padded[i, :, dy:dy + 8, dx:dx + 8] for i, (dy, dx) in enumerate(shifts.tolist())])
    assert torch.equal(pad_crop(images, shifts, 4), expected)
    assert torch.equal(pad_crop(images, torch.full((6, 2), 4), 4), images)  # the centre window is the image


def test_the_stream_draws_each_shift_uniformly_and_deterministically():
    split = tiny_data().load("train")
    augment = AugmentConfig(randaugment_ops=0, pad_crop=4, horizontal_flip=False, mix=False)
    stream = TrainStream(split, 32, augment, 8, data_seed=0)
    first = [b.images.clone() for b in stream.epoch(1)]
    again = [b.images.clone() for b in stream.epoch(1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    generator = torch.Generator().manual_seed(0)
    draws = torch.randint(0, 9, (20000, 2), generator=generator)
    counts = torch.bincount(draws.flatten(), minlength=9).float() / draws.numel()
    assert torch.allclose(counts, torch.full((9,), 1 / 9), atol=0.01)


def _batches(stream, epoch):
    return [(b.images.clone(), b.soft_labels.clone(), b.dominant_labels.clone()) for b in stream.epoch(epoch)]


def test_stream_of_an_epoch_depends_only_on_seed_and_epoch():
    split = tiny_data().load("train")
    first = TrainStream(split, 32, tiny_augment(), 8, data_seed=7)
    second = TrainStream(split, 32, tiny_augment(), 8, data_seed=7)
    rng_before = torch.random.get_rng_state()
    epoch3 = _batches(first, 3)
    _batches(second, 1), _batches(second, 2)  # consuming other epochs first changes nothing
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is untouched
    for (a, sa, da), (b, sb, db) in zip(epoch3, _batches(second, 3)):
        assert torch.equal(a, b) and torch.equal(sa, sb) and torch.equal(da, db)
    other_epoch = _batches(first, 4)
    other_seed = _batches(TrainStream(split, 32, tiny_augment(), 8, data_seed=8), 3)
    assert not torch.equal(epoch3[0][0], other_epoch[0][0])
    assert not torch.equal(epoch3[0][0], other_seed[0][0])


def test_stream_soft_labels_and_dominant_labels_agree():
    split = tiny_data().load("train")
    for batch in TrainStream(split, 32, tiny_augment(), 8, data_seed=0).epoch(1):
        assert torch.allclose(batch.soft_labels.sum(dim=1), torch.ones(32))
        top = batch.soft_labels.max(dim=1)
        # the dominant label carries the larger weight (ties resolved to the sample's own label)
        assert torch.all(batch.soft_labels.gather(1, batch.dominant_labels.view(-1, 1)).squeeze(1) >= top.values - 1e-6)


def test_the_test_time_resize_in_slices_equals_the_whole_resize(monkeypatch):
    images = torch.randint(0, 256, (7, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    whole = eval_images(images, 20, center_crop=False)
    monkeypatch.setattr(augment, "EVAL_RESIZE_SLICE", 3)  # 3 + 3 + 1 images
    assert torch.equal(eval_images(images, 20, center_crop=False), whole)
    assert whole.shape == (7, 3, 20, 20) and whole.dtype == torch.uint8
