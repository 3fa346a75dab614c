"""Prioritized replay: sum-tree sums after batch updates (duplicates: last write wins), prefix-sum
search on a hand example, sampling proportions, max priority for new transitions, zero priority
(and invalid FrameStorage slots) never drawn, checkpoint round trip with identical draws."""
import numpy as np
import pytest
import torch

from replay import FrameStorage, PrioritizedSampler, ReplayBuffer, SumTree, UniformSampler


def check_sums(tree):
    """Every internal node equals the sum of the leaves below it (exactly: float64, integers)."""
    leaves = tree.nodes[tree.leaf0:]
    for node in range(1, tree.leaf0):
        level = node.bit_length() - 1
        width = tree.leaf0 >> level  # leaves under a node of this level
        first = (node - (1 << level)) * width
        assert tree.nodes[node].item() == leaves[first:first + width].sum().item(), node
    assert tree.nodes[tree.leaf0 + tree.capacity:].eq(0).all()  # padding leaves stay 0


def test_batch_updates_keep_exact_sums_and_last_write_wins():
    g = torch.Generator().manual_seed(0)
    tree = SumTree(11)  # 16 leaf positions, 5 of them padding
    want = np.zeros(11)
    for _ in range(20):
        idx = torch.randint(0, 11, (9,), generator=g)  # duplicates on purpose
        val = torch.randint(0, 50, (9,), generator=g).double()
        tree.set(idx, val)
        for i, v in zip(idx.tolist(), val.tolist()):  # sequential writes: the last one stays
            want[i] = v
        assert tree.leaves.tolist() == want.tolist()
        assert tree.total.item() == want.sum()
        check_sums(tree)
    tree.set(torch.tensor([3, 5, 3, 3]), torch.tensor([1.0, 2.0, 7.0, 9.0]))
    assert tree.get(torch.tensor([3, 5])).tolist() == [9.0, 2.0]
    rebuilt = SumTree(11)
    rebuilt.rebuild(tree.leaves.clone())
    assert torch.equal(rebuilt.nodes, tree.nodes)


def test_prefix_sum_search_hand_example():
    tree = SumTree(5)
    tree.set(torch.arange(5), torch.tensor([1.0, 0.0, 2.0, 3.0, 0.5]))  # cumsum 1, 1, 3, 6, 6.5
    mass = torch.tensor([0.0, 0.99, 1.0, 2.5, 2.999, 3.0, 5.99, 6.0, 6.49])
    assert tree.find(mass).tolist() == [0, 0, 2, 2, 2, 3, 3, 4, 4]
    # rounding past the total never lands on a zero or padding leaf
    assert tree.find(torch.tensor([6.5, 7.0, 100.0])).tolist() == [4, 4, 4]
    tree.set(torch.tensor([4]), torch.tensor([0.0]))
    assert tree.find(torch.tensor([6.0, 6.4])).tolist() == [3, 3]
    one = SumTree(1)
    one.set(torch.tensor([0]), torch.tensor([2.0]))
    assert one.total.item() == 2.0 and one.find(torch.tensor([0.0, 1.9])).tolist() == [0, 0]


def vector_buffer(capacity, steps, **kw):
    buf = ReplayBuffer.for_spaces(capacity, (1,), ())
    buf.sampler = PrioritizedSampler("cpu", 0, **kw)
    add(buf, steps)
    return buf


def add(buf, steps, start=0):
    for t in range(start, start + steps):
        buf.add([float(t)], 0.0, 0.0, [t + 1.0], False, False)


@pytest.mark.parametrize("stratified", [True, False])
def test_sampling_proportions(stratified):
    buf = vector_buffer(8, 8, stratified=stratified)
    buf.sampler.sync(buf.storage)
    prio = torch.tensor([1.0, 2.0, 0.0, 4.0, 0.5, 0.0, 2.5, 6.0])
    buf.update_priorities(torch.arange(8), prio)
    counts = torch.zeros(8)
    for _ in range(50):
        counts += torch.bincount(buf.sampler.sample(buf.storage, 2000).idx, minlength=8)
    freq = counts / counts.sum()
    assert counts[2] == 0 and counts[5] == 0  # zero priority: never drawn
    assert torch.allclose(freq, prio / prio.sum(), atol=0.006), freq
    assert torch.allclose(buf.sampler.probabilities(torch.arange(8)).float(), prio / prio.sum())


def test_alpha_and_importance_weights():
    buf = vector_buffer(4, 4, alpha=0.5)
    buf.sample(1)
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, 4.0, 9.0, 16.0]))
    assert buf.sampler.tree.leaves.tolist() == [1.0, 2.0, 3.0, 4.0]
    p = torch.tensor([1.0, 2.0, 3.0, 4.0]) / 10
    w = buf.sampler.importance_weights(torch.tensor([0, 3]), beta=0.5)
    want = (p[[0, 3]] + 1e-10) ** -0.5
    assert torch.allclose(w, want / want.max()) and w.max() == 1.0


def test_new_transitions_get_the_max_priority_and_overwrites_reset():
    buf = vector_buffer(6, 4)
    buf.sample(8)
    assert buf.sampler.tree.leaves.tolist() == [1.0] * 4 + [0.0] * 2  # initial max 1, unfilled 0
    buf.update_priorities(torch.tensor([0, 1, 2, 3]), torch.tensor([0.5, 3.0, 0.25, 0.0]))
    add(buf, 3, start=4)  # slots 4, 5 and (wrapping) 0
    buf.sample(8)
    assert buf.sampler.tree.leaves.tolist() == [3.0, 3.0, 0.25, 0.0, 3.0, 3.0]
    buf.update_priorities(torch.tensor([1]), torch.tensor([0.1]))
    add(buf, 6, start=7)  # a whole turn of the ring while unobserved: pos/size ambiguity
    buf.sampler.sync(buf.storage)  # pos/size as before: no change seen (the documented limit)
    assert buf.sampler.tree.get(torch.tensor([2])).item() == 0.25
    add(buf, 1, start=13)
    buf.sample(4)
    assert buf.sampler.tree.get(torch.tensor([1])).item() == 3.0  # slot 1 rewritten: max again


def test_uniform_buffer_ignores_priorities():
    buf = ReplayBuffer.for_spaces(8, (1,), ())
    add(buf, 4)
    before = buf.sampler.generator.get_state()
    buf.update_priorities(torch.arange(4), torch.ones(4))
    assert isinstance(buf.sampler, UniformSampler)
    assert torch.equal(buf.sampler.generator.get_state(), before)


def frame_add(storage, t, episode_start, end):
    """Frame pixels = t + 1, 2-frame stacks."""
    def f(v):
        return np.full((1, 1, 1), v % 250 + 1, np.uint8)
    obs = np.concatenate([f(t), f(t)] if episode_start else [f(t - 1), f(t)])
    storage.add(obs, t, 0.0, np.concatenate([f(t), f(t + 1)]), end == "term", end == "trunc")


def test_frame_storage_invalid_slots_have_zero_priority():
    storage = FrameStorage(10, (1, 1, 1), 2)
    sampler = PrioritizedSampler("cpu", 3)
    lengths = [3, 1, 4, 2, 5, 1, 3]
    t, seen = 0, {}
    for e, length in enumerate(lengths):
        for i in range(length):
            before = (sampler.tree.leaves.clone(), storage.valid.clone(),
                      storage.fields["action"].clone()) if sampler.tree is not None else None
            frame_add(storage, t, i == 0, ("term" if e % 2 else "trunc") if i == length - 1 else "")
            t += 1
            sampler.sync(storage)
            leaves = sampler.tree.leaves
            assert torch.equal(leaves > 0, storage.valid), (e, i)
            if before is not None:  # unchanged transitions keep their leaf, new ones get the max
                same = before[1] & storage.valid & (before[2] == storage.fields["action"])
                new = storage.valid & ~same
                assert torch.equal(leaves[same], before[0][same]), (e, i)
                assert (leaves[new] == sampler.max_priority).all(), (e, i)
            idx = sampler.sample(storage, 256).idx
            assert storage.valid[idx].all()
            new = torch.rand(len(idx), generator=torch.Generator().manual_seed(t)) + 0.01
            sampler.update_priorities(idx, new)
            seen = {**seen, **dict(zip(idx.tolist(), new.tolist()))}
    leaves = sampler.tree.leaves
    assert (leaves[~storage.valid] == 0).all()
    assert sampler.max_priority.item() >= max(seen.values())


def test_state_round_trip_gives_identical_draws():
    buf = vector_buffer(16, 12)
    buf.sample(32)
    buf.update_priorities(torch.arange(12), torch.arange(12).double() + 0.5)
    state = buf.state_dict()
    twin = ReplayBuffer.for_spaces(16, (1,), ())
    twin.sampler = PrioritizedSampler("cpu", 99)
    twin.load_state_dict(state)
    assert torch.equal(twin.sampler.tree.nodes, buf.sampler.tree.nodes)
    for step in range(3):
        add(buf, 1, start=12 + step)
        add(twin, 1, start=12 + step)
        a, b = buf.sample(64), twin.sample(64)
        assert torch.equal(a.idx, b.idx)
        buf.update_priorities(a.idx, a.idx.double() * 0.1)
        twin.update_priorities(b.idx, b.idx.double() * 0.1)
    fresh = PrioritizedSampler("cpu", 5)
    fresh.load_state_dict(PrioritizedSampler("cpu", 5).state_dict())  # never synced: no tree
    assert fresh.tree is None
