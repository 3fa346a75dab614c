"""`CapturedUpdate` (agents/acceleration.py) on CPU, with a stand-in for the CUDA graph: eager
warm-up calls, one capture per key and batch layout, replays reading new batches through the
static inputs, cloned outputs, `reset`, nested batches with None fields.

The stand-in runs the captured function at capture time (a real CUDA graph only records it), so
these tests use pure step functions; agents through a CapturedUpdate are in test_acceleration.py."""
from __future__ import annotations

from typing import NamedTuple

import torch

from agents.acceleration import CapturedUpdate
from replay import SequenceBatch

# ------------------------------------------------------------------------ stand-in graphs
class StandInGraph:
    """CPU stand-in for `CudaGraph`: `capture(fn)` records fn and returns fn()'s outputs (the
    static outputs); `replay()` re-runs fn and copies its outputs into the static ones, in place."""

    def __init__(self):
        self.fn, self.out, self.replays = None, None, 0

    def capture(self, fn):
        self.fn = fn
        self.out = fn()
        return self.out

    def replay(self) -> None:
        self.replays += 1
        new = self.fn()
        for name, value in self.out.items():
            value.copy_(new[name])


class Graphs:
    """A `graph_factory` that keeps every graph it made."""

    def __init__(self, graph=StandInGraph):
        self.graph, self.made = graph, []

    def __call__(self):
        self.made.append(self.graph())
        return self.made[-1]

# ------------------------------------------------------------------ CapturedUpdate plumbing
class Pair(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


def reference(key, batch) -> dict:
    """A pure step: outputs depend only on (key, batch)."""
    return {"sum": (batch.x * batch.y).sum() + key, "scaled": batch.x * key}


class Step:
    """`reference`, recording the batch object each call received."""

    def __init__(self, fn=reference):
        self.fn, self.batches = fn, []

    def __call__(self, key, batch):
        self.batches.append(batch)
        return self.fn(key, batch)


def pair(seed, n=4, dtype=torch.float32) -> Pair:
    g = torch.Generator().manual_seed(seed)
    return Pair(torch.randn(n, 3, generator=g).to(dtype), torch.randn(n, 3, generator=g).to(dtype))


def assert_outputs(out, expected):
    assert set(out) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(out[name], value, rtol=0, atol=0)


def test_warmup_calls_are_eager_then_one_capture_whose_replays_read_new_batches():
    step, graphs = Step(), Graphs()
    captured = CapturedUpdate(step, warmup=3, graph_factory=graphs)
    batches = [pair(i) for i in range(7)]
    for i in range(3):  # warm-up: eager, on the caller's own tensors, nothing captured
        assert_outputs(captured(2.0, batches[i]), reference(2.0, batches[i]))
        assert step.batches[-1] is batches[i]
        assert captured.num_graphs == 0 and graphs.made == []
    assert_outputs(captured(2.0, batches[3]), reference(2.0, batches[3]))  # capture, then replay
    assert captured.num_graphs == 1 and len(graphs.made) == 1
    graph = graphs.made[0]
    static = step.batches[-1]
    assert static is not batches[3] and static.x is not batches[3].x  # the graph's own inputs
    assert graph.replays == 1
    static_ptrs = [static.x.data_ptr(), static.y.data_ptr()]
    for i in range(4, 7):  # replays: the new batch is copied into the same static inputs
        assert_outputs(captured(2.0, batches[i]), reference(2.0, batches[i]))
        assert step.batches[-1] is static and torch.equal(static.x, batches[i].x)
        assert [static.x.data_ptr(), static.y.data_ptr()] == static_ptrs
        assert graph.replays == i - 2 and len(graphs.made) == 1
    eager = [b for b in step.batches if b is not static]
    assert len(eager) == 3  # 3 warm-up calls; every other call ran the captured function


def test_one_graph_per_key_and_per_batch_layout():
    step, graphs = Step(), Graphs()
    captured = CapturedUpdate(step, warmup=1, graph_factory=graphs)

    def call(key, batch):
        assert_outputs(captured(key, batch), reference(key, batch))

    call(1.0, pair(0))  # warm-up of (1.0, [4, 3] float32)
    call(1.0, pair(1))  # its capture
    assert captured.num_graphs == 1
    batch = pair(2)
    call(3.0, batch)  # a new key warms up on its own ...
    assert captured.num_graphs == 1 and step.batches[-1] is batch
    call(3.0, pair(3))  # ... and gets its own graph
    call(1.0, pair(4, n=5))  # a new shape: warm-up, then a new graph
    call(1.0, pair(5, n=5))
    call(1.0, pair(6, dtype=torch.float64))  # a new dtype too
    call(1.0, pair(7, dtype=torch.float64))
    assert captured.num_graphs == len(graphs.made) == 4
    replays = [g.replays for g in graphs.made]
    call(1.0, pair(8))  # the first layout again: its graph is replayed, nothing new captured
    call(3.0, pair(9))
    assert captured.num_graphs == len(graphs.made) == 4
    assert [g.replays for g in graphs.made] == [replays[0] + 1, replays[1] + 1, *replays[2:]]


def test_zero_warmup_captures_on_the_first_call():
    step, graphs = Step(), Graphs()
    captured = CapturedUpdate(step, warmup=0, graph_factory=graphs)
    batch = pair(0)
    assert_outputs(captured(1.0, batch), reference(1.0, batch))
    assert captured.num_graphs == 1 and all(b is not batch for b in step.batches)


def test_returned_metrics_are_clones_of_the_static_outputs():
    step, graphs = Step(), Graphs()
    captured = CapturedUpdate(step, warmup=1, graph_factory=graphs)
    captured(1.0, pair(0))
    first = captured(1.0, pair(1))  # a replay
    static_out = graphs.made[0].out
    assert first["scaled"].data_ptr() != static_out["scaled"].data_ptr()
    second = captured(1.0, pair(2))  # the next replay overwrites the static outputs ...
    assert_outputs(static_out, reference(1.0, pair(2)))
    assert_outputs(first, reference(1.0, pair(1)))  # ... not what an earlier call returned
    assert_outputs(second, reference(1.0, pair(2)))
    second["scaled"].add_(100.0)  # and editing a result does not reach the graph
    assert_outputs(static_out, reference(1.0, pair(2)))


def test_reset_forgets_graphs_and_warms_up_again():
    step, graphs = Step(), Graphs()
    captured = CapturedUpdate(step, warmup=2, graph_factory=graphs)
    for i in range(4):
        captured(1.0, pair(i))
    old = graphs.made[0]
    old_replays = old.replays
    captured.reset()
    assert captured.num_graphs == 0
    for i in range(4, 6):  # eager again
        batch = pair(i)
        assert_outputs(captured(1.0, batch), reference(1.0, batch))
        assert step.batches[-1] is batch and len(graphs.made) == 1
    batch = pair(6)
    assert_outputs(captured(1.0, batch), reference(1.0, batch))  # recaptured
    assert captured.num_graphs == 1 and len(graphs.made) == 2
    assert old.replays == old_replays  # the forgotten graph is never replayed again
    assert graphs.made[1].replays == 1


def sequences(seed, b=4, k=2, obs=(4, 16, 16), num_actions=3, weights=True) -> SequenceBatch:
    """A BBF batch: a SequenceBatch (uint8 frames, int64 actions, bool mask) with weights or None."""
    g = torch.Generator().manual_seed(seed)

    def frames(*shape):
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

    seq = SequenceBatch(frames(b, *obs), torch.randint(0, num_actions, (b,), generator=g),
                        torch.randn(b, generator=g), torch.full((b,), 0.9), frames(b, *obs),
                        torch.randperm(50, generator=g)[:b], torch.randint(0, num_actions, (b, k), generator=g),
                        frames(b, k, *obs), torch.rand(b, k, generator=g) < 0.8)
    return seq._replace(weights=torch.rand(b, generator=g) + 0.5 if weights else None)


def nested_reference(key, batch):
    assert isinstance(batch, SequenceBatch)
    seq = batch
    per_sample = (seq.obs.float().mean((1, 2, 3)) + seq.future_obs.float().mean((1, 2, 3, 4))
                  + seq.next_obs.float().mean((1, 2, 3)) + seq.action + seq.actions.sum(1)
                  + seq.reward * seq.discount + seq.idx + seq.mask.sum(1))
    weights = torch.ones_like(per_sample) if batch.weights is None else batch.weights
    return {"loss": (per_sample * weights).mean() * key, "per_sample": per_sample}


def test_nested_batches_with_none_fields():
    step, graphs = Step(nested_reference), Graphs()
    captured = CapturedUpdate(step, warmup=1, graph_factory=graphs)
    for i in range(4):
        batch = sequences(i, weights=False)
        assert_outputs(captured(1.0, batch), nested_reference(1.0, batch))
    assert captured.num_graphs == 1
    static = step.batches[-1]
    assert isinstance(static, SequenceBatch) and static.weights is None
    assert static.obs.dtype == torch.uint8 and static.mask.dtype == torch.bool
    assert all(torch.equal(s, b) for s, b in zip(static[:-1], sequences(3)[:-1]))  # every leaf copied
    for i in range(4, 7):  # weights present: another layout, another graph
        batch = sequences(i, weights=True)
        assert_outputs(captured(1.0, batch), nested_reference(1.0, batch))
    assert captured.num_graphs == 2
    assert torch.equal(step.batches[-1].weights, sequences(6).weights)
    batch = sequences(7, weights=False)  # the first layout's graph again
    assert_outputs(captured(1.0, batch), nested_reference(1.0, batch))
    assert captured.num_graphs == 2 and graphs.made[0].replays == 4
