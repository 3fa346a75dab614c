"""What a run is made of, built from its config: the training and evaluation envs and the
replay buffer that fits their spaces (frames stored once for pixels, flat tensors otherwise)."""
from __future__ import annotations

import functools

import numpy as np
import torch
from gymnasium import spaces

from envs import check_env_id, make_env
from replay import PrioritizedSampler, ReplayBuffer
from runner.seeding import derived_seed

TASKS_STREAM = 4  # derived_seed(seed, TASKS_STREAM): the draws of a continual run's task sequence


def env_kwargs(env_cfg: dict) -> dict:
    """`make_env` arguments of an env config (keys added after a config was saved default)."""
    kwargs = {"action_repeat": env_cfg.get("action_repeat"), "pixels": env_cfg.get("pixels", False),
              "frame_stack": env_cfg.get("frame_stack")}
    if env_cfg.get("image_size"):  # DMC pixels only (Atari is 84x84 by protocol)
        kwargs["image_size"] = env_cfg["image_size"]
    if env_cfg.get("grayscale"):  # DMC pixels only
        kwargs["grayscale"] = env_cfg["grayscale"]
    return kwargs


def make_envs(env_cfg: dict, seed: int):
    """(training env, evaluation env). The evaluation env has its own seed and none of the
    training-only parts of a protocol (Atari: life loss as terminal, reward clipping)."""
    kwargs = env_kwargs(env_cfg)
    train_env = make_env(env_cfg["id"], seed=seed, training=True, **kwargs)
    eval_env = make_env(env_cfg["id"], seed=seed + 1, training=False, **kwargs)
    sequence = env_cfg.get("sequence")
    if sequence:  # continual RL: both envs under the same task sequence (drawn from the run seed)
        from envs.sequence import TaskSequence
        args = (sequence["perturb"], sequence["tasks"], derived_seed(seed, TASKS_STREAM))
        train_env, eval_env = TaskSequence(train_env, *args), TaskSequence(eval_env, *args)
    return train_env, eval_env


def train_env_maker(env_cfg: dict, seed: int):
    """A picklable `make()` of the training env `make_envs` builds (without a task sequence):
    for an env stepped in another process (envs/subprocess_env.py)."""
    return functools.partial(make_env, env_cfg["id"], seed=seed, training=True, **env_kwargs(env_cfg))


def is_pixel_space(space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def make_buffer(agent_cfg: dict, env, env_cfg: dict, device, seed: int) -> ReplayBuffer:
    """The shared replay buffer for `env`'s spaces. Pixel observations [k * C, H, W] (k the
    frame stack) are stored one frame per transition and restacked when sampled."""
    obs_space, act_space = env.observation_space, env.action_space
    discrete = isinstance(act_space, spaces.Discrete)
    action_shape = () if discrete else act_space.shape
    action_dtype = torch.int64 if discrete else torch.float32
    common = dict(device=device, seed=seed, n_step=agent_cfg["n_step"], gamma=agent_cfg["gamma"])
    buffer = _storage_buffer(agent_cfg, env_cfg, obs_space, action_shape, action_dtype, common)
    if agent_cfg.get("prioritized", False):  # BBF: sum-tree sampling, priorities from the agent
        buffer.sampler = PrioritizedSampler(device, seed)
    return buffer


def _storage_buffer(agent_cfg, env_cfg, obs_space, action_shape, action_dtype, common):
    if is_pixel_space(obs_space):
        stack = env_cfg.get("frame_stack") or default_frame_stack(env_cfg["id"])
        channels, height, width = obs_space.shape
        if channels % stack:
            raise ValueError(f"observation channels {channels} are not a multiple of the frame "
                             f"stack {stack} (env.frame_stack)")
        # Atari: stacks zero-padded before a game / life start (Dopamine and BBF); DMC: the first
        # frame repeated (gymnasium FrameStackObservation padding "reset", jaxrl's FrameStack)
        padding = "zero" if check_env_id(env_cfg["id"]).kind == "atari" else "repeat"
        return ReplayBuffer.for_pixels(agent_cfg["buffer_size"], (channels // stack, height, width),
                                       stack, action_shape, action_dtype, padding=padding, **common)
    return ReplayBuffer.for_spaces(agent_cfg["buffer_size"], obs_space.shape, action_shape,
                                   action_dtype=action_dtype, **common)


def default_frame_stack(env_id: str) -> int:
    """`make_env`'s default stack: 4 frames on Atari (Atari-100k), 3 for DMC pixels (DrQ)."""
    return 4 if check_env_id(env_id).kind == "atari" else 3


def score_normalizer(env_id: str):
    """score -> human-normalised score for Atari games, None for suites without one."""
    parsed = check_env_id(env_id)
    if parsed.kind != "atari":
        return None
    from envs.atari_games import human_normalized

    return lambda score: human_normalized(parsed.name, score)
