"""Every bad input is refused before any work: one message naming the key (or the file) and what
is allowed, nothing written, and an earlier run's files byte-identical afterwards (README
"Validation and errors"). One table, CASES: the overrides of a `python train.py` command and a
piece of the message it must give. `{name}` in an override is a path from `files` below: a
finished run, broken copies of it, broken datasets and agent files."""
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from agents import AGENTS
from runner.start import REFUSED, prepare_run
from runner.trainer import Trainer
from tests.conftest import TINY, make_config

ROOT = Path(__file__).resolve().parents[1]
RUN = ("resume={run}",)
CASES = [
    # members (runner/members.py)
    (["members.seeds=[0,0]"], "members.seeds = [0, 0]: must be a non-empty list of distinct integers"),
    (["members.seeds=[0,1]", "members.vary={{agent.batch_size:[128,256]}}"],  # {{ }}: filled by str.format
     "members.vary.agent.batch_size: agent.batch_size may not differ between members"),
    (["members.seeds=[0,1]", "members.async_envs=yes"], "members.async_envs = 'yes': must be true or false"),
    (["members.seeds=[0,1]", "agent=drq_atari", "env=atari/pong", "agent.channels_last=true"],
     "agent.channels_last = True is not supported with members; allowed with members: false"),
    # values: ranges, choices, types (booleans included), inf and nan
    (["agent.replay_ratio=0"], "agent.replay_ratio = 0: must be an integer >= 1"),
    (["agent.replay_ratio=1.5"], "agent.replay_ratio = 1.5"),
    (["agent.lr=-0.001"], "agent.lr = -0.001: must be a finite number > 0"),
    (["agent.lr=abc"], "agent.lr = 'abc'"),
    (["agent.lr=inf"], "agent.lr = inf"),
    (["agent.lr=nan"], "agent.lr = nan"),
    (["agent.init_temperature=inf"], "agent.init_temperature = inf"),
    (["agent.batch_size=512", "agent.buffer_size=100"],
     "agent.batch_size = 512: must not exceed agent.buffer_size = 100"),
    (["agent.gamma=1.5"], "agent.gamma = 1.5: must be a number in (0, 1]"),
    (["agent.tau=0"], "agent.tau = 0"),
    (["agent.n_step=0"], "agent.n_step = 0"),
    (["agent.n_step=abc"], "agent.n_step = 'abc'"),
    (["agent.num_target_critics=3"],
     "agent.num_target_critics = 3: must be null or an integer in [1, num_critics=2]"),
    (["agent.hidden_dims=[]"], "agent.hidden_dims = []"),
    (["agent.hidden_dims=[0]"], "agent.hidden_dims = [0]"),
    (["agent.activation=swish"],
     "agent.activation = 'swish': must be one of ['crelu', 'elu', 'gelu', 'relu', 'tanh']"),
    (["agent.actor_q=max"], "agent.actor_q = 'max'"),
    (["agent.layer_norm=maybe"], "agent.layer_norm = 'maybe': must be true or false"),
    (["agent.backup_entropy=3"], "agent.backup_entropy = 3: must be true or false"),
    (["agent.target_entropy=abc"], "agent.target_entropy = 'abc': must be null or a finite number"),
    (["agent.log_std_bounds=[2,-10]"], "agent.log_std_bounds = [2, -10]"),
    (["agent.init=glorot"], "agent.init = 'glorot': must be one of"),
    (["agent.name=ppo"], f"agent.name = 'ppo': must be one of {sorted(AGENTS)}"),
    (["agent.compile=fast"], "agent.compile = 'fast': must be one of ['none', 'compile', 'cudagraphs']"),
    (["agent=bbf", "env=atari/pong", "agent.compile=jit"], "agent.compile = 'jit': must be one of"),
    (["device=cpu", "agent.compile=cudagraphs"],
     "agent.compile = 'cudagraphs': needs a CUDA device, and this run's device is 'cpu'"),
    (["agent=bbf"], "agent.name"),  # a discrete-action agent on Pendulum's continuous actions
    (["env.id=dmc:cheetah-fly"], "unknown DMC task 'fly'"),
    (["env.id=dmc:cheetahh-run"], "valid domains:"),
    (["env.id=gym:Pendullum-v1"], "Pendulum-v1"),
    (["env.id=atari:Pongg"], "env.id"),
    (["env.action_repeat=0"], "env.action_repeat = 0"),
    (["agent=drq", "env=dmc_pixels/cartpole_swingup", "env.pixels=maybe"],
     "invalid config:\n  env.pixels = 'maybe': must be true (dmc ids only) or false"),
    (["train.total_steps=0"], "train.total_steps = 0"),
    (["train.total_steps=1e3"], "train.total_steps = 1000.0"),
    (["train.learning_starts=0"], "train.learning_starts = 0"),
    (["env=dmc/cheetah_run", "train.total_steps=3000"],  # the env config's learning_starts: 10000
     "train.learning_starts = 10000: not below train.total_steps = 3000, so the run would make no "
     "gradient update"),
    (["train.eval_episodes=0"], "train.eval_episodes = 0"),
    (["train.checkpoint_every=-5"], "train.checkpoint_every = -5"),
    (["train.keep_checkpoints=0"], "train.keep_checkpoints = 0: must be an integer >= 1"),
    (["train.on_nonfinite=ignore"], "train.on_nonfinite = 'ignore': must be one of ['stop', 'warn']"),
    (["train.progress=yes"], "train.progress = 'yes': must be true or false"),
    (["train.video=2"], "train.video = 2: must be true or false"),
    (["device=tpu"], "device = 'tpu': must be one of ['auto', 'cpu', 'cuda']"),
    (["seed=abc"], "seed = 'abc': must be an integer"),
    (["threads=0"], "threads = 0: must be null (torch's default) or an integer >= 1"),
    (["threads=many"], "threads = 'many': must be null"),
    # unknown keys, in every group (an added +key too)
    (["+agent.warmup=3"], "agent: unknown keys ['warmup']"),
    (["+train.totl_steps=100"], "train: unknown keys ['totl_steps']"),
    (["+env.frame_skip=4"], "env: unknown keys ['frame_skip']"),
    (["+offline.mix=0.5"], "offline: unknown keys ['mix']"),
    (["+diagnostics.rank=1"], "diagnostics: unknown keys ['rank']"),
    (["+plasticity.intervall=5"], "plasticity: unknown keys ['intervall']"),
    (["+lr=0.1"], "unknown keys ['lr']"),
    # plasticity presets and rules, before anything is built
    (["plasticity=head_reset", "plasticity.rules.0.intervention=redo_v2"],
     "plasticity.rules[0].intervention = 'redo_v2': must be one of"),
    (["plasticity=redo", "plasticity.tau=2"], "plasticity.rules[0].tau = 2: must be a number in [0, 1]"),
    (["plasticity=redo", "agent.activation=crelu"], "CReLU (actor.trunk.1, actor.trunk.3, critic.trunk.1"),
    (["plasticity=head_reset", "plasticity.unit=episodes"],
     "plasticity.rules[0].unit = 'episodes': must be one of ['updates', 'env_steps', 'switch', 'task_switch']"),
    (["plasticity=head_reset", "plasticity.every=0"], "plasticity.rules[0].every = 0"),
    (["plasticity=head_reset", "plasticity.every=abc"], "plasticity.rules[0].every = 'abc'"),
    (["plasticity=head_reset", "plasticity.stop_after=-3"],
     "plasticity.rules[0].stop_after = -3: must be null or an integer >= 0"),
    (["plasticity=head_reset", "plasticity.rules.0.optimizer=maybe"],
     "plasticity.rules[0].optimizer = 'maybe': must be one of ['reset', 'keep']"),
    (["plasticity=head_reset", "plasticity.rules.0.target=maybe"],
     "plasticity.rules[0].target = 'maybe': must be one of ['copy_online', 'fresh', 'untouched']"),
    (["plasticity=head_reset", "plasticity.groups=[decoder]"], "decoder"),
    (["plasticity=shrink_perturb", "plasticity.shrink=abc"], "plasticity.rules[0].shrink = 'abc'"),
    (["plasticity=shrink_perturb", "plasticity.shrink=-1"], "plasticity.rules[0].shrink = -1"),
    (["plasticity=shrink_perturb", "plasticity.rules.0.source=old"],
     "plasticity.rules[0].source = 'old': must be one of ['fresh', 'initial']"),
    (["plasticity=hare_tortoise", "plasticity.tortoise_ema=2"], "plasticity.rules[0].tortoise_ema = 2"),
    (["diagnostics.every=-1"], "diagnostics.every = -1"),
    (["diagnostics.tau=abc"], "diagnostics.tau = 'abc'"),
    # offline values and the files a config names
    (["offline.fraction=1.5"], "offline.fraction = 1.5"),
    (["offline.reward_scale=inf"], "offline.reward_scale = inf"),
    (["offline.reward_shift=nan"], "offline.reward_shift = nan"),
    (["offline.reward_normalization=zscore"], "offline.reward_normalization = 'zscore'"),
    (["offline.dataset={missing}"], "offline.dataset"),
    (["offline.dataset={data_bad_json}"], "metadata.json: not valid JSON"),
    (["offline.dataset={data_no_space}"], "metadata.json: has no 'action_space'"),
    (["offline.dataset={data_truncated}"], "main_data.hdf5: cannot be opened as HDF5, it is truncated or corrupt"),
    (["offline.dataset={data_lengths}"], "episode_1 has mismatched lengths (observations 201, actions 200, rewards 199"),
    (["offline.init_from={missing}"], "offline.init_from = "),
    (["offline.init_from={agent_truncated}"], "cannot be read, it is truncated or not a file torch.save wrote"),
    (["offline.init_from={agent_empty}"], "is empty (0 bytes)"),
    (["offline.init_from={run}/checkpoint.pt"], "this is a run checkpoint, not an agent.pt"),
    (["offline.init_from={text}"], "cannot be read"),
    (["offline.init_from={cut_run}"], "no agent.pt in that directory (it holds a checkpoint.pt"),
    (["agent=iql", "offline.init_from={run}"], "holds a 'SAC' agent, this config trains 'IQL'"),
    # resume: a run directory that can be continued, and a command that would train something
    (["resume={text}"], "is a file, not a run directory"),
    (["resume={run}/config.yaml"], "is a file, not a run directory; pass its directory: resume="),
    (["resume={missing}"], "no such directory"),
    (["resume={empty}"], "not a run directory (it holds no config.yaml and no checkpoint.pt)"),
    (["resume={bad_yaml}"], "config.yaml is not a readable config"),
    (["resume={not_a_config}"], "does not hold a run config"),
    (["resume={no_checkpoint}"], "no checkpoint yet"),
    (["resume={empty_checkpoint}"], "is empty (0 bytes), a truncated write"),
    (["resume={truncated_checkpoint}"], "is not a readable checkpoint, it is truncated or corrupt"),
    ([*RUN], "the run finished at 300 env steps (train.total_steps=300); with train.total_steps=300 "
             "there is nothing to train"),
    ([*RUN, "train.total_steps=100"], "with train.total_steps=100 there is nothing to train"),
    ([*RUN, "train.total_steps=600", "agent.lr=0.1"], "the overrides change what the checkpoint was trained with"),
    ([*RUN, "train.total_steps=600", "seed=5"], "seed"),
    ([*RUN, "train.total_steps=600", "env=dmc/cartpole_swingup"], "env.id"),
    ([*RUN, "train.total_steps=abc"], "train.total_steps = 'abc'"),
    (["@new_run_in={run}"], "already holds a run (config.yaml and checkpoint.pt); a new run there "
                            "would overwrite it"),
]


def _dataset(files: dict, name: str, root: Path, damage) -> None:
    path = root / name
    shutil.copytree(files["data"], path)
    damage(path / "data")
    files[name] = path


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A finished 300-step run and broken things made from it; `files["digest"]` hashes all."""
    from runner.collect import collect
    root = tmp_path_factory.mktemp("earlier")
    run = root / "run"
    Trainer(make_config(*TINY, "train.total_steps=300", "train.checkpoint_every=0"), run).train()
    cut = root / "cut_run"
    Trainer(make_config(*TINY, "train.total_steps=600"), cut).train(stop_at=200)  # no agent.pt yet
    f = {"run": run, "cut_run": cut, "missing": root / "nothing_here", "text": root / "notes.txt",
         "empty": root / "empty"}
    f["text"].write_text("not a run\n")
    f["empty"].mkdir()
    for name, damage in [("bad_yaml", lambda d: (d / "config.yaml").write_text("train: [1, 2\n")),
                         ("not_a_config", lambda d: (d / "config.yaml").write_text("- 1\n- 2\n")),
                         ("no_checkpoint", lambda d: (d / "checkpoint.pt").unlink()),
                         ("empty_checkpoint", lambda d: (d / "checkpoint.pt").write_bytes(b"")),
                         ("truncated_checkpoint", lambda d: _truncate(d / "checkpoint.pt"))]:
        shutil.copytree(run, root / name)
        damage(root / name)
        f[name] = root / name
    for name, damage in [("agent_truncated", _truncate), ("agent_empty", lambda p: p.write_bytes(b""))]:
        f[name] = root / f"{name}.pt"
        shutil.copy(run / "agent.pt", f[name])
        damage(f[name])
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=2, root=root / "minari", progress=False)
    f["data"] = root / "minari" / "test" / "pendulum-random-v0"
    _dataset(f, "data_bad_json", root, lambda d: (d / "metadata.json").write_text('{"total_steps": 4'))
    _dataset(f, "data_no_space", root, lambda d: (d / "metadata.json").write_text('{"observation_space": '
                                                                                 + _space(f["data"]) + "}"))
    _dataset(f, "data_truncated", root, lambda d: _truncate(d / "main_data.hdf5", 0.3))
    _dataset(f, "data_lengths", root, _drop_last_reward)
    f["digest"] = tree_digest(root)
    f["root"] = root
    return f


def _space(data: Path) -> str:
    import json
    return json.dumps(json.loads((data / "data" / "metadata.json").read_text())["observation_space"])


def _drop_last_reward(data: Path) -> None:
    with h5py.File(data / "main_data.hdf5", "r+") as h5:
        rewards = h5["episode_1/rewards"][:-1]
        del h5["episode_1/rewards"]
        h5["episode_1/rewards"] = rewards


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def command(overrides, files) -> tuple[list[str], Path | None]:
    """The overrides with paths filled in, and the run dir a `@new_run_in=` case names."""
    filled = [o.format(**{k: v for k, v in files.items() if isinstance(v, Path)}) for o in overrides]
    run_dirs = [Path(o.split("=", 1)[1]) for o in filled if o.startswith("@new_run_in=")]
    return [o for o in filled if not o.startswith("@")], (run_dirs[0] if run_dirs else None)


def test_the_table_covers_enough_cases():
    assert len(CASES) >= 60 and len({tuple(o) for o, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("overrides, message", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_input_is_refused_with_its_key_and_nothing_changes(files, tmp_path, overrides, message):
    overrides, run_dir = command(overrides, files)
    run_dir = run_dir or tmp_path / "new_run"  # what Hydra would have made for the run
    run_dir.mkdir(exist_ok=True)
    with pytest.raises(REFUSED) as err:
        prepare_run(make_config("device=cpu", *overrides), overrides, run_dir)
    text = str(err.value)
    assert message in text
    assert len(text) < 2000, text[:300]  # quoted briefly, never a tensor dump
    if run_dir.is_relative_to(tmp_path):
        assert not any(run_dir.iterdir())  # nothing written: train.py removes the empty dir
    assert tree_digest(files["root"]) == files["digest"]  # the earlier run: byte for byte


@pytest.mark.parametrize("overrides", [
    [*RUN, "train.total_steps=100"], ["resume={bad_yaml}"], ["@new_run_in={run}"],
    ["plasticity=shrink_perturb", "plasticity.shrink=abc"], ["offline.init_from={run}/checkpoint.pt"]])
def test_cli_refuses_with_status_2_one_message_and_no_run_dir(files, tmp_path, overrides):
    overrides, run_dir = command(overrides, files)
    run_dir = run_dir or tmp_path / "new_run"
    proc = subprocess.run([sys.executable, "train.py", "device=cpu", *overrides,
                           f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert len(proc.stderr) < 2000
    assert not (tmp_path / "new_run").exists()
    assert tree_digest(files["root"]) == files["digest"]
