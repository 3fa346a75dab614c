"""Replay batches drawn off the training stream, for what reads states without training on them
(the trainability probe, ReDo's unit scores): a uniform sampler seeded by (run seed, stream,
env step, updates), so the run's own sampling stream is left alone and a resumed run draws the
same batch."""
from __future__ import annotations

from replay import UniformSampler
from runner.seeding import derived_seed

PROBE_STREAM = 5  # the trainability probe's batch and targets
STATISTICS_STREAM = 7  # interventions that score units on replay states (ReDo)


def side_seed(trainer, stream: int) -> int:
    """The seed of a side draw now: (run seed, stream, env step, updates)."""
    c = trainer.counters
    return derived_seed(trainer.cfg["seed"], stream, c["env_steps"], c["updates"])


def side_batch(trainer, seed: int, batch_size: int):
    """A batch of the agent's kind (`replay_request`) of `batch_size` drawn with `seed`, or None
    while the replay is empty."""
    if not len(trainer.buffer):
        return None
    request = trainer.agent.replay_request(batch_size)
    return trainer.buffer.sample_with(UniformSampler(trainer.device, seed), request)
