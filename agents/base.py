"""The agent contract: what the trainer, the replay buffer and the reset scheduler rely on, and
nothing else (README "Writing an agent").

An agent is an `nn.Module` that subclasses `Agent` and provides

    act(obs, deterministic=False) -> action(s)   acting (numpy in, numpy out; one obs or a batch)
    update(batch) -> UpdateResult                one gradient update on what `replay_request` asked
                                                 for; metrics by name, `priorities` for the buffer
    optimizers: dict[str, Optimizer]             every optimizer (interventions reset their state)
    hparams: dict                                its constructor arguments with obs_dim, action_dim
                                                 (`save`/`load` rebuild from them; `_set_hparams`)

and may override, where the defaults below do not fit:

    observation_kind, action_kind                the spaces it takes (checked before it is built)
    gives_priorities                             True if `update` returns priorities (prioritized
                                                 replay may then be configured)
    replay_request(batch_size) -> ReplayRequest  transitions or K-step sequences, n and gamma
                                                 (may change over training), importance weights
    on_reset(event)                              called after each scheduler firing (no-op)
    target_networks, group_aliases               names for the plasticity groups (none)
    hparam_rules                                 checks of hyperparameters agents/hparams.py lacks
    initial_value(name)                          fresh values of a bare agent-level parameter
    training_state / load_training_state         counters beyond weights and optimizer states
    member_body, member_update_key               an update body for many members at once
                                                 (agents/members.py; SAC, RLPD, DrQ, DrQ(eps), BBF)

It never contains reset logic: interventions come from the scheduler (plasticity/). A new agent is
one file and one `register_agent` call (agents/__init__.py); tests/test_agent_contract.py plugs a
small agent in without a line changed in runner/ or plasticity/.
"""
from __future__ import annotations

import contextlib
from abc import ABCMeta, abstractmethod

import numpy as np
import torch
from torch import nn

from agents.acceleration import CapturedUpdate, compile_mode, learning_rate
from agents.hparams import hparam_problems
from agents.serialization import atomic_save
from replay.request import ReplayRequest

OBSERVATION_KINDS = ("vector", "pixels")  # float32 [obs_dim] | uint8 [C, H, W] frame stacks
ACTION_KINDS = ("continuous", "discrete")  # Box actions in [-1, 1] | Discrete(n)


class UpdateResult(dict):
    """What `update` returns: the update's metrics (name -> detached tensor, read on the host only
    when logging) and the replay feedback as named fields: `priorities` [B], new sampling
    priorities for the batch's slots (None: the agent gives none)."""

    def __init__(self, metrics=(), priorities: torch.Tensor | None = None):
        super().__init__(metrics)
        self.priorities = priorities


class Agent(nn.Module, metaclass=ABCMeta):
    """Base class of every agent: the contract above, `predict`, `save`, `load` (SB3 names)."""

    observation_kind: str = "vector"
    action_kind: str = "continuous"
    gives_priorities: bool = False
    target_networks: dict[str, str] = {}  # online module prefix -> its target copy's prefix
    group_aliases: dict[str, str] = {}  # a name presets use (e.g. encoder) -> the module it means
    hparam_rules: dict[str, tuple] = {}  # rules of its own, beside agents/hparams.py RULES
    optimizers: dict
    hparams: dict
    # none | compile | cudagraphs (agents/acceleration.py); the hparam and config key is `compile`
    speed_mode: str = "none"
    _graphed: CapturedUpdate | None = None
    _eager: bool = False  # inside `eager_updates()`
    # members (agents/members.py): an update body over `FunctionalOps`-like ops (step, call,
    # tensors, ema_), and `member_update_key()` counting an update and giving its key; None: no
    # members. `member_key_values`: key positions members may differ in (per-member rates, tau)
    member_body = None
    member_key_values: tuple[int, ...] = ()

    @abstractmethod
    def act(self, obs, deterministic: bool = False):
        """The action for one observation (or actions for a batch), as numpy."""

    @abstractmethod
    def update(self, batch) -> UpdateResult:
        """One update on a batch from `replay_request`'s request."""

    def replay_request(self, batch_size: int) -> ReplayRequest:
        """What the next update needs from replay; default: `batch_size` transitions with the
        config's n-step and gamma, no importance weights."""
        return ReplayRequest(batch_size)

    def on_reset(self, event: dict) -> None:
        """After an intervention fired (`event`: rule, groups, steps, restart_schedules)."""

    def initial_value(self, name: str) -> torch.Tensor:
        """A fresh value of the bare agent-level parameter `name` (e.g. SAC's log_alpha)."""
        raise TypeError(f"{type(self).__name__} has no initial value for '{name}': a bare "
                        "parameter of the agent needs `initial_value` to be reset")

    def _set_hparams(self, defaults: dict, obs_dim: int, action_dim: int, device, hparams: dict) -> dict:
        """Merge `hparams` over `defaults` (unknown names raise), record them with the space
        sizes in `self.hparams` (what `save`/`load` rebuild from), set `self.device`."""
        unknown = set(hparams) - set(defaults)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} arguments {sorted(unknown)}; "
                             f"allowed: {sorted(defaults)}")
        h = {**defaults, **hparams}
        problems = hparam_problems(h, type(self).hparam_rules)  # the rules config validation uses
        if problems:
            raise ValueError(f"invalid {type(self).__name__} arguments: "
                             + "; ".join(message for _, message in problems))
        h["hidden_dims"] = tuple(h["hidden_dims"])
        self.hparams = dict(h, obs_dim=obs_dim, action_dim=action_dim)
        self.device = torch.device(device)
        return h

    def _set_discrete_pixel_hparams(self, defaults: dict, obs_shape, num_actions, device,
                                    hparams: dict) -> tuple[tuple, int, dict]:
        """`_set_hparams` for agents on uint8 [C, H, W] frames with Discrete(n) actions:
        returns (obs_shape, num_actions, merged hparams), refusing a shape that is not 3-D."""
        obs_shape, num_actions = tuple(int(d) for d in obs_shape), int(num_actions)
        h = self._set_hparams(defaults, obs_shape, num_actions, device, hparams)
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape {obs_shape}: expected (C, H, W)")
        return obs_shape, num_actions, h

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation: (obs_dim,) for vectors, (C, H, W) for pixels."""
        dim = self.hparams["obs_dim"]
        return (int(dim),) if np.ndim(dim) == 0 else tuple(int(d) for d in dim)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """Stable-Baselines3's `predict`: (action, state) for one observation, or actions for a
        batch [B, *observation_shape]. As there, the policy samples unless `deterministic`
        (`act(obs, deterministic=True)` is what evaluation uses); `state` comes back unchanged
        (no agent here is recurrent) and `episode_start` is not used. Training schedules (an
        exploration epsilon's decay) do not advance. A wrong shape raises a ValueError."""
        shape, expected = tuple(np.shape(observation)), self.observation_shape
        if shape != expected and shape[1:] != expected:
            batch = ", ".join(["B", *map(str, expected)])
            raise ValueError(f"{type(self).__name__}.predict: an observation of shape {shape}; "
                             f"expected {expected} (one observation) or ({batch}) (a batch)")
        return self._predict_action(observation, deterministic), state

    def _predict_action(self, observation, deterministic: bool):
        """The action(s) `predict` returns; an agent whose `act` advances a schedule overrides it."""
        return self.act(observation, deterministic)

    def _set_update_mode(self, value) -> str:
        """Record the normalised `compile` hparam as `speed_mode`; under `cudagraphs`, updates
        run through a `CapturedUpdate` of `_update_step`. Call after `self.device` is set."""
        self.speed_mode = self.hparams["compile"] = compile_mode(value, self.device)
        self._graphed = CapturedUpdate(self._graph_step) if self.speed_mode == "cudagraphs" else None
        return self.speed_mode

    def _graph_step(self, key, batch) -> dict:
        """What a captured graph runs: key = (the update's key, the optimizer hooks in force)."""
        return self._update_step(key[0], batch)

    @contextlib.contextmanager
    def eager_updates(self):
        """Updates inside run eagerly whatever the speed mode (no compiled graph or replay), on
        the same parameters and optimizer states: forward hooks fire and `.grad` is set, as the
        diagnostics need (plasticity/diagnostics.py enters this on its updates)."""
        previous, self._eager = self._eager, True
        try:
            yield
        finally:
            self._eager = previous

    def _run_update(self, key, batch) -> dict:
        """`_update_step(key, batch)`, replayed from a CUDA graph under `cudagraphs` (unless in
        `eager_updates()`). `key` holds the Python-side decisions of this update (hashable):
        one graph per key."""
        if self._graphed is not None and not self._eager:  # step hooks run in the graph: a change recaptures
            return self._graphed((key, self._optimizer_hooks()), batch)
        return self._update_step(key, batch)

    def _optimizer_hooks(self) -> tuple:
        """The step hooks of every optimizer (and the global ones), by identity."""
        from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks
        return (tuple(_global_optimizer_pre_hooks), tuple(_global_optimizer_post_hooks),
                *(tuple(o._optimizer_step_pre_hooks) + tuple(o._optimizer_step_post_hooks)
                  for o in self.optimizers.values()))

    def _update_step(self, key, batch) -> dict:
        raise NotImplementedError(f"{type(self).__name__} has no graph-capturable update step")

    def training_state(self) -> dict:
        """Everything needed to continue training: weights and optimizer states."""
        return {"model": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for opt in self.optimizers.values():  # a loaded lr is a float: back to this mode's type
            for group in opt.param_groups:
                group["lr"] = learning_rate(float(group["lr"]), self.speed_mode, self.device)
        if self._graphed is not None:  # the optimizer state tensors were replaced
            self._graphed.reset()

    def saved_state(self) -> dict:
        """What `save` writes: the class name, constructor arguments and `training_state()`."""
        return {"agent": type(self).__name__, "hparams": self.hparams, **self.training_state()}

    def save(self, path) -> None:
        """Write weights, optimizer states and constructor arguments atomically."""
        atomic_save(self.saved_state(), path)

    @classmethod
    def load(cls, path, device="cpu"):
        state = torch.load(path, map_location=device, weights_only=False)
        if state.get("agent") != cls.__name__:
            raise ValueError(f"{path} holds a '{state.get('agent')}' agent, not {cls.__name__}")
        h = dict(state["hparams"])
        agent = cls(h.pop("obs_dim"), h.pop("action_dim"), device=device, **h)
        agent.load_training_state(state)
        return agent
