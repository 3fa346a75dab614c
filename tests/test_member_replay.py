"""One replay storage with a member dimension (replay/member_replay.py): the members' fields are
views of one [M, capacity, ...] tensor, and one call draws every member's batch with the values
and sampling streams of M separate `sample_request` calls: vector observations, pixel frames
(members' write heads apart), prioritized replay and sequences (BBF)."""
import copy

import numpy as np
import pytest
import torch

from replay import FrameStorage, ReplayBuffer, ReplayRequest
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


def assert_one_call_draws_the_members_own(replay, separate, request, rounds: int = 3) -> None:
    """`rounds` one-call draws equal, field by field, the members' own draws from copies."""
    for _ in range(rounds):
        stacked = replay.sample([request] * len(separate))
        one_by_one = [b.sample_request(request) for b in separate]
        for name, value in stacked._asdict().items():
            if value is not None:
                assert torch.equal(value, torch.stack([getattr(b, name) for b in one_by_one])), name


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


@pytest.mark.parametrize("n_steps, gammas", [((1, 5, 3), (0.9, 0.9, 0.9)), ((3, 3, 3), (0.9, 0.99, 0.5)),
                                              ((1, 1, 1), (0.9, 0.99, 0.5)), ((2, 1, 4), (0.8, 0.97, 0.9))])
def test_members_with_their_own_n_step_and_gamma_share_one_call(n_steps, gammas):
    """Members varying agent.n_step / agent.gamma: one call, each member's targets its own n and
    gamma (the same values as its own draw: an n-step sum padded with unused steps)."""
    members = [buffer(k, n) for k, n in enumerate(n_steps)]
    for b, gamma in zip(members, gammas):
        b.gamma = gamma
    separate = copy.deepcopy(members)
    replay = MemberReplay(members)
    assert_one_call_draws_the_members_own(replay, separate, ReplayRequest(16))


def test_members_that_cannot_share_one_call_are_sampled_one_by_one():
    replay = MemberReplay([buffer(0), buffer(1)])
    assert replay.sample([ReplayRequest(8), ReplayRequest(16)]) is None  # batch sizes differ
    assert replay.sample([ReplayRequest(8, horizon=2), ReplayRequest(8, horizon=3)]) is None
    assert replay.sample([ReplayRequest(8)] * 2) is not None


def pixel_buffer(k: int, padding: str, prioritized: bool) -> ReplayBuffer:
    """Member k's pixel buffer (3-frame stacks of 2x3x3 frames, capacity 40) after a stream of
    its own: episode lengths differ by member, so the members' write heads drift apart; the ring
    wraps. `prioritized`: BBF's sampler, with priorities of its own set on some slots."""
    from replay.prioritized import PrioritizedSampler
    from tests.test_frame_storage import add, stream

    episodes = [(3 + k, "term"), (7, "trunc"), (2 + 2 * k, "term"), (11, "trunc"), (5 + k, "term"),
                (9, "trunc"), (4, "open")]
    storage = FrameStorage(40, (2, 3, 3), 3, padding=padding)
    sampler = PrioritizedSampler("cpu", 20 + k) if prioritized else UniformSampler("cpu", 10 + k)
    buf = ReplayBuffer(storage, sampler, n_step=3, gamma=0.9)
    for tr in stream(episodes, (2, 3, 3), 3, padding, first_step=100 * k):
        add(storage, tr)
    if prioritized:
        draw = buf.sample(8)  # a first sync, then priorities of this member's own
        buf.update_priorities(draw.idx, torch.arange(8, dtype=torch.float32) + k)
    return buf


@pytest.mark.parametrize("padding,prioritized,horizon,beta", [
    ("repeat", False, 0, None), ("zero", True, 5, 0.5), ("zero", True, 0, None)])
def test_pixel_members_one_call_equals_member_by_member(padding, prioritized, horizon, beta):
    """Frames stacked [M, capacity, C, H, W], members' heads apart: one call gives every member's
    stacks, n-step targets, sequences and importance weights as its own `sample_request`."""
    members = [pixel_buffer(k, padding, prioritized) for k in range(3)]
    assert len({b.storage.head for b in members}) == 3  # not in lockstep
    separate = copy.deepcopy(members)
    replay = MemberReplay(members)
    assert replay.fields["frames"].shape == (3, 40, 2, 3, 3)
    for k, b in enumerate(members):  # the sampler's mask is the stack's row
        assert b.storage.valid.data_ptr() == replay.fields["valid"][k].data_ptr()
    request = ReplayRequest(16, n_step=4, gamma=0.9, horizon=horizon, beta=beta)
    for round_ in range(3):
        stacked = replay.sample([request] * 3)
        one_by_one = [b.sample_request(request) for b in separate]
        assert type(stacked) is type(one_by_one[0])
        for name, value in stacked._asdict().items():
            if value is None:
                assert all(getattr(b, name) is None for b in one_by_one), name
            else:
                assert torch.equal(value, torch.stack([getattr(b, name) for b in one_by_one])), name
        if prioritized:  # each member's feedback to its own sampler, through its view of idx
            for k, (b, s) in enumerate(zip(members, separate)):
                priorities = torch.full((16,), 2.0 + k + round_)
                b.update_priorities(stacked.idx[k], priorities)
                s.update_priorities(one_by_one[k].idx, priorities)
    for b, s in zip(members, separate):
        assert torch.equal(b.sampler.generator.get_state(), s.sampler.generator.get_state())


def test_pixel_members_adds_and_loads_write_the_stack():
    members = [pixel_buffer(k, "repeat", False) for k in range(2)]
    saved = copy.deepcopy(members[1].state_dict())
    replay = MemberReplay(members)
    frames = replay.fields["frames"]
    head = members[1].storage.head
    obs = np.repeat(np.full((2, 3, 3), 7, np.uint8)[None], 3, 0).reshape(6, 3, 3)  # a new episode
    nxt = np.concatenate([obs[2:], np.full((2, 3, 3), 9, np.uint8)])
    members[1].storage.truncate_newest()  # the open episode ends (a flag written into the stack)
    assert replay.fields["truncated"][1, (head - 1) % 40]
    members[1].add(obs, 0, 1.0, nxt, False, False)
    assert (frames[1, (head + 2) % 40] == 9).all() and members[1].storage.head == head + 2
    assert replay.fields["valid"][1].sum() == len(members[1])
    members[1].load_state_dict(saved)  # a checkpoint load: in place, into the stack
    assert members[1].storage.head == head and frames.data_ptr() == replay.fields["frames"].data_ptr()
    assert torch.equal(frames[1], members[1].storage.fields["frames"])
    assert replay.fields["valid"][1].sum() == len(members[1])


def test_device_row_follows_the_members_values_in_one_tensor():
    from replay.member_replay import DeviceRow

    row = DeviceRow(torch.int64, "cpu")
    first = row([4, 7, 9])
    assert first.values == (4, 7, 9) and first.tensor.tolist() == [4, 7, 9]
    second = row([4, 8, 9])  # one member moved: its entry rewritten in the same tensor
    assert second.tensor is first.tensor and second.tensor.tolist() == [4, 8, 9]
    assert row([1, 2]).tensor.tolist() == [1, 2]  # another member count: a new tensor


@pytest.mark.parametrize("online_steps, n_steps", [(50, (3, 3, 3)), (50, (1, 3, 2)), (0, (3, 3, 3))],
                         ids=["half-offline", "own-n-step", "online-empty"])
def test_offline_mixtures_share_the_dataset_and_one_call(online_steps, n_steps):
    """RLPD members with the same dataset: their online parts stacked, one copy of the dataset
    for all (the others released), and one call giving each member's offline rows then online
    rows, as each member's own MixedReplayBuffer draws them (its own two samplers)."""
    def dataset():
        g = torch.Generator().manual_seed(99)  # every member loads the same file
        data = TensorStorage(30, transition_specs((3,), (2,)))
        for t in range(30):
            data.add(obs=torch.randn(3, generator=g), action=torch.randn(2, generator=g), reward=float(t),
                     next_obs=torch.randn(3, generator=g), terminated=t % 9 == 8, truncated=False)
        return data

    members = []
    for k, n in enumerate(n_steps):
        online = buffer(k, n) if online_steps else ReplayBuffer(
            TensorStorage(40, transition_specs((3,), (2,))), UniformSampler("cpu", 10 + k), n_step=n, gamma=0.9)
        members.append(online.with_offline(dataset(), 0.5, seed=k))
    separate = copy.deepcopy(members)
    replay = MemberReplay(members)
    assert replay.mixed and replay.stacked
    assert all(b.offline.storage is members[0].offline.storage for b in members)  # one copy
    assert_one_call_draws_the_members_own(replay, separate, ReplayRequest(16))
    for b, s in zip(members, separate):
        for part in ("offline", "online"):
            assert torch.equal(getattr(b, part).sampler.generator.get_state(),
                               getattr(s, part).sampler.generator.get_state()), part
