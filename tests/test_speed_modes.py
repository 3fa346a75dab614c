"""Speed modes that compose (issue 19 item 5): the generic compiled update (agents/compile.py)
over any param groups and Adam/AdamW optimizers, critic-only updates compiled, a bounded graph
cache, diagnostics and the trainability probe measured under `compile`, and `nn.Module.compile`
left alone. Compiling one small SAC update takes ~5-20 s on the 2-core CPU."""
import copy
import warnings

import pytest
import torch

from agents.acceleration import GraphCache
from agents.sac import SAC
from plasticity.diagnostics import Diagnostics
from plasticity.probe import trainability_probe
from tests.test_sac import _assert_same_state, _same_updates, _twin_agents, random_buffer


def test_module_compile_method_is_not_shadowed():
    agent = SAC(3, 1, hidden_dims=(8,), compile="compile")
    assert agent.speed_mode == agent.hparams["compile"] == "compile"
    assert agent.compile.__func__ is torch.nn.Module.compile  # the attribute is nn.Module's method


def test_graph_cache_keeps_at_most_size_graphs_least_recently_used_first():
    cache, built = GraphCache(2, "test"), []

    def build(key):
        return lambda: built.append(key) or f"graph {key}"
    assert cache.get("a", build("a")) == "graph a" and cache.get("b", build("b")) == "graph b"
    assert cache.get("a", build("a")) == "graph a"  # cached: a is now the most recent
    with pytest.warns(RuntimeWarning, match="more than 2 signatures"):
        cache.get("c", build("c"))  # evicts b
    assert "b" not in cache and "a" in cache and len(cache) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only the first eviction warns
        cache.get("b", build("b"))
    assert built == ["a", "b", "c", "b"] and (cache.builds, cache.evictions) == (4, 2)
    with pytest.raises(ValueError, match="size 0"):
        GraphCache(0)


def test_rlpd_critic_only_updates_run_through_the_compiled_graph():
    """RLPD's setting (actor and alpha once per 3 critic updates here, a random 2 of 4 target
    critics): every update, critic-only ones included, is one compiled graph, and the results
    match the eager agent's."""
    eager, compiled = _twin_agents(actor_update_every=3, num_critics=4, num_target_critics=2,
                                   layer_norm=True)
    buf = random_buffer()
    calls = []
    graphs = compiled._compiled
    original = graphs.__call__

    class Spy:  # counts the calls that reach the compiled update
        def supported(self):
            return graphs.supported()

        def __call__(self, key, batch):
            calls.append(key[:2])
            return original(key, batch)
    compiled._compiled = Spy()
    for step in range(6):
        _same_updates([eager, compiled], buf, 1, seed=10 + step)
    _assert_same_state(eager, compiled)
    assert calls == [(False, True), (False, True), (True, True)] * 2
    assert graphs._graphs.builds == 2  # one graph per key, reused


def test_adamw_and_several_param_groups_compile_with_torch_adam_math():
    """Nothing in the compiled update names SAC's optimizers or groups: AdamW with weight decay
    and a second param group with its own learning rate give the eager result."""
    eager, compiled = _twin_agents()
    for agent in (eager, compiled):
        head = list(agent.critic.head.parameters())
        rest = [p for p in agent.critic.parameters() if all(p is not h for h in head)]
        agent.optimizers["critic"] = torch.optim.AdamW(
            [{"params": rest}, {"params": head, "lr": 1e-2, "betas": (0.8, 0.99)}],
            lr=3e-4, weight_decay=0.1, fused=True)
    _same_updates([eager, compiled], random_buffer(), 3, seed=5)
    _assert_same_state(eager, compiled)
    assert compiled._compiled.supported() and compiled._compiled._graphs.builds == 1
    compiled.optimizers["actor"] = torch.optim.SGD(compiled._actor_params, lr=1e-3)
    assert not compiled._compiled.supported()  # another optimizer: the eager update runs


def test_diagnostics_are_measured_under_compile_and_match_eager():
    """A diagnostics step runs the update eagerly (hooks fire, `.grad` is set) from the same
    state; the updates around it stay compiled."""
    eager, compiled = _twin_agents()
    buf = random_buffer()
    _same_updates([eager, compiled], buf, 2, seed=1)
    measured = []
    for agent in (eager, compiled):
        diag = Diagnostics(agent, every=1)
        torch.manual_seed(3)
        with diag.capture(True):
            agent.update(buf.batch_at(torch.arange(64)))
        measured.append({k: v for k, v in diag.measure().items()})
    assert set(measured[1]) == set(measured[0]) and "critic/dormant_ratio" in measured[1]
    assert "critic/srank" in measured[1] and float(measured[1]["critic/grad_norm"]) > 0
    for key, value in measured[0].items():
        torch.testing.assert_close(measured[1][key], value, rtol=1e-4, atol=1e-5, msg=key)
    builds = compiled._compiled._graphs.builds
    _same_updates([eager, compiled], buf, 2, seed=7)  # compiled again after the eager step
    _assert_same_state(eager, compiled)
    assert compiled._compiled._graphs.builds == builds == 1


def test_probe_and_deepcopy_work_under_compile():
    """The probe copies the agent: the copy gets its own compiled update over its own tensors,
    and the probe's numbers equal the eager agent's."""
    eager, compiled = _twin_agents()
    buf = random_buffer()
    _same_updates([eager, compiled], buf, 1, seed=2)
    clone = copy.deepcopy(compiled)
    assert clone._compiled.agent is clone and clone._compiled is not compiled._compiled
    batch = buf.batch_at(torch.arange(32))
    results = [trainability_probe(a, "critic", batch, steps=5, seed=4) for a in (eager, compiled)]
    assert results[1] == pytest.approx(results[0], rel=1e-4)
    _same_updates([eager, compiled, clone], buf, 1, seed=9)  # the copy trains its own tensors
    _assert_same_state(eager, clone)
