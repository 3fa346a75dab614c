"""A/B of two versions of the compiled SAC update (agents/compile.py) in one process.

    python bench/compiled_update_ab.py [--old-rev 9af33d8] [--threads 2] [--pairs 30] [--block 50]

`new` is this tree's generic compiled update (torch's own Adam math over every param group);
`old` is agents/compile.py at `--old-rev` (9af33d8: SAC's names and a hand-written Adam, called
with the batch only). Both agents have the bench's sizes (cheetah-run dims 17/6, 2x256 MLPs, 2
critics, batch 256) and run interleaved blocks of `--block` updates, the order alternating per
pair; prints the median ms/update of each and the median of the per-pair ratios old/new
(> 1: the new one is faster). Needs git and the repository's history.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.sac import SAC  # noqa: E402
from replay.buffer import Batch  # noqa: E402

OBS, ACT, BATCH = 17, 6, 256


def old_compiled_update(rev: str, agent):
    """agents/compile.py at `rev`, imported under another name, wrapped to the new call form."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:agents/compile.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "compile_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("compile_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    legacy = module.CompiledUpdate(agent)

    class Old:  # the old __call__ took the batch only (actor and target always due)
        def supported(self):
            return legacy.supported()

        def __call__(self, key, batch):
            return legacy(batch)
    return Old()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--old-rev", default="9af33d8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--block", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sac = dict(hidden_dims=[256, 256], num_critics=2, lr=3e-4, tau=0.005, compile="compile")
    new, old = SAC(OBS, ACT, **sac), SAC(OBS, ACT, **sac)
    old._compiled = old_compiled_update(args.old_rev, old)
    batches = [Batch(torch.randn(BATCH, OBS), torch.rand(BATCH, ACT) * 2 - 1, torch.randn(BATCH),
                     torch.full((BATCH,), 0.99), torch.randn(BATCH, OBS), torch.arange(BATCH))
               for _ in range(8)]
    for agent in (new, old):  # compile, and warm up
        for i in range(10):
            agent.update(batches[i % 8])

    def block(agent) -> float:
        start = time.perf_counter()
        for i in range(args.block):
            agent.update(batches[i % 8])
        return (time.perf_counter() - start) / args.block

    times = {"new": [], "old": []}
    for pair in range(args.pairs):
        for name in (("new", "old") if pair % 2 == 0 else ("old", "new")):
            times[name].append(block(new if name == "new" else old))
    ratios = [o / n for o, n in zip(times["old"], times["new"])]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"threads {args.threads}: new {statistics.median(times['new']) * 1e3:.2f} ms/update, "
          f"old ({args.old_rev}) {statistics.median(times['old']) * 1e3:.2f} ms/update; "
          f"old/new per pair: median {statistics.median(ratios):.3f}, quartiles {q1:.3f}-{q3:.3f}")


if __name__ == "__main__":
    main()
