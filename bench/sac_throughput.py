"""SAC gradient updates per second: plasticrl vs stable-baselines3, same run, same sizes.

Both learn on the same env (2x256 MLPs, batch 256, 2 critics, Adam 3e-4) with `replay_ratio`
updates per env step. Two figures per library, alternated over rounds because shared machines
are noisy (the median is reported):
  loop:   env step + act + store + `replay_ratio` updates, as during training
  update: sample + update only
    python bench/sac_throughput.py [--env dmc:cheetah-run] [--replay-ratio 8] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from agents import make_agent
from envs import make_env
from replay import ReplayBuffer

SAC_CFG = dict(name="sac", hidden_dims=[256, 256], num_critics=2, lr=3e-4, tau=0.005)


class Ours:
    name = "plasticrl"

    def __init__(self, env_id, replay_ratio, batch_size, warmup, device):
        self.env = make_env(env_id, seed=0)
        self.agent = make_agent(SAC_CFG, self.env.observation_space, self.env.action_space, device)
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
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    np.random.seed(0)

    libs = [Ours(args.env, args.replay_ratio, args.batch_size, args.warmup, args.device)]
    if not args.no_sb3:
        libs.append(SB3(args.env, args.replay_ratio, args.batch_size, args.warmup, args.device))
    n_updates = args.steps * args.replay_ratio
    for lib in libs:  # warm-up: first calls allocate and fill caches
        lib.loop(5)
        lib.updates(20)
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
        print(f"  {name:18s} loop {r['loop']:8.1f}   update-only {r['update']:8.1f}")
    if len(med) == 2:
        ours, peer = med["plasticrl"], med["stable-baselines3"]
        print(f"  ratio plasticrl / stable-baselines3: loop {ours['loop'] / peer['loop']:.2f}x, "
              f"update-only {ours['update'] / peer['update']:.2f}x")


if __name__ == "__main__":
    main()
