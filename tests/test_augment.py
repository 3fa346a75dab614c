"""Augmentations: every random_shift output is an edge-padded crop with |shift| <= pad (checked
against all (2 pad + 1)^2 candidate crops), shifts differ per image and cover {-pad..pad}
(jaxrl's DrQ) or exactly {-pad..pad-1} with high_inclusive=False (Dopamine/BBF's Atari crop),
a generator reproduces them; random_intensity scales each image by one bounded factor."""
import pytest
import torch
from torch.nn import functional as F

from agents.augment import random_intensity, random_shift


def recover_shifts(images: torch.Tensor, out: torch.Tensor, pad: int) -> list:
    """For each image, the (dy, dx) whose crop of the edge-padded input equals the output
    (None when no candidate matches)."""
    h, w = images.shape[-2:]
    padded = F.pad(images.float(), (pad,) * 4, mode="replicate")  # [B, C, H + 2p, W + 2p]
    found = []
    for b in range(images.shape[0]):
        hits = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                if torch.equal(out[b], padded[b, :, pad + dy:pad + dy + h, pad + dx:pad + dx + w])]
        found.append(hits[0] if len(hits) == 1 else None)  # random pixels: one crop matches
    return found


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shape_dtype_and_value_scale(dtype):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 12, 10), generator=g).to(dtype)
    out = random_shift(images, pad=3, generator=g)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= images.float().min() and out.max() <= images.float().max()  # no / 255
    assert out.max() > 1.0


@pytest.mark.parametrize("pad", [1, 4])
def test_every_image_is_an_edge_padded_crop_within_pad(pad):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (64, 2, 11, 13), dtype=torch.uint8, generator=g)
    out = random_shift(images, pad=pad, generator=g)
    shifts = recover_shifts(images, out, pad)
    assert all(s is not None for s in shifts)
    dys, dxs = {s[0] for s in shifts}, {s[1] for s in shifts}
    assert len(set(shifts)) > 1  # a different shift per image, not one for the batch
    assert {-pad, pad} <= dys and {-pad, pad} <= dxs  # both extremes are reachable
    if pad == 1:
        assert dys == dxs == {-1, 0, 1}


def test_shifts_differ_across_images():
    torch.manual_seed(0)  # global RNG, no generator
    images = torch.randint(0, 256, (16, 1, 9, 9), dtype=torch.uint8)
    shifts = recover_shifts(images, random_shift(images, pad=4), 4)
    assert len(set(shifts)) >= 8  # 81 shifts: 16 draws hit >= 8 distinct with overwhelming odds


def test_same_image_gets_different_shifts():
    images = torch.randint(0, 256, (1, 1, 9, 9), dtype=torch.uint8).expand(32, 1, 9, 9)
    out = random_shift(images, pad=2, generator=torch.Generator().manual_seed(3))
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_generator_reproducibility_and_zero_pad():
    images = torch.randint(0, 256, (8, 4, 16, 16), dtype=torch.uint8)
    a = random_shift(images, 4, generator=torch.Generator().manual_seed(7))
    b = random_shift(images, 4, generator=torch.Generator().manual_seed(7))
    c = random_shift(images, 4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_shift(images, 0), images.float())
    with pytest.raises(ValueError):
        random_shift(images, -1)
    with pytest.raises(ValueError):
        random_shift(images[0], 4)


def one_hot_shifts(pad: int, high_inclusive: bool, n: int = 4000) -> list:
    """(dy, dx) of each image from where a one-hot interior pixel lands after the shift."""
    h = w = 2 * pad + 5
    images = torch.zeros(n, 1, h, w)
    images[:, 0, h // 2, w // 2] = 1.0  # far enough from the edges: no clamping reaches it
    out = random_shift(images, pad, torch.Generator().manual_seed(0), high_inclusive=high_inclusive)
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(n))  # the pixel moved, nothing else
    where = out.flatten(1).argmax(1)  # out[i, j] = x[i + dy, j + dx]: the one lands at c - d
    return list(zip((h // 2 - where // w).tolist(), (w // 2 - where % w).tolist()))


def test_reference_atari_range_is_exactly_minus_pad_to_pad_minus_1():
    """Dopamine/BBF: crop offset randint(0, 2 pad), exclusive max, so shifts -4..+3 for pad 4."""
    shifts = one_hot_shifts(4, high_inclusive=False)
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-4, 4))
    assert len(set(shifts)) == 64  # dy and dx drawn independently: every pair occurs
    shifts = one_hot_shifts(4, high_inclusive=True)  # the default, DMC DrQ (jaxrl): -4..+4
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-4, 5))
    assert len(set(shifts)) == 81
    assert {s for s in one_hot_shifts(1, high_inclusive=False)} == {(-1, -1), (-1, 0), (0, -1),
                                                                    (0, 0)}


def test_high_inclusive_default_keeps_the_draws():
    """The default is the old call: the same generator gives the same images (DMC unchanged)."""
    images = torch.randint(0, 256, (8, 3, 12, 12), dtype=torch.uint8)
    a = random_shift(images, 4, generator=torch.Generator().manual_seed(5))
    b = random_shift(images, 4, generator=torch.Generator().manual_seed(5), high_inclusive=True)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(5)
    shift = torch.randint(-4, 5, (8, 2), generator=g)  # the old draw, written out
    assert recover_shifts(images, a, 4) == [tuple(r) for r in shift.tolist()]


def test_random_intensity_is_one_bounded_factor_per_image():
    images = torch.rand(32, 3, 5, 5) * 255 + 1.0
    out = random_intensity(images, scale=0.05, generator=torch.Generator().manual_seed(0))
    ratio = out / images  # [B, C, H, W]
    per_image = ratio.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image))
    assert (per_image >= 0.9 - 1e-6).all() and (per_image <= 1.1 + 1e-6).all()
    assert per_image[:, 0].unique().numel() > 1
    assert torch.equal(random_intensity(images, 0.0), images)
