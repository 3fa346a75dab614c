"""Replay: one buffer for every agent. Storage, sampling and n-step targets are separate pieces."""
from replay.buffer import Batch, ReplayBuffer
from replay.nstep import nstep_targets
from replay.sampler import UniformSampler
from replay.storage import FieldSpec, TensorStorage, transition_specs

__all__ = ["Batch", "ReplayBuffer", "TensorStorage", "UniformSampler", "FieldSpec",
           "transition_specs", "nstep_targets"]
