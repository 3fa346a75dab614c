"""What an agent asks of replay for its next update (the agent contract, agents/base.py).

The trainer gets a `ReplayRequest` from `agent.replay_request(batch_size)` before every update
and hands it to the buffer's `sample_request`, so one buffer serves every agent and no agent
draws its own batches:

    transitions  (horizon 0): a `Batch` of n-step targets, n and gamma as asked (None: the
                               buffer's, i.e. the config's agent.n_step / agent.gamma)
    sequences    (horizon K): a `SequenceBatch`: the same plus the K steps after each start slot
    weights      (beta):      prioritized replay's importance weights w = (P(i) + eps)^-beta /
                              max_batch, in `batch.weights`; None with uniform replay or beta None

n and gamma may change from one update to the next (BBF anneals them): targets are computed when
sampling, so a new value applies at once.
"""
from __future__ import annotations

from typing import NamedTuple


class ReplayRequest(NamedTuple):
    batch_size: int
    n_step: int | None = None     # None: the buffer's default (agent.n_step)
    gamma: float | None = None    # None: the buffer's default (agent.gamma)
    horizon: int = 0              # future steps per sample (SPR's K); 0: plain transitions
    beta: float | None = None     # importance-weight exponent under prioritized replay; None: none
