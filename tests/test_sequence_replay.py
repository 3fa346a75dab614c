"""Sequence sampling (SPR/BBF): K future steps with a mask at episode ends, plus the n-step TD
target, on TensorStorage and FrameStorage. Observations encode (episode, step) and the action is
the transition's index in the stream, so every check is exact, including the n = 1 case where
next_obs must be s'_i and never s_i (the public BBF buffer's bug, google-research issue 1851)."""
import numpy as np
import pytest
import torch

from replay import FrameStorage, ReplayBuffer, UniformSampler
from replay.prioritized import PrioritizedSampler

EPISODES = [(3, "term"), (2, "trunc"), (1, "term"), (5, "trunc"), (4, "open")]


def stream(episodes):
    """Transitions as dicts: observation ids are 100 * episode + step, the action is the index."""
    out = []
    for e, (length, end) in enumerate(episodes):
        for t in range(length):
            last = t == length - 1
            out.append(dict(obs=100 * e + t, next_obs=100 * e + t + 1, action=len(out),
                            reward=float(len(out)), terminated=last and end == "term",
                            truncated=last and end == "trunc"))
    return out


def expected(history, g, horizon, newest):
    """Plain loop: (mask, actions, next-observation ids) of start transition g, invalid steps
    repeating the last valid one; `newest` is the newest stored transition."""
    mask, acts, nxt = [], [], []
    for j in range(horizon):
        ok = g + j <= newest and not any(history[g + i]["terminated"] or history[g + i]["truncated"]
                                         for i in range(j))
        mask.append(ok)
        if ok:
            acts.append(g + j)
            nxt.append(history[g + j]["next_obs"])
        else:
            acts.append(acts[-1])
            nxt.append(nxt[-1])
    return mask, acts, nxt


def nstep_last(history, g, n, newest):
    """Index of the transition whose s' is the n-step bootstrap state of g."""
    for i in range(g, min(g + n, newest + 1)):
        if history[i]["terminated"] or history[i]["truncated"]:
            return i
    return min(g + n, newest + 1) - 1


def vector_buffer(capacity, history):
    buf = ReplayBuffer.for_spaces(capacity, (1,), (), action_dtype=torch.int64, gamma=0.5)
    for tr in history:
        buf.add([float(tr["obs"])], tr["action"], tr["reward"], [float(tr["next_obs"])],
                tr["terminated"], tr["truncated"])
    return buf


def test_masks_at_termination_truncation_and_newest_slot():
    history = stream([(3, "term"), (2, "trunc"), (4, "open")])  # ends at slots 2 and 4, newest 8
    buf = vector_buffer(16, history)
    s = buf.sequences_at(torch.arange(9), horizon=3)
    T, F = True, False
    assert s.mask.tolist() == [[T, T, T], [T, T, F], [T, F, F],  # terminated at slot 2
                               [T, T, F], [T, F, F],  # truncated at slot 4
                               [T, T, T], [T, T, T], [T, T, F], [T, F, F]]  # newest is slot 8
    assert s.actions.tolist()[1] == [1, 2, 2]  # past the end: the last valid step repeated
    assert s.future_obs.squeeze(-1).tolist()[1] == [2.0, 3.0, 3.0]  # s'_2 is the terminal obs
    assert s.future_obs.squeeze(-1).tolist()[7] == [203.0, 204.0, 204.0]  # nothing beyond newest


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("capacity", [64, 9])  # 9: the ring has wrapped
def test_vector_sequences_match_reference(n, capacity):
    history = stream(EPISODES)
    buf = vector_buffer(capacity, history)
    newest = len(history) - 1
    gs = list(range(max(0, len(history) - capacity), len(history)))
    idx = torch.tensor([g % capacity for g in gs])
    s = buf.sequences_at(idx, horizon=4, n_step=n)
    b = buf.batch_at(idx, n_step=n)
    for field in ("obs", "action", "reward", "discount", "next_obs", "idx"):
        assert torch.equal(getattr(s, field), getattr(b, field)), field
    assert s.as_batch()[:6] == tuple(s[:6]) and s.as_batch().weights is None
    for row, g in enumerate(gs):
        mask, acts, nxt = expected(history, g, 4, newest)
        assert s.mask[row].tolist() == mask, g
        assert s.actions[row].tolist() == acts, g
        assert s.future_obs[row, :, 0].tolist() == [float(x) for x in nxt], g
        assert s.obs[row, 0].item() == history[g]["obs"]
        want = history[nstep_last(history, g, n, newest)]["next_obs"]
        assert s.next_obs[row, 0].item() == want, g
    if n == 1:  # the BBF bug: next_obs == obs at n = 1
        assert (s.next_obs != s.obs).all()
        assert torch.equal(s.next_obs, s.future_obs[:, 0])


def frame_stream(episodes, k, shape=(1, 2, 2)):
    """What a k-frame-stack env emits: frame pixels = frame id (episode * 40 + step + 1)."""
    out = []
    for e, (length, end) in enumerate(episodes):
        frames = [np.full(shape, e * 40 + 1, np.uint8)] * k
        for t in range(length):
            nxt = frames[1:] + [np.full(shape, e * 40 + t + 2, np.uint8)]
            last = t == length - 1
            out.append(dict(obs=np.concatenate(frames), action=len(out), reward=float(len(out)),
                            next_obs=np.concatenate(nxt), terminated=last and end == "term",
                            truncated=last and end == "trunc"))
            frames = nxt
    return out


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("capacity", [80, 14])  # 14 slots: the ring wraps, early slots invalid
def test_frame_sequences_match_reference(n, capacity):
    k = 3
    history = frame_stream(EPISODES, k)
    storage = FrameStorage(capacity, (1, 2, 2), k)
    for tr in history:
        storage.add(**tr)
    buf = ReplayBuffer(storage, n_step=n, gamma=0.5)
    idx = storage.valid.nonzero().squeeze(1)
    s = buf.sequences_at(idx, horizon=4)
    assert s.future_obs.shape == (len(idx), 4, 3, 2, 2) and s.actions.shape == (len(idx), 4)
    newest = len(history) - 1
    gs = s.action.tolist()
    assert len(gs) < len(history) if capacity == 14 else len(gs) == len(history)
    for row, g in enumerate(gs):
        mask, acts, _ = expected(history, g, 4, newest)
        assert s.mask[row].tolist() == mask, g
        assert s.actions[row].tolist() == acts, g
        want = np.stack([history[a]["next_obs"] for a in acts])
        assert np.array_equal(s.future_obs[row].numpy(), want), g
        assert np.array_equal(s.obs[row].numpy(), history[g]["obs"])
        last = nstep_last(history, g, n, newest)
        assert np.array_equal(s.next_obs[row].numpy(), history[last]["next_obs"]), g
        assert s.reward[row].item() == sum(0.5 ** (i - g) * i for i in range(g, last + 1))
    if n == 1:  # s' is the next stack, not the stack itself (BBF issue 1851)
        assert not (s.next_obs == s.obs).all(dim=(1, 2, 3)).any()
        assert torch.equal(s.next_obs, s.future_obs[:, 0])


def test_vector_wrap_around_sequences_cross_the_ring_end():
    history = stream([(12, "open")])  # capacity 7: slots hold 7..11 at 0..4 and 5, 6 at 5, 6
    buf = vector_buffer(7, history)
    s = buf.sequences_at(torch.tensor([5, 6, 0]), horizon=3)  # transitions 5, 6, 7
    assert s.actions.tolist() == [[5, 6, 7], [6, 7, 8], [7, 8, 9]]
    assert s.future_obs[:, :, 0].tolist() == [[6, 7, 8], [7, 8, 9], [8, 9, 10]]
    assert s.mask.all()
    end = buf.sequences_at(torch.tensor([3]), horizon=3)  # transition 10, newest 11
    assert end.mask.tolist() == [[True, True, False]] and end.actions.tolist() == [[10, 11, 11]]


@pytest.mark.parametrize("sampler", ["uniform", "prioritized"])
def test_sample_sequences_on_frames(sampler):
    history = frame_stream([(6, "term"), (9, "open")], k=4, shape=(2, 3, 3))
    storage = FrameStorage(40, (2, 3, 3), 4)
    for tr in history:
        storage.add(**tr)
    make = UniformSampler if sampler == "uniform" else PrioritizedSampler
    buf = ReplayBuffer(storage, make("cpu", 0), n_step=10, gamma=0.9)
    s = buf.sample_sequences(32, horizon=5, n_step=1)  # n overridden per call
    assert s.obs.shape == (32, 8, 3, 3) and s.future_obs.shape == (32, 5, 8, 3, 3)
    assert s.mask.shape == (32, 5) and s.mask.dtype == torch.bool and s.mask[:, 0].all()
    assert torch.equal(s.next_obs, s.future_obs[:, 0])
    assert torch.equal(s.actions[:, 0], s.action)
    # every future frame is the newest frame of the step before plus one (same episode)
    newest = s.future_obs[:, :, -2:].float()  # [B, K, C, 3, 3]
    step = torch.cat([s.obs[:, None, -2:].float(), newest[:, :-1]], 1)  # [B, K, C, 3, 3]
    grew = (newest - step == 1).flatten(2).all(-1)  # [B, K]
    assert torch.equal(grew | ~s.mask, torch.ones_like(grew))


def test_horizon_zero_and_negative():
    buf = vector_buffer(8, stream([(3, "open")]))
    s = buf.sequences_at(torch.tensor([0, 1]), horizon=0)
    assert s.actions.shape == (2, 0) and s.future_obs.shape == (2, 0, 1) and s.mask.shape == (2, 0)
    with pytest.raises(ValueError):
        buf.sequences_at(torch.tensor([0]), horizon=-1)
