"""How fast a group of M SAC members could be, at best, against M separate processes: a roofline.

A group saves work that is not arithmetic (Python, dispatch, many small kernels); it does the same
floating-point operations as M separate agents. On a CPU where each separate process already runs
its update near the speed of its matrix products, no stacking can beat the processes by much.
This script measures that ceiling on one thread (the separate processes run one thread each):

  1. the matrix products of one plain SAC update (2x256, 2 critics, batch 256, the sizes of
     bench/members_throughput.py), read with their shapes from one profiled eager update;
  2. each product timed alone (as a plain agent runs it) and batched over M members as one bmm
     (as a group runs it), per member;
  3. the plain agent's whole update, eager and compiled, and a group of M members' update
     (agents/members.py, eager and compiled; batches drawn from one member-stacked storage as in
     runner/group.py) per member, timed on the same thread.

Printed: the update's FLOPs and the products' share of them, the products' time per member alone
and batched, the whole update's time, and the ceiling: the compiled plain update's time over the
batched products' time per member. That is how much faster than the separate processes a group
would be if everything but its batched matrix products took no time at all; a group's measured
ratio (bench/members_throughput.py) can only be below it.

    python bench/members_roofline.py [--members 8] [--repeats 200]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from agents import make_agent  # noqa: E402
from agents.members import MemberStack  # noqa: E402
from bench.sac_throughput import SAC_CFG, random_replay, run_header  # noqa: E402
from envs import make_env  # noqa: E402
from replay import ReplayRequest  # noqa: E402
from replay.member_replay import MemberReplay  # noqa: E402

GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def gemm_shapes(agent, buffer) -> Counter:
    """(batch, n, k, m) of every matrix product in one eager update, with its count."""
    with profile(record_shapes=True) as prof:
        agent.update(buffer.sample(256))
    shapes = Counter()
    for event in prof.events():
        if event.name not in GEMMS:
            continue
        dims = [d for d in event.input_shapes if d]
        a, b = (dims[1], dims[2]) if event.name in ("aten::addmm", "aten::baddbmm") else (dims[0], dims[1])
        if len(a) == 2:  # mm: [n, k] x [k, m]
            shapes[(1, a[0], a[1], b[1])] += 1
        else:  # bmm: [e, n, k] x [e, k, m]
            shapes[(a[0], a[1], a[2], b[2])] += 1
    return shapes


def seconds(fn, repeats: int) -> float:
    """Median-free mean seconds per call after a warm-up (one thread, nothing else timed)."""
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def product_seconds(shape, members: int, repeats: int) -> tuple[float, float]:
    """Seconds per member of one product: alone, and batched over `members` as one bmm."""
    e, n, k, m = shape
    a, b = torch.randn(e, n, k), torch.randn(e, k, m)
    alone = seconds(lambda: torch.bmm(a, b) if e > 1 else torch.mm(a[0], b[0]), repeats)
    big_a, big_b = torch.randn(members * e, n, k), torch.randn(members * e, k, m)  # [M * e, n, k]
    batched = seconds(lambda: torch.bmm(big_a, big_b), repeats) / members
    return alone, batched


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    env = make_env("dmc:cheetah-run", seed=0)
    buffer = random_replay(env, 1000, 20_000)
    agents = {mode: make_agent(dict(SAC_CFG, compile=mode), env.observation_space, env.action_space,
                               torch.device("cpu")) for mode in ("none", "compile")}
    shapes = gemm_shapes(agents["none"], buffer)
    with FlopCounterMode(display=False) as counter:
        agents["none"].update(buffer.sample(256))
    flops = counter.get_total_flops()
    gemm_flops = sum(2 * e * n * k * m * c for (e, n, k, m), c in shapes.items())
    alone = batched = 0.0
    for shape, count in shapes.items():
        a, b = product_seconds(shape, args.members, args.repeats)
        alone, batched = alone + count * a, batched + count * b
    batch = buffer.sample(256)
    update = {mode: seconds(lambda: agent.update(batch), args.repeats // 2) for mode, agent in agents.items()}
    replay = MemberReplay([random_replay(env, 1000, 20_000) for _ in range(args.members)])
    stacked = replay.sample([ReplayRequest(256)] * args.members)
    group = {}
    for mode in ("none", "compile"):
        stack = MemberStack([make_agent(dict(SAC_CFG, compile=mode), env.observation_space, env.action_space,
                                        torch.device("cpu")) for _ in range(args.members)], mode)
        group[mode] = seconds(lambda: stack.update(None, stacked), max(1, args.repeats // 20)) / args.members
    print(run_header("cpu"))
    print(f"SAC 2x256, 2 critics, batch 256 (dmc:cheetah-run sizes), 1 thread, M = {args.members}")
    print(f"FLOPs per update: {flops / 1e6:.0f} M, of which matrix products {gemm_flops / 1e6:.0f} M "
          f"({sum(shapes.values())} products, {len(shapes)} shapes)")
    print("| per member update | ms | GFLOP/s |")
    print("|---|---|---|")
    for name, sec, work in (("matrix products alone", alone, gemm_flops),
                            (f"matrix products batched over {args.members} members", batched, gemm_flops),
                            ("plain update, eager", update["none"], flops),
                            ("plain update, compiled", update["compile"], flops),
                            (f"group of {args.members}, eager", group["none"], flops),
                            (f"group of {args.members}, compiled", group["compile"], flops)):
        print(f"| {name} | {sec * 1e3:.2f} | {work / sec / 1e9:.1f} |")
    print(f"ceiling of group / separate processes (compiled update / batched products): "
          f"{update['compile'] / batched:.2f}x; measured (compiled update / compiled group): "
          f"{update['compile'] / group['compile']:.2f}x")


if __name__ == "__main__":
    main()
