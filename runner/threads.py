"""Torch CPU threads of a run (the config's `threads`).

Parallel runs that each use every core oversubscribe the CPU and all slow down; worse, torch's
OpenMP threads spin while they wait for a core, so a run with torch's default threads collapses
as soon as anything else runs beside it. bench/threads.py on the 2-core VM (SAC, 2x256, batch
256): 1 thread 128 updates/s idle and 128 beside one busy process; torch's default (2 threads) 187
idle but 30 beside one busy process (OMP_WAIT_POLICY=passive avoids the collapse, 126, but costs
the idle case as much, 96). `threads: null` therefore means 1 thread in a single run (a third
slower than 2 threads on an idle 2-core machine, never 6x slower on a shared one; set `threads`
when the machine is yours alone), and in a Hydra multirun whose launcher runs
`n_jobs` jobs at once (the joblib launcher) an even share of the cores, cores // n_jobs, at
least 1; under a cluster launcher, the CPUs each job asked for (submitit's `cpus_per_task`, Ray's
`ray.remote.num_cpus`), or torch's default where the job did not say. An integer is always used
as given.
"""
from __future__ import annotations

import joblib
import torch
from hydra.types import RunMode


def concurrent_jobs(n_jobs: int, cpus: int) -> int:
    """How many jobs joblib runs at once for `n_jobs` (-1: all cores, -2: all but one, ...)."""
    return max(1, n_jobs if n_jobs > 0 else cpus + 1 + n_jobs)


SINGLE_RUN = 1  # threads of a single run when `threads` is null (see above)


def run_threads(threads: int | None, hydra_cfg=None) -> int | None:
    """The thread count for this run; None leaves torch's default (a cluster job that did not
    say how many CPUs it has)."""
    if threads is not None:
        return threads
    if hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN:
        return SINGLE_RUN
    launcher = hydra_cfg.launcher
    n_jobs = launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:  # a cluster launcher: the job's own CPUs
        asked = launcher.get("cpus_per_task") or (launcher.get("ray") or {}).get("remote", {}).get("num_cpus")
        return asked if isinstance(asked, int) and asked > 0 else None
    cpus = joblib.cpu_count()  # the count joblib resolves n_jobs=-1 with (affinity, cgroup quota)
    return max(1, cpus // concurrent_jobs(n_jobs, cpus))


def apply_threads(threads: int | None, hydra_cfg=None) -> int | None:
    """Set torch's intra-op threads for this run and return the count used (None: default)."""
    threads = run_threads(threads, hydra_cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    return threads
