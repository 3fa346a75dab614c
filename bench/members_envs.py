"""Env steps per second of a group's members, their envs stepped in turn or each in a process of
its own (`members.async_envs`), on DMC pixels (rendering-bound).

    python bench/members_envs.py [--members 2] [--steps 500] [--env dmc_pixels/cheetah_run] [--repeats 3]

Random warm-up actions (learning starts at the last step but one: two small updates, batch 16), so
what is timed is the env side of the group loop: acting, stepping (rendering included), storing. Rows alternate
sync / async, `--repeats` times; medians are printed with the member-env-steps per second.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sac_throughput import run_header  # noqa: E402
from runner.group import GroupTrainer  # noqa: E402
from runner.members import member_configs  # noqa: E402
from tests.conftest import make_config  # noqa: E402


def timed_group(overrides: list[str], members: int, async_envs: bool) -> float:
    """Seconds of one group's training loop (its envs built before the clock starts)."""
    spec = {"seeds": list(range(members)), "vary": None, "async_envs": async_envs}
    with tempfile.TemporaryDirectory() as run_dir:
        group = GroupTrainer(member_configs(lambda o: make_config(*o), overrides, spec), run_dir, spec)
        group._finish = group._summary  # no final evaluation (it runs in the group's process anyway)
        start = time.perf_counter()
        group.train()
        return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--steps", type=int, default=500, help="env steps per member")
    p.add_argument("--env", default="dmc_pixels/cheetah_run")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    overrides = ["agent=drq", f"env={args.env}", "device=cpu", f"train.total_steps={args.steps}",
                 f"train.learning_starts={args.steps - 1}", "agent.batch_size=16", "train.eval_every=0", "train.checkpoint_every=0",
                 "train.progress=false", "diagnostics.every=0", "threads=1"]
    times = {False: [], True: []}
    for _ in range(args.repeats):
        for async_envs in (False, True):
            times[async_envs].append(timed_group(overrides, args.members, async_envs))
    print(run_header("cpu"))
    print(f"{args.members} members x {args.steps} env steps of {args.env} (random actions, 2 updates); "
          f"median of {args.repeats}")
    for async_envs, values in times.items():
        seconds = statistics.median(values)
        print(f"  {'async' if async_envs else 'sync':5s} {seconds:7.2f} s  "
              f"{args.members * args.steps / seconds:7.1f} member-env-steps/s")


if __name__ == "__main__":
    main()
