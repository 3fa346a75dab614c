"""Epsilon-greedy acting shared by the discrete-action agents (DrQ(eps), BBF)."""
from __future__ import annotations

import numpy as np
import torch


def linear_epsilon(step: int, decay_steps: int, final: float) -> float:
    """1 at step 0, linearly down to `final` at `decay_steps`, then constant."""
    if decay_steps <= 0:
        return final
    return final + (1.0 - final) * max(decay_steps - step, 0) / decay_steps


@torch.no_grad()
def epsilon_greedy(q_values, obs, num_actions: int, epsilon: float, device, obs_dims: int = 3):
    """argmax_a q_values(obs)[a] with probability 1 - epsilon, a uniform action otherwise.

    `obs`: one observation (`obs_dims` dims, e.g. [C, H, W]) -> an int, or a batch -> int64 [B].
    Draws use the global CPU torch RNG (checkpointed by the trainer), the same number of draws
    whatever the branch, and the network is skipped when every action explores."""
    obs_t = torch.as_tensor(np.asarray(obs), device=device)
    single = obs_t.dim() == obs_dims
    obs_t = obs_t.unsqueeze(0) if single else obs_t  # [B, C, H, W]
    b = obs_t.shape[0]
    explore = torch.rand(b) < epsilon
    action = torch.randint(num_actions, (b,))
    if not bool(explore.all()):
        greedy = q_values(obs_t).argmax(dim=1).cpu()  # [B, A] -> [B]
        action = torch.where(explore, action, greedy)
    action = action.numpy()
    return int(action[0]) if single else action
