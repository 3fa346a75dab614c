"""BBF gradient updates per second at batch 32, and the projected wall time of one Atari-100k game.

Timed: `agent.sample_batch(buffer, 32)` (prioritized sequences of 1 + 5 steps with the annealed
n-step) + `agent.update` (C51 + SPR, AdamW, target EMA, new priorities written back), from a
`ReplayBuffer.for_pixels` filled with random (4, 84, 84) frame stacks. The projection multiplies
by the updates of one 100k-step game at `--replay-ratio` (2: the lecture's table; 8: the paper's
headline); env steps, acting and evaluation are not included. The lecture's table puts BBF at
about 1.4 GPU hours per run; our target on an H100 is under 20 minutes.
The peer in the same run (interleaved rounds, medians) is stable-baselines3's DQN("CnnPolicy")
at the same batch: a much smaller Nature-DQN update, given for scale, not as an equal.
    python bench/bbf_throughput.py [--device cpu|cuda] [--width 4] [--threads N] [--rounds 3]
        [--updates-per-round 5] [--replay-ratio 2] [--no-sb3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing
sys.path.insert(0, str(ROOT / "bench"))
from pixel_throughput import SB3, SETTINGS, hours, random_stream, spaces_for, sync, timed  # noqa: E402

from agents import make_agent  # noqa: E402
from replay import PrioritizedSampler, ReplayBuffer  # noqa: E402

ATARI_100K = 100_000


class OursBBF:
    """plasticrl's BBF on a prioritized frame-once buffer."""

    def __init__(self, obs_space, act_space, width: int, device):
        import yaml
        with open(ROOT / "configs" / "agent" / "bbf.yaml") as f:
            cfg = yaml.safe_load(f)
        cfg["width_scale"] = width
        self.name, self.device = f"plasticrl BBF (width {width})", torch.device(device)
        self.agent = make_agent(cfg, obs_space, act_space, device)
        self.batch, self.buffer = cfg["batch_size"], None
        self.params = sum(p.numel() for p in self.agent.critic.parameters())

    def make_buffer(self, transitions: int, episode: int):
        s = SETTINGS["atari"]
        self.buffer = ReplayBuffer.for_pixels(transitions + transitions // episode + 2, s["frame_shape"],
                                              s["stack"], device=self.device)
        self.buffer.sampler = PrioritizedSampler(self.device, seed=0)
        return self.buffer.add

    def updates(self, count: int) -> None:
        for _ in range(count):
            batch = self.agent.sample_batch(self.buffer, self.batch)
            priority = self.agent.update(batch)["priority"]
            self.buffer.update_priorities(batch.idx, priority)
        sync(self.device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=4, help="Impala width scale (BBF: 4)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--updates-per-round", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--transitions", type=int, default=5000)
    p.add_argument("--replay-ratio", type=int, default=2)
    p.add_argument("--no-sb3", action="store_true")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    obs_space, act_space = spaces_for("atari", 18, 6)
    libs = [OursBBF(obs_space, act_space, args.width, args.device)]
    if not args.no_sb3:
        libs.append(SB3("atari", obs_space, act_space, 32, args.device, args.transitions, 10))
    episode = SETTINGS["atari"]["episode"]
    adds = [lib.make_buffer(args.transitions, episode) for lib in libs]
    for transition in random_stream("atari", act_space, args.transitions):
        for add in adds:
            add(*transition)
    for lib in libs:
        print(f"warm-up {lib.name}: {timed(lib.updates, args.warmup):.1f} s for {args.warmup}", flush=True)
    rates = {lib.name: [] for lib in libs}
    for r in range(args.rounds):
        for lib in libs:
            rates[lib.name].append(args.updates_per_round / timed(lib.updates, args.updates_per_round))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.2f}/s" for n, v in rates.items()),
              flush=True)
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"cpu ({torch.get_num_threads()} torch threads)")
    print(f"\nBBF gradient updates/s at batch 32 on {device}, torch {torch.__version__}; "
          f"{libs[0].params / 1e6:.1f}M parameters; load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'library':28s} {'updates/s':>10s} {'min':>8s} {'max':>8s} {'ms/update':>10s}")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:28s} {med:10.2f} {min(values):8.2f} {max(values):8.2f} {1e3 / med:10.1f}")
    ours = statistics.median(rates[libs[0].name])
    updates = ATARI_100K * args.replay_ratio
    print(f"projected wall time of one 100k-step game at replay ratio {args.replay_ratio}: "
          f"{updates} updates / {ours:.2f} per s = {hours(updates / ours)} (updates only)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
