"""ReDo (plasticity/redo.py) on hand-made dormant units: exactly their incoming weights (drawn
from the layer's initialiser), biases, outgoing weights and those weights' Adam moments change,
the network's output does not, and everything else stays bitwise; ensembles per member, a conv
map read flattened by a linear layer, Impala's residual activations skipped; from the trainer
through the `redo` preset."""
import pytest
import torch

from plasticity.fresh import fresh_values
from plasticity.groups import GroupError
from plasticity.scheduler import build_scheduler
from runner.trainer import Trainer
from tests.conftest import TINY, make_config
from tests.test_acceleration import make_agent, make_batch

DEAD_CRITIC = {0: [0, 1, 2], 1: [5]}  # ensemble member -> units of critic.trunk.1 made silent


def redo_rule(groups, tau=0.0, **kw):
    return {"intervention": "redo", "groups": groups, "unit": "updates", "every": 1, "tau": tau,
            "batch_size": 64, **kw}


def snapshot(agent):
    params = {n: p.detach().clone() for n, p in agent.named_parameters()}
    moments = {(name, n): {k: v.clone() for k, v in opt.state[p].items()}
               for name, opt in agent.optimizers.items() for n, p in agent.named_parameters()
               if p in opt.state}
    return params, moments


def fire(agent, groups, batch_fn, seed=7, **kw):
    scheduler = build_scheduler(agent, [redo_rule(groups, **kw)])
    scheduler.set_batch_source(batch_fn)
    torch.manual_seed(seed)  # the fresh draws come from the global stream, as a reset's do
    [event] = scheduler.after_update(1, 1)
    return event, scheduler.rules[0].intervention


def test_sac_ensemble_critic_recycles_exactly_the_dormant_units_per_member():
    agent = make_agent("SAC")
    batches = [make_batch("SAC", s, b=64) for s in range(3)]
    for batch in batches:  # Adam moments exist and are non-zero
        agent.update(batch)
    with torch.no_grad():  # silence units: zero incoming weights, negative bias -> ReLU output 0
        for member, units in DEAD_CRITIC.items():
            agent.critic.trunk[0].weight[member, :, units] = 0.0
            agent.critic.trunk[0].bias[member, 0, units] = -1.0
    before, moments = snapshot(agent)
    probe = make_batch("SAC", 9, b=32)
    q_before = agent.critic(probe.obs, probe.action)
    torch.manual_seed(7)
    expected_fresh = fresh_values(agent, ["critic.trunk.0.weight"])["critic.trunk.0.weight"]
    event, redo = fire(agent, "critic", lambda n: make_batch("SAC", 11, b=n))
    assert event["recycled"] == 4 and redo.recycled == 4
    dead = torch.zeros(2, 16, dtype=torch.bool)
    for member, units in DEAD_CRITIC.items():
        dead[member, units] = True
    w_in, b_in = agent.critic.trunk[0].weight, agent.critic.trunk[0].bias  # [2, 7, 16], [2, 1, 16]
    in_mask = dead[:, None, :].expand_as(w_in)
    assert torch.equal(w_in[in_mask], expected_fresh[in_mask])  # the layer's own initialiser
    assert torch.equal(w_in[~in_mask], before["critic.trunk.0.weight"][~in_mask])
    assert torch.equal(b_in[dead[:, None, :]], torch.zeros(4))
    assert torch.equal(b_in[~dead[:, None, :]], before["critic.trunk.0.bias"][~dead[:, None, :]])
    w_out = agent.critic.trunk[2].weight  # [2, 16, 16]: rows of the dead units zeroed
    out_mask = dead[:, :, None].expand_as(w_out)
    assert torch.equal(w_out[out_mask], torch.zeros(int(out_mask.sum())))
    assert torch.equal(w_out[~out_mask], before["critic.trunk.2.weight"][~out_mask])
    torch.testing.assert_close(agent.critic(probe.obs, probe.action), q_before, rtol=0, atol=1e-6)
    for name, p in agent.named_parameters():  # nothing else moved: actor, target, alpha, head
        if name not in ("critic.trunk.0.weight", "critic.trunk.0.bias", "critic.trunk.2.weight"):
            assert torch.equal(p, before[name]), name
    for (opt, name), state in moments.items():
        p = dict(agent.named_parameters())[name]
        now = agent.optimizers[opt].state[p]
        assert torch.equal(now["step"], state["step"])  # counts kept (dopamine keeps Adam's count)
        mask = {"critic.trunk.0.weight": in_mask, "critic.trunk.2.weight": out_mask}.get(name)
        for key in ("exp_avg", "exp_avg_sq"):
            if mask is None:  # biases' and every other parameter's moments untouched
                assert torch.equal(now[key], state[key]), (name, key)
            else:
                assert torch.equal(now[key][mask], torch.zeros(int(mask.sum())))
                assert torch.equal(now[key][~mask], state[key][~mask]), (name, key)
                assert state[key][mask].abs().sum() > 0  # they were not zero before


def test_a_conv_channel_read_flattened_loses_all_its_positions_columns():
    agent = make_agent("DrQAtari")  # encoder.trunk.4 conv (16 channels, 3x3 map) -> ReLU -> flatten -> 144
    agent.update(make_batch("DrQAtari", 0, b=16))
    with torch.no_grad():
        agent.encoder.trunk[4].weight[3] = 0.0
        agent.encoder.trunk[4].bias[3] = -1.0
    before, _ = snapshot(agent)
    probe = make_batch("DrQAtari", 5, b=8)
    q_before = agent.q_values(probe.obs)
    event, redo = fire(agent, "encoder", lambda n: make_batch("DrQAtari", 6, b=n))
    assert event["recycled"] == 1
    w = agent.critic.trunk[0].weight  # [32, 144], channel-major: channel 3 = columns 27..35
    assert torch.equal(w[:, 27:36], torch.zeros(32, 9))
    assert torch.equal(torch.cat([w[:, :27], w[:, 36:]], 1),
                       torch.cat([before["critic.trunk.0.weight"][:, :27], before["critic.trunk.0.weight"][:, 36:]], 1))
    assert not torch.equal(agent.encoder.trunk[4].weight[3], before["encoder.trunk.4.weight"][3])
    assert torch.equal(agent.encoder.trunk[4].weight[:3], before["encoder.trunk.4.weight"][:3])
    torch.testing.assert_close(agent.q_values(probe.obs), q_before, rtol=0, atol=1e-5)


def test_impala_residual_activations_are_skipped_as_in_dopamine():
    agent = make_agent("BBF")
    event, redo = fire(agent, "encoder", lambda n: make_batch("BBF", 1, b=4), tau=0.1)
    reasons = redo.skipped
    assert reasons["critic.encoder.stages.0.blocks.0.act1"] == "its input is not one layer's output"
    assert "critic.encoder.stages.0.blocks.0.act2" not in reasons  # conv1 -> act2 -> conv2: recyclable


def test_crelu_and_groups_without_activations_are_refused():
    crelu = make_agent("SAC", activation="crelu")
    with pytest.raises(GroupError, match="CReLU"):
        build_scheduler(crelu, [redo_rule("critic")])
    with pytest.raises(GroupError, match="no activation module"):
        build_scheduler(make_agent("SAC"), [redo_rule("critic.head")])
    with pytest.raises(RuntimeError, match="set_batch_source"):
        build_scheduler(make_agent("SAC"), [redo_rule("critic")]).after_update(1, 1)


def test_redo_preset_from_the_trainer_records_recycled_units(tmp_path):
    """Bitwise resume with ReDo firing on both sides: tests/test_resume.py."""
    overrides = (*TINY, "plasticity=redo", "plasticity.every=100", "plasticity.tau=0.5",
                 "train.total_steps=600", "train.learning_starts=200")
    summary = Trainer(make_config(*overrides), tmp_path / "run").train()
    events = summary["plasticity_events"]
    assert [e["updates"] for e in events] == list(range(100, summary["updates"] + 1, 100))
    assert all(isinstance(e["recycled"], int) for e in events) and sum(e["recycled"] for e in events) > 0
