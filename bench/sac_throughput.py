"""SAC gradient updates per second: plasticrl vs stable-baselines3, same run, same sizes.

Both learn on the same env (2x256 MLPs, batch 256, 2 critics, Adam 3e-4) with `replay_ratio`
updates per env step. Two figures per library, alternated over rounds because shared machines
are noisy (the median is reported):
  loop:   env step + act + store + `replay_ratio` updates, as during training
  update: sample + update only
plasticrl is measured eager and with `compile=True` (one torch.compile graph per update;
compiled before timing).
    python bench/sac_throughput.py [--env dmc:cheetah-run] [--replay-ratio 8]
        [--device cpu] [--compile-mode max-autotune-no-cudagraphs] [--no-compile] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from agents import make_agent  # noqa: E402
from envs import make_env  # noqa: E402
from replay import ReplayBuffer  # noqa: E402

SAC_CFG = dict(name="sac", hidden_dims=[256, 256], num_critics=2, lr=3e-4, tau=0.005)


class Ours:
    def __init__(self, env_id, replay_ratio, batch_size, warmup, device, compile=False):
        self.name = "plasticrl" if not compile else "plasticrl compiled"
        self.env = make_env(env_id, seed=0)
        self.agent = make_agent(dict(SAC_CFG, compile=compile), self.env.observation_space,
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
        self.sync()

    def updates(self, count):
        for _ in range(count):
            self.agent.update(self.buffer.sample(self.bs))
        self.sync()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


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
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def updates(self, count):
        self.model.train(gradient_steps=count, batch_size=self.bs)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dmc:cheetah-run")
    p.add_argument("--replay-ratio", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100, help="env steps timed per round (loop)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2000, help="random env steps before timing")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled plasticrl row")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode for the compiled row")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every row")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)

    common = (args.env, args.replay_ratio, args.batch_size, args.warmup, args.device)
    libs = [Ours(*common)]
    if not args.no_compile:
        libs.append(Ours(*common, compile=True if args.compile_mode == "default" else args.compile_mode))
    if not args.no_sb3:
        libs.append(SB3(args.env, args.replay_ratio, args.batch_size, args.warmup, args.device))
    n_updates = args.steps * args.replay_ratio
    for lib in libs:  # warm-up: first calls allocate and fill caches (and compile)
        start = time.perf_counter()
        lib.loop(5)
        lib.updates(20)
        print(f"  warm-up {lib.name}: {time.perf_counter() - start:.1f} s", flush=True)
    rates = {lib.name: {"loop": [], "update": []} for lib in libs}
    for _ in range(args.rounds):
        for lib in libs:
            rates[lib.name]["loop"].append(n_updates / timed(lib.loop, args.steps))
            rates[lib.name]["update"].append(n_updates / timed(lib.updates, n_updates))

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"SAC updates/s on {device}, torch {torch.__version__}, env {args.env}, "
          f"replay ratio {args.replay_ratio}, batch {args.batch_size}, 2x256 MLP, 2 critics; "
          f"median of {args.rounds} rounds of {n_updates} updates")
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in rates.items()}
    for name, r in med.items():
        print(f"  {name:20s} loop {r['loop']:8.1f}   update-only {r['update']:8.1f}")
    if "stable-baselines3" in med:
        peer = med["stable-baselines3"]
        for name in (n for n in med if n.startswith("plasticrl")):
            ours = med[name]
            print(f"  ratio {name} / stable-baselines3: loop {ours['loop'] / peer['loop']:.2f}x, "
                  f"update-only {ours['update'] / peer['update']:.2f}x")


if __name__ == "__main__":
    main()
