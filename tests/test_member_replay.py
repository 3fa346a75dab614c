"""One replay storage with a member dimension (replay/member_replay.py): the members' fields are
views of one [M, capacity, ...] tensor, and one call draws every member's batch with the values
and sampling streams of M separate `sample_request` calls."""
import copy

import torch

from replay import ReplayBuffer, ReplayRequest
from replay.member_replay import MemberReplay
from replay.sampler import UniformSampler
from replay.storage import TensorStorage, transition_specs


def buffer(k: int, n_step: int = 3) -> ReplayBuffer:
    """A buffer of 50 transitions (episodes of 7 steps, the ring wrapped) of member k."""
    g = torch.Generator().manual_seed(k)
    buf = ReplayBuffer(TensorStorage(40, transition_specs((3,), (2,))), UniformSampler("cpu", 10 + k),
                       n_step=n_step, gamma=0.9)
    for t in range(50):
        buf.add(torch.randn(3, generator=g), torch.randn(2, generator=g), float(t), torch.randn(3, generator=g),
                t % 7 == 6 and t % 2 == 0, t % 7 == 6 and t % 2 == 1)
    return buf


def test_one_call_draws_what_member_by_member_sampling_draws():
    members = [buffer(k) for k in range(3)]
    separate = copy.deepcopy(members)
    replay = MemberReplay(members)
    fields = replay.fields["obs"]
    assert fields.shape == (3, 40, 3)
    assert all(b.storage.fields["obs"].data_ptr() == fields[k].data_ptr() for k, b in enumerate(members))
    request = ReplayRequest(16, n_step=3, gamma=0.9)
    for _ in range(3):
        stacked = replay.sample([request] * 3)
        one_by_one = [b.sample_request(request) for b in separate]
        for name, value in stacked._asdict().items():
            if value is None:
                assert all(getattr(b, name) is None for b in one_by_one)
            else:
                assert torch.equal(value, torch.stack([getattr(b, name) for b in one_by_one])), name
    for b, s in zip(members, separate):  # each member's stream advanced as its own would
        assert torch.equal(b.sampler.generator.get_state(), s.sampler.generator.get_state())
    members[1].add(torch.ones(3), torch.ones(2), 1.0, torch.ones(3), False, False)  # an add writes the stack
    assert torch.equal(fields[1, (members[1].storage.pos - 1) % 40], torch.ones(3))


def test_members_that_cannot_share_one_call_are_sampled_one_by_one():
    replay = MemberReplay([buffer(0), buffer(1, n_step=5)])  # members' n-step differ
    assert replay.sample([ReplayRequest(8)] * 2) is None
    assert replay.sample([ReplayRequest(8, n_step=2)] * 2) is not None  # unless the request sets it
    assert replay.sample([ReplayRequest(8, horizon=2)] * 2) is None  # sequences (BBF)
