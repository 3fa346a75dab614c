"""A group's replay: every member's batch in one call (replay/member_replay.py) against one
`sample_request` per member and a stack, for the pixel agents' buffers.

Each case fills M member buffers (FrameStorage, random frames, episodes of 50..149 steps so the
members' write heads differ) and times, after a warm-up, drawing every member's batch:
  per member  M `buffer.sample_request(request)` calls, their fields stacked [M, B, ...]
              (what the group did for pixels before session 13),
  one call    `MemberReplay.sample([request] * M)`.
Cases: DrQ (DMC, 3 stacked 3x84x84 frames, batch 256, n 3), DrQ(eps) (Atari, 4 stacked 1x84x84
frames, batch 32, n 10), BBF (Atari, prioritized, batch 32, n 10, sequences of 5, beta 0.5).
Printed: the run header, ms per group draw for each, the ratio.

    python bench/members_replay.py [--members 8] [--fill 5000] [--repeats 20] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from bench.sac_throughput import run_header, sync  # noqa: E402
from replay import FrameStorage, ReplayBuffer, ReplayRequest, UniformSampler  # noqa: E402
from replay.member_replay import MemberReplay  # noqa: E402
from replay.prioritized import PrioritizedSampler  # noqa: E402

CASES = {  # name: (frame shape, stack, action shape and dtype, request, prioritized)
    "drq": ((3, 84, 84), 3, (6,), torch.float32, ReplayRequest(256, n_step=3, gamma=0.99), False),
    "drq_atari": ((1, 84, 84), 4, (), torch.int64, ReplayRequest(32, n_step=10, gamma=0.99), False),
    "bbf": ((1, 84, 84), 4, (), torch.int64, ReplayRequest(32, n_step=10, gamma=0.97, horizon=5, beta=0.5), True),
}


def filled(case, k: int, fill: int, device) -> ReplayBuffer:
    """Member k's buffer after `fill` transitions of random frames (episodes of 50..149 steps)."""
    frame_shape, stack, action_shape, action_dtype, _, prioritized = case
    rng = np.random.default_rng(k)
    storage = FrameStorage(fill + 200, frame_shape, stack, action_shape, action_dtype, device,
                           "repeat" if stack == 3 else "zero")
    sampler = PrioritizedSampler(device, k) if prioritized else UniformSampler(device, k)
    buffer = ReplayBuffer(storage, sampler)
    written = 0
    while written < fill:
        length = int(rng.integers(50, 150))
        first = rng.integers(0, 255, frame_shape, dtype=np.uint8)
        pad = first if stack == 3 else np.zeros_like(first)
        frames = [pad] * (stack - 1) + [first]
        for t in range(length):
            nxt = frames[1:] + [rng.integers(0, 255, frame_shape, dtype=np.uint8)]
            action = np.zeros(action_shape, np.float32) if action_shape else 0
            buffer.add(np.concatenate(frames), action, 1.0, np.concatenate(nxt), t == length - 1, False)
            frames = nxt
        written += length
    return buffer


def timed(fn, repeats: int, device) -> float:
    for _ in range(3):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--fill", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for name, case in CASES.items():
        buffers = [filled(case, k, args.fill, device) for k in range(args.members)]
        request = case[4]

        def per_member():
            batches = [b.sample_request(request) for b in buffers]
            return type(batches[0])(*[None if f is None else torch.stack(list(fs))
                                      for f, fs in zip(batches[0], zip(*batches))])

        alone = timed(per_member, args.repeats, device)
        replay = MemberReplay(buffers)
        one = timed(lambda: replay.sample([request] * args.members), args.repeats, device)
        rows.append((name, alone, one))
        print(f"  {name}: per member {alone:.2f} ms, one call {one:.2f} ms", flush=True)
    print(run_header(args.device))
    print(f"{args.members} members, {args.fill} transitions each; ms per draw of every member's batch")
    print("| buffer | per member + stack | one call | per member / one call |")
    print("|---|---|---|---|")
    for name, alone, one in rows:
        print(f"| {name} | {alone:.2f} | {one:.2f} | {alone / one:.2f}x |")


if __name__ == "__main__":
    main()
