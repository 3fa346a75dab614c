"""What every agent shares: persistence of weights, optimizer states and constructor arguments,
and SB3's `predict`.

An agent is an `nn.Module` with an `optimizers` dict and `hparams` (its constructor arguments,
including `obs_dim` and `action_dim`); it adds its own training counters by extending
`training_state` / `load_training_state`."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from agents.acceleration import CapturedUpdate, compile_mode, learning_rate
from agents.serialization import atomic_save


class Agent(nn.Module):
    """Base class: `predict`, `training_state`, `load_training_state`, `save`, `load` (SB3
    names). Subclasses define `act(obs, deterministic=False)`."""

    optimizers: dict
    hparams: dict
    compile: str = "none"  # none | compile | cudagraphs (agents/acceleration.py)
    _graphed: CapturedUpdate | None = None

    def _set_hparams(self, defaults: dict, obs_dim: int, action_dim: int, device, hparams: dict) -> dict:
        """Merge `hparams` over `defaults` (unknown names raise), record them with the space
        sizes in `self.hparams` (what `save`/`load` rebuild from), set `self.device`."""
        unknown = set(hparams) - set(defaults)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} arguments {sorted(unknown)}; "
                             f"allowed: {sorted(defaults)}")
        h = {**defaults, **hparams}
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
        """Record the normalised `compile` mode; under `cudagraphs`, updates run through a
        `CapturedUpdate` of `_update_step`. Call after `self.device` is set."""
        self.compile = self.hparams["compile"] = compile_mode(value, self.device)
        self._graphed = (CapturedUpdate(lambda key, batch: self._update_step(key[0], batch))
                         if self.compile == "cudagraphs" else None)
        return self.compile

    def _run_update(self, key, batch) -> dict:
        """`_update_step(key, batch)`, replayed from a CUDA graph under `cudagraphs`. `key`
        holds the Python-side decisions of this update (hashable): one graph per key."""
        if self._graphed is not None:  # optimizer hooks run inside the graph: a change recaptures
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
                group["lr"] = learning_rate(float(group["lr"]), self.compile, self.device)
        if self._graphed is not None:  # the optimizer state tensors were replaced
            self._graphed.reset()

    def save(self, path) -> None:
        """Write weights, optimizer states and constructor arguments atomically."""
        atomic_save({"agent": type(self).__name__, "hparams": self.hparams,
                     **self.training_state()}, path)

    @classmethod
    def load(cls, path, device="cpu"):
        state = torch.load(path, map_location=device, weights_only=False)
        if state.get("agent") != cls.__name__:
            raise ValueError(f"{path} holds a '{state.get('agent')}' agent, not {cls.__name__}")
        h = dict(state["hparams"])
        agent = cls(h.pop("obs_dim"), h.pop("action_dim"), device=device, **h)
        agent.load_training_state(state)
        return agent
