"""What plasticity injection and SimBa networks cost per SAC update, against plain SAC.

    python bench/method_cost.py [--rounds 30] [--updates 20] [--threads 1]

SAC 2x256 MLPs, 2 critics, batch 256, obs 17 / action 6 (the throughput bench's sizes), eager.
Rows, interleaved round by round (shared machines are noisy; medians are printed):
  sac                 the plain update
  injection, before   agent.injection=true, gate 0 (three head evaluations, two without effect)
  injection, after    the same agent after the injection (h frozen, h' - h'' added)
  simba               agent=simba's networks (critic 512 x 2 blocks, actor 128 x 1 block, one
                      critic, observation normalisation, AdamW), its own size: not a like-for-like
                      cost, the price of SimBa's setting at these sizes
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.sac import SAC  # noqa: E402
from bench.redo_cost import batch_of  # noqa: E402
from bench.sac_throughput import run_header  # noqa: E402
from plasticity.scheduler import build_scheduler  # noqa: E402

SIMBA = dict(network="simba", normalize_observations=True, weight_decay=0.01,
             update_order="actor_first", num_critics=1, lr=1e-4, init_temperature=0.01)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--updates", type=int, default=20, help="updates timed per row and round")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    header = run_header("cpu")
    injected = SAC(17, 6, injection=True)
    build_scheduler(injected, [{"intervention": "inject", "groups": ["critic.head", "actor.head"],
                                "unit": "updates", "every": 1}]).after_update(1, 1)
    rows = {"sac": SAC(17, 6), "injection, before": SAC(17, 6, injection=True),
            "injection, after": injected, "simba": SAC(17, 6, **SIMBA)}
    times = interleaved_ms(rows, batch_of("sac", 256), args.rounds, args.updates, warmup=3)
    print(header)
    print(f"SAC per-update ms, batch 256, obs 17, action 6, eager, {args.threads} thread(s); median of "
          f"{args.rounds} interleaved rounds of {args.updates} updates")
    base = times["sac"]
    for name, ms in times.items():
        print(f"  {name:18s} {ms:7.2f} ms  ({ms / base:.2f}x sac)")


def interleaved_ms(rows: dict, batch, rounds: int, updates: int, warmup: int = 1) -> dict[str, float]:
    """Median ms per update of each agent in `rows`, timed `updates` at a time, the rows taking
    turns round by round (a shared machine's slow spells fall on every row alike)."""
    times = {name: [] for name in rows}
    for agent in rows.values():
        for _ in range(warmup):
            agent.update(batch)
    for _ in range(rounds):
        for name, agent in rows.items():
            start = time.perf_counter()
            for _ in range(updates):
                agent.update(batch)
            times[name].append((time.perf_counter() - start) / updates * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


if __name__ == "__main__":
    main()
