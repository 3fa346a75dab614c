"""The files a config names, checked before anything is built: `offline.dataset` (found, and
not broken: replay/dataset_check.py) and `offline.init_from` (an agent.pt of this config's agent
kind: runner/offline.py). Reads metadata only; the data is loaded later, once."""
from __future__ import annotations

from runner.validate_common import Errors, brief


def validate_files(e: Errors, cfg: dict) -> None:
    from agents import AGENTS
    from replay.dataset_check import check_dataset
    from replay.datasets import DatasetError, resolve_dataset
    from runner.offline import WarmStartError, read_agent_file

    offline = cfg.get("offline") if isinstance(cfg.get("offline"), dict) else {}
    dataset = offline.get("dataset")
    if isinstance(dataset, str) and dataset and "offline.dataset" not in e:
        try:
            check_dataset(resolve_dataset(dataset), dataset)
        except FileNotFoundError as err:
            e.add("offline.dataset", f"offline.dataset = {brief(dataset)}: {err}")
        except DatasetError as err:
            e.add("offline.dataset", f"offline.dataset = {brief(dataset)}: {err}")
    source = offline.get("init_from")
    if isinstance(source, str) and source and "offline.init_from" not in e:
        name = cfg.get("agent", {}).get("name") if isinstance(cfg.get("agent"), dict) else None
        expected = AGENTS[name][0].__name__ if isinstance(name, str) and name in AGENTS else None
        try:
            read_agent_file(source, expected, peek=True)
        except WarmStartError as err:
            e.add("offline.init_from", str(err))
