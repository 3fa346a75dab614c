"""Replay: one buffer for every agent. Storage, sampling and n-step targets are separate pieces;
`MixedReplayBuffer` adds an offline dataset (`load_offline`) to an online buffer."""
from replay.buffer import Batch, ReplayBuffer
from replay.request import ReplayRequest
from replay.datasets import DatasetError, DatasetMismatchError, OfflineData, load_offline
from replay.frames import FrameStorage
from replay.mixed import MixedReplayBuffer
from replay.nstep import nstep_targets
from replay.prioritized import PrioritizedSampler, SumTree
from replay.reward import RewardTransform
from replay.sampler import Draw, UniformSampler
from replay.sequence import SequenceBatch, sequence_at
from replay.storage import FieldSpec, TensorStorage, transition_specs

__all__ = ["Batch", "ReplayBuffer", "ReplayRequest", "MixedReplayBuffer", "TensorStorage", "FrameStorage",
           "UniformSampler", "FieldSpec", "transition_specs", "nstep_targets", "load_offline",
           "OfflineData", "DatasetMismatchError", "DatasetError", "RewardTransform", "SequenceBatch",
           "sequence_at", "PrioritizedSampler", "SumTree", "Draw"]
