"""Record a Minari dataset by rolling out a policy in one of our envs.

    python -m runner.collect --env gym:Pendulum-v1 --dataset-id plasticrl/pendulum-random-v0 \
        --episodes 10 --root data/minari                              # uniform random actions
    python -m runner.collect --env dmc:cheetah-run --agent runs/<run>/agent.pt --noise-std 0.2 \
        --epsilon 0.1 --steps 100000 --dataset-id cheetah/medium-v0   # a trained agent, noisy

Rows are what `envs.make_env` gives (flat float32 observations, actions in [-1, 1]); the dataset
stores those spaces, the env's gymnasium spec with our wrappers (Minari's `recover_environment()`
rebuilds the env that takes the stored actions) and `plasticrl_*` metadata (env id, action
repeat, policy, seed, and `obs_layout`: the observation's keys, shapes and order, by which the
loader maps the columns onto an env's, replay/dataset_layout.py). Episode e resets
with seed `derived_seed(seed, 3, e)`. With `--steps` the last episode is cut at the budget and
its final step is recorded as truncated. An existing dataset is never replaced without
`--overwrite`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from envs import make_env
from envs.obs_layout import obs_layout
from envs.registry import EnvIdError, check_env_id
from replay.dataset_writer import check_writable, write_dataset
from runner.seeding import derived_seed

RESET_STREAM = 3  # reset seeds: derived_seed(seed, RESET_STREAM, episode)


def load_agent(path, device="cpu"):
    """Any agent of `agents.AGENTS` saved with `agent.save` (the file names its class)."""
    from agents import AGENTS

    name = torch.load(path, map_location="cpu", weights_only=False).get("agent")
    classes = {cls.__name__: cls for cls, _ in AGENTS.values()}
    if name not in classes:
        raise ValueError(f"{path} holds agent '{name}', not one of {sorted(classes)}")
    return classes[name].load(path, device=device)


class CollectPolicy:
    """Uniform random actions, or an agent's action with probability 1 - epsilon (else uniform),
    plus N(0, noise_std^2) noise clipped to [-1, 1]."""

    def __init__(self, action_space, agent=None, deterministic=False, noise_std=0.0, epsilon=0.0,
                 seed=0):
        self.action_space, self.agent = action_space, agent
        self.deterministic, self.noise_std, self.epsilon = deterministic, noise_std, epsilon
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs):
        if self.agent is None or (self.epsilon and self.rng.random() < self.epsilon):
            return self.action_space.sample()
        action = self.agent.act(obs, deterministic=self.deterministic)
        if self.noise_std:
            noise = self.noise_std * self.rng.standard_normal(action.shape)
            action = np.clip(action + noise, -1.0, 1.0).astype(np.float32)
        return action

    def describe(self) -> str:
        if self.agent is None:
            return "random"
        text = type(self.agent).__name__ + (" (mean action)" if self.deterministic else "")
        if self.noise_std:
            text += f" + gaussian noise std {self.noise_std}"
        if self.epsilon:
            text += f", epsilon {self.epsilon} uniform"
        return text


def rollout(env, policy, episodes: int | None = None, steps: int | None = None, seed: int = 0,
            progress: bool = True) -> list:
    """`episodes` whole episodes, or `steps` transitions; returns minari EpisodeBuffers."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    out, count = [], 0
    bar = tqdm(total=episodes or steps, unit="episode" if episodes else "step", disable=not progress,
               desc="collect")
    while (len(out) < episodes) if episodes else (count < steps):
        reset_seed = derived_seed(seed, RESET_STREAM, len(out))
        obs, _ = env.reset(seed=reset_seed)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            action = policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            count += 1
            truncated = bool(truncated) or (steps is not None and count >= steps and not terminated)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(truncated)
            done = terminated or truncated
            if not episodes:
                bar.update(1)
        out.append(EpisodeBuffer(id=len(out), seed=reset_seed, observations=np.stack(observations),
                                 actions=np.stack(actions), rewards=rewards, terminations=terms,
                                 truncations=truncs))
        if episodes:
            bar.update(1)
        bar.set_postfix(episodes=len(out), steps=count)
    bar.close()
    return out


def collect(env_id: str, dataset_id: str, *, episodes=None, steps=None, root=None, agent=None,
            deterministic=False, noise_std=0.0, epsilon=0.0, seed=0, action_repeat=1,
            device="cpu", algorithm_name=None, description=None, author=None, overwrite=False,
            progress=True) -> Path:
    """Roll out and write the dataset; returns its directory. See the module docstring."""
    if (episodes is None) == (steps is None) or (episodes if steps is None else steps) < 1:
        raise ValueError("give exactly one of episodes / steps, >= 1")
    if not 0.0 <= epsilon <= 1.0 or noise_std < 0:
        raise ValueError(f"need 0 <= epsilon <= 1 and noise_std >= 0, got {epsilon}, {noise_std}")
    if agent is None and (deterministic or noise_std or epsilon):
        raise ValueError("--deterministic, --noise-std and --epsilon apply to an --agent policy")
    check_writable(dataset_id, root, overwrite)  # fail before spending time collecting
    check_env_id(env_id)
    env = make_env(env_id, seed=seed, action_repeat=action_repeat)
    model = None
    if agent is not None:
        model = load_agent(agent, device)
        if env.action_space.shape is None or len(env.action_space.shape) != 1:
            raise ValueError(f"an --agent needs a Box action space; {env_id} has {env.action_space}")
        dims = (model.hparams["obs_dim"], model.hparams["action_dim"])
        if dims != (env.observation_space.shape[0], env.action_space.shape[0]):
            raise ValueError(f"agent {agent} has (obs_dim, action_dim) = {dims}, env {env_id} has "
                             f"{(env.observation_space.shape[0], env.action_space.shape[0])}")
    torch.manual_seed(seed)
    policy = CollectPolicy(env.action_space, model, deterministic, noise_std, epsilon, seed)
    data = rollout(env, policy, episodes, steps, seed, progress)
    name = algorithm_name or ("random" if model is None else type(model).__name__)
    text = description or (f"{policy.describe()} in {env_id} (plasticrl envs.make_env: flat "
                           f"float32 observations, actions in [-1, 1]), seed {seed}")
    meta = {"env_id": env_id, "action_repeat": int(action_repeat), "policy": policy.describe(),
            "seed": int(seed), "agent_path": str(agent) if agent else "",
            "obs_layout": obs_layout(env).to_json()}
    return write_dataset(data, dataset_id, env.observation_space, env.action_space, root=root,
                         env_spec=env.spec, algorithm_name=name, description=text,
                         metadata=meta, author=author, overwrite=overwrite)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.collect", description=__doc__.split("\n")[0])
    p.add_argument("--env", required=True, help="env id: dmc:<domain>-<task> or gym:<id>")
    p.add_argument("--dataset-id", required=True, help="minari id, (namespace/)name-v<version>")
    p.add_argument("--root", help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--episodes", type=int, help="number of whole episodes")
    size.add_argument("--steps", type=int, help="number of transitions (the last episode is cut)")
    p.add_argument("--agent", help="a saved agent (agent.pt); default: uniform random actions")
    p.add_argument("--deterministic", action="store_true", help="the agent's mean action")
    p.add_argument("--noise-std", type=float, default=0.0, help="Gaussian action noise std")
    p.add_argument("--epsilon", type=float, default=0.0, help="probability of a uniform action")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--action-repeat", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--algorithm-name", help="stored as algorithm_name (default: random | SAC | ...)")
    p.add_argument("--description")
    p.add_argument("--author")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        path = collect(a.env, a.dataset_id, episodes=a.episodes, steps=a.steps, root=a.root,
                       agent=a.agent, deterministic=a.deterministic, noise_std=a.noise_std,
                       epsilon=a.epsilon, seed=a.seed, action_repeat=a.action_repeat,
                       device=a.device, algorithm_name=a.algorithm_name,
                       description=a.description, author=a.author, overwrite=a.overwrite,
                       progress=not a.no_progress)
    except (ValueError, FileExistsError, FileNotFoundError, EnvIdError) as exc:
        print(f"collect: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
