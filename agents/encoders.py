"""Convolutional encoders for pixel observations (the pixel agents build on these).

`conv_trunk` stacks Conv2d -> [ChannelLayerNorm] -> activation; with `activation="crelu"` each
activation is [relu(h), relu(-h)] along the channel axis, so the next convolution sees twice the
channels (Abbas et al. 2023). The LayerNorm after each conv (PLASTIC, Lee et al. 2023) normalises
each pixel's channel vector, as flax's LayerNorm on NHWC maps does (dojeon-ai/PLASTIC
dmc/continuous_control/agents/drq/networks.py `Encoder`; the Atari code's channels_first
LayerNorm in atari/src/models/backbones/cnn/nature.py is the same), eps 1e-6. Pixels arrive as uint8 [B, C, H, W] and are scaled to [0, 1] (x / 255, as
both DrQ references: rl_with_resets drq/networks.py `Encoder`, denisyarats/drq `Encoder.forward`).

`ConvPrecision` holds the two speed options the conv agents (DrQ, DrQ(eps), BBF) share:
`precision` ("fp32" | "bf16": network forward passes under bfloat16 autocast; parameters,
optimizer states and the losses stay fp32) and `channels_last` (conv weights and image batches in
NHWC memory order; values and shapes unchanged)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from agents.init import Conv2d, role_init
from agents.networks import make_activation, width_after

CONV_PADDINGS = ("valid", "same")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a conv map [B, C, H, W] (gain and shift [C],
    eps 1e-6: flax's default, PLASTIC's encoders)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x):  # [B, C, H, W] -> [B, H, W, C] -> normalised -> [B, C, H, W]
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def conv_trunk(in_channels: int, channels=(32, 32, 32, 32), strides=(2, 1, 1, 1),
               kernel_size: int = 3, activation: str = "relu", padding: str = "valid",
               init: str = "torch", layer_norm: bool = False) -> nn.Sequential:
    """Conv2d(kernel, stride) -> activation for each entry of `channels` (Kostrikov's DrQ: 4 x 32,
    first stride 2, no padding; Nikishin's: 32-64-128-256, all stride 2, "same" padding as flax's
    SAME: output ceil(in / stride), the extra pixel padded at the bottom/right). The activation
    list index of each layer is where diagnostics hook in."""
    if len(channels) != len(strides):
        raise ValueError(f"channels {tuple(channels)} and strides {tuple(strides)} differ in length")
    if padding not in CONV_PADDINGS:
        raise ValueError(f"conv padding = {padding!r}: allowed: {list(CONV_PADDINGS)}")
    layers, dim = [], in_channels
    for width, stride in zip(channels, strides):
        conv = (SameConv2d if padding == "same" else Conv2d)(dim, width, kernel_size, stride, 0,
                                                              *role_init(init, "conv"))
        layers.append(conv)
        if layer_norm:
            layers.append(ChannelLayerNorm(width))
        layers.append(make_activation(activation, channel_dim=1))
        dim = width_after(activation, width)
    return nn.Sequential(*layers)


class SameConv2d(Conv2d):
    """Conv2d with flax/TF "SAME" zero padding: output ceil(n / stride) per axis, total padding
    max((ceil(n / s) - 1) s + k - n, 0), the odd pixel after (bottom/right)."""

    def _pads(self, n: int, k: int, s: int) -> tuple[int, int]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    def forward(self, x):  # [B, C, H, W] -> [B, C', ceil(H / s), ceil(W / s)]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = self._pads(x.shape[-2], kh, sh)
        left, right = self._pads(x.shape[-1], kw, sw)
        return super().forward(nn.functional.pad(x, (left, right, top, bottom)))


class PixelEncoder(nn.Module):
    """uint8 [B, C, H, W] -> flat features [B, D]; D = `out_dim(image_shape)`."""

    def __init__(self, image_shape, activation: str = "relu", **conv):  # conv: conv_trunk's options
        super().__init__()
        self.trunk = conv_trunk(image_shape[0], activation=activation, **conv)
        self.image_shape = tuple(image_shape)

    def out_dim(self) -> int:
        with torch.no_grad():
            return self(torch.zeros(1, *self.image_shape, dtype=torch.uint8)).shape[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = self.trunk(pixels.float() / 255.0)  # [B, C', H', W']
        return h.flatten(1)  # [B, C' * H' * W']


PRECISIONS = ("fp32", "bf16")


class ConvPrecision:
    """Mixin for the conv agents: `precision` and `channels_last` (see the module docstring).

    `_set_precision(h)` checks and stores both; `_autocast()` is the context the network forward
    passes run in (bfloat16 autocast on the agent's device for "bf16", nothing for "fp32": no
    GradScaler, bf16 has fp32's exponent range); `_layout(x)` puts an image batch [B, C, H, W] in
    the agent's memory format (a no-op without `channels_last`, or when it already is);
    `_convs_channels_last()` converts every 4-D parameter (the conv weights) of the agent. Callers
    cast network outputs to fp32 (`.float()`, a no-op in fp32) before any loss arithmetic, so
    softmaxes, log-probabilities and reductions are fp32 on every device. Nothing here syncs."""

    precision: str = "fp32"
    channels_last: bool = False

    def _set_precision(self, h: dict) -> None:
        precision, channels_last = h["precision"], h["channels_last"]
        if not (isinstance(precision, str) and precision in PRECISIONS):
            raise ValueError(f"precision = {precision!r}: allowed: {list(PRECISIONS)}")
        if not isinstance(channels_last, bool):
            raise ValueError(f"channels_last = {channels_last!r}: allowed: [True, False]")
        self.precision, self.channels_last = precision, channels_last

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def _convs_channels_last(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D tensors only; Parameters stay the same objects
