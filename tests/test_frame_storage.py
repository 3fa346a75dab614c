"""Pixel replay (frames stored once): every stack rebuilt from the ring must equal the stack the
env showed. Pixels encode the frame's step index and episode id, the action is the transition's
index in the stream, so each check is exact: episode ends (terminated, truncated), repeat and zero
padding, wrap-around of the ring, valid-only sampling, n-step targets, state round trip, memory."""
import io

import numpy as np
import pytest
import torch

from replay import FrameStorage, ReplayBuffer, TensorStorage, UniformSampler, transition_specs
from replay.frames import naive_bytes_per_transition

EPISODES = [(1, "term"), (2, "trunc"), (3, "term"), (4, "trunc"), (5, "term"), (9, "trunc"),
            (30, "term"), (1, "trunc"), (6, "term"), (17, "trunc"), (3, "open")]


def frame(shape, step, episode):
    """Every pixel nonzero (zero padding stays visible): channel c holds (step + 17c) % 250 + 1,
    pixel [0, 0, 0] the episode id + 1 when a channel has more than one pixel."""
    f = np.empty(shape, np.uint8)
    for c in range(shape[0]):
        f[c] = (step + 17 * c) % 250 + 1
    if shape[1] * shape[2] > 1:
        f[0, 0, 0] = episode % 250 + 1
    return f


def stream(episodes, frame_shape, k, padding="repeat", first_step=0):
    """The transitions an env with k-frame stacks (newest last) emits, as dicts; `ep`/`t` are the
    episode id and step within it, `action` the transition's index in the stream."""
    out, step = [], first_step
    for e, (length, end) in enumerate(episodes):
        first = frame(frame_shape, step, e)
        pad = first if padding == "repeat" else np.zeros_like(first)
        frames = [pad] * (k - 1) + [first]
        for t in range(length):
            step += 1
            nxt = frames[1:] + [frame(frame_shape, step, e)]
            last = t == length - 1
            out.append(dict(obs=np.concatenate(frames), action=len(out), reward=float(len(out) % 5),
                            next_obs=np.concatenate(nxt), terminated=last and end == "term",
                            truncated=last and end == "trunc", ep=e, t=t))
            frames = nxt
        step += 1
    return out


def add(storage, tr):
    storage.add(**{k: v for k, v in tr.items() if k not in ("ep", "t")})


def expected_valid(history, k, capacity):
    """Layout model: an episode of L steps takes L + 1 slots; a transition is sampleable while no
    frame of its stack has been overwritten. Returns the sampleable transition indices."""
    head, where = -1, []
    for i, tr in enumerate(history):
        ends_before = i > 0 and (history[i - 1]["terminated"] or history[i - 1]["truncated"])
        a = head + 1 if i == 0 or ends_before else head
        where.append((a, min(tr["t"], k - 1)))
        head = a + 1
    return sorted(i for i, (a, back) in enumerate(where) if a - back > head - capacity)


def check_everything(storage, history):
    """All valid slots hold exactly the expected transitions with the env's stacks."""
    idx = storage.valid.nonzero().squeeze(1)
    ids = storage.gather("action", idx).tolist()
    assert len(storage) == len(idx)
    assert sorted(ids) == expected_valid(history, storage.stack, storage.capacity)
    for name in ("obs", "next_obs"):
        want = np.stack([history[i][name] for i in ids])
        assert np.array_equal(storage.gather(name, idx).numpy(), want), name
    for name in ("reward", "terminated", "truncated"):
        assert storage.gather(name, idx).tolist() == [history[i][name] for i in ids], name


CASES = [((1, 2, 3), 4), ((3, 2, 2), 3), ((2, 1, 1), 1)]  # Atari-like, DMC-like, no stacking


@pytest.mark.parametrize("padding", ["repeat", "zero"])
@pytest.mark.parametrize("frame_shape,k", CASES)
def test_stacks_exact_across_episode_ends_and_wrap_around(frame_shape, k, padding):
    history = stream(EPISODES, frame_shape, k, padding)  # 81 transitions + 10 final frames
    storage = FrameStorage(23, frame_shape, k, padding=padding)
    for n, tr in enumerate(history):
        add(storage, tr)
        check_everything(storage, history[: n + 1])  # after every add: wraps ~4 times


def test_zero_padding_really_is_zero_and_repeat_repeats():
    for padding in ("repeat", "zero"):
        history = stream([(2, "term")], (1, 1, 1), 4, padding)
        storage = FrameStorage(8, (1, 1, 1), 4, padding=padding)
        for tr in history:
            add(storage, tr)
        obs = storage.gather("obs", torch.tensor([0, 1])).flatten(1).tolist()
        nxt = storage.gather("next_obs", torch.tensor([1])).flatten(1).tolist()
        first = 1  # step 0: pixel (0 % 250) + 1
        if padding == "repeat":
            assert obs == [[first] * 4, [first, first, first, 2]] and nxt == [[first, first, 2, 3]]
        else:
            assert obs == [[0, 0, 0, first], [0, 0, first, 2]] and nxt == [[0, first, 2, 3]]


def test_zero_padding_after_a_life_loss_and_repeat_default():
    """Atari (BBF/Dopamine): a life loss ends the agent's episode (terminated) and the game goes
    on from the same frame with the stack zeroed, [0, 0, 0, o]; replay restacks exactly that.
    The default stays 'repeat' (DMC pixels, jaxrl's frame stack)."""
    assert FrameStorage(8, (1, 1, 1), 4).padding == "repeat"
    life = [np.array([[[v]]], np.uint8) for v in (5, 6, 7)]  # frames of the first life
    z = np.zeros((1, 1, 1), np.uint8)
    storage = FrameStorage(12, (1, 1, 1), 4, padding="zero")
    obs0, obs1, obs2 = [z, z, z, life[0]], [z, z, life[0], life[1]], [z, life[0], life[1], life[2]]
    restart = [z, z, z, life[2]]  # the next life starts from the life-loss frame, zero-padded
    nxt = [z, z, life[2], np.full((1, 1, 1), 9, np.uint8)]
    steps = [(obs0, obs1, False), (obs1, obs2, True), (restart, nxt, False)]
    for i, (o, n, term) in enumerate(steps):
        storage.add(np.concatenate(o), i, 0.0, np.concatenate(n), term, False)
    idx = storage.valid.nonzero().squeeze(1)
    assert storage.gather("obs", idx).flatten(1).tolist() == [[0, 0, 0, 5], [0, 0, 5, 6],
                                                               [0, 0, 0, 7]]
    assert storage.gather("next_obs", idx).flatten(1).tolist() == [[0, 0, 5, 6], [0, 5, 6, 7],
                                                                    [0, 0, 7, 9]]


def test_sampler_draws_only_valid_slots_uniformly():
    history = stream(EPISODES, (1, 2, 2), 4)
    buf = ReplayBuffer.for_pixels(29, (1, 2, 2), 4, seed=5)
    for tr in history:
        add(buf.storage, tr)
    valid = expected_valid(history, 4, 29)
    idx = buf.sampler.sample(buf.storage, 20000).idx
    assert bool(buf.storage.valid[idx].all())
    ids = buf.storage.gather("action", idx)
    counts = torch.bincount(ids, minlength=len(history))[valid].float()
    assert int(counts.sum()) == 20000 and len(valid) == len(buf) < 29
    mean = 20000 / len(valid)
    assert counts.min() > 0.8 * mean and counts.max() < 1.2 * mean  # ~1000 per slot, std ~32
    again = UniformSampler(seed=5).sample(buf.storage, 20000).idx
    assert torch.equal(idx, again)  # seeded
    batch = buf.sample(64)
    want = np.stack([history[i]["obs"] for i in batch.action.tolist()])
    assert np.array_equal(batch.obs.numpy(), want)


def test_uniform_sampler_stream_unchanged_for_tensor_storage():
    storage = TensorStorage(50, transition_specs((1,), (1,)))
    for t in range(30):
        storage.add(obs=[t], action=[0.0], reward=0.0, next_obs=[t + 1], terminated=False,
                    truncated=False)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(UniformSampler(seed=3).sample(storage, 100).idx,
                       torch.randint(0, 30, (100,), generator=g))


def reference_nstep(history, i, n, gamma):
    """(return, discount, index of the transition whose next_obs is s') over the stream."""
    ret = 0.0
    for j in range(n):
        tr = history[i + j]
        ret += gamma ** j * tr["reward"]
        if tr["terminated"]:
            return ret, 0.0, i + j
        if tr["truncated"] or j == n - 1 or i + j + 1 == len(history):
            return ret, gamma ** (j + 1), i + j


@pytest.mark.parametrize("n", [1, 3, 6])
def test_nstep_targets_on_frames_match_the_stream(n):
    history = stream(EPISODES, (1, 2, 2), 4)
    buf = ReplayBuffer(FrameStorage(41, (1, 2, 2), 4), n_step=n, gamma=0.5)
    for tr in history:
        add(buf.storage, tr)
    idx = buf.storage.valid.nonzero().squeeze(1)
    b = buf.batch_at(idx)
    for row, i in enumerate(b.action.tolist()):
        ret, disc, last = reference_nstep(history, i, n, 0.5)
        assert b.reward[row].item() == ret and b.discount[row].item() == disc, i
        assert np.array_equal(b.next_obs[row].numpy(), history[last]["next_obs"]), i
        assert np.array_equal(b.obs[row].numpy(), history[i]["obs"]), i


def test_hand_computed_nstep_on_frames():
    # episode 0: 2 steps terminated (slots 0,1; final frame in 2); episode 1 from slot 3
    history = stream([(2, "term"), (4, "trunc")], (1, 1, 1), 4)
    buf = ReplayBuffer(FrameStorage(16, (1, 1, 1), 4), n_step=3, gamma=0.5)
    for tr in history:
        add(buf.storage, tr)
    assert [tr["reward"] for tr in history] == [0, 1, 2, 3, 4, 0]
    b = buf.batch_at(torch.tensor([0, 3, 5]))
    # slot 0: 0 + .5*1, terminated -> no bootstrap; slot 3: 2 + .5*3 + .25*4 = 4.5, 0.5^3;
    # slot 5: 4 + .5*0, truncated at the 4th step -> bootstrap with 0.25
    assert b.reward.tolist() == [0.5, 4.5, 4.0] and b.discount.tolist() == [0.0, 0.125, 0.25]
    # pixels: episode 0 frames 1, 2, 3; episode 1 (its reset frame is step 3) frames 4..8
    assert b.next_obs.flatten(1).tolist() == [[1, 1, 2, 3], [4, 5, 6, 7], [5, 6, 7, 8]]
    assert b.obs.flatten(1).tolist() == [[1, 1, 1, 1], [4, 4, 4, 4], [4, 4, 5, 6]]


def test_gather_is_shape_generic():
    history = stream(EPISODES[:5], (3, 2, 2), 3)
    storage = FrameStorage(40, (3, 2, 2), 3)
    for tr in history:
        add(storage, tr)
    idx = storage.valid.nonzero().squeeze(1)[:6].reshape(2, 3)
    obs = storage.gather("obs", idx)
    assert obs.shape == (2, 3, 9, 2, 2) and obs.dtype == torch.uint8
    assert torch.equal(obs.reshape(6, 9, 2, 2), storage.gather("obs", idx.flatten()))


def test_state_dict_round_trip_continues_identically():
    history = stream(EPISODES, (1, 2, 2), 4)
    buf = ReplayBuffer.for_pixels(31, (1, 2, 2), 4, seed=1, n_step=3)
    for tr in history[:60]:  # wrapped, stopped mid-episode
        add(buf.storage, tr)
    buf.sample(5)
    data = io.BytesIO()
    torch.save(buf.state_dict(), data)
    copy = ReplayBuffer.for_pixels(31, (1, 2, 2), 4, seed=99, n_step=3)
    copy.load_state_dict(torch.load(io.BytesIO(data.getvalue())))
    for name, tensor in buf.storage.fields.items():
        assert torch.equal(tensor, copy.storage.fields[name]), name
    for start in (60, 70):
        for x, y in zip(buf.sample(16), copy.sample(16)):
            assert (x is None and y is None) or torch.equal(x, y)  # weights: None (uniform)
        for tr in history[start:start + 10]:  # the open episode goes on (continuity checked)
            add(buf.storage, tr)
            add(copy.storage, tr)
    check_everything(copy.storage, history[:80])
    with pytest.raises(ValueError, match="stack"):
        FrameStorage(31, (1, 2, 2), 3).load_state_dict(buf.storage.state_dict())


def test_empty_state_round_trip_and_add_batch():
    history = stream(EPISODES[:4], (1, 2, 2), 4)
    empty = FrameStorage(12, (1, 2, 2), 4)
    one = FrameStorage(12, (1, 2, 2), 4)
    one.load_state_dict(empty.state_dict())
    many = FrameStorage(12, (1, 2, 2), 4)
    for tr in history:
        add(one, tr)
    many.add_batch(**{k: [tr[k] for tr in history] for k in history[0] if k not in ("ep", "t")})
    for name, tensor in one.fields.items():
        assert torch.equal(tensor, many.fields[name]), name
    assert len(one) == len(many) > 0


def test_padding_order_and_continuity_checks_raise():
    rep, zero = stream([(3, "open")], (1, 2, 2), 4), stream([(3, "open")], (1, 2, 2), 4, "zero")
    with pytest.raises(ValueError, match="repeat"):
        add(FrameStorage(10, (1, 2, 2), 4), zero[0])
    with pytest.raises(ValueError, match="zero"):
        add(FrameStorage(10, (1, 2, 2), 4, padding="zero"), rep[0])
    newest_first = dict(rep[0], next_obs=rep[0]["next_obs"][::-1].copy())
    with pytest.raises(ValueError, match="newest"):
        add(FrameStorage(10, (1, 2, 2), 4), newest_first)
    with pytest.raises(ValueError, match="uint8"):
        add(FrameStorage(10, (1, 2, 2), 4), dict(rep[0], obs=rep[0]["obs"].astype(np.float32)))
    with pytest.raises(ValueError, match="shape"):
        add(FrameStorage(10, (1, 2, 2), 3), rep[0])
    storage = FrameStorage(10, (1, 2, 2), 4)
    add(storage, rep[0])
    other = stream([(3, "open")], (1, 2, 2), 4, first_step=50)
    with pytest.raises(ValueError, match="continue"):
        add(storage, other[1])
    storage.truncate_newest()  # a run stopped mid-episode: the next add starts a new one
    add(storage, other[0])
    assert storage.gather("truncated", torch.tensor([0])).item() is True
    assert storage.gather("action", storage.valid.nonzero().squeeze(1)).tolist() == [0, 0]


@pytest.mark.parametrize("frame_shape,k,length,capacity,action", [
    ((1, 84, 84), 4, 400, 3000, ((), torch.int64)),  # Atari
    ((3, 84, 84), 3, 500, 1200, ((6,), torch.float32))])  # DMC pixels
def test_memory_is_one_frame_per_transition(frame_shape, k, length, capacity, action):
    storage = FrameStorage(capacity, frame_shape, k, *action)
    frames = [np.full(frame_shape, s % 251, np.uint8) for s in range(k + 1)]
    first = np.concatenate([frames[0]] * k)
    nxt = np.concatenate([frames[0]] * (k - 1) + [frames[1]])
    act = np.zeros(action[0], np.float32) if action[0] else 0
    for step in range(capacity + 2 * length // 3):  # wrapped, as a full buffer runs
        t = step % length
        obs = first if t == 0 else nxt
        storage.add(obs, act, 0.0, nxt, False, t == length - 1)
    frame_bytes = int(np.prod(frame_shape))
    # lost to sampling: one final-frame slot per episode, the write head, k - 1 partial stacks
    assert len(storage) >= capacity - (capacity // (length + 1) + 1) - k
    assert storage.nbytes() <= 1.05 * len(storage) * frame_bytes + 4096
    naive = naive_bytes_per_transition((k * frame_shape[0], *frame_shape[1:]), *action)
    assert naive > 2 * k * frame_bytes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sampling_and_gather_never_sync():
    history = stream(EPISODES, (1, 84, 84), 4)
    buf = ReplayBuffer.for_pixels(50, (1, 84, 84), 4, device="cuda", n_step=3)
    for tr in history:
        add(buf.storage, tr)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch = buf.sample(32)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    want = np.stack([history[i]["obs"] for i in batch.action.tolist()])
    assert batch.obs.is_cuda and np.array_equal(batch.obs.cpu().numpy(), want)
