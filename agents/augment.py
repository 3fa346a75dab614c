"""Image augmentations for pixel agents (DrQ, DrQ(epsilon)), batched and free of host syncs.

random_shift (Kostrikov et al. 2020, "Image Augmentation Is All You Need"): pad each image by
`pad` pixels with its edge values (replicate padding) and crop back to H x W at a random integer
offset, one offset per image. Cropping the edge-padded image at offset (pad + dy, pad + dx) is
the same as reading pixel (clamp(i + dy, 0, H-1), clamp(j + dx, 0, W-1)) of the original, so the
shift is one gather with clamped indices and no padded copy:

    out[b, c, i, j] = x[b, c, clamp(i + dy_b, 0, H-1), clamp(j + dx_b, 0, W-1)],
    dy_b, dx_b ~ U{-pad, ..., pad} independently per image            (high_inclusive=True)
    dy_b, dx_b ~ U{-pad, ..., pad - 1} independently per image        (high_inclusive=False)

The two ranges are the two references' crop offsets: jaxrl's DrQ (evgenii-nikishin/rl_with_resets
continuous_control/agents/drq/augmentations.py, `randint(key, (2,), 0, 2 * padding + 1)`: offsets
0..2 pad, the DMC default) and Dopamine / BBF (google/dopamine dopamine/labs/atari_100k/
atari_100k_rainbow_agent.py `_per_image_random_crop` and google-research bigger_better_faster/bbf/
spr_networks.py `drq_image_aug`: `randint(0, img.shape[1] - width)` = offsets 0..2 pad - 1, an
exclusive maximum: the Atari range).

random_intensity (Schwarzer et al. 2021, SPR; part of Dopamine's DrQ augmentation):
out_b = x_b * (1 + scale * clip(eps_b, -2, 2)), eps_b ~ N(0, 1), one factor per image.

Both return float images in the input's value scale (uint8 pixels stay in [0, 255]: no / 255),
so they compose, and the encoder does its own scaling. With `generator`, draws come from it (it
must live on the images' device); otherwise from the global torch RNG of that device, which
the trainer saves in checkpoints. DrQ augments obs and next obs independently: call twice.
"""
from __future__ import annotations

import torch


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None, *,
                 high_inclusive: bool = True) -> torch.Tensor:
    """Per-image random shift with edge padding: -pad..pad each way, or -pad..pad-1 with
    `high_inclusive=False` (the Dopamine/BBF Atari crop; see the module doc).

    images: [B, C, H, W], uint8 or float -> float [B, C, H, W] (same value scale)."""
    if images.dim() != 4:
        raise ValueError(f"random_shift expects [B, C, H, W] images, got shape {tuple(images.shape)}")
    x = images if images.is_floating_point() else images.float()
    if pad == 0:
        return x.clone() if x is images else x
    if pad < 0:
        raise ValueError(f"pad = {pad}: must be >= 0")
    b, c, h, w = x.shape
    high = pad + 1 if high_inclusive else pad  # exclusive bound of the shift
    shift = torch.randint(-pad, high, (b, 2), device=x.device, generator=generator)  # [B, (dy, dx)]
    rows = (torch.arange(h, device=x.device) + shift[:, :1]).clamp(0, h - 1)  # [B, H]
    cols = (torch.arange(w, device=x.device) + shift[:, 1:]).clamp(0, w - 1)  # [B, W] (out of place: vmap has a rule)
    flat_idx = rows[:, :, None] * w + cols[:, None, :]  # [B, H, W] index into H*W
    flat_idx = flat_idx.view(b, 1, h * w).expand(b, c, h * w)  # [B, C, H*W]
    return x.reshape(b, c, h * w).gather(2, flat_idx).view(b, c, h, w)


def random_intensity(images: torch.Tensor, scale: float = 0.05,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """x * (1 + scale * clip(N(0, 1), -2, 2)), one factor per image; float [B, ...] out."""
    x = images if images.is_floating_point() else images.float()
    if scale == 0:
        return x
    noise = torch.randn((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype,
                        generator=generator)  # [B, 1, 1, 1]
    return x * (1.0 + scale * noise.clamp(-2.0, 2.0))
