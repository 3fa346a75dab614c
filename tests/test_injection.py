"""Plasticity injection (plasticity/injection.py): outputs identical right before and after the
injection, the frozen parts never change afterwards (Adam state included), the spare head has no
effect before it, and the preset runs from the trainer (resuming bitwise)."""
import copy

import numpy as np
import pytest
import torch

from agents.members import MemberStack
from agents.sac import SAC
from plasticity.groups import GroupError
from plasticity.scheduler import build_scheduler
from replay.buffer import Batch
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config

RULE = [{"intervention": "inject", "groups": ["critic.head", "actor.head?"], "unit": "updates",
         "every": 1, "stop_after": 1}]


def _batch(i: int) -> Batch:
    g = torch.Generator().manual_seed(i)
    return Batch(torch.randn(16, 3, generator=g), torch.rand(16, 1, generator=g) * 2 - 1,
                 torch.randn(16, generator=g), torch.full((16,), 0.99), torch.randn(16, 3, generator=g),
                 torch.arange(16))


def _outputs(agent, batch):
    with torch.no_grad():
        mean, log_std = agent.actor._dist_params(batch.obs)
        return agent.critic(batch.obs, batch.action), agent.critic_target(batch.obs, batch.action), mean, log_std


def _trained(agent, updates=20, start=0):
    for i in range(start, start + updates):
        agent.update(_batch(i))


def test_injection_keeps_outputs_then_trains_only_the_new_head():
    torch.manual_seed(0)
    agent = SAC(3, 1, hidden_dims=(16, 16), injection=True)
    _trained(agent)
    head = agent.critic.head
    assert not bool(head.gate)
    assert torch.equal(head.fresh.weight, head.frozen.weight)  # before: h' unchanged, no effect
    batch = _batch(99)
    before = _outputs(agent, batch)
    scheduler = build_scheduler(agent, RULE)
    events = scheduler.after_update(1, 1)  # the rule counts from here (every 1, stop_after 1)
    assert events[0]["injected_heads"] == 2  # critic.head and actor.head
    after = _outputs(agent, batch)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # h' - h'' = 0 at the injection
    assert bool(agent.critic_target.head.gate)
    frozen = {n: t.clone() for n, t in agent.state_dict().items()
              if ".head.base." in n or ".head.frozen." in n}
    fresh = agent.critic.head.fresh.weight.detach().clone()
    _trained(agent, start=20)
    state = agent.state_dict()
    for name, value in frozen.items():
        if name.startswith("critic_target"):
            continue  # the target's base keeps tracking the (frozen) online base by EMA
        assert torch.equal(state[name], value), name  # frozen: bitwise unchanged
    assert not torch.equal(agent.critic.head.fresh.weight, fresh)  # h' learns
    for p in agent.critic.head.base.parameters():  # its Adam moments stay zero
        assert not agent.optimizers["critic"].state[p]["exp_avg"].any()
    assert scheduler.after_update(2, 2) == []  # once


def test_injection_needs_the_spare_heads_and_no_weight_decay():
    with pytest.raises(GroupError, match="agent.injection=true"):
        build_scheduler(SAC(3, 1, hidden_dims=(8,)), RULE)
    with pytest.raises(ConfigError, match="injection = true with weight_decay"):
        validate_config(make_config("agent=simba", "agent.injection=true"))


def test_compiled_and_member_updates_see_the_injection():
    torch.manual_seed(0)
    agents = [SAC(3, 1, hidden_dims=(16,), injection=True) for _ in range(2)]
    eager = copy.deepcopy(agents[0])
    stack = MemberStack(agents)
    for i in range(3):
        stack.update([_batch(i), _batch(i + 10)])
    build_scheduler(agents[1], RULE).after_update(1, 1)  # member 1 only
    assert not bool(agents[0].critic.head.gate) and bool(agents[1].critic.head.gate)
    base = agents[1].critic.head.base.weight.detach().clone()
    stack.update([_batch(5), _batch(6)])
    assert torch.equal(agents[1].critic.head.base.weight, base)  # frozen inside the stack too
    compiled = SAC(3, 1, hidden_dims=(16,), injection=True, compile="compile")
    compiled.load_state_dict(eager.state_dict())
    build_scheduler(compiled, RULE).after_update(1, 1)
    base = compiled.critic.head.base.weight.detach().clone()
    compiled.update(_batch(7))
    assert torch.equal(compiled.critic.head.base.weight, base)


def test_injection_preset_runs_and_resumes_bitwise(tmp_path):
    cfg = make_config(*TINY, "plasticity=injection", "agent.injection=true", "plasticity.every=500")
    full = Trainer(cfg, tmp_path / "full")
    summary = full.train()
    assert [(e["env_steps"], e["injected_heads"]) for e in summary["plasticity_events"]] == [(500, 2)]
    part = Trainer(cfg, tmp_path / "resumed")
    part.train(stop_at=600)
    resumed = Trainer(cfg, tmp_path / "resumed")
    resumed.restore()
    resumed.train()
    for name, value in full.agent.state_dict().items():
        assert torch.equal(value, resumed.agent.state_dict()[name]), name
    assert np.isfinite(summary["final_eval_return"])


def test_drq_eps_dueling_head_injects():
    """DrQ(eps): the dueling head (two layers) gets its spare heads; the output is unchanged at
    the injection and the target's gate flips with it."""
    from gymnasium import spaces
    from agents import make_agent
    cfg = make_config("agent=drq_atari", "env=atari/pong", "plasticity=injection")
    assert cfg["agent"]["injection"] is True
    agent = make_agent(dict(cfg["agent"], hidden_dims=[8]), spaces.Box(0, 255, (4, 84, 84), np.uint8),
                       spaces.Discrete(6))
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    before = agent.q_values(obs).detach()
    rule = [{**RULE[0], "groups": ["critic.head"]}]
    assert build_scheduler(agent, rule).after_update(1, 1)[0]["injected_heads"] == 1
    torch.testing.assert_close(agent.q_values(obs).detach(), before, atol=1e-5, rtol=0)
    assert bool(agent.critic_target.head.gate)
