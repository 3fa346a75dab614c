"""What a ReDo firing costs (plasticity/redo.py), against one update of the same agent.

    python bench/redo_cost.py [--agent sac|drq_atari] [--repeats 10] [--threads 1]

SAC: 2x256 MLPs, 2 critics, batch 256 (the throughput bench's sizes), group actor + critic;
DrQ(eps): the Atari-100k network on 84x84x4 frames, batch 32, group critic + encoder. Prints
the median ms of one update, of one ReDo firing (256 statistics states: copy of the agent, one
update of the copy with hooks, the masks and the in-place writes) and the firing's cost spread
over the preset's 1000-update interval, as a share of the update time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.drq_atari import DrQAtari  # noqa: E402
from agents.sac import SAC  # noqa: E402
from plasticity.scheduler import build_scheduler  # noqa: E402
from replay.buffer import Batch  # noqa: E402


def batch_of(agent_name: str, b: int) -> Batch:
    if agent_name == "sac":
        obs, next_obs, action = torch.randn(b, 17), torch.randn(b, 17), torch.rand(b, 6) * 2 - 1
    else:
        obs, next_obs = (torch.randint(0, 256, (b, 4, 84, 84), dtype=torch.uint8) for _ in range(2))
        action = torch.randint(0, 6, (b,))
    return Batch(obs, action, torch.randn(b), torch.full((b,), 0.99), next_obs, torch.arange(b))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default="sac", choices=("sac", "drq_atari"))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.agent == "sac":
        agent, groups, b = SAC(17, 6, hidden_dims=[256, 256]), ["actor", "critic"], 256
    else:
        agent, groups, b = DrQAtari((4, 84, 84), 6), ["critic", "encoder"], 32
    scheduler = build_scheduler(agent, [{"intervention": "redo", "groups": groups, "unit": "updates",
                                         "every": 1, "tau": 0.1, "batch_size": 256}])
    scheduler.set_batch_source(lambda n: batch_of(args.agent, n))
    train = batch_of(args.agent, b)
    for _ in range(3):
        agent.update(train)
    update_ms = timed(lambda: agent.update(train), args.repeats)
    redo_ms = timed(lambda: scheduler.after_update(1, 1), args.repeats)
    per_update = redo_ms / 1000
    print(f"{args.agent} ({args.threads} thread(s)): update {update_ms:.2f} ms; ReDo firing {redo_ms:.1f} ms "
          f"(recycled {scheduler.rules[0].intervention.recycled} units at the last); every 1000 updates: "
          f"{per_update:.3f} ms per update = {100 * per_update / update_ms:.2f}% of an update")


if __name__ == "__main__":
    main()
