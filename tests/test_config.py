"""Bad config values fail before any work, with the key and the allowed values named."""
import subprocess
import sys
from pathlib import Path

import pytest

from agents import AGENTS

from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid():
    validate_config(make_config())


@pytest.mark.parametrize("overrides, message", [
    (["agent.replay_ratio=0"], "agent.replay_ratio = 0: must be an integer >= 1"),
    (["agent.replay_ratio=1.5"], "agent.replay_ratio = 1.5"),
    (["agent.lr=-0.001"], "agent.lr = -0.001: must be a finite number > 0"),
    (["agent.batch_size=512", "agent.buffer_size=100"], "agent.batch_size = 512: must not exceed agent.buffer_size = 100"),
    (["agent.gamma=1.5"], "agent.gamma = 1.5: must be a number in (0, 1]"),
    (["agent.tau=0"], "agent.tau = 0"),
    (["agent.n_step=0"], "agent.n_step = 0"),
    (["agent.num_target_critics=3"], "agent.num_target_critics = 3: must be null or an integer in [1, num_critics=2]"),
    (["agent.hidden_dims=[]"], "agent.hidden_dims = []"),
    (["agent.activation=swish"], "agent.activation = 'swish': must be one of ['crelu', 'elu', 'gelu', 'relu', 'tanh']"),
    (["agent.actor_q=max"], "agent.actor_q = 'max'"),
    (["agent.name=ppo"], f"agent.name = 'ppo': must be one of {sorted(AGENTS)}"),
    (["+agent.warmup=3"], "agent: unknown keys ['warmup']"),
    (["env.id=dmc:cheetah-fly"], "unknown DMC task 'fly'"),
    (["env.id=dmc:cheetahh-run"], "valid domains:"),
    (["env.id=gym:Pendullum-v1"], "Pendulum-v1"),
    (["env.action_repeat=0"], "env.action_repeat = 0"),
    (["train.total_steps=0"], "train.total_steps = 0"),
    (["train.learning_starts=0"], "train.learning_starts = 0"),
    (["train.eval_episodes=0"], "train.eval_episodes = 0"),
    (["plasticity=head_reset", "plasticity.rules.0.intervention=redo"], "plasticity.rules[0].intervention = 'redo': must be one of"),
    (["plasticity=head_reset", "plasticity.unit=episodes"], "plasticity.rules[0].unit = 'episodes': must be one of ['updates', 'env_steps', 'switch']"),
    (["plasticity=head_reset", "plasticity.every=0"], "plasticity.rules[0].every = 0"),
    (["plasticity=head_reset", "plasticity.stop_after=-3"], "plasticity.rules[0].stop_after = -3: must be null or an integer >= 0"),
    (["device=tpu"], "device = 'tpu': must be one of ['auto', 'cpu', 'cuda']"),
    (["seed=abc"], "seed = 'abc': must be an integer"),
    (["threads=0"], "threads = 0: must be null (torch's default) or an integer >= 1"),
    (["threads=many"], "threads = 'many': must be null"),
    (["agent.compile=fast"], "agent.compile = 'fast': must be one of ['none', 'compile', 'cudagraphs']"),
    (["agent=bbf", "env=atari/pong", "agent.compile=jit"], "agent.compile = 'jit': must be one of"),
    (["device=cpu", "agent.compile=cudagraphs"], "agent.compile = 'cudagraphs': needs a CUDA device, and this run's device is 'cpu'"),
])
def test_bad_value_names_key_and_allowed(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate_config(make_config(*overrides))
    assert message in str(err.value)


def test_threads_null_by_default_and_any_positive_int():
    assert make_config()["threads"] is None
    validate_config(make_config("threads=2"))


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        validate_config(make_config("agent.replay_ratio=0", "agent.lr=-1", "train.total_steps=0"))
    text = str(err.value)
    assert "agent.replay_ratio" in text and "agent.lr" in text and "train.total_steps" in text


def test_group_pattern_matching_nothing_fails_before_training(tmp_path):
    from plasticity.groups import GroupError
    from runner.trainer import Trainer
    cfg = make_config(*TINY, "plasticity=head_reset", "plasticity.rules.0.groups=[critic.neck]")
    with pytest.raises(GroupError, match="critic.neck.*critic.head.weight"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cuda_requested_without_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        validate_config(make_config("device=cuda"))


def test_train_py_refuses_before_any_work(tmp_path):
    """The CLI exits with status 2 and the message, and leaves no run directory behind."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", *TINY, "agent.replay_ratio=0", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "agent.replay_ratio = 0: must be an integer >= 1" in proc.stderr
    assert not run_dir.exists()
