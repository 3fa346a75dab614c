"""BBF gradient updates per second at batch 32, and the projected wall time of one Atari-100k game.

Timed: `agent.sample_batch(buffer, 32)` (prioritized sequences of 1 + 5 steps with the annealed
n-step) + `agent.update` (C51 + SPR, AdamW, target EMA, new priorities written back), from a
`ReplayBuffer.for_pixels` filled with random (4, 84, 84) frame stacks. plasticrl is measured once
per `--modes` entry (agents/acceleration.py: `none` eager, `compile` the losses through
torch.compile, `cudagraphs` the whole update captured in a CUDA graph; CUDA only), each with its
own agent and buffer; compilation and capture happen in the untimed warm-up.
The projection multiplies by the updates of one 100k-step game at each of `--replay-ratios`
(2: the lecture's table and the GPU issue's target, under 20 minutes on an H100; 8: the paper's
headline); env steps, acting and evaluation are not included. The lecture's table puts BBF at
about 1.4 GPU hours per run.
The peer in the same run (interleaved rounds, medians) is stable-baselines3's DQN("CnnPolicy")
at the same batch: a much smaller Nature-DQN update, given for scale, not as an equal.
    python bench/bbf_throughput.py --device cuda --rounds 5 --updates-per-round 50   # the GPU issue
    python bench/bbf_throughput.py --threads 1 --rounds 3 --updates-per-round 3      # 2-core CPU
    python bench/bbf_throughput.py [--device cpu|cuda] [--modes none,compile,cudagraphs] [--width 4]
        [--threads N] [--rounds 3] [--updates-per-round 5] [--replay-ratios 2,8] [--no-sb3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing
sys.path.insert(0, str(ROOT / "bench"))
from pixel_throughput import SB3, SETTINGS, agent_config, hours, random_stream, spaces_for, sync, timed  # noqa: E402
from sac_throughput import parse_modes, start_run  # noqa: E402

from agents import make_agent  # noqa: E402
from agents.bbf import projected_wall_time  # noqa: E402
from replay import PrioritizedSampler, ReplayBuffer  # noqa: E402

ATARI_100K = 100_000
CAPTURE_CALLS = 5  # extra warm-up updates under cudagraphs: 3 eager (CapturedUpdate.warmup), capture, replay


class OursBBF:
    """plasticrl's BBF on a prioritized frame-once buffer."""

    def __init__(self, obs_space, act_space, width: int, device, mode: str = "none"):
        cfg = agent_config("bbf")
        cfg["width_scale"], cfg["compile"] = width, mode
        self.name, self.mode, self.device = f"plasticrl BBF {mode}", mode, torch.device(device)
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default=None,
                   help="comma list of plasticrl compile modes, one row each (default: none on cpu, "
                        "where one update takes seconds; none,compile,cudagraphs on cuda)")
    p.add_argument("--width", type=int, default=4, help="Impala width scale (BBF: 4)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--updates-per-round", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2,
                   help=f"untimed updates per library (+{CAPTURE_CALLS} under cudagraphs)")
    p.add_argument("--transitions", type=int, default=5000)
    p.add_argument("--replay-ratios", default="2,8",
                   help="replay ratios of the projected wall time per 100k-step game (comma list)")
    p.add_argument("--no-sb3", action="store_true")
    args = p.parse_args()
    on_cuda = torch.device(args.device).type == "cuda"
    modes = parse_modes(args.modes or ("none,compile,cudagraphs" if on_cuda else "none"), args.device)
    ratios = [int(r) for r in args.replay_ratios.split(",") if r.strip()]
    header = start_run(args.threads, args.device)
    obs_space, act_space = spaces_for("atari", 18, 6)
    libs = [OursBBF(obs_space, act_space, args.width, args.device, mode) for mode in modes]
    if not args.no_sb3:
        libs.append(SB3("atari", obs_space, act_space, 32, args.device, args.transitions, 10))
    episode = SETTINGS["atari"]["episode"]
    adds = [lib.make_buffer(args.transitions, episode) for lib in libs]
    for transition in random_stream("atari", act_space, args.transitions):
        for add in adds:
            add(*transition)
    for lib in libs:
        n = args.warmup + (CAPTURE_CALLS if getattr(lib, "mode", None) == "cudagraphs" else 0)
        print(f"warm-up {lib.name}: {timed(lib.updates, n):.1f} s for {n}", flush=True)
    rates = {lib.name: [] for lib in libs}
    for r in range(args.rounds):
        for lib in libs:
            rates[lib.name].append(args.updates_per_round / timed(lib.updates, args.updates_per_round))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.2f}/s" for n, v in rates.items()),
              flush=True)
    print()
    print(header)
    print(f"BBF gradient updates/s at batch 32, width {args.width} ({libs[0].params / 1e6:.1f}M parameters), "
          f"18 actions; median of {args.rounds} interleaved rounds of {args.updates_per_round} updates; "
          f"load average at end {os.getloadavg()[0]:.2f}")
    print(f"{'library':28s} {'updates/s':>10s} {'min':>8s} {'max':>8s} {'ms/update':>10s}"
          + "".join(f" {'game @ rr ' + str(rr):>14s}" for rr in ratios))
    med = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        game = "".join(f" {hours(projected_wall_time(med[name], ATARI_100K, rr)):>14s}" for rr in ratios)
        print(f"{name:28s} {med[name]:10.2f} {min(values):8.2f} {max(values):8.2f} {1e3 / med[name]:10.1f}"
              + (game if name.startswith("plasticrl") else ""))
    for lib in libs[:len(modes)]:
        for rr in ratios:
            updates = ATARI_100K * rr
            print(f"projected wall time of one 100k-step game, {lib.name}, replay ratio {rr}: "
                  f"{updates} updates / {med[lib.name]:.2f} per s = "
                  f"{hours(projected_wall_time(med[lib.name], ATARI_100K, rr))} (updates only)")
    if "plasticrl BBF none" in med:
        for name in med:
            if name.startswith("plasticrl") and name != "plasticrl BBF none":
                print(f"ratio {name} / plasticrl BBF none: {med[name] / med['plasticrl BBF none']:.2f}x")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
