"""What PLASTIC's parts cost per update of the pixel agents: SAM (two forward-backward passes of
the critic / TD loss) and the conv LayerNorm + CReLU networks, against the plain Adam agent.

    python bench/sam_cost.py [--rounds 5] [--updates 3] [--threads 1] [--agents drq_atari drq]

Reference sizes, eager: DrQ(eps) on 4x84x84 frames, batch 32 (Dopamine's DrQ_eps.gin); DrQ on
3x64x64 frames, batch 512, MLP 256x256 (Nikishin's configs/drq.py). Rows per agent, interleaved
round by round (shared machines are noisy; medians are printed):
  adam      the agent as configured (agent=drq / agent=drq_atari)
  sam       optimizer=sam (the preset's rho and sam_head)
  plastic   every agent option of the preset (plasticity=plastic / plastic_atari): SAM, a LayerNorm
            after each conv, CReLU in the MLPs (DrQ(eps): a 256-unit hidden layer, 512 after CReLU)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.drq import DrQ  # noqa: E402
from agents.drq_atari import DrQAtari  # noqa: E402
from bench.method_cost import interleaved_ms  # noqa: E402
from bench.sac_throughput import run_header  # noqa: E402
from replay.buffer import Batch  # noqa: E402
from tests.conftest import make_config  # noqa: E402

SETUPS = {  # name: (agent class, config overrides, preset, observation shape, action space, batch)
    "drq_atari": (DrQAtari, ("agent=drq_atari", "env=atari/pong"), "plastic_atari", (4, 84, 84), 6, 32),
    "drq": (DrQ, ("agent=drq", "env=dmc_pixels/cheetah_run"), "plastic", (3, 64, 64), 6, 512),
}
TRAINER_KEYS = ("name", "replay_ratio", "batch_size", "buffer_size", "gamma", "n_step", "image_size",
                "grayscale", "learning_starts", "prioritized")


def agent_options(overrides, preset=None) -> dict:
    cfg = make_config(*overrides, *([f"plasticity={preset}"] if preset else []))["agent"]
    return {k: v for k, v in cfg.items() if k not in TRAINER_KEYS}


def batch_for(shape, action_space: int, b: int, discrete: bool) -> Batch:
    obs, next_obs = (torch.randint(0, 256, (b, *shape), dtype=torch.uint8) for _ in range(2))
    action = torch.randint(0, action_space, (b,)) if discrete else torch.rand(b, action_space) * 2 - 1
    return Batch(obs, action, torch.randn(b), torch.full((b,), 0.99), next_obs, torch.arange(b))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=3, help="updates timed per row and round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--agents", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(run_header("cpu"))
    print(f"per-update ms, eager, {args.threads} thread(s); median of {args.rounds} interleaved rounds "
          f"of {args.updates} updates")
    for name in args.agents:
        cls, overrides, preset, shape, actions, b = SETUPS[name]
        base = agent_options(overrides)
        plastic = agent_options(overrides, preset)
        sam = dict(base, optimizer="sam", sam_rho=plastic["sam_rho"], sam_head=plastic["sam_head"])
        rows = {row: cls(shape, actions, **options)
                for row, options in (("adam", base), ("sam", sam), ("plastic", plastic))}
        times = interleaved_ms(rows, batch_for(shape, actions, b, discrete=cls is DrQAtari),
                               args.rounds, args.updates)
        print(f"{name}: obs {shape}, batch {b}")
        for row, ms in times.items():
            print(f"  {row:8s} {ms:8.1f} ms  ({ms / times['adam']:.2f}x adam)")


if __name__ == "__main__":
    main()
