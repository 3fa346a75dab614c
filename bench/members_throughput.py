"""Members: aggregate SAC member-updates/s of one group of M members against M separate processes.

Every configuration runs as its own process(es), started together: the group is one process
(`cores` torch threads) training M members with one vectorized update (agents/members.py) on
batches drawn in one call from one member-stacked storage (replay/member_replay.py); the
peer is M processes of one plain agent each (cores // M threads, at least 1, as a joblib sweep
gives them). Each member or process steps its own env, acts, stores, and makes `replay_ratio`
updates of batch 256 per env step (SAC 2x256, 2 critics; as bench/sac_throughput.py). After an
untimed warm-up (compilation included) the processes wait for each other, then time the same
number of env steps; a configuration's rate is the sum of its processes' member-updates/s.
Peak memory is the sum of the processes' peak resident set sizes. stable-baselines3's rate (one
process) is printed for scale. Printed: the run header, one row per M and mode, the ratio
group / separate.

    python bench/members_throughput.py [--members 1,2,4,8,16] [--replay-ratio 8] [--modes none,compile]
        [--env dmc:cheetah-run] [--steps 40] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from agents import make_agent  # noqa: E402
from agents.members import MemberStack  # noqa: E402
from bench.sac_throughput import SAC_CFG, SB3, parse_modes, random_replay, run_header, sync  # noqa: E402
from envs import make_env  # noqa: E402
from replay import ReplayRequest  # noqa: E402
from replay.member_replay import MemberReplay  # noqa: E402


def _wait_for_all(barrier: Path, count: int) -> None:
    """Mark this process ready and wait until `count` processes are (a file each)."""
    (barrier / f"{os.getpid()}.ready").touch()
    while len(list(barrier.glob("*.ready"))) < count:
        time.sleep(0.05)


def worker(args) -> None:
    """One process: `--members` agents (a group when > 1 or --group), timed after the barrier."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.kind == "sb3":
        lib = SB3(args.env, args.replay_ratio, 256, 1000, args.device)
        lib.loop(5)
        _wait_for_all(Path(args.barrier), args.count)
        start = time.perf_counter()
        lib.loop(args.steps)
        rate = args.steps * args.replay_ratio / (time.perf_counter() - start)
    else:
        m = args.members
        envs = [make_env(args.env, seed=k) for k in range(m)]
        agents = [make_agent(dict(SAC_CFG, compile=args.mode), envs[0].observation_space,
                             envs[0].action_space, device) for _ in range(m)]
        buffers = [random_replay(env, 1000, 20_000, device) for env in envs]
        stack = MemberStack(agents, args.mode) if args.kind == "group" else None
        replay = MemberReplay(buffers) if stack is not None else None  # one storage, one draw (as runner/group.py)
        obs = [env.reset(seed=k)[0] for k, env in enumerate(envs)]

        def steps(n: int) -> None:
            for _ in range(n):
                for k, (env, agent, buffer) in enumerate(zip(envs, agents, buffers)):
                    action = agent.act(obs[k])
                    nxt, reward, term, trunc, _ = env.step(action)
                    buffer.add(obs[k], action, reward, nxt, term, trunc)
                    obs[k] = env.reset()[0] if term or trunc else nxt
                for _ in range(args.replay_ratio):
                    if stack is not None:
                        stack.update(None, replay.sample([ReplayRequest(256)] * m))
                    else:
                        agents[0].update(buffers[0].sample(256))
            sync(device)

        steps(3)  # compiles the graphs
        _wait_for_all(Path(args.barrier), args.count)
        start = time.perf_counter()
        steps(args.steps)
        rate = m * args.steps * args.replay_ratio / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps({"rate": rate, "peak_mib": peak}))


def launch(args, kind: str, members: int, mode: str, processes: int, threads: int) -> dict:
    """Start `processes` workers together; their summed rate and peak memory."""
    with tempfile.TemporaryDirectory() as barrier:
        cmd = [sys.executable, __file__, "--worker", "--kind", kind, "--members", str(members),
               "--mode", mode, "--threads", str(threads), "--barrier", barrier, "--count", str(processes),
               "--env", args.env, "--replay-ratio", str(args.replay_ratio), "--steps", str(args.steps),
               "--device", args.device]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"rate": sum(o["rate"] for o in outs), "peak_mib": sum(o["peak_mib"] for o in outs)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", default="1,2,4,8,16")
    p.add_argument("--replay-ratio", type=int, default=8)
    p.add_argument("--modes", default="none,compile")
    p.add_argument("--env", default="dmc:cheetah-run")
    p.add_argument("--steps", type=int, default=40, help="env steps timed per member")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-sb3", action="store_true")
    # a worker's own arguments
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="group", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="none", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--barrier", default="", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.members = int(args.members)
        return worker(args)
    cores = os.cpu_count() or 1
    header = run_header(args.device)
    sizes = [int(m) for m in args.members.split(",")]
    rows = []
    for mode in parse_modes(args.modes, args.device):
        for m in sizes:
            group = launch(args, "group", m, mode, 1, cores)
            separate = launch(args, "single", 1, mode, m, max(1, cores // m))
            rows.append((mode, m, group, separate))
            print(f"  {mode} M={m}: group {group['rate']:.0f}, separate {separate['rate']:.0f} "
                  f"member-updates/s", flush=True)
    sb3 = None if args.no_sb3 else launch(args, "sb3", 1, "none", 1, cores)
    print(header)
    print(f"SAC 2x256, batch 256, env {args.env}, replay ratio {args.replay_ratio}, {args.steps} env "
          f"steps timed per member after a warm-up; group: 1 process, {cores} threads; separate: M "
          f"processes, max(1, {cores} // M) threads each")
    print("| mode | M | group member-updates/s | M processes | group / processes | group peak MiB "
          "| processes peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for mode, m, g, s in rows:
        print(f"| {mode} | {m} | {g['rate']:.0f} | {s['rate']:.0f} | {g['rate'] / s['rate']:.2f} | "
              f"{g['peak_mib']:.0f} | {s['peak_mib']:.0f} |")
    if sb3 is not None:
        print(f"stable-baselines3, one process, {cores} threads: {sb3['rate']:.0f} updates/s")


if __name__ == "__main__":
    main()
