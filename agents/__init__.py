"""Agents. Each agent is an nn.Module with stable submodule names, an `optimizers` dict,
`act`/`predict`, `update(batch) -> metrics`, `save`/`load`; none contains reset logic."""
from agents.iql import IQL, IQL_DEFAULTS
from agents.sac import SAC, SAC_DEFAULTS

# name -> (class, constructor defaults). Config keys the trainer consumes are not passed on.
AGENTS = {"sac": (SAC, SAC_DEFAULTS), "iql": (IQL, IQL_DEFAULTS)}
TRAINER_KEYS = {"name", "replay_ratio", "batch_size", "buffer_size", "gamma", "n_step"}


def agent_kwargs(agent_cfg: dict) -> dict:
    """The constructor arguments in an agent config (everything but the trainer's keys)."""
    return {k: v for k, v in agent_cfg.items() if k not in TRAINER_KEYS}


def make_agent(agent_cfg: dict, observation_space, action_space, device="cpu"):
    """Build the agent named by `agent_cfg['name']` for flat Box spaces."""
    name = agent_cfg["name"]
    if name not in AGENTS:
        raise ValueError(f"unknown agent '{name}', allowed: {sorted(AGENTS)}")
    cls, _ = AGENTS[name]
    return cls(observation_space.shape[0], action_space.shape[0], device=device,
               **agent_kwargs(agent_cfg))


__all__ = ["SAC", "IQL", "AGENTS", "make_agent", "agent_kwargs"]
