"""Run logging: TensorBoard HParams at the end of a run (read back as TensorBoard reads them),
once per run through an interruption and an extension; sweep job directories named by their
overrides (runner/resolvers.py `job_subdir`); the `logger:` config section's validation."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from runner.hparams import SUFFIX, config_hparams, final_metrics
from runner.resolvers import job_subdir
from runner.sweep import find_runs, group_runs
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]
# Pendulum episodes are 200 steps: checkpoints (at episode ends) at 200 and 400
SHORT = (*TINY, "train.total_steps=400", "train.learning_starts=100", "train.eval_every=200",
         "train.checkpoint_every=200", "train.log_every=100", "agent.replay_ratio=1",
         "agent.hidden_dims=[16,16]", "agent.batch_size=16")
SUBDIR = "${job_subdir:${hydra.job.num},${hydra.overrides.task},${hydra.sweep.dir}}"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: more threads only contend
    yield
    torch.set_num_threads(threads)


def read_hparams(tb_dir):
    """(hparams {name: value}, session status, {metric tag: (step, value)}) as TensorBoard reads them."""
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    metrics = {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
               for tag in acc.Tags()["scalars"] if tag.startswith("hparams/")}
    return hparams, end.status, metrics


def test_hparams_hold_the_config_and_the_final_score(tmp_path):
    summary = Trainer(make_config(*SHORT, "seed=3"), tmp_path / "run").train()
    hparams, status, metrics = read_hparams(tmp_path / "run" / "tb")
    assert status == api_pb2.STATUS_SUCCESS
    assert hparams["seed"] == 3 and hparams["agent.name"] == "sac" and hparams["env.id"] == "gym:Pendulum-v1"
    assert hparams["agent.replay_ratio"] == 1 and hparams["train.total_steps"] == 400
    assert hparams["agent.hidden_dims"] == "[16, 16]" and hparams["agent.layer_norm"] is False
    assert hparams["plasticity.name"] == "none" and hparams["offline.dataset"] == "null"
    assert "resume" not in hparams and not any(k.startswith("logger.") for k in hparams)
    final = torch.tensor(summary["final_eval_return"], dtype=torch.float32).item()  # TB keeps float32
    assert metrics == {"hparams/final_eval_return": [(400, final)]}  # no normalized score off Atari


def test_interrupted_resumed_and_extended_run_has_one_current_hparams_file(tmp_path):
    run = tmp_path / "run"
    Trainer(make_config(*SHORT), run).train(stop_at=100)  # interrupted at the step 200 checkpoint
    assert not list((run / "tb").glob(f"*{SUFFIX}"))  # nothing before the run ends
    resumed = Trainer(make_config(*SHORT, f"resume={run}"), run)
    resumed.restore()
    first = resumed.train()
    assert len(list((run / "tb").glob(f"*{SUFFIX}"))) == 1
    assert read_hparams(run / "tb")[0]["train.total_steps"] == 400

    extended = Trainer(make_config(*SHORT, "train.total_steps=600", f"resume={run}"), run)
    extended.restore()
    second = extended.train()
    assert len(list((run / "tb").glob(f"*{SUFFIX}"))) == 1  # replaced: TensorBoard keeps a first one
    hparams, _, metrics = read_hparams(run / "tb")
    assert hparams["train.total_steps"] == 600
    final = torch.tensor(second["final_eval_return"], dtype=torch.float32).item()
    assert metrics["hparams/final_eval_return"] == [(600, final)]
    assert first["env_steps"] == 400 and second["env_steps"] == 600


def test_config_hparams_and_final_metrics():
    config = {"seed": 1, "resume": "runs/x", "agent": {"lr": 3e-4, "hidden_dims": [8, 8], "dueling": True,
              "target_entropy": None}, "logger": {"wandb": True}, "plasticity": {"rules": [{"every": 5}]}}
    assert config_hparams(config) == {"seed": 1, "agent.lr": 3e-4, "agent.hidden_dims": "[8, 8]",
                                      "agent.dueling": True, "agent.target_entropy": "null",
                                      "plasticity.rules.0.every": 5}
    assert final_metrics({"final_eval_return": 12.5, "final_eval_human_normalized": 0.25}) == {
        "hparams/final_eval_return": 12.5, "hparams/final_eval_human_normalized": 0.25}
    assert final_metrics({"final_eval_return": None, "final_eval_human_normalized": None}) == {}


def test_job_subdir_names_a_job_by_what_varies_in_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    OmegaConf.save({"hydra": {"overrides": {"task": [
        "device=cpu", "env=dmc/cheetah_run,dmc/walker_walk", "seed=range(2)", "resume=auto",
        "agent.hidden_dims=[256,256]", "agent.lr=1e-4,3e-4"]}}}, sweep / "multirun.yaml")
    job = ["device=cpu", "env=dmc/walker_walk", "seed=1", "resume=auto", "agent.hidden_dims=[256,256]",
           "agent.lr=3e-4", "+agent.extra='a b'"]  # a key the sweeper added (not on the command line)
    name = job_subdir(3, job, str(sweep))
    assert name == "3_env-dmc.walker_walk_seed-1_agent.lr-3e-4_agent.extra-a.b"
    # without multirun.yaml (another sweeper): every override but resume=
    assert job_subdir(0, job, str(tmp_path / "none")) == ("0_device-cpu_env-dmc.walker_walk_seed-1_"
                                                           "agent.hidden_dims-256.256_agent.lr-3e-4_"
                                                           "agent.extra-a.b")
    assert job_subdir(7, [], None) == "7"
    long = job_subdir(12, [f"agent.k{i}=123456789" for i in range(20)], None)
    assert long == "12_" + "_".join(f"agent.k{i}-123456789" for i in range(6)) + "_agent"  # 120, cut at a '.'
    # the name is a valid unquoted `resume=<dir>` on the command line
    assert OverridesParser.create().parse_overrides([f"resume=runs/multirun/x/{name}"])[0].value() == \
        f"runs/multirun/x/{name}"


def test_job_subdir_resolves_as_the_hydra_line(tmp_path):
    cfg = OmegaConf.create({"hydra": {"job": {"num": 2}, "overrides": {"task": ["seed=4", "env=gym/pendulum"]},
                                      "sweep": {"dir": str(tmp_path), "subdir": SUBDIR}}})
    assert cfg.hydra.sweep.subdir == "2_seed-4_env-gym.pendulum"


def test_multirun_jobs_are_named_by_their_overrides_and_reported(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = ["device=cpu", "train.total_steps=200", "train.learning_starts=100", "train.eval_every=0",
            "train.eval_episodes=1", "train.log_every=100", "train.checkpoint_every=0",
            "train.progress=false", "agent.hidden_dims=[8]", "agent.batch_size=8", "agent.buffer_size=500"]
    proc = subprocess.run([sys.executable, "train.py", "-m", *tiny, "env=gym/pendulum", "seed=0,1",
                           "threads=1", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
                           f"hydra.sweep.subdir='{SUBDIR}'"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_seed-0", "1_seed-1"]
    runs = find_runs(sweep)
    assert [r.path.name for r in runs] == ["0_seed-0", "1_seed-1"] and all(r.skipped is None for r in runs)
    for run in runs:
        assert read_hparams(run.path / "tb")[0]["seed"] == json.loads((run.path / "summary.json").read_text())["seed"]


def test_report_skips_wandb_files_and_does_not_split_by_logger_keys(tmp_path):
    for job, wandb_on in ((0, False), (1, True)):
        run = tmp_path / f"{job}_seed-{job}"
        run.mkdir()
        config = {"seed": job, "env": {"id": "gym:Pendulum-v1"}, "agent": {"lr": 0.1},
                  "logger": {"wandb": wandb_on, "wandb_mode": "offline" if wandb_on else None}}
        OmegaConf.save(config, run / "config.yaml")
        (run / "summary.json").write_text(json.dumps({"seed": job, "final_eval_return": 1.0}))
    files = tmp_path / "1_seed-1" / "wandb" / "offline-run-20250101_000000-abcd1234" / "files"
    files.mkdir(parents=True)
    (files / "config.yaml").write_text("seed:\n  value: 1\n")  # W&B's own copy of the config
    runs = find_runs(tmp_path)
    assert [r.path.name for r in runs] == ["0_seed-0", "1_seed-1"]
    groups, keys = group_runs(runs)
    assert keys == [] and len(groups) == 1 and len(groups[0].runs) == 2


@pytest.mark.parametrize("override, message", [
    ("+logger.wandb_projcet=x", "logger: unknown keys ['wandb_projcet'] (did you mean 'wandb_project'?)"),
    ("logger.wandb_mode=cloud", "logger.wandb_mode = 'cloud': must be null ($WANDB_MODE, else online) or "
                                "one of ['online', 'offline', 'disabled']"),
    ("logger.wandb=1", "logger.wandb = 1: must be true or false (also log to Weights & Biases)"),
    ("logger.wandb_project=''", "logger.wandb_project = '': must be a non-empty string"),
    ("logger.wandb_group=7", "logger.wandb_group = 7: must be null or a non-empty string"),
])
def test_logger_keys_are_validated(override, message):
    with pytest.raises(ConfigError) as err:
        validate_config(make_config(override))
    assert message in str(err.value)


def test_wandb_enabled_but_not_installed_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(ConfigError) as err:
        validate_config(make_config("logger.wandb=true"))
    assert 'logger.wandb = true needs the wandb package' in str(err.value)
    assert 'pip install "plasticrl[wandb]"' in str(err.value)
    validate_config(make_config("logger.wandb=true", "logger.wandb_mode=disabled"))  # logs nothing


def test_configs_without_a_logger_section_still_validate(tiny_config):
    del tiny_config["logger"]  # a run saved before the section existed
    validate_config(tiny_config)
