"""Which `threads` default holds up on a shared CPU (README "Threads"): SAC updates/s of the
default config (2x256 MLPs, batch 256, 2 critics) with 1 thread and with torch's default, on an
idle machine and with 1 or 2 busy processes beside it (another run, a test suite).

Each measurement runs in a fresh process (torch's thread pool is fixed once used) that warms up
for 50 updates and then times `--seconds` of sample + update; the busy processes are plain Python
loops, one core each. Printed: the machine, then updates/s per (threads, busy) cell.
    python bench/threads.py [--seconds 10] [--busy 0,1,2] [--threads 1,default]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = """
import sys, time, torch
threads = sys.argv[1]
if threads != "default":
    torch.set_num_threads(int(threads))
sys.path.insert(0, {root!r})
from agents import make_agent
from bench.sac_throughput import SAC_CFG, random_replay
from envs import make_env
env = make_env("gym:Pendulum-v1", seed=0)
agent = make_agent(dict(SAC_CFG), env.observation_space, env.action_space, "cpu")
buffer = random_replay(env)
for _ in range(50):
    agent.update(buffer.sample(256))
n, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[2]):
    agent.update(buffer.sample(256))
    n += 1
print(n / (time.perf_counter() - start), torch.get_num_threads())
"""


def measure(threads: str, seconds: float, busy: int) -> tuple[float, int]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", WORKER.format(root=str(ROOT)), threads, str(seconds)],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    finally:
        for hog in hogs:
            hog.kill()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--busy", default="0,1,2")
    parser.add_argument("--threads", default="1,default")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print("| threads | busy processes beside | updates/s |\n|---|---|---|")
    for busy in map(int, args.busy.split(",")):
        for threads in args.threads.split(","):
            rate, used = measure(threads, args.seconds, busy)
            label = f"{threads} ({used})" if threads == "default" else threads
            print(f"| {label} | {busy} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
