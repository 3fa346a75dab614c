"""Replay: exact n-step returns (step index encoded in rewards and observations),
episode boundaries, termination vs truncation, wrap-around, batch adds, state round trip."""
import pytest
import torch

from replay import ReplayBuffer, TensorStorage, UniformSampler, transition_specs


def make_buffer(capacity, n_step=1, gamma=0.5):
    return ReplayBuffer.for_spaces(capacity, (1,), (1,), n_step=n_step, gamma=gamma)


def fill(buf, episodes):
    """episodes: list of (length, 'term'|'trunc'|'open'). Step t has reward t and obs [t],
    next_obs [t + 1]; returns the flat history [(t, terminated, truncated)]."""
    history, t = [], 0
    for length, end in episodes:
        for k in range(length):
            last = k == length - 1
            term, trunc = last and end == "term", last and end == "trunc"
            buf.add([float(t)], [0.0], float(t), [float(t + 1)], term, trunc)
            history.append((t, term, trunc))
            t += 1
    return history


def reference(history, start, n, gamma):
    """Plain loop over the chronological history: (return, discount, next_obs index)."""
    ret = 0.0
    for k in range(n):
        t, term, trunc = history[start + k]
        ret += gamma ** k * t
        if term:
            return ret, 0.0, t + 1
        if trunc or k == n - 1 or start + k + 1 == len(history):
            return ret, gamma ** (k + 1), t + 1
    raise AssertionError("unreachable")


def test_hand_computed_three_step_return():
    buf = make_buffer(16, n_step=3, gamma=0.5)
    fill(buf, [(6, "trunc")])  # rewards 0..5
    b = buf.batch_at(torch.tensor([1, 4, 5]))
    # slot 1: 1 + .5*2 + .25*3 = 2.75, bootstrap from s_4 with 0.5^3
    # slot 4: 4 + .5*5 = 6.5, truncated at 5 -> bootstrap from s_6 with 0.5^2
    # slot 5: 5, truncated -> bootstrap from s_6 with 0.5
    assert b.reward.tolist() == [2.75, 6.5, 5.0]
    assert b.discount.tolist() == [0.125, 0.25, 0.5]
    assert b.next_obs.squeeze(1).tolist() == [4.0, 6.0, 6.0]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
def test_nstep_matches_reference_across_episode_ends(n):
    buf = make_buffer(64, n_step=n)
    history = fill(buf, [(4, "term"), (7, "trunc"), (1, "term"), (5, "trunc"), (3, "open")])
    idx = torch.arange(len(history))
    b = buf.batch_at(idx)
    for i in range(len(history)):
        ret, disc, nxt = reference(history, i, n, 0.5)
        assert b.reward[i].item() == ret, i  # exact: powers of 0.5 and small integers
        assert b.discount[i].item() == disc, i
        assert b.next_obs[i, 0].item() == nxt, i
        assert b.obs[i, 0].item() == i


def test_termination_never_bootstraps_and_truncation_does():
    buf = make_buffer(8, n_step=1, gamma=0.9)
    fill(buf, [(2, "term"), (2, "trunc")])
    b = buf.batch_at(torch.arange(4))
    assert b.discount.tolist() == pytest.approx([0.9, 0.0, 0.9, 0.9])


def test_wrap_around_keeps_time_order_and_stops_at_newest():
    buf = make_buffer(5, n_step=3)
    fill(buf, [(8, "open")])  # t = 0..7; slots hold t = 5,6,7,3,4 (pos = 3)
    assert buf.storage.pos == 3 and len(buf) == 5
    slot_of = {5: 0, 6: 1, 7: 2, 3: 3, 4: 4}
    b = buf.batch_at(torch.tensor([slot_of[t] for t in (3, 4, 5, 6, 7)]))
    history = [(t, False, False) for t in range(3, 8)]
    for row, start in enumerate(range(5)):
        ret, disc, nxt = reference(history, start, 3, 0.5)
        # rewards in `history` are absolute t, matching the stored rewards
        assert b.reward[row].item() == ret and b.discount[row].item() == disc
        assert b.next_obs[row, 0].item() == nxt
    # slot 2 (t=7) is the newest: its look-ahead never wraps into the oldest slot (t=3)
    assert b.next_obs[4, 0].item() == 8.0 and b.discount[4].item() == 0.5


def test_n_can_change_between_samples():
    buf = make_buffer(16, n_step=1)
    fill(buf, [(10, "open")])
    idx = torch.tensor([0])
    assert buf.batch_at(idx).reward.item() == 0.0
    assert buf.batch_at(idx, n_step=4).reward.item() == 0 + 0.5 * 1 + 0.25 * 2 + 0.125 * 3
    assert buf.batch_at(idx, n_step=2, gamma=1.0).reward.item() == 1.0


def test_add_batch_equals_single_adds_including_wrap():
    one = make_buffer(7)
    fill(one, [(10, "trunc")])
    many = make_buffer(7)
    t = torch.arange(10, dtype=torch.float32)
    many.add_batch(t[:, None], torch.zeros(10, 1), t, t[:, None] + 1,
                   torch.zeros(10, dtype=torch.bool), t == 9)
    for name, tensor in one.storage.fields.items():
        assert torch.equal(tensor, many.storage.fields[name]), name
    assert (one.storage.pos, len(one)) == (many.storage.pos, len(many))


def test_uniform_sampler_is_seeded_and_covers_filled_slots():
    buf = make_buffer(100)
    fill(buf, [(30, "open")])
    a = UniformSampler(seed=3).sample(buf.storage, 5000).idx
    b = UniformSampler(seed=3).sample(buf.storage, 5000).idx
    assert torch.equal(a, b)
    assert a.min() == 0 and a.max() == 29
    counts = torch.bincount(a, minlength=30).float()
    assert counts.min() > 100  # ~167 expected per slot


def test_state_dict_round_trip_continues_identically():
    buf = make_buffer(10, n_step=2)
    fill(buf, [(13, "trunc")])
    buf.sample(4)
    copy = make_buffer(10, n_step=2)
    copy.load_state_dict(buf.state_dict())
    x, y = buf.sample(8), copy.sample(8)
    for a, b in zip(x, y):
        assert (a is None and b is None) or torch.equal(a, b)  # weights: None with uniform replay


def test_storage_refuses_mismatched_state():
    specs = transition_specs((3,), (1,))
    state = TensorStorage(10, specs).state_dict()
    with pytest.raises(ValueError, match="capacity"):
        TensorStorage(11, specs).load_state_dict(state)
    with pytest.raises(ValueError, match="obs"):
        TensorStorage(10, transition_specs((4,), (1,))).load_state_dict(state)


def test_sampling_empty_buffer_raises():
    with pytest.raises(RuntimeError, match="empty"):
        make_buffer(4).sample(2)
