"""Members that differ in a setting (README "Many seeds in one process"): each member's own tau,
replay ratio (cohorts), n-step and gamma, learning rate and Adam step count, as in its single run.
Helpers from tests/test_members.py."""
import copy

import pytest
import torch

from agents.sac import SAC
from replay.sampler import UniformSampler
from runner.members import member_specs
from runner.trainer import Trainer
from runner.validate import validate_config
from tests.conftest import make_config
from tests.test_members import SHORT, _batch, assert_close_agents, assert_same_groups, fixed_policy_noise, group, side_by_side


def test_members_may_differ_in_tau(monkeypatch):
    """Each member's target EMA at its own tau (the key's per-member value), against 3 single agents."""
    fixed_policy_noise(monkeypatch)
    torch.manual_seed(0)
    agents = [SAC(3, 1, hidden_dims=(16, 16), tau=tau) for tau in (0.005, 0.05, 0.5)]
    assert_close_agents(agents, side_by_side(agents, lambda i: [_batch(k, i) for k in range(3)], 20))
    specs = member_specs({"seeds": [0], "vary": {"agent.tau": [0.005, 0.01]}})
    assert specs[1][1] == ["seed=0", "++agent.tau=0.01"]
    validate_config(make_config(*SHORT, "members.seeds=[0]", "members.vary={agent.tau:[0.005,0.01]}"))


def test_members_may_differ_in_the_replay_ratio(tmp_path):
    """Replay ratios 1 and 3: two cohorts, each member making its own number of updates per env
    step from its own sampling stream (as many draws as its single run), resets at its own update
    counts, and the group resumes bitwise."""
    vary = {"agent.replay_ratio": [1, 3]}
    extra = ("train.total_steps=300", "++plasticity.unit=updates", "++plasticity.every=50",
             "plasticity=shrink_perturb")
    full = group(tmp_path, [0], vary, *extra, name="full")
    assert [(c.replay_ratio, len(c.members)) for c in full.cohorts] == [(1, 1), (3, 1)]
    summary = full.train()
    assert [s["updates"] for s in summary["members"]] == [101, 303]  # 300 - 200 + 1 env steps
    for m, ratio in zip(full.members, (1, 3)):  # the sampler drew one batch per update
        sampler = UniformSampler("cpu", 0)
        sampler.load_state_dict({"generator": m.buffer.sampler.generator.get_state()})
        fresh = Trainer(make_config(*SHORT, *extra, "seed=0", f"agent.replay_ratio={ratio}"), tmp_path / f"s{ratio}")
        for _ in range(101 * ratio):
            fresh.buffer.sampler.sample(m.buffer.storage, 32)
        assert torch.equal(fresh.buffer.sampler.generator.get_state(), sampler.generator.get_state())
    # S&P every 50 of its own updates, not with under an interval left: 50 / 50..250
    assert [len(m.scheduler.events) for m in full.members] == [1, 5]
    part = group(tmp_path, [0], vary, *extra, name="resumed")
    part.train(stop_at=250)
    del part
    resumed = group(tmp_path, [0], vary, *extra, name="resumed")
    resumed.restore()
    resumed.train()
    assert_same_groups(full, resumed)


def test_members_may_differ_in_n_step_and_gamma(tmp_path):
    """agent.n_step and agent.gamma per member: each member's buffer has its own, and the group
    still draws every member's batch in one call (replay/member_replay.py), equal to its own draw."""
    vary = {"agent.n_step": [1, 3], "agent.gamma": [0.99, 0.9]}
    g = group(tmp_path, [0], vary, "train.total_steps=250")
    assert [(m.buffer.n_step, m.buffer.gamma) for m in g.members] == [(1, 0.99), (1, 0.9), (3, 0.99), (3, 0.9)]
    g.train()
    cohort, = g.cohorts
    separate = copy.deepcopy([m.buffer for m in g.members])
    requests = [m._request() for m in g.members]
    stacked = cohort.replay.sample(requests)
    for k, (b, r) in enumerate(zip(separate, requests)):
        own = b.sample_request(r)
        for name in ("reward", "discount", "next_obs", "idx"):
            assert torch.equal(getattr(stacked, name)[k], getattr(own, name)), (k, name)
    assert not torch.equal(stacked.discount[0], stacked.discount[1])  # gamma 0.99 vs 0.9


@pytest.mark.parametrize("adam, settings", [
    (torch.optim.Adam, {"weight_decay": 0.0, "decoupled_weight_decay": False}),
    (torch.optim.AdamW, {"weight_decay": 0.1, "decoupled_weight_decay": True})], ids=["adam", "adamw"])
def test_eager_members_step_as_their_single_agents_fused_adam(adam, settings):
    """The eager group's Adam (agents/members.py `_fused_adam`) is, member by member, bit for bit
    the single agent's torch.optim fused step: its own step count (one member just reset to 0)
    and learning rate (two members share one)."""
    from agents.members import _fused_adam
    g = torch.Generator().manual_seed(0)
    shapes, lrs, counts = [(3, 4, 5), (3, 5)], (1e-3, 3e-4, 1e-3), torch.tensor([4.0, 0.0, 9.0])
    params = [torch.randn(s, generator=g) for s in shapes]
    grads = [torch.randn(s, generator=g) for s in shapes]
    states = [(counts.clone(), torch.randn(s, generator=g) * 0.1, torch.rand(s, generator=g) * 0.01)
              for s in shapes]
    single = []
    for k in range(3):  # member k as a plain agent's optimizer with the same state
        own = [p[k].clone().requires_grad_() for p in params]
        opt = adam(own, lr=lrs[k], betas=(0.9, 0.999), eps=1e-8, weight_decay=settings["weight_decay"], fused=True)
        for p, grad_, (step, m, v) in zip(own, grads, states):
            p.grad = grad_[k].clone()
            opt.state[p] = {"step": step[k].clone(), "exp_avg": m[k].clone(), "exp_avg_sq": v[k].clone()}
        opt.step()
        single.append((own, opt))
    _fused_adam(params, grads, states, lrs, {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                                             "maximize": False, **settings})
    for k, (own, opt) in enumerate(single):
        for i, p in enumerate(own):
            assert torch.equal(params[i][k], p.detach()), (k, i)
            assert torch.equal(states[i][1][k], opt.state[p]["exp_avg"]) and torch.equal(states[i][2][k], opt.state[p]["exp_avg_sq"])
            assert states[i][0][k] == counts[k] + 1
