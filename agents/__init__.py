"""Agents: each one subclass of `agents.base.Agent` (the contract: act, update -> UpdateResult,
replay_request, on_reset, ...), registered here by name with its constructor defaults; none
contains reset logic."""
import numpy as np
from gymnasium import spaces

from agents.base import ACTION_KINDS, OBSERVATION_KINDS, Agent, UpdateResult
from agents.bbf import BBF, BBF_DEFAULTS
from agents.drq import DRQ_DEFAULTS, DrQ
from agents.drq_atari import DRQ_ATARI_DEFAULTS, DrQAtari
from agents.iql import IQL, IQL_DEFAULTS
from agents.sac import SAC, SAC_DEFAULTS

# name -> (class, constructor defaults); config keys the trainer consumes are not passed on
AGENTS: dict[str, tuple[type, dict]] = {}
# image_size / grayscale / learning_starts: read by the env configs (${oc.select:agent.<key>,...})
TRAINER_KEYS = {"name", "replay_ratio", "batch_size", "buffer_size", "gamma", "n_step", "prioritized",
                "image_size", "grayscale", "learning_starts"}


def register_agent(name: str, cls: type, defaults: dict) -> None:
    """Make `cls` buildable as `agent.name=<name>` (configs, validation, make_agent): the one
    place a new agent is added. `defaults` are its constructor's keyword defaults."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"agent '{name}': {cls!r} is not a subclass of agents.base.Agent")
    if cls.observation_kind not in OBSERVATION_KINDS or cls.action_kind not in ACTION_KINDS:
        raise ValueError(f"agent '{name}': observation_kind {cls.observation_kind!r} must be one of "
                         f"{list(OBSERVATION_KINDS)}, action_kind {cls.action_kind!r} one of "
                         f"{list(ACTION_KINDS)}")
    clash = set(defaults) & TRAINER_KEYS
    if clash:
        raise ValueError(f"agent '{name}': constructor arguments {sorted(clash)} are trainer keys")
    AGENTS[name] = (cls, dict(defaults))


for _name, _cls, _defaults in (("sac", SAC, SAC_DEFAULTS), ("iql", IQL, IQL_DEFAULTS),
                               ("drq", DrQ, DRQ_DEFAULTS), ("drq_atari", DrQAtari, DRQ_ATARI_DEFAULTS),
                               ("bbf", BBF, BBF_DEFAULTS)):
    register_agent(_name, _cls, _defaults)


def agent_kwargs(agent_cfg: dict) -> dict:
    """The constructor arguments in an agent config (everything but the trainer's keys)."""
    return {k: v for k, v in agent_cfg.items() if k not in TRAINER_KEYS}


def agents_taking(observation_kind: str | None = None, action_kind: str | None = None) -> list[str]:
    """Names of the registered agents for these kinds of observation and action (for messages)."""
    return sorted(n for n, (c, _) in AGENTS.items()
                  if observation_kind in (None, c.observation_kind) and action_kind in (None, c.action_kind))


def space_kinds(observation_space, action_space) -> tuple[str, str]:
    """The (observation_kind, action_kind) of an env's spaces."""
    image = len(observation_space.shape) == 3 and observation_space.dtype == np.uint8
    return ("pixels" if image else "vector",
            "discrete" if isinstance(action_space, spaces.Discrete) else "continuous")


def make_agent(agent_cfg: dict, observation_space, action_space, device="cpu"):
    """Build the agent named by `agent_cfg['name']` for the env's spaces (checked here against
    the class's kinds, with an error naming the agents that fit)."""
    name = agent_cfg["name"]
    if name not in AGENTS:
        raise ValueError(f"unknown agent '{name}', allowed: {sorted(AGENTS)}")
    cls, _ = AGENTS[name]
    obs_kind, act_kind = space_kinds(observation_space, action_space)
    if (cls.observation_kind, cls.action_kind) != (obs_kind, act_kind):
        raise ValueError(f"agent '{name}' takes {cls.observation_kind} observations and "
                         f"{cls.action_kind} actions, but the env has {observation_space} and "
                         f"{action_space}; agents for this env: {agents_taking(obs_kind, act_kind)}")
    obs_arg = tuple(observation_space.shape) if obs_kind == "pixels" else observation_space.shape[0]
    action_arg = int(action_space.n) if act_kind == "discrete" else action_space.shape[0]
    return cls(obs_arg, action_arg, device=device, **agent_kwargs(agent_cfg))


__all__ = ["SAC", "IQL", "DrQ", "DrQAtari", "BBF", "AGENTS", "Agent", "UpdateResult", "make_agent",
           "agent_kwargs", "register_agent", "agents_taking", "space_kinds"]
