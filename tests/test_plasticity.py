"""Plasticity: group resolution, exact intervention identities, in-place storage, scheduler steps."""
import math

import pytest
import torch

from agents import SAC
from agents.networks import EnsembleLinear
from plasticity.fresh import fresh_values
from plasticity.groups import GroupError, last_layers, resolve_group
from plasticity.interventions import HareTortoise, Intervention, Reset, ShrinkPerturb
from plasticity.scheduler import ResetScheduler, Rule, Trigger, build_scheduler
from tests.test_sac import random_buffer


def trained_agent(**kw):
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16), **kw)
    buf = random_buffer()
    for _ in range(5):
        agent.update(buf.sample(32))
    return agent


def snapshot(agent):
    params = {n: p.detach().clone() for n, p in agent.named_parameters()}
    opt = {(k, i, f): v.clone() for k, o in agent.optimizers.items()
           for i, p in enumerate(o.param_groups[0]["params"]) for f, v in o.state[p].items()}
    return params, opt


def pointers(agent):
    ptrs = [p.data_ptr() for p in agent.parameters()]
    ptrs += [v.data_ptr() for o in agent.optimizers.values() for s in o.state.values() for v in s.values()]
    return ptrs


def bind(intervention, agent, patterns):
    intervention.bind(agent, resolve_group(agent, patterns))
    return intervention


def test_pattern_matching_nothing_lists_names():
    with pytest.raises(GroupError) as err:
        resolve_group(trained_agent(), ["critic.neck"])
    assert "critic.neck" in str(err.value) and "critic.head.weight" in str(err.value)


def test_group_resolution_finds_targets_and_optimizers():
    agent = trained_agent()
    g = resolve_group(agent, ["critic.head"])
    assert set(g.params) == {"critic.head.weight", "critic.head.bias"}
    assert g.target_params["critic.head.weight"] is agent.critic_target.head.weight
    assert g.optimizers == [agent.optimizers["critic"]]
    everything = resolve_group(agent, ["*"])
    assert not any(n.startswith("critic_target") for n in everything.params)


def test_last_layers_counts_layer_norms_with_their_linear():
    agent = SAC(5, 2, hidden_dims=(16, 16), layer_norm=True)
    assert last_layers(agent, "critic", 1) == ["critic.head"]
    assert last_layers(agent, "critic", 2) == ["critic.trunk.3", "critic.trunk.4", "critic.head"]
    with pytest.raises(GroupError, match=r"\[1, 3\]"):
        last_layers(agent, "critic", 4)


def test_shrink_perturb_one_zero_is_identity():
    agent = trained_agent()
    before, _ = snapshot(agent)
    bind(ShrinkPerturb(1.0, 0.0, optimizer="keep", target="untouched"), agent, ["critic.*", "actor.*"]).apply()
    for n, p in agent.named_parameters():
        assert torch.equal(p, before[n]), n


def test_shrink_perturb_zero_one_is_a_fresh_init_with_the_same_generator():
    agent = trained_agent()
    sp = bind(ShrinkPerturb(0.0, 1.0), agent, ["critic.head"])
    torch.manual_seed(7)
    sp.apply()
    torch.manual_seed(7)
    reference = EnsembleLinear(2, 16, 1, "orthogonal", math.sqrt(2))  # constructed fresh (jaxrl init): same draws
    assert torch.equal(agent.critic.head.weight, reference.weight)
    assert torch.equal(agent.critic.head.bias, reference.bias)


def test_shrink_perturb_toward_initial_parameters():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16))
    sp = bind(ShrinkPerturb(0.8, 0.2, source="initial"), agent, ["actor.trunk"])
    theta0 = {n: p.detach().clone() for n, p in agent.actor.trunk.named_parameters()}
    buf = random_buffer()
    for _ in range(5):
        agent.update(buf.sample(32))
    theta = {n: p.detach().clone() for n, p in agent.actor.trunk.named_parameters()}
    sp.apply()
    for n, p in agent.actor.trunk.named_parameters():
        torch.testing.assert_close(p, 0.8 * theta[n] + 0.2 * theta0[n], rtol=0, atol=1e-7)


def test_reset_touches_only_its_group_and_its_optimizer_state():
    agent = trained_agent()
    (before, opt_before), ptrs = snapshot(agent), pointers(agent)
    bind(Reset(optimizer="reset", target="copy_online"), agent, ["critic.head"]).apply()
    (after, opt_after) = snapshot(agent)
    head = {"critic.head.weight", "critic.head.bias"}
    for n in before:
        changed = not torch.equal(before[n], after[n])
        assert changed == (n in head or n in {"critic_target.head.weight", "critic_target.head.bias"}), n
    assert torch.equal(agent.critic_target.head.weight, agent.critic.head.weight)
    critic_params = agent.optimizers["critic"].param_groups[0]["params"]
    head_idx = {i for i, p in enumerate(critic_params) if p is agent.critic.head.weight or p is agent.critic.head.bias}
    for (opt, i, field), value in opt_after.items():
        if opt == "critic" and i in head_idx:
            assert (value == 0).all(), (opt, i, field)  # moments AND step count
        else:
            assert torch.equal(value, opt_before[(opt, i, field)]), (opt, i, field)
    assert pointers(agent) == ptrs


def test_full_reset_restores_the_temperature_and_fresh_target():
    agent = trained_agent(init_temperature=0.5)
    assert agent.log_alpha.item() != pytest.approx(math.log(0.5))
    old_target = agent.critic_target.head.weight.clone()
    bind(Reset(target="fresh"), agent, ["actor", "critic", "log_alpha"]).apply()
    assert agent.log_alpha.item() == pytest.approx(math.log(0.5))
    assert not torch.equal(agent.critic_target.head.weight, agent.critic.head.weight)
    assert not torch.equal(agent.critic_target.head.weight, old_target)


@pytest.mark.parametrize("make", [lambda: Reset(), lambda: ShrinkPerturb(0.5, 0.5),
                                  lambda: ShrinkPerturb(0.8, 0.2, source="initial", target="fresh"),
                                  lambda: HareTortoise(0.9)])
def test_every_intervention_is_in_place(make):
    agent = trained_agent()
    ptrs = pointers(agent)
    iv = bind(make(), agent, ["critic.*", "actor.*", "log_alpha"])
    iv.on_update()
    iv.apply()
    assert pointers(agent) == ptrs


def test_hare_tortoise_ema_arithmetic_and_copy_semantics():
    agent = trained_agent()
    ht = bind(HareTortoise(tortoise_ema=0.75), agent, ["critic.head"])
    w0 = agent.critic.head.weight.detach().clone()
    with torch.no_grad():
        agent.critic.head.weight.add_(1.0)  # the hare moves by exactly 1
    ht.on_update()
    tortoise_w = ht.tortoise[list(ht.group.params).index("critic.head.weight")]
    torch.testing.assert_close(tortoise_w, 0.75 * w0 + 0.25 * (w0 + 1.0), rtol=0, atol=1e-6)
    ht.apply()
    assert torch.equal(agent.critic.head.weight, tortoise_w)
    assert agent.critic.head.weight.data_ptr() != tortoise_w.data_ptr()
    with torch.no_grad():
        agent.critic.head.weight.add_(1.0)  # separate storage: the tortoise does not move
    assert not torch.equal(agent.critic.head.weight, tortoise_w)


class Counter(Intervention):
    def __init__(self):
        super().__init__(optimizer="keep", target="untouched")
        self.count = 0

    def _apply_online(self):
        self.count += 1


def run_schedule(trigger, replay_ratio, env_steps, state=None, start_env=0):
    agent = SAC(3, 1, hidden_dims=(8,))
    sched = ResetScheduler(agent, [Rule("r", Counter(), ["critic.head"], trigger)])
    if state:
        sched.load_state_dict(state)
    updates = start_env * replay_ratio
    for step in range(start_env + 1, env_steps + 1):
        for _ in range(replay_ratio):
            updates += 1
            sched.after_update(updates, step)
        sched.after_env_step(step, updates)
    return sched


@pytest.mark.parametrize("replay_ratio", [1, 4, 32])
def test_scheduler_fires_at_exact_steps_at_any_replay_ratio(replay_ratio):
    env = run_schedule(Trigger("env_steps", every=100, start=50, stop_after=400), replay_ratio, 1000)
    assert [e["env_steps"] for e in env.events] == [50, 150, 250, 350]
    by_updates = run_schedule(Trigger("updates", every=640, max_count=3), replay_ratio, 4000 // replay_ratio)
    assert [e["updates"] for e in by_updates.events] == [640, 1280, 1920]


def run_budgeted(trigger, replay_ratio, env_steps):
    agent = SAC(3, 1, hidden_dims=(8,))
    budgets = {"env_steps": env_steps, "updates": env_steps * replay_ratio}
    sched = ResetScheduler(agent, [Rule("r", Counter(), ["critic.head"], trigger)], budgets=budgets)
    updates = 0
    for step in range(1, env_steps + 1):
        for _ in range(replay_ratio):
            updates += 1
            sched.after_update(updates, step)
        sched.after_env_step(step, updates)
    return [e["env_steps"] if trigger.unit == "env_steps" else e["updates"] for e in sched.events]


@pytest.mark.parametrize("replay_ratio", [1, 4])
def test_no_reset_within_skips_firings_too_close_to_the_end(replay_ratio):
    """1M env steps, a reset every 200k: 200k ... 800k, not at 1M (right before the final
    evaluation); a share of 0.5 with every 300k: 300k and 600k fire (400k left >= 150k), 900k
    does not (100k left); in updates the budget counts updates; 0 turns it off."""
    assert run_budgeted(Trigger("env_steps", 200, no_reset_within=1.0), 1, 1000) == [200, 400, 600, 800]
    assert run_budgeted(Trigger("env_steps", 300, no_reset_within=0.5), replay_ratio, 1000) == [300, 600]
    assert run_budgeted(Trigger("env_steps", 200, no_reset_within=0), 1, 1000) == [200, 400, 600, 800, 1000]
    assert run_budgeted(Trigger("updates", 100 * replay_ratio, no_reset_within=1.0), replay_ratio, 450) == \
        [100 * replay_ratio * k for k in (1, 2, 3)]
    assert Trigger("env_steps", 200, no_reset_within=1.0).fires(1000, 4, budget=None)  # no budget: off


def test_scheduler_continues_identically_after_resume():
    trigger = Trigger("updates", every=96)
    whole = run_schedule(trigger, 4, 300)
    first = run_schedule(trigger, 4, 130)
    resumed = run_schedule(trigger, 4, 300, state=first.state_dict(), start_env=130)
    assert resumed.events == whole.events
    assert [e["updates"] for e in whole.events] == [96 * k for k in range(1, 13)]


def test_build_scheduler_from_config_and_its_errors():
    agent = SAC(3, 1, hidden_dims=(8,))
    sched = build_scheduler(agent, [dict(intervention="shrink_perturb", groups=["critic.*"], unit="updates",
                                         every=10, shrink=0.5, perturb=0.5, target="fresh")])
    assert isinstance(sched.rules[0].intervention, ShrinkPerturb) and sched.rules[0].trigger.every == 10
    with pytest.raises(ValueError, match="allowed"):
        build_scheduler(agent, [dict(intervention="redo_v2", groups=["critic.*"], unit="updates", every=1)])
    with pytest.raises(ValueError, match="unit"):
        build_scheduler(agent, [dict(intervention="reset", groups=["critic.*"], unit="episodes", every=1)])


def test_shrink_perturb_fresh_target_is_perturbed_toward_its_own_draw():
    """BBF: the target undergoes the intervention with an independent fresh init."""
    agent = trained_agent()
    old_target = agent.critic_target.head.weight.clone()
    sp = bind(ShrinkPerturb(0.5, 0.5, target="fresh"), agent, ["critic.head"])
    torch.manual_seed(11)
    sp.apply()
    torch.manual_seed(11)  # the same draws, in the same order: online phi, then target phi
    phi = fresh_values(agent, ["critic.head.weight", "critic.head.bias"])
    phi_target = fresh_values(agent, ["critic_target.head.weight", "critic_target.head.bias"])
    assert torch.allclose(agent.critic_target.head.weight,
                          0.5 * old_target + 0.5 * phi_target["critic_target.head.weight"])
    assert not torch.equal(phi["critic.head.weight"], phi_target["critic_target.head.weight"])


def test_stop_after_env_steps_bounds_an_update_rule():
    trigger = Trigger("updates", 10, stop_after_env_steps=100)
    assert trigger.fires(20, 1, env_steps=100) and not trigger.fires(30, 2, env_steps=101)
