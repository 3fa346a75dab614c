"""Cost of the plasticity diagnostics (dormant ratio, srank, norms, distance from init).

Times a plain SAC update and an update with activations captured plus `measure()` (and the
one host sync of logging them), alternating over rounds (medians), then prints the extra time
per measurement and the overhead at a given interval K:  extra / (K * plain update).
    python bench/diagnostics_overhead.py [--env dmc:cheetah-run] [--every 1000] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import make_agent  # noqa: E402
from bench.sac_throughput import SAC_CFG, random_replay  # noqa: E402
from envs import make_env  # noqa: E402
from plasticity.diagnostics import Diagnostics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dmc:cheetah-run")
    parser.add_argument("--every", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20, help="updates timed per round and kind")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    env = make_env(args.env, seed=0)
    agent = make_agent(SAC_CFG, env.observation_space, env.action_space, device)
    buffer = random_replay(env, device=device)
    diagnostics = Diagnostics(agent, groups=None, every=1)

    def plain():
        agent.update(buffer.sample(args.batch_size))

    def measured():
        with diagnostics.capture():
            agent.update(buffer.sample(args.batch_size))
        {k: v.item() for k, v in diagnostics.measure().items()}  # the logging sync

    for fn in (plain, measured, plain):  # warm-up
        fn()
    times = {"plain": [], "measured": []}
    for _ in range(args.rounds):
        for name, fn in (("plain", plain), ("measured", measured)):
            sync()
            start = time.perf_counter()
            for _ in range(args.reps):
                fn()
            sync()
            times[name].append((time.perf_counter() - start) / args.reps)
    plain_ms = statistics.median(times["plain"]) * 1e3
    extra_ms = statistics.median(times["measured"]) * 1e3 - plain_ms
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.env}, SAC 2x256, batch {args.batch_size}")
    print(f"plain update      {plain_ms:8.3f} ms")
    print(f"diagnostics extra {extra_ms:8.3f} ms per measurement ({len(diagnostics.probes)} groups)")
    for k in args.every:
        print(f"overhead at every={k:<6d} {100 * extra_ms / (k * plain_ms):6.3f} %")


if __name__ == "__main__":
    main()
