"""DrQ on DMC pixels: env steps per second of the training loop, rendering included.

One timed env step is what the trainer does per step once learning has started (runner/trainer.py):
`agent.act(obs)` + `env.step` (the physics for the action repeat and one 84x84 render) + store in
the replay buffer built as the trainer builds it (`runner.build.make_buffer`: a frame-once
`ReplayBuffer.for_pixels`) + `replay_ratio` x (sample + update). Logging, evaluation, diagnostics
and checkpoints are not included. Agent settings are configs/agent/drq.yaml (read as
bench/pixel_throughput.py reads them), with `--batch` (default: the reference 512 on CUDA, 128 on
a CPU, where 512 is slow) and `--compile` (agents/acceleration.py; a comma list gives one row per
mode, each with its own env, agent and buffer). The env is `make_env(<env>, pixels=True)`
(uint8 (9, 84, 84) stacks of 3 RGB frames, PlaNet's action repeat; MUJOCO_GL is chosen by
envs/gl.py: EGL on the GPU when there is one, else software rendering).

The peer in the same run is stable-baselines3's SAC("CnnPolicy") on its own instance of the same
env, configured as in bench/pixel_throughput.py (NatureCNN per actor/critic, 2x256 MLPs, lr 3e-4,
tau 0.005, initial alpha 0.1, same batch), train_freq 1 and gradient_steps = the replay ratio,
timed as env steps per second of `model.learn(steps)` (its act + step + store + updates, plus
SB3's per-step bookkeeping). `env alone` is a third instance stepped with random actions (render
included, nothing stored or learnt): the ceiling any library's loop can reach.

Before timing: `--warmup` random env steps fill every buffer (as `learning_starts`), then
`--warmup-updates` untimed updates and a few untimed learning steps at every replay ratio (torch.compile
compiles, CUDA graphs are captured, caches fill). Then rounds alternate the libraries for each
replay ratio in `--replay-ratios` (default 1 and 4), `--steps` env steps each; medians over rounds
are reported with the slowest and fastest round. Both buffers hold every transition of the run
(capacity = the run's env steps, at most drq.yaml's buffer_size; `--buffer-size` overrides): their
size does not change the cost of an add or a sample, and stable-baselines3 keeps obs and next_obs
per transition (2 x 63.5 KB), so its 100k-transition buffer alone would need 12.7 GB of host memory
(`optimize_memory_usage` is not used: it needs `handle_timeout_termination=False`, which changes
what SAC learns at the time-limit ends of DMC episodes, and is not needed at this size).
    python bench/drq_env_throughput.py --device cuda --compile none,cudagraphs     # the GPU issue
    python bench/drq_env_throughput.py --threads 2 --steps 10 --warmup 500          # 2-core CPU
    python bench/drq_env_throughput.py [--env dmc:walker-walk] [--device cpu|cuda] [--compile none]
        [--replay-ratios 1,4] [--batch B] [--steps 100] [--rounds 3] [--warmup 1000]
        [--warmup-updates 5] [--buffer-size N] [--threads N] [--no-sb3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing
sys.path.insert(0, str(ROOT / "bench"))
from pixel_throughput import SB3, agent_config, sync, timed  # noqa: E402
from sac_throughput import parse_modes, start_run  # noqa: E402

from agents import make_agent  # noqa: E402
from envs import make_env  # noqa: E402
from runner.build import env_kwargs, make_buffer  # noqa: E402


def pixel_env(env_id: str, seed: int):
    """The training env as the trainer makes it (runner.build.make_envs) for env=dmc_pixels."""
    return make_env(env_id, seed=seed, training=True, **env_kwargs({"id": env_id, "pixels": True}))


class OursDrQ:
    """plasticrl's DrQ in the trainer's loop: act, step, store, `replay_ratio` updates."""

    def __init__(self, env_id: str, batch: int, mode: str, capacity: int, device, seed: int = 0):
        self.cfg = dict(agent_config("drq"), batch_size=batch, compile=mode, buffer_size=capacity)
        self.name, self.mode, self.device, self.batch = f"plasticrl DrQ {mode}", mode, torch.device(device), batch
        self.env = pixel_env(env_id, seed)
        self.agent = make_agent(self.cfg, self.env.observation_space, self.env.action_space, device)
        self.buffer = make_buffer(self.cfg, self.env, {"id": env_id, "pixels": True}, device, seed)
        self.obs = self.env.reset(seed=seed)[0]

    def loop(self, steps: int, replay_ratio: int, learn: bool = True) -> None:
        for _ in range(steps):
            action = self.agent.act(self.obs) if learn else self.env.action_space.sample()
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(self.obs, action, reward, next_obs, terminated, truncated)
            self.obs = self.env.reset()[0] if terminated or truncated else next_obs
            for _ in range(replay_ratio if learn else 0):
                self.agent.update(self.buffer.sample(self.batch))
        sync(self.device)

    def updates(self, count: int) -> None:
        for _ in range(count):
            self.agent.update(self.buffer.sample(self.batch))
        sync(self.device)


class PeerSAC(SB3):
    """stable-baselines3 SAC("CnnPolicy") as in bench/pixel_throughput.py, learning on a real env."""

    def __init__(self, env_id: str, batch: int, capacity: int, device, warmup: int, seed: int = 0):
        env = pixel_env(env_id, seed)
        super().__init__("dmc", env.observation_space, env.action_space, batch, device,
                         transitions=capacity - 1, n_step=1)  # a buffer of `capacity` transitions
        self.model.set_env(env)
        self.model.learning_starts = warmup  # random actions, no updates, for `warmup` steps
        self.model.learn(warmup)

    def loop(self, steps: int, replay_ratio: int) -> None:
        self.model.gradient_steps = replay_ratio  # read by `learn` after every env step
        self.model.learn(steps, reset_num_timesteps=False)
        sync(self.device)


class EnvAlone:
    """The env with random actions: render included, nothing stored or learnt."""

    name = "env alone"

    def __init__(self, env_id: str, seed: int = 0):
        self.env = pixel_env(env_id, seed)
        self.env.reset(seed=seed)

    def loop(self, steps: int, replay_ratio: int = 0) -> None:
        for _ in range(steps):
            _, _, terminated, truncated, _ = self.env.step(self.env.action_space.sample())
            if terminated or truncated:
                self.env.reset()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dmc:walker-walk", help="a dmc:<domain>-<task> id (rendered)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", default="none",
                   help="plasticrl compile mode(s), comma list: none | compile | cudagraphs (CUDA only)")
    p.add_argument("--replay-ratios", default="1,4", help="updates per env step, comma list")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of both libraries (default: drq.yaml's 512 on cuda, 128 on cpu)")
    p.add_argument("--steps", type=int, default=100, help="timed env steps per library, ratio and round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--warmup", type=int, default=1000, help="random env steps filling each buffer first")
    p.add_argument("--warmup-updates", type=int, default=5,
                   help="untimed updates per library after the random steps (>= 5 under cudagraphs)")
    p.add_argument("--buffer-size", type=int, default=None,
                   help="replay capacity of both libraries (default: the run's env steps, at most drq.yaml's)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every library")
    p.add_argument("--no-sb3", action="store_true", help="time plasticrl (and the env alone) only")
    args = p.parse_args()
    modes = parse_modes(args.compile, args.device, "--compile")
    ratios = [int(r) for r in args.replay_ratios.split(",") if r.strip()]
    if not ratios or min(ratios) < 1:
        raise SystemExit(f"--replay-ratios {args.replay_ratios!r}: integers >= 1, comma separated")
    if args.batch is None:
        args.batch = agent_config("drq")["batch_size"] if torch.device(args.device).type == "cuda" else 128
    if args.warmup < args.batch:
        raise SystemExit(f"--warmup {args.warmup} < --batch {args.batch}: fill the buffer with a batch at least")
    if "cudagraphs" in modes and args.warmup_updates < 5:
        raise SystemExit("--warmup-updates must be >= 5 under cudagraphs (3 eager calls, capture, replay)")
    header = start_run(args.threads, args.device)

    settle = 2  # untimed learning steps per replay ratio after the warm-up updates
    run_steps = args.warmup + settle * len(ratios) + args.rounds * len(ratios) * args.steps
    capacity = args.buffer_size or min(agent_config("drq")["buffer_size"], run_steps + run_steps // 100 + 10)
    libs = []
    for mode in modes:
        ours = OursDrQ(args.env, args.batch, mode, capacity, args.device)
        elapsed = timed(ours.loop, args.warmup, 0, False)
        print(f"{ours.name}: {args.warmup} random steps in {elapsed:.1f} s", flush=True)
        libs.append(ours)
    if not args.no_sb3:
        elapsed = timed(lambda: libs.append(PeerSAC(args.env, args.batch, capacity, args.device, args.warmup)))
        print(f"{libs[-1].name}: {args.warmup} random steps in {elapsed:.1f} s", flush=True)
    libs.append(EnvAlone(args.env))
    for lib in libs:  # compile, capture, fill caches: nothing here is timed
        if isinstance(lib, EnvAlone):
            continue
        elapsed = timed(lib.updates, args.warmup_updates)
        for rr in ratios:
            elapsed += timed(lib.loop, settle, rr)
        print(f"warm-up {lib.name}: {elapsed:.1f} s for {args.warmup_updates} updates and "
              f"{settle} learning steps at each replay ratio", flush=True)

    rates = {(lib.name, rr): [] for rr in ratios for lib in libs}
    for r in range(args.rounds):
        for rr in ratios:
            for lib in libs:
                rates[lib.name, rr].append(args.steps / timed(lib.loop, args.steps, rr))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{name} rr {rr} {v[-1]:.1f}" for (name, rr), v in rates.items()), flush=True)

    env = libs[0].env
    print()
    print(header)
    print(f"DrQ env steps/s in the training loop on {args.env} pixels {env.observation_space.shape} uint8 "
          f"(MUJOCO_GL={os.environ.get('MUJOCO_GL', '?')}), action dim {env.action_space.shape[0]}, batch "
          f"{args.batch}, buffer capacity {capacity}; median of {args.rounds} interleaved rounds of "
          f"{args.steps} env steps; load average at end {os.getloadavg()[0]:.2f}")
    head = (f"{'replay ratio':>12s}  {'library':26s} {'env steps/s':>11s} {'min':>8s} {'max':>8s} "
            f"{'ms/step':>9s} {'updates/s':>10s}")
    print(head)
    print("-" * len(head))
    med = {key: statistics.median(v) for key, v in rates.items()}
    for (name, rr), values in rates.items():
        updates = f"{'-':>10s}" if name == EnvAlone.name else f"{med[name, rr] * rr:10.1f}"
        print(f"{rr:12d}  {name:26s} {med[name, rr]:11.2f} {min(values):8.2f} {max(values):8.2f} "
              f"{1e3 / med[name, rr]:9.1f} {updates}")
    peer = next((lib.name for lib in libs if isinstance(lib, PeerSAC)), None)
    for rr in ratios:
        for lib in libs[:len(modes)]:
            if peer is not None:
                print(f"replay ratio {rr}: ratio {lib.name} / {peer}: {med[lib.name, rr] / med[peer, rr]:.2f}x")
            if lib.mode != "none" and "none" in modes:
                base = med["plasticrl DrQ none", rr]
                print(f"replay ratio {rr}: ratio {lib.name} / plasticrl DrQ none: {med[lib.name, rr] / base:.2f}x")
    print("note: different encoders: DrQ's 4 x 32 3x3 convs shared by actor and critic, with random shift,")
    print("      vs SB3's separate NatureCNNs for actor and critic (+ targets), no augmentation.")


if __name__ == "__main__":
    main()
