"""SAC gradient updates per second: plasticrl vs stable-baselines3, same run, same sizes.

Both learn on the same env (2x256 MLPs, batch 256, 2 critics, Adam 3e-4) with `replay_ratio`
updates per env step. Two figures per library, alternated over rounds because shared machines
are noisy (the median is reported):
  loop:   env step + act + store + `replay_ratio` updates, as during training
  update: sample + update only
plasticrl is measured once per `--modes` entry (agents/acceleration.py): `none` (eager),
`compile` (the whole update as one torch.compile graph), `cudagraphs` (that graph captured in a
CUDA graph and replayed; CUDA only). Each row has its own env, agent and buffer; compilation and
graph capture happen in the untimed warm-up. Printed: the date (UTC), the device, torch and
stable-baselines3 versions, updates/s per row, and the ratios of every plasticrl row to
stable-baselines3 and of `compile` / `cudagraphs` to `none`.

`--replay-ratio` defaults to 8, the setting of the CPU figures in BENCHMARKS.md; the GPU issue's
figure (>= 3,000 updates/s and >= 10x stable-baselines3 on an H100) is at replay ratio 32:
    python bench/sac_throughput.py --device cuda --replay-ratio 32
CPU (2 cores; modes default to none,compile there):
    python bench/sac_throughput.py
    python bench/sac_throughput.py [--env dmc:cheetah-run] [--replay-ratio 8] [--device cpu|cuda]
        [--modes none,compile,cudagraphs] [--rounds 3] [--steps 100] [--threads N] [--no-sb3]
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from agents import make_agent  # noqa: E402
from agents.acceleration import COMPILE_MODES, compile_mode  # noqa: E402
from envs import make_env  # noqa: E402
from replay import ReplayBuffer  # noqa: E402

SAC_CFG = dict(name="sac", hidden_dims=[256, 256], num_critics=2, lr=3e-4, tau=0.005)


def random_replay(env, steps: int = 2000, capacity: int = 10_000, device="cpu") -> ReplayBuffer:
    """A replay buffer holding `steps` uniform-random transitions of `env` (seeded reset 0)."""
    buffer = ReplayBuffer.for_spaces(capacity, env.observation_space.shape, env.action_space.shape,
                                     device=device)
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, term, trunc, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, term, trunc)
        obs = env.reset()[0] if term or trunc else next_obs
    return buffer


def default_modes(device) -> str:
    """Every mode the device runs: `cudagraphs` only on CUDA."""
    return "none,compile,cudagraphs" if torch.device(device).type == "cuda" else "none,compile"


def parse_modes(text: str, device, flag: str = "--modes") -> list[str]:
    """A comma list of `compile` modes, each checked for `device` (cudagraphs needs CUDA);
    errors name the option and the allowed values."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise SystemExit(f"{flag} is empty: allowed values are {list(COMPILE_MODES)}")
    for mode in modes:
        try:
            compile_mode(mode, device)
        except ValueError as err:
            raise SystemExit(f"{flag}: {err}") from None
    if len(set(modes)) != len(modes):
        raise SystemExit(f"{flag} {text!r} names a mode twice")
    return modes


def device_name(device) -> str:
    """The GPU's name, or the CPU's model with the core and torch thread counts."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def run_header(device) -> str:
    """Date (UTC), device, torch and stable-baselines3 versions, OMP settings, load average."""
    try:
        import stable_baselines3
        sb3 = f"stable-baselines3 {stable_baselines3.__version__}"
    except ImportError:
        sb3 = "stable-baselines3 not installed"
    omp = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
                    if k in os.environ) or "no OMP_* set"
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{date}; device {device_name(device)}; torch {torch.__version__}; {sb3}; {omp}; "
            f"load average {load}")


def start_run(threads, device) -> str:
    """What every bench does first: warnings off, `threads` torch threads (None: torch's
    default), torch and numpy seeded with 0. Returns the run header, taken now (the load
    average before the run)."""
    warnings.filterwarnings("ignore")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    np.random.seed(0)
    return run_header(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Ours:
    def __init__(self, env_id, replay_ratio, batch_size, warmup, device, mode="none"):
        self.name = f"plasticrl {mode}"
        self.env = make_env(env_id, seed=0)
        self.agent = make_agent(dict(SAC_CFG, compile=mode), self.env.observation_space,
                                self.env.action_space, device)
        self.buffer = ReplayBuffer.for_spaces(100_000, self.env.observation_space.shape,
                                              self.env.action_space.shape, device=device)
        self.rr, self.bs, self.device = replay_ratio, batch_size, torch.device(device)
        self.obs, _ = self.env.reset(seed=0)
        self.loop(warmup, learn=False)

    def loop(self, steps, learn=True):
        for _ in range(steps):
            action = self.agent.act(self.obs) if learn else self.env.action_space.sample()
            next_obs, reward, term, trunc, _ = self.env.step(action)
            self.buffer.add(self.obs, action, reward, next_obs, term, trunc)
            self.obs = self.env.reset()[0] if term or trunc else next_obs
            if learn:
                for _ in range(self.rr):
                    self.agent.update(self.buffer.sample(self.bs))
        sync(self.device)

    def updates(self, count):
        for _ in range(count):
            self.agent.update(self.buffer.sample(self.bs))
        sync(self.device)


class SB3:
    name = "stable-baselines3"

    def __init__(self, env_id, replay_ratio, batch_size, warmup, device):
        from stable_baselines3 import SAC
        self.rr, self.bs = replay_ratio, batch_size
        self.model = SAC("MlpPolicy", make_env(env_id, seed=0), buffer_size=100_000,
                         learning_starts=warmup, batch_size=batch_size, train_freq=1,
                         gradient_steps=replay_ratio, learning_rate=3e-4, tau=0.005,
                         policy_kwargs=dict(net_arch=[256, 256]), device=device, seed=0, verbose=0)
        self.model.learn(warmup)  # random actions only: fills the buffer
        self.device = torch.device(device)

    def loop(self, steps):
        self.model.learn(steps, reset_num_timesteps=False)
        sync(self.device)

    def updates(self, count):
        self.model.train(gradient_steps=count, batch_size=self.bs)
        sync(self.device)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dmc:cheetah-run")
    p.add_argument("--replay-ratio", type=int, default=8,
                   help="updates per env step (8: the CPU figures; 32: the GPU issue's figure)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100, help="env steps timed per round (loop)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2000, help="random env steps before timing")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default=None,
                   help="comma list of plasticrl compile modes, one row each (default: none,compile "
                        "on cpu; none,compile,cudagraphs on cuda)")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every row")
    args = p.parse_args()
    modes = parse_modes(args.modes or default_modes(args.device), args.device)
    header = start_run(args.threads, args.device)

    common = (args.env, args.replay_ratio, args.batch_size, args.warmup, args.device)
    libs = [Ours(*common, mode=mode) for mode in modes]
    if not args.no_sb3:
        libs.append(SB3(*common))
    n_updates = args.steps * args.replay_ratio
    for lib in libs:  # warm-up: first calls allocate and fill caches, compile, capture graphs
        start = time.perf_counter()
        lib.loop(5)
        lib.updates(20)
        print(f"  warm-up {lib.name}: {time.perf_counter() - start:.1f} s", flush=True)
    rates = {lib.name: {"loop": [], "update": []} for lib in libs}
    for r in range(args.rounds):
        for lib in libs:
            rates[lib.name]["loop"].append(n_updates / timed(lib.loop, args.steps))
            rates[lib.name]["update"].append(n_updates / timed(lib.updates, n_updates))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {v['loop'][-1]:.0f}/{v['update'][-1]:.0f}" for n, v in rates.items()), flush=True)

    print(header)
    print(f"SAC updates/s, env {args.env}, replay ratio {args.replay_ratio}, batch {args.batch_size}, "
          f"2x256 MLP, 2 critics; median of {args.rounds} interleaved rounds of {n_updates} updates "
          f"({args.steps} env steps); load average at end {os.getloadavg()[0]:.2f}")
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in rates.items()}
    for name, r in med.items():
        print(f"  {name:22s} loop {r['loop']:9.1f}   update-only {r['update']:9.1f}")
    ours = [name for name in med if name.startswith("plasticrl")]
    pairs = []
    if "stable-baselines3" in med:
        pairs += [(name, "stable-baselines3") for name in ours]
    if "plasticrl none" in med:
        pairs += [(name, "plasticrl none") for name in ours if name != "plasticrl none"]
    for name, base in pairs:
        print(f"  ratio {name} / {base}: loop {med[name]['loop'] / med[base]['loop']:.2f}x, "
              f"update-only {med[name]['update'] / med[base]['update']:.2f}x")


if __name__ == "__main__":
    main()
