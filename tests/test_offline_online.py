"""Offline-to-online from train.py configs: pre-training on a collected dataset, an intervention
at the switch, warm starts from a pre-trained agent, and exact resume with a dataset."""
import pytest
import torch

from runner.collect import collect
from runner.offline import WarmStartError
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=3, root=root, progress=False)
    return str(root / "test" / "pendulum-random-v0")


def config(dataset, *extra):
    return make_config(*TINY, "train.total_steps=400", "train.learning_starts=100",
                       "train.eval_every=0", f"offline.dataset={dataset}", *extra)


def test_iql_pretrains_then_resets_once_at_the_switch(tmp_path, dataset):
    cfg = config(dataset, "agent=iql", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                 "offline.pretrain_updates=120", "plasticity=full_reset", "plasticity.unit=switch")
    trainer = Trainer(cfg, tmp_path)
    assert len(trainer.buffer.offline.storage) == 600  # 3 Pendulum episodes
    summary = trainer.train()
    t, rr = cfg["train"], cfg["agent"]["replay_ratio"]
    assert summary["updates"] == 120 + rr * (t["total_steps"] - t["learning_starts"] + 1)
    events = summary["plasticity_events"]
    assert [(e["updates"], e["env_steps"]) for e in events] == [(120, 0)]
    assert torch.isfinite(torch.tensor(summary["final_eval_return"]))


def test_rlpd_preset_runs_with_the_dataset(tmp_path, dataset):
    cfg = config(dataset, "agent=rlpd", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                 "agent.buffer_size=5000", "agent.replay_ratio=4", "agent.actor_update_every=4",
                 "plasticity=full_reset", "plasticity.unit=switch")
    assert (cfg["agent"]["num_critics"], cfg["agent"]["num_target_critics"], cfg["agent"]["layer_norm"]) == (10, 2, True)
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert [(e["updates"], e["env_steps"]) for e in summary["plasticity_events"]] == [(0, 0)]
    assert trainer.agent._update_calls == summary["updates"] == 4 * 301
    assert torch.isfinite(torch.tensor(summary["final_eval_return"]))


def test_warm_start_loads_the_pretrained_agent_and_refuses_other_shapes(tmp_path, dataset):
    pre = config(dataset, "agent=iql", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                 "offline.pretrain_updates=50", "train.total_steps=200")
    first = Trainer(pre, tmp_path / "pre")
    first.train()
    fine = config(dataset, "agent=iql", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                  f"offline.init_from={tmp_path / 'pre'}", "agent.lr=1e-4")  # lr may differ
    second = Trainer(fine, tmp_path / "fine")
    for (name, a), b in zip(first.agent.state_dict().items(), second.agent.state_dict().values()):
        assert torch.equal(a, b), name
    other = config(dataset, "agent=iql", "agent.hidden_dims=[16,16]", f"offline.init_from={tmp_path / 'pre'}")
    with pytest.raises(WarmStartError, match="hidden_dims"):
        Trainer(other, tmp_path / "other")
    with pytest.raises(ConfigError, match="holds a 'IQL' agent"):  # refused by validation
        Trainer(config(dataset, f"offline.init_from={tmp_path / 'pre' / 'agent.pt'}"), tmp_path / "sac")


def test_sac_with_a_dataset_resumes_bitwise(tmp_path, dataset):
    cfg = config(dataset, "offline.fraction=0.25", "train.total_steps=600")
    full = Trainer(cfg, tmp_path / "full")
    full.train()
    interrupted = Trainer(cfg, tmp_path / "resumed")
    interrupted.train(stop_at=300)  # checkpointed at the episode end at step 400
    resumed = Trainer(cfg, tmp_path / "resumed")
    resumed.restore()
    assert resumed.counters["env_steps"] == 400
    resumed.train()
    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name


def test_offline_config_errors():
    with pytest.raises(ConfigError, match="offline.pretrain_updates = 10: needs offline.dataset"):
        validate_config(make_config("offline.pretrain_updates=10"))
    with pytest.raises(ConfigError, match=r"offline.fraction = 1.5: must be a number in \[0, 1\]"):
        validate_config(make_config("offline.fraction=1.5"))
