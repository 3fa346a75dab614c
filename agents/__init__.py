"""Agents. Each agent is an nn.Module with stable submodule names, an `optimizers` dict,
`act`/`predict`, `update(batch) -> metrics`, `save`/`load`; none contains reset logic."""
import numpy as np
from gymnasium import spaces

from agents.bbf import BBF, BBF_DEFAULTS
from agents.drq import DRQ_DEFAULTS, DrQ
from agents.drq_atari import DRQ_ATARI_DEFAULTS, DrQAtari
from agents.iql import IQL, IQL_DEFAULTS
from agents.sac import SAC, SAC_DEFAULTS

# name -> (class, constructor defaults). Config keys the trainer consumes are not passed on.
AGENTS = {"sac": (SAC, SAC_DEFAULTS), "iql": (IQL, IQL_DEFAULTS), "drq": (DrQ, DRQ_DEFAULTS),
          "drq_atari": (DrQAtari, DRQ_ATARI_DEFAULTS), "bbf": (BBF, BBF_DEFAULTS)}
PIXEL_AGENTS = {"drq", "drq_atari", "bbf"}  # take uint8 [C, H, W] observations; the others flat vectors
DISCRETE_AGENTS = {"drq_atari", "bbf"}  # take Discrete(n) actions; the others Box actions in [-1, 1]
# image_size / grayscale / learning_starts: read by the env configs (${oc.select:agent.<key>,...})
TRAINER_KEYS = {"name", "replay_ratio", "batch_size", "buffer_size", "gamma", "n_step", "prioritized",
                "image_size", "grayscale", "learning_starts"}


def agent_kwargs(agent_cfg: dict) -> dict:
    """The constructor arguments in an agent config (everything but the trainer's keys)."""
    return {k: v for k, v in agent_cfg.items() if k not in TRAINER_KEYS}


def _space_error(name: str, what: str, space) -> ValueError:
    return ValueError(f"agent '{name}' needs {what}, but the env has {space}; "
                      f"pixel agents: {sorted(PIXEL_AGENTS)}, discrete-action agents: "
                      f"{sorted(DISCRETE_AGENTS)}")


def make_agent(agent_cfg: dict, observation_space, action_space, device="cpu"):
    """Build the agent named by `agent_cfg['name']` for the env's spaces (checked here, with an
    error naming the agents that fit)."""
    name = agent_cfg["name"]
    if name not in AGENTS:
        raise ValueError(f"unknown agent '{name}', allowed: {sorted(AGENTS)}")
    cls, _ = AGENTS[name]
    image = len(observation_space.shape) == 3 and observation_space.dtype == np.uint8
    if (name in PIXEL_AGENTS) != image:
        raise _space_error(name, "uint8 [C, H, W] pixels" if name in PIXEL_AGENTS
                           else "flat vector observations", observation_space)
    discrete = isinstance(action_space, spaces.Discrete)
    if (name in DISCRETE_AGENTS) != discrete:
        raise _space_error(name, "Discrete actions" if name in DISCRETE_AGENTS
                           else "Box actions", action_space)
    obs_arg = tuple(observation_space.shape) if image else observation_space.shape[0]
    action_arg = int(action_space.n) if discrete else action_space.shape[0]
    return cls(obs_arg, action_arg, device=device, **agent_kwargs(agent_cfg))


__all__ = ["SAC", "IQL", "DrQ", "DrQAtari", "BBF", "AGENTS", "make_agent", "agent_kwargs"]
