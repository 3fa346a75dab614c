"""Device memory of pixel replay (`FrameStorage`, frames stored once) per stored transition.

Fills a FrameStorage past its capacity (so the ring has wrapped, as in a long run) with
Atari-shaped (1x84x84 frames, stack 4, discrete actions) and DMC-shaped (3x84x84, stack 3,
6-d float actions) streams of fixed-length episodes, then prints bytes per sampleable
transition, its ratio to one frame, the bytes a naive TensorStorage of (obs, next_obs) stacks
would take, and the time of one `sample(32)` (stack rebuild + gathers).
    python bench/replay_memory.py [--atari 100000] [--dmc 20000] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from replay import ReplayBuffer
from replay.frames import naive_bytes_per_transition

SETTINGS = {  # name: (frame_shape, stack, action_shape, action_dtype)
    "atari": ((1, 84, 84), 4, (), torch.int64),
    "dmc": ((3, 84, 84), 3, (6,), torch.float32),
}


def fill(buffer, frame_shape, stack, action_shape, steps: int, episode: int) -> None:
    """`steps` transitions of `episode`-step episodes (truncated), repeat-padded stacks."""
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (64, *frame_shape), dtype=np.uint8)  # frames to cycle through
    action = np.zeros(action_shape, np.float32) if action_shape else 0
    for step in range(steps):
        t = step % episode
        if t == 0:
            frames = [pool[step % 64]] * stack
        nxt = frames[1:] + [pool[(step + 1) % 64]]
        buffer.add(np.concatenate(frames), action, 0.0, np.concatenate(nxt), False,
                   t == episode - 1)
        frames = nxt


def sample_time(buffer, device, reps: int = 30) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        buffer.sample(32)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atari", type=int, default=100_000, help="Atari buffer capacity")
    parser.add_argument("--dmc", type=int, default=20_000, help="DMC buffer capacity")
    parser.add_argument("--atari-episode", type=int, default=400)
    parser.add_argument("--dmc-episode", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    runs = [("atari", args.atari, args.atari_episode), ("dmc", args.dmc, args.dmc_episode)]

    header = (f"{'setting':<8}{'slots':>9}{'episode':>9}{'transitions':>13}{'bytes/trans':>13}"
              f"{'x frame':>9}{'naive bytes/trans':>19}{'saving':>8}{'sample(32) ms':>15}")
    print(header)
    print("-" * len(header))
    for name, capacity, episode in runs:
        frame_shape, stack, action_shape, action_dtype = SETTINGS[name]
        buffer = ReplayBuffer.for_pixels(capacity, frame_shape, stack, action_shape,
                                         action_dtype, device=device)
        fill(buffer, frame_shape, stack, action_shape, capacity + capacity // 3, episode)
        storage = buffer.storage
        per = storage.nbytes() / len(storage)
        frame_bytes = int(np.prod(frame_shape))
        naive = naive_bytes_per_transition((stack * frame_shape[0], *frame_shape[1:]),
                                           action_shape, action_dtype)
        ms = 1e3 * sample_time(buffer, device)
        print(f"{name:<8}{capacity:>9}{episode:>9}{len(storage):>13}{per:>13.1f}"
              f"{per / frame_bytes:>9.4f}{naive:>19}{naive / per:>7.1f}x{ms:>15.3f}")
        del buffer, storage


if __name__ == "__main__":
    main()
