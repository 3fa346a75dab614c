"""Pixel agents' gradient updates per second: plasticrl vs stable-baselines3, same run.

What is timed is `sample + update` only (no env, no acting), from a replay buffer filled with
random uint8 frames (the pixel values do not change the work):
  atari: our DrQAtari (DrQ(eps): double + dueling DQN, random shift + intensity augmentation,
         n-step 10, target copied every update; configs/agent/drq_atari.yaml) on frame stacks
         (4, 84, 84) from `ReplayBuffer.for_pixels`, vs SB3 DQN("CnnPolicy") with the same
         batch (32), lr 1e-4, n_steps 10, timed as `model.train(gradient_steps=K, batch_size=32)`.
         SB3's DQN has no double Q, no dueling head and no augmentation (and never copies its
         target inside `train`): our update does more work than the peer's (both encode two
         batches: ours reuses Q(s') as Q'(s') while the target equals the online net).
  dmc:   our DrQ (SAC from pixels, 4 x 32 conv encoder, random shift; configs/agent/drq.yaml)
         on (9, 84, 84) stacks (3 RGB frames), action dim 6, vs SB3 SAC("CnnPolicy") (one
         NatureCNN per actor/critic, 2x256 MLPs, lr 3e-4, tau 0.005, initial alpha 0.1) timed
         as `model.train(gradient_steps=K, batch_size=B)`, both at the batch `--batch` (the
         reference 512 is slow on a CPU; 128 by default there).
Both libraries run on the same device with the same torch thread count. Rounds alternate
A/B/A/B (ours, then SB3, `--updates-per-round` updates each) because shared machines are noisy;
medians over rounds are reported, with the slowest and fastest round. The Atari rows also give
the projected wall time of the updates of one Atari-100k run (100k agent steps at replay
ratio 1 = 100k updates; env steps, acting and evaluation not included).
    OMP_NUM_THREADS=2 python bench/pixel_throughput.py --threads 2
    python bench/pixel_throughput.py [--which atari|dmc|both] [--device cpu|cuda] [--threads N]
        [--rounds 3] [--updates-per-round 10] [--batch 128] [--transitions 10000] [--no-sb3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import torch
import yaml
from gymnasium import spaces
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing
from agents import make_agent  # noqa: E402
from replay import ReplayBuffer  # noqa: E402

# setting -> frame shape (C, H, W), frames per stack, episode length (agent steps), agent config
SETTINGS = {
    "atari": dict(frame_shape=(1, 84, 84), stack=4, episode=400, config="drq_atari"),
    "dmc": dict(frame_shape=(3, 84, 84), stack=3, episode=500, config="drq"),  # 1000 / action repeat 2
}
ATARI_100K_UPDATES = 100_000  # 100k agent steps at replay ratio 1


def agent_config(name: str) -> dict:
    """The reference agent settings, read from configs/agent/<name>.yaml."""
    with open(ROOT / "configs" / "agent" / f"{name}.yaml") as f:
        return yaml.safe_load(f)


def spaces_for(setting: str, atari_actions: int, dmc_action_dim: int):
    s = SETTINGS[setting]
    c, h, w = s["frame_shape"]
    obs = spaces.Box(0, 255, (s["stack"] * c, h, w), np.uint8)
    act = (spaces.Discrete(atari_actions) if setting == "atari"
           else spaces.Box(-1.0, 1.0, (dmc_action_dim,), np.float32))
    return obs, act


def random_stream(setting: str, action_space, transitions: int, seed: int = 0):
    """`transitions` steps of `episode`-step episodes of random frames (repeat-padded stacks,
    newest frame last), every other episode terminated, the others truncated. Yields
    (obs, action, reward, next_obs, terminated, truncated) with host numpy values."""
    s = SETTINGS[setting]
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (256, *s["frame_shape"]), dtype=np.uint8)  # frames drawn from
    discrete = isinstance(action_space, spaces.Discrete)
    for step in range(transitions):
        t, episode = step % s["episode"], step // s["episode"]
        if t == 0:
            frames = [pool[rng.integers(len(pool))]] * s["stack"]
        nxt = frames[1:] + [pool[rng.integers(len(pool))]]
        action = (int(rng.integers(action_space.n)) if discrete
                  else rng.uniform(-1, 1, action_space.shape).astype(np.float32))
        last = t == s["episode"] - 1 or step == transitions - 1
        terminated, truncated = last and episode % 2 == 1, last and episode % 2 == 0
        yield (np.concatenate(frames), action, float(rng.normal()), np.concatenate(nxt),
               terminated, truncated)
        frames = nxt


def forward_macs(module: nn.Module, *inputs) -> int:
    """Multiply-accumulates of the Conv2d and Linear layers in one forward of `module`,
    per input in the batch."""
    total = [0]

    def hook(layer, args, out):
        if isinstance(layer, nn.Conv2d):
            k = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            k = layer.in_features
        total[0] += out.numel() // out.shape[0] * k

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Ours:
    """plasticrl's pixel agent on a `ReplayBuffer.for_pixels` (frames stored once)."""

    def __init__(self, setting, obs_space, act_space, batch, device):
        cfg = agent_config(SETTINGS[setting]["config"])
        self.name = "plasticrl " + ("DrQAtari" if setting == "atari" else "DrQ")
        self.device, self.batch = torch.device(device), batch
        self.agent = make_agent(cfg, obs_space, act_space, device)
        s = SETTINGS[setting]
        discrete = isinstance(act_space, spaces.Discrete)
        self.capacity_args = dict(frame_shape=s["frame_shape"], stack=s["stack"],
                                  action_shape=() if discrete else act_space.shape,
                                  action_dtype=torch.int64 if discrete else torch.float32,
                                  device=device, seed=0, n_step=cfg["n_step"], gamma=cfg["gamma"])
        self.n_step = cfg["n_step"]
        self.buffer = None

    def make_buffer(self, transitions: int, episode: int):
        slots = transitions + transitions // episode + 2  # an L-step episode takes L + 1 slots
        self.buffer = ReplayBuffer.for_pixels(slots, **self.capacity_args)
        return self.buffer.add

    def updates(self, count: int) -> None:
        for _ in range(count):
            self.agent.update(self.buffer.sample(self.batch))
        sync(self.device)

    def q_macs(self, obs_space, act_space) -> int:
        x = torch.zeros(1, *obs_space.shape, dtype=torch.uint8, device=self.device)
        if isinstance(act_space, spaces.Discrete):
            return forward_macs(QForward(lambda o: self.agent.q_values(o), self.agent), x)
        a = torch.zeros(1, *act_space.shape, device=self.device)
        return forward_macs(QForward(lambda o, u: self.agent.critic(self.agent.encoder(o), u),
                                     self.agent), x, a)


class QForward(nn.Module):
    """Wraps a callable so that `forward_macs` sees the layers of `owner`."""

    def __init__(self, fn, owner: nn.Module):
        super().__init__()
        self.fn, self.owner = fn, owner

    def forward(self, *inputs):
        return self.fn(*inputs)


class SpacesOnly(gymnasium.Env):
    """An env that only carries the spaces SB3 builds its model from; it is never stepped
    during timing (the buffer is filled directly)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}


class SB3:
    """stable-baselines3 DQN / SAC with "CnnPolicy", timed through `model.train`."""

    def __init__(self, setting, obs_space, act_space, batch, device, transitions, n_step):
        from stable_baselines3 import DQN, SAC
        from stable_baselines3.common.logger import Logger

        env = SpacesOnly(obs_space, act_space)
        common = dict(buffer_size=transitions + 1, learning_starts=0, batch_size=batch,
                      gamma=0.99, train_freq=1, gradient_steps=1, n_steps=n_step, device=device,
                      seed=0, verbose=0)
        if setting == "atari":
            self.name = "stable-baselines3 DQN"
            self.model = DQN("CnnPolicy", env, learning_rate=1e-4, target_update_interval=1,
                             policy_kwargs=dict(optimizer_kwargs=dict(eps=1.5e-4)), **common)
        else:
            self.name = "stable-baselines3 SAC"
            self.model = SAC("CnnPolicy", env, learning_rate=3e-4, tau=0.005, ent_coef="auto_0.1",
                             policy_kwargs=dict(net_arch=[256, 256]), **common)
        self.model.set_logger(Logger(folder=None, output_formats=[]))  # `train` records to it
        self.device, self.batch = torch.device(device), batch

    def make_buffer(self, transitions: int, episode: int):
        rb = self.model.replay_buffer

        def add(obs, action, reward, next_obs, terminated, truncated):
            rb.add(obs[None], next_obs[None], np.asarray(action).reshape(1, -1),
                   np.array([reward], np.float32), np.array([terminated or truncated]),
                   [{"TimeLimit.truncated": truncated}])
        return add

    def updates(self, count: int) -> None:
        self.model.train(gradient_steps=count, batch_size=self.batch)
        sync(self.device)

    def q_macs(self, obs_space, act_space) -> int:
        x = torch.zeros(1, *obs_space.shape, dtype=torch.uint8, device=self.device)
        if isinstance(act_space, spaces.Discrete):
            return forward_macs(self.model.q_net, x)
        a = torch.zeros(1, *act_space.shape, device=self.device)
        return forward_macs(self.model.critic, x, a)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def run_setting(setting: str, args) -> dict:
    obs_space, act_space = spaces_for(setting, args.atari_actions, args.dmc_action_dim)
    batch = 32 if setting == "atari" else args.batch  # Atari: the DrQ(eps) reference batch
    episode = SETTINGS[setting]["episode"]
    start = time.perf_counter()
    ours = Ours(setting, obs_space, act_space, batch, args.device)
    libs = [ours]
    if not args.no_sb3:
        libs.append(SB3(setting, obs_space, act_space, batch, args.device, args.transitions,
                        ours.n_step))
    adds = [lib.make_buffer(args.transitions, episode) for lib in libs]
    for transition in random_stream(setting, act_space, args.transitions):
        for add in adds:  # the same transitions into every buffer
            add(*transition)
    print(f"[{setting}] built and filled {args.transitions} transitions "
          f"({args.transitions // episode} episodes of {episode} steps) in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    for lib in libs:  # first calls allocate and fill caches
        print(f"[{setting}] warm-up {lib.name}: {timed(lib.updates, args.warmup):.1f} s "
              f"for {args.warmup} updates", flush=True)
    rates = {lib.name: [] for lib in libs}
    for r in range(args.rounds):
        for lib in libs:  # A/B/A/B...
            rates[lib.name].append(args.updates_per_round / timed(lib.updates, args.updates_per_round))
        print(f"[{setting}] round {r + 1}/{args.rounds}: "
              + ", ".join(f"{n} {v[-1]:.2f}/s" for n, v in rates.items()), flush=True)
    macs = {lib.name: lib.q_macs(obs_space, act_space) for lib in libs}
    return dict(setting=setting, batch=batch, obs=obs_space.shape, act=act_space, rates=rates,
                macs=macs, ours=ours.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--which", choices=("atari", "dmc", "both"), default="both")
    p.add_argument("--device", default="cpu", help="cpu | cuda (SB3 runs on the same device)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both libraries")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--updates-per-round", type=int, default=10, help="timed updates per library per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates per library before the rounds")
    p.add_argument("--batch", type=int, default=None,
                   help="DMC batch for both libraries (default: 128 on cpu, the reference 512 on cuda); "
                        "Atari always uses the reference 32")
    p.add_argument("--transitions", type=int, default=10_000, help="random transitions in each buffer")
    p.add_argument("--atari-actions", type=int, default=18, help="Atari action count (18 full, e.g. 6 Pong)")
    p.add_argument("--dmc-action-dim", type=int, default=6, help="DMC action dimension (6: cheetah, walker)")
    p.add_argument("--no-sb3", action="store_true", help="time plasticrl only")
    args = p.parse_args()
    if args.batch is None:
        args.batch = 512 if args.device.startswith("cuda") else 128
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    load_before = os.getloadavg()

    settings = ["atari", "dmc"] if args.which == "both" else [args.which]
    results = [run_setting(s, args) for s in settings]

    import stable_baselines3
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"cpu ({torch.get_num_threads()} torch threads)")
    env_vars = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
                         if k in os.environ) or "no OMP_* set"
    load_after = os.getloadavg()
    print()
    print(f"Pixel-agent gradient updates/s (sample + update) on {device}; torch {torch.__version__}, "
          f"stable-baselines3 {stable_baselines3.__version__}; {env_vars}")
    print(f"median of {args.rounds} interleaved rounds of {args.updates_per_round} updates per library; "
          f"{args.transitions} random transitions per buffer; load average (1/5/15 min) "
          f"{'/'.join(f'{x:.2f}' for x in load_before)} at start, "
          f"{'/'.join(f'{x:.2f}' for x in load_after)} at end")
    header = (f"{'setting':8s} {'library':24s} {'batch':>5s} {'updates/s':>10s} {'min':>8s} {'max':>8s} "
              f"{'ms/update':>10s} {'Q fwd MMAC/img':>15s}")
    print(header)
    print("-" * len(header))
    for res in results:
        for name, values in res["rates"].items():
            med = statistics.median(values)
            print(f"{res['setting']:8s} {name:24s} {res['batch']:5d} {med:10.2f} {min(values):8.2f} "
                  f"{max(values):8.2f} {1e3 / med:10.1f} {res['macs'][name] / 1e6:15.1f}")
    print()
    for res in results:
        med = {name: statistics.median(v) for name, v in res["rates"].items()}
        ours = med[res["ours"]]
        act = res["act"]
        acts = f"{act.n} actions" if isinstance(act, spaces.Discrete) else f"action dim {act.shape[0]}"
        print(f"{res['setting']}: obs {tuple(res['obs'])} uint8, {acts}, batch {res['batch']}")
        peers = [n for n in med if n != res["ours"]]
        for peer in peers:
            print(f"  ratio {res['ours']} / {peer}: {ours / med[peer]:.2f}x")
        if res["setting"] == "atari":
            print("  note: SB3 DQN has no double Q, no dueling head and no augmentation, and `train` "
                  "never copies its target;")
            print("        both encode 2 batches (with the target in sync ours reuses the online "
                  "Q(s') as Q'(s')), ours with SAME-padded convs (11x11 maps vs 7x7),")
            print("        plus shift + intensity augmentation and a full target copy every update: "
                  "it does more work per update.")
            for name, rate in med.items():
                print(f"  projected Atari-100k run, {name}: {ATARI_100K_UPDATES} updates / "
                      f"{rate:.2f} per s = {hours(ATARI_100K_UPDATES / rate)} (updates only)")
        else:
            print("  note: different encoders: DrQ's 4 x 32 3x3 convs (35x35 maps) shared by actor and "
                  "critic (actor on detached features), with random shift,")
            print("        vs SB3's separate NatureCNNs for actor and critic (+ targets), no augmentation.")


if __name__ == "__main__":
    main()
