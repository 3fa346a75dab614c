"""Update acceleration on CPU (agents/acceleration.py): the `compile` setting of every agent,
agents routed through a `CapturedUpdate` with a CPU stand-in graph (`load_training_state`
forgetting graphs, a key per intervention state and per optimizer-hook set), and the compiled
pixel agents against eager, augmentation included (the same random stream).

The stand-in graph runs the captured function at capture time (a real CUDA graph only records
it), so a stateful update captured through it would be applied twice; the agent-level tests use
`TracelessGraph`, which puts the agent's
tensors and RNG back after the capture run, as a real capture leaves them. CUDA-only checks (real
graphs, interventions over 100 replayed updates) are in tests/test_cuda_graphs.py.

torch.compile of a tiny network takes 10-80 s on the 2-core CPU: the default run compiles one
agent (DrQ(eps)); the other compiled agents are `-m slow`."""
from __future__ import annotations

import copy
import functools

import pytest
import torch

import agents.base
from agents import BBF, DrQ, SAC
from agents.acceleration import (COMPILE_MODES, CapturedUpdate, compile_mode, learning_rate,
                                 optimizer_options)
from agents.drq_atari import DrQAtari
from plasticity.groups import resolve_group
from plasticity.interventions import zero_optimizer_state
from plasticity.scheduler import build_scheduler
from replay.buffer import Batch
from tests.test_captured_update import Graphs, StandInGraph, sequences

AGENTS = ("SAC", "DrQ", "DrQAtari", "BBF")
NO_AUGMENT = {"DrQ": dict(augment_pad=0), "DrQAtari": dict(augment_pad=0, intensity_scale=0.0),
              "BBF": dict(augment_pad=0, intensity_scale=0.0), "SAC": {}}
RTOL, ATOL = 1e-4, 1e-5  # compiled vs eager fp32 on CPU (observed differences ~1e-7)



def agent_tensors(agent) -> list[torch.Tensor]:
    """Everything an update reads or writes: parameters, buffers, optimizer state tensors."""
    tensors = list(agent.parameters()) + list(agent.buffers())
    tensors += [v for opt in agent.optimizers.values() for state in opt.state.values()
                for v in state.values() if torch.is_tensor(v)]
    return tensors


def storage(agent) -> list[int]:
    return [t.data_ptr() for t in agent_tensors(agent)]


def attach_stand_in(agent, graph_factory, warmup: int) -> CapturedUpdate:
    """Route a CPU agent's updates through a CapturedUpdate built exactly as `cudagraphs` builds
    it (`Agent._set_update_mode`), but with `graph_factory` and `warmup`, and without the CUDA
    check; the agent's optimizers and eager loss functions stay as they are."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agents.base, "compile_mode", lambda value, device: value)
        mp.setattr(agents.base, "CapturedUpdate",
                   functools.partial(CapturedUpdate, warmup=warmup, graph_factory=graph_factory))
        agent._set_update_mode("cudagraphs")
    assert isinstance(agent._graphed, CapturedUpdate) and agent._graphed.graph_factory is graph_factory
    return agent._graphed


class TracelessGraph(StandInGraph):
    """A stand-in whose capture leaves no trace, as a real CUDA graph capture (which records the
    kernels without running them): the agent's tensors and the CPU RNG are put back after the
    capture run, so only replays change the agent."""

    def __init__(self, agent):
        super().__init__()
        self.agent = agent

    def capture(self, fn):
        tensors = agent_tensors(self.agent)
        saved, rng = [t.detach().clone() for t in tensors], torch.get_rng_state()
        out = super().capture(fn)
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        torch.set_rng_state(rng)
        return out

# ------------------------------------------------------------------ agents and their batches
def make_agent(name: str, seed: int = 0, **kw):
    """Tiny agents (eager construction is cheap; torch.compile is lazy)."""
    torch.manual_seed(seed)
    if name == "SAC":
        return SAC(5, 2, hidden_dims=(16, 16), **kw)
    if name == "DrQ":
        return DrQ((3, 16, 16), 2, hidden_dims=(16, 16), feature_dim=8, channels=(8, 8),
                   strides=(2, 1), **kw)
    if name == "DrQAtari":
        return DrQAtari((4, 20, 20), 3, channels=(8, 16, 16), hidden_dims=(32,), **kw)
    if name == "BBF":
        return BBF((4, 16, 16), 3, width_scale=1, hidden_dims=(32,), num_atoms=11, spr_horizon=2, **kw)
    raise KeyError(name)


def make_batch(name: str, seed: int, b: int = 8):
    if name == "BBF":
        return sequences(seed, b=b, weights=seed % 2 == 0)
    g = torch.Generator().manual_seed(seed)
    if name == "SAC":
        obs, next_obs = torch.randn(b, 5, generator=g), torch.randn(b, 5, generator=g)
        action = torch.rand(b, 2, generator=g) * 2 - 1
    else:
        shape = (3, 16, 16) if name == "DrQ" else (4, 20, 20)
        obs, next_obs = (torch.randint(0, 256, (b, *shape), generator=g, dtype=torch.uint8) for _ in range(2))
        action = (torch.rand(b, 2, generator=g) * 2 - 1 if name == "DrQ"
                  else torch.randint(0, 3, (b,), generator=g))
    discount = 0.99 * (torch.rand(b, generator=g) > 0.1).float()
    return Batch(obs, action, torch.randn(b, generator=g), discount, next_obs, torch.arange(b))


def assert_same_agents(a, b, rtol=0.0, atol=0.0):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    for opt_name, opt in a.optimizers.items():
        other = b.optimizers[opt_name]
        for group, other_group in zip(opt.param_groups, other.param_groups):
            for p, q in zip(group["params"], other_group["params"]):
                assert set(opt.state[p]) == set(other.state[q])
                for field, value in opt.state[p].items():
                    torch.testing.assert_close(other.state[q][field], value, rtol=rtol, atol=atol,
                                               msg=lambda m, f=field: f"{opt_name} {f}: {m}")


def assert_same_metrics(expected: dict, actual: dict, rtol=0.0, atol=0.0):
    assert set(actual) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=rtol, atol=atol,
                                   msg=lambda m, name=name: f"{name}: {m}")


# -------------------------------------------------------------------- the `compile` setting
@pytest.mark.parametrize("name", AGENTS)
def test_compile_setting_is_checked_for_every_agent(name):
    with pytest.raises(ValueError, match=r"compile = 'fast': allowed values are "
                                         r"\['none', 'compile', 'cudagraphs'\]"):
        make_agent(name, compile="fast")
    with pytest.raises(ValueError, match="'cudagraphs' needs a CUDA device"):
        make_agent(name, compile="cudagraphs", device="cpu")
    for value, mode in ((False, "none"), (True, "compile"), ("none", "none"), ("compile", "compile")):
        agent = make_agent(name, compile=value)
        assert agent.speed_mode == agent.hparams["compile"] == mode, value  # saved normalised
        assert agent._graphed is None
        assert all(isinstance(g["lr"], float) for o in agent.optimizers.values() for g in o.param_groups)
    assert make_agent(name).speed_mode == "none"


def test_compile_mode_helpers():
    assert COMPILE_MODES == ("none", "compile", "cudagraphs")
    assert compile_mode(None, "cpu") == "none" and compile_mode(True, "cpu") == "compile"
    # only the device type is checked: no CUDA is needed to name a CUDA device
    assert compile_mode("cudagraphs", "cuda") == "cudagraphs"
    assert compile_mode("cudagraphs", torch.device("cuda", 0)) == "cudagraphs"
    with pytest.raises(ValueError, match="allowed values"):
        compile_mode("CUDAGRAPHS", "cuda")
    assert optimizer_options("cudagraphs") == {"fused": True, "capturable": True}
    assert optimizer_options("compile") == optimizer_options("none") == {"fused": True}
    lr = learning_rate(3e-4, "cudagraphs", "cpu")
    assert torch.is_tensor(lr) and lr.item() == pytest.approx(3e-4)
    assert learning_rate(3e-4, "compile", "cpu") == 3e-4


# -------------------------------------------------------- agents through a CapturedUpdate
@pytest.mark.parametrize("name", AGENTS)
def test_load_training_state_forgets_captured_graphs(name):
    agent, graphs = make_agent(name), Graphs(lambda: TracelessGraph(agent))
    attach_stand_in(agent, graphs, warmup=1)
    batch = make_batch(name, 0)
    for _ in range(3):
        agent.update(batch)
    assert agent._graphed.num_graphs == 1
    agent.load_training_state(copy.deepcopy(agent.training_state()))
    assert agent._graphed.num_graphs == 0 and not agent._graphed._calls
    agent.update(batch)  # warm-up again (eager) ...
    assert len(graphs.made) == 1
    agent.update(batch)  # ... then a new capture
    assert agent._graphed.num_graphs == 1 and len(graphs.made) == 2


@pytest.mark.parametrize("name", AGENTS)
def test_captured_agent_trains_like_eager_when_capture_leaves_no_trace(name):
    """Through a CapturedUpdate (warm-up 2) whose capture leaves the agent as it was, each
    update equals eager's bit for bit: the key, the static batch copy (nested batches, None
    fields) and the outputs carry everything. (The plain stand-in would apply the capture's
    update twice, so it is not used here.)"""
    eager, graphed = make_agent(name), make_agent(name)
    graphs = Graphs(lambda: TracelessGraph(graphed))
    attach_stand_in(graphed, graphs, warmup=2)
    for k in range(6):
        batch = make_batch(name, k)
        out = []
        for agent in (eager, graphed):
            torch.manual_seed(100 + k)
            out.append(agent.update(batch))
        assert_same_metrics(*out)
        assert_same_agents(eager, graphed)
    assert graphed._graphed.num_graphs == (2 if name == "BBF" else 1)  # BBF: weights / None layouts
    assert sum(g.replays for g in graphs.made) == (2 if name == "BBF" else 4)


def test_drq_atari_intervention_changes_the_key_and_captures_another_graph():
    """An intervention (head reset, target untouched) makes DrQ(eps)'s target differ from the
    online net: the next update runs under a new key, warmed up and captured on its own; the
    agent still matches eager bit for bit."""
    eager, graphed = make_agent("DrQAtari"), make_agent("DrQAtari")
    graphs = Graphs(lambda: TracelessGraph(graphed))
    attach_stand_in(graphed, graphs, warmup=1)
    rule = dict(intervention="reset", groups=["critic.head"], unit="updates", every=3, target="untouched")
    schedulers = [build_scheduler(a, [rule]) for a in (eager, graphed)]
    ptrs = None
    for k in range(1, 10):
        batch = make_batch("DrQAtari", k)
        out = []
        for agent, scheduler in zip((eager, graphed), schedulers):
            torch.manual_seed(100 + k)
            out.append(agent.update(batch))
            torch.manual_seed(200 + k)  # the same fresh draws for both
            scheduler.after_update(k, k)
        assert_same_metrics(*out)
        assert_same_agents(eager, graphed)
        ptrs = ptrs or storage(graphed)  # optimizer states exist from the first update on
        assert storage(graphed) == ptrs
    # two keys: target synced, and right after each reset (captured at updates 2 and 7)
    assert graphed._graphed.num_graphs == len(graphs.made) == 2


def test_an_optimizer_hook_change_captures_another_graph():
    """Step hooks run inside a captured update, so registering one recaptures (its warm-up call
    runs the hook eagerly); removing it brings back the first graph."""
    agent, graphs = make_agent("SAC"), Graphs()
    graphs.graph = lambda: TracelessGraph(agent)
    captured = attach_stand_in(agent, graphs, warmup=1)
    batch = make_batch("SAC", 0)
    agent.update(batch)
    agent.update(batch)
    assert captured.num_graphs == 1
    calls = []
    handle = agent.optimizers["critic"].register_step_pre_hook(lambda *args: calls.append(1))
    agent.update(batch)  # a new key: warm-up, eager
    assert calls == [1] and captured.num_graphs == 1
    agent.update(batch)
    assert captured.num_graphs == 2
    handle.remove()
    agent.update(batch)
    assert captured.num_graphs == len(graphs.made) == 2


def test_pure_loss_through_the_stand_in_graph_matches_eager():
    """DrQ(eps)'s TD loss without augmentation is a pure function of (synced, batch): captured
    through the stand-in, it gives eager's loss for every batch and for both keys, and sees
    in-place edits of the weights."""
    agent = make_agent("DrQAtari", **NO_AUGMENT["DrQAtari"])
    with torch.no_grad():
        for p in agent._target_params:
            p.add_(0.1 * torch.randn_like(p))  # target != online: the two keys differ

    def loss(synced, batch):
        with torch.no_grad():
            return agent.td_loss(batch, synced)[1]

    captured = CapturedUpdate(loss, warmup=1, graph_factory=Graphs())
    for k in range(8):
        if k == 5:
            with torch.no_grad():
                agent.critic.head.weight.mul_(0.5)
        synced, batch = k % 2 == 0, make_batch("DrQAtari", k)
        assert_same_metrics(loss(synced, batch), captured(synced, batch))
    assert captured.num_graphs == 2


# ------------------------------------------------------------- compiled vs eager on CPU
def check_compiled_matches_eager(name: str, updates: int = 3, **kw):
    """`compile="compile"` against `"none"`, same seed, same batches, the same torch seed before
    each update; before the last update a plasticity-style in-place edit (head and its target
    halved, their Adam state zeroed) on both. Losses, parameters and optimizer states agree
    within RTOL/ATOL, and no parameter or optimizer-state tensor changes storage."""
    eager, compiled = make_agent(name, **kw), make_agent(name, compile="compile", **kw)
    assert_same_agents(eager, compiled)
    attr = {"DrQAtari": "_td_loss_fn", "BBF": "_losses_fn", "DrQ": "_actor_loss_fn"}[name]
    compiled_fn, calls = getattr(compiled, attr), []
    assert compiled_fn is not getattr(eager, attr)  # a torch.compile wrapper

    def counted(*args):
        calls.append(1)
        return compiled_fn(*args)

    setattr(compiled, attr, counted)
    ptrs = None
    for k in range(updates):
        if k == updates - 1:
            for agent in (eager, compiled):
                group = resolve_group(agent, "critic.head")
                with torch.no_grad():
                    for p in [*group.params.values(), *group.target_params.values()]:
                        p.mul_(0.5)
                zero_optimizer_state(group)
        batch = make_batch(name, k)
        out = []
        for agent in (eager, compiled):
            torch.manual_seed(100 + k)  # the same augmentation and policy-noise draws
            out.append(agent.update(batch))
        assert_same_metrics(*out, rtol=RTOL, atol=ATOL)
        assert_same_agents(eager, compiled, rtol=RTOL, atol=ATOL)
        if ptrs is None:  # optimizer states exist after the first update
            ptrs = storage(compiled)
        assert storage(compiled) == ptrs
    assert len(calls) == updates  # the compiled loss ran every update


def test_compiled_drq_atari_matches_eager_and_sees_in_place_edits():
    """Augmentation on: the compiled loss draws the same shifts and jitter (fallback_random)."""
    check_compiled_matches_eager("DrQAtari")


@pytest.mark.slow
def test_compiled_bbf_matches_eager_and_sees_in_place_edits():
    """Compiles for ~80 s on 2 cores. Batches alternate weights / None (two layouts)."""
    check_compiled_matches_eager("BBF")


@pytest.mark.slow
def test_compiled_drq_matches_eager():
    """With augmentation and policy noise: compiled losses draw from eager's stream."""
    check_compiled_matches_eager("DrQ")


def test_drq_compile_mode_uses_its_compiled_critic_loss():
    agent = make_agent("DrQ", compile="compile")
    calls = []
    # count calls with the eager losses behind the hooks (no compilation needed to see the routing)
    agent._critic_loss_fn = lambda batch: (calls.append("critic"), agent.critic_loss(batch))[1]
    agent._actor_loss_fn = lambda features: (calls.append("actor"), agent.actor_loss(features))[1]
    agent.update(make_batch("DrQ", 0))
    assert calls == ["critic", "actor"]
