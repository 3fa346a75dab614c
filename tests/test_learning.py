"""A real learning check in the default test run: SAC solves Pendulum-v1 within 10k steps."""
from runner.trainer import Trainer
from tests.conftest import make_config


def test_sac_learns_pendulum(tmp_path):
    cfg = make_config("device=cpu", "seed=0", "train.total_steps=6000", "train.learning_starts=1000",
                      "train.eval_every=0", "train.eval_episodes=10", "train.checkpoint_every=0",
                      "train.progress=false")
    summary = Trainer(cfg, tmp_path).train()
    # random policy: about -1200; a solved pendulum: about -150
    assert summary["final_eval_return"] >= -300, summary["eval"]
