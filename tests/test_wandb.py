"""Weights & Biases logging (logger.wandb=true) in offline mode, read back from the run's `.wandb`
transaction log: the config, every TensorBoard scalar with the same key, step and value, the
summary, the plasticity events table, videos; a resumed run continues its W&B run and still ends
bitwise identical to an uninterrupted run without W&B; logging draws no random numbers."""
import json
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.trainer import Trainer
from runner.video import write_mp4
from tests.conftest import make_config
from tests.test_logging import SHORT, one_thread  # noqa: F401  (fixture)

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

from runner.wandb_logger import ID_FILE, WandbRun  # noqa: E402

OFFLINE = ("logger.wandb=true", "logger.wandb_mode=offline", "logger.wandb_project=tests")
RESETS = ("plasticity=shrink_perturb", "plasticity.unit=updates", "plasticity.every=100")
INTERNAL = {"_step", "_runtime", "_timestamp", "_wandb"}


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """W&B's own settings, cache and staging files in tmp; no network."""
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / name.lower()))
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def records(path: Path) -> list:
    """The records of a `.wandb` file: a 7-byte header, then 32 KiB blocks of chunks (crc32,
    length, type: 1 whole, 2 first, 3 middle, 4 last), each record a protobuf `Record`."""
    data, block, records, pending = path.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B"
    pos = 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a chunk header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending, pos = pending + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def complete_records(offline_dir: Path, timeout: float = 60.0) -> list:
    """The records of a finished run's log: wandb's service may still be writing its end when
    `finish` returns, so wait for the exit record."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(next(offline_dir.glob("run-*.wandb")))
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def read_wandb(offline_dir: Path) -> dict:
    """Run id, start time, config, history rows, summary and exit code of an offline run."""
    out = {"id": None, "config": {}, "history": [], "summary": {}, "exit": None}
    for record in complete_records(offline_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["start"] = record.run.run_id, record.run.start_time.ToNanoseconds()
        if kind in ("run", "config"):
            items = record.run.config.update if kind == "run" else record.config.update
            out["config"].update({i.key: json.loads(i.value_json) for i in items})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({i.key: json.loads(i.value_json) for i in record.summary.update if i.key})
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


def offline_dirs(run_dir: Path) -> list[Path]:
    """The run's offline W&B directories in the order they started."""
    return sorted((run_dir / "wandb").glob("offline-run-*"), key=lambda d: read_wandb(d)["start"])


def tb_scalars(tb_dir: Path) -> dict:
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {(tag, e.step): e.value for tag in acc.Tags()["scalars"] if not tag.startswith("hparams/")
            for e in acc.Scalars(tag)}


def test_offline_run_mirrors_tensorboard(tmp_path):
    run = tmp_path / "run"
    summary = Trainer(make_config(*SHORT, *OFFLINE, *RESETS, "seed=5"), run).train()
    (offline,) = offline_dirs(run)
    run_id = (run / ID_FILE).read_text().strip()
    logged = read_wandb(offline)
    assert logged["id"] == run_id and len(run_id) == 8
    assert logged["config"]["seed"] == 5 and logged["config"]["agent"]["name"] == "sac"
    assert logged["config"]["train"]["total_steps"] == 400 and logged["exit"] == 0
    wandb_scalars = {}
    for row in logged["history"]:
        for key, value in row.items():
            if key not in INTERNAL and key != "env_steps" and not key.startswith("plasticity/events"):
                wandb_scalars[key, row["env_steps"]] = value
    tb = tb_scalars(run / "tb")
    assert wandb_scalars.keys() == tb.keys()  # every key at every step, nothing else
    assert all(np.float32(wandb_scalars[k]) == tb[k] for k in tb)  # TensorBoard keeps float32
    events = [e["env_steps"] for e in summary["plasticity_events"]]  # resets at updates 100, 200, ...
    assert events[:2] == [199, 299] and tb["plasticity/reset", events[-1]] == len(events)
    assert ("eval/return", 400) in tb and ("train/critic_loss", 400) in tb
    assert logged["summary"]["final_eval_return"] == summary["final_eval_return"]
    assert logged["summary"]["plasticity"] == "shrink_perturb" and logged["summary"]["updates"] == 301
    (table,) = (offline / "files" / "media" / "table" / "plasticity").glob("events_*.table.json")
    table = json.loads(table.read_text())
    steps = table["columns"].index("env_steps")
    assert [row[steps] for row in table["data"]] == events


def test_resumed_run_continues_its_wandb_run_bitwise_identical(tmp_path):
    full = Trainer(make_config(*SHORT, *RESETS), tmp_path / "full")  # no W&B
    full.train()
    run = tmp_path / "run"
    Trainer(make_config(*SHORT, *RESETS, *OFFLINE), run).train(stop_at=100)  # stops at step 200
    run_id = (run / ID_FILE).read_text().strip()
    resumed = Trainer(make_config(*SHORT, *RESETS, *OFFLINE, f"resume={run}"), run)
    resumed.restore()
    resumed.train()
    first, second = offline_dirs(run)
    assert read_wandb(first)["id"] == read_wandb(second)["id"] == run_id  # one W&B run, two parts
    # the checkpoint is at step 200: the second part logs what follows (a reset at 299 first)
    steps = {row["env_steps"] for row in read_wandb(second)["history"]}
    assert min(steps) == 299 and {300, 400} <= steps and max(steps) == 400
    assert read_wandb(second)["config"]["resume"] == str(run)
    for key, value in full.agent.state_dict().items():
        assert torch.equal(value, resumed.agent.state_dict()[key]), key
    assert full.eval_history == resumed.eval_history


def test_wandb_run_draws_no_random_numbers_and_logs_videos(tmp_path):
    video = write_mp4(np.zeros((4, 16, 16, 3), np.uint8), tmp_path / "eval.mp4")
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    logger = WandbRun(tmp_path, {"seed": 1}, {"wandb_project": "tests", "wandb_mode": "offline"})
    logger.log({"train/loss": 0.5}, 10)
    logger.video("eval/video", video, 20)
    logger.summary({"env_steps": 20, "final_eval_return": 1.5, "final_eval_human_normalized": None,
                    "plasticity_events": [{"rule": "r", "group": ["critic"], "env_steps": 15}]})
    logger.finish(failed=True)
    after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state())
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    logged = read_wandb(offline_dirs(tmp_path)[0])
    assert logged["history"][0]["train/loss"] == 0.5 and logged["history"][0]["env_steps"] == 10
    row = logged["history"][1]
    assert row["env_steps"] == 20 and row["eval/video/_type"] == "video-file"
    assert (offline_dirs(tmp_path)[0] / "files" / row["eval/video/path"]).read_bytes() == video.read_bytes()
    assert logged["summary"]["final_eval_return"] == 1.5 and "final_eval_human_normalized" not in logged["summary"]
    assert logged["exit"] == 1  # failed: stopped early


def test_evaluation_videos_reach_wandb(tmp_path):
    run = tmp_path / "run"
    Trainer(make_config(*SHORT, *OFFLINE, "train.total_steps=200", "train.eval_every=0",
                        "train.video=true"), run).train()
    (offline,) = offline_dirs(run)
    (row,) = [r for r in read_wandb(offline)["history"] if "eval/video/path" in r]
    assert row["env_steps"] == 200 and row["eval/video/_type"] == "video-file"
    assert (offline / "files" / row["eval/video/path"]).read_bytes() == \
        (run / "videos" / "eval_00000200.mp4").read_bytes()


def test_each_member_of_a_group_is_its_own_wandb_run(tmp_path):
    """Members (one process): one W&B run per member, in its own run directory, with its seed in
    the config and its own scalars (the same as its TensorBoard's)."""
    from runner.group import GroupTrainer
    from runner.members import member_configs
    spec = {"seeds": [3, 4], "vary": None}
    members = member_configs(lambda o: make_config(*o), [*SHORT, *OFFLINE], spec)
    group = GroupTrainer(members, tmp_path / "group", spec)
    group.train()
    ids = set()
    for m in group.members:
        (offline,) = offline_dirs(m.run_dir)
        logged = read_wandb(offline)
        ids.add(logged["id"])
        assert logged["id"] == (m.run_dir / ID_FILE).read_text().strip() and logged["exit"] == 0
        assert logged["config"]["seed"] == m.cfg["seed"]
        tb = tb_scalars(m.run_dir / "tb")
        history = {(k, row["env_steps"]): v for row in logged["history"] for k, v in row.items()
                   if k not in INTERNAL and k != "env_steps"}
        assert history.keys() == tb.keys() and len(history) > 10
        assert all(history[k] == pytest.approx(tb[k], rel=1e-6) for k in tb)
    assert len(ids) == 2
