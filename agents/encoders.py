"""Convolutional encoders for pixel observations (the pixel agents build on these).

`conv_trunk` stacks Conv2d -> activation; with `activation="crelu"` each activation is
[relu(h), relu(-h)] along the channel axis, so the next convolution sees twice the channels
(Abbas et al. 2023). Pixels arrive as uint8 [B, C, H, W] and are scaled to [-0.5, 0.5]."""
from __future__ import annotations

import torch
from torch import nn

from agents.networks import make_activation, width_after


def conv_trunk(in_channels: int, channels=(32, 32, 32, 32), strides=(2, 1, 1, 1),
               kernel_size: int = 3, activation: str = "relu") -> nn.Sequential:
    """Conv2d(kernel, stride) -> activation for each entry of `channels` (DrQ: 4 x 32, first
    stride 2). The activation list index of each layer is where diagnostics hook in."""
    if len(channels) != len(strides):
        raise ValueError(f"channels {tuple(channels)} and strides {tuple(strides)} differ in length")
    layers, dim = [], in_channels
    for width, stride in zip(channels, strides):
        layers.append(nn.Conv2d(dim, width, kernel_size, stride))
        layers.append(make_activation(activation, channel_dim=1))
        dim = width_after(activation, width)
    return nn.Sequential(*layers)


class PixelEncoder(nn.Module):
    """uint8 [B, C, H, W] -> flat features [B, D]; D = `out_dim(image_shape)`."""

    def __init__(self, image_shape, activation: str = "relu", **conv):
        super().__init__()
        self.trunk = conv_trunk(image_shape[0], activation=activation, **conv)
        self.image_shape = tuple(image_shape)

    def out_dim(self) -> int:
        with torch.no_grad():
            return self(torch.zeros(1, *self.image_shape, dtype=torch.uint8)).shape[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = self.trunk(pixels.float() / 255.0 - 0.5)  # [B, C', H', W']
        return h.flatten(1)  # [B, C' * H' * W']
