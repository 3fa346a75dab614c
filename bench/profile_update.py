"""Where an agent's update time goes: ms per update split into its parts, and the kernel count.

For each agent in --agents and each mode in --modes (every agent takes compile = none |
compile | cudagraphs; cudagraphs only on CUDA), with the agent's sizes from configs/agent/*.yaml
and a replay buffer of random data (sac: float obs 17, 6-dim actions, like dmc:cheetah-run;
drq: uint8 (9, 84, 84), 6-dim actions; drq_atari and bbf: uint8 (4, 84, 84), 18 actions, bbf
on a prioritized buffer through `agent.sample_batch`), after --warmup untimed updates (compiling
and CUDA-graph capture happen there):

  sample   ms per `buffer.sample(batch)` (bbf: `agent.sample_batch` + the priority write-back),
  update   ms per `agent.update(batch)`; both timed separately in every iteration (synced on
           CUDA), median over --blocks blocks of --updates iterations, without the profiler.
  split    one torch.profiler run (CPU, + CUDA on cuda) over --updates updates on 2 pre-sampled
           batches (after one profiled update that is discarded), each update inside
           `record_function("bench.update")`. Every event below bench.update goes to the part of
           its OUTERMOST marker:
             backward   "autograd::engine::evaluate_function: ..." (autograd nodes, including the
                        AOT backward of a compiled loss; such nodes that run on autograd's
                        device thread, as roots, too),
             optimizer  "Optimizer.step#..." / "Optimizer.zero_grad#..." (torch.optim),
             target     aten::_foreach_lerp_ (EMA) / aten::_foreach_copy_ (hard copy),
             forward    everything else: losses, augmentation, compiled regions (the grad seed
                        `ones_like` of `backward()` too),
             other      bench.update's own CPU time: Python and glue between ops.
           CPU: parts are self CPU times, as shares of the profiled update, scaled to the
           unprofiled `update` ms (the profiled ms are printed while running; the profiler's
           per-op overhead inflates parts with many small ops).
           CUDA: parts are the GPU time (kernels, memcpy, memset) of the work each CPU event
           launched (linked by correlation id); work launched by bench.update itself or by no
           event (a CUDA graph replay) goes to `graph`; `other` = `update` minus all GPU time,
           i.e. the GPU idle (launch and Python overhead).
           When a compiled update has no backward or optimizer events (SAC's `compile`: the whole
           update is one graph; any agent's `cudagraphs`), fwd/bwd/optimizer/target are not
           separable: their sum is shown as `graph` and they as `-`.
  calls    CPU compute calls per update: (a) aten ops with no aten op above them (e.g.
           aten::linear counts once, for its addmm) whose subtree does more than views or
           allocation (VIEW_OPS: view, reshape, t, expand, empty, detach, ...): in eager every op,
           in compiled code the extern calls (mm, addmm, bmm, baddbmm, convolution, ...) and the
           eager ops around the graphs; plus (b) each inductor C++ kernel, an event
           "graph_<n>_cpp_fused_..." as this script sets
           `torch._inductor.config.cpp.enable_kernel_profile = True` before compiling. On CUDA
           triton launches are not in (a) or (b): read `kernels` there.
  kernels  CUDA only: device events per update of kineto activity type "kernel" (memcpy,
           memset and the GPU copies of annotations excluded).

    python bench/profile_update.py                                  # all agents, CPU, none+compile
    python bench/profile_update.py --device cuda                    # + cudagraphs
    python bench/profile_update.py --agents sac,drq_atari --threads 1 --updates 20
    python bench/profile_update.py --batch drq=128 --width 1        # lighter for a CPU
    python bench/profile_update.py --agents bbf --width 1 --batch bbf=8 --updates 5   # smoke
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function, schedule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing
sys.path.insert(0, str(ROOT / "bench"))
from pixel_throughput import SETTINGS, agent_config, random_stream, spaces_for, sync  # noqa: E402

from agents import make_agent  # noqa: E402
from replay import PrioritizedSampler, ReplayBuffer  # noqa: E402

PARTS = ("forward", "backward", "optimizer", "target", "graph", "other")
VIEW_OPS = {"aten::" + op for op in (  # aten ops that compute nothing (views, metadata, allocation)
    "view _unsafe_view reshape _reshape_alias t transpose permute expand expand_as as_strided "
    "slice select unsqueeze squeeze detach detach_ alias lift_fresh unbind split split_with_sizes "
    "chunk narrow flatten unflatten view_as contiguous empty empty_like empty_strided new_empty "
    "new_empty_strided resize_ result_type to item _local_scalar_dense resolve_conj resolve_neg set_").split()}
TARGET_OPS = {"aten::_foreach_lerp_", "aten::_foreach_copy_"}


class Case:
    """One agent in one mode on a replay buffer of random data: `sample()` and `after(batch,
    metrics)` (the priority write-back, bbf only)."""

    def __init__(self, name: str, mode: str, args):
        cfg = dict(agent_config(name), compile=mode)
        if name == "bbf":
            cfg["width_scale"] = args.width
        self.batch = args.batch.get(name, cfg["batch_size"])
        dev = args.device
        if name == "sac":
            obs_space = spaces.Box(-np.inf, np.inf, (17,), np.float32)
            act_space = spaces.Box(-1.0, 1.0, (6,), np.float32)
            self.buffer = ReplayBuffer.for_spaces(args.transitions, (17,), (6,), device=dev, seed=0,
                                                  n_step=cfg["n_step"], gamma=cfg["gamma"])
            n, g = args.transitions, torch.Generator().manual_seed(0)
            done = torch.zeros(n, dtype=torch.bool)
            self.buffer.add_batch(torch.randn(n, 17, generator=g), torch.rand(n, 6, generator=g) * 2 - 1,
                                  torch.randn(n, generator=g), torch.randn(n, 17, generator=g), done, done)
        else:
            setting = "dmc" if name == "drq" else "atari"
            obs_space, act_space = spaces_for(setting, 18, 6)
            s, discrete = SETTINGS[setting], setting == "atari"
            slots = args.transitions + args.transitions // s["episode"] + 2
            self.buffer = ReplayBuffer.for_pixels(
                slots, s["frame_shape"], s["stack"], action_shape=() if discrete else (6,),
                action_dtype=torch.int64 if discrete else torch.float32, device=dev, seed=0,
                n_step=cfg["n_step"], gamma=cfg["gamma"])
            if name == "bbf" and cfg.get("prioritized", True):
                self.buffer.sampler = PrioritizedSampler(dev, seed=0)
            for transition in random_stream(setting, act_space, args.transitions):
                self.buffer.add(*transition)
        self.agent = make_agent(cfg, obs_space, act_space, dev)
        self.bbf = name == "bbf"

    def sample(self):
        if self.bbf:
            return self.agent.sample_batch(self.buffer, self.batch)
        return self.buffer.sample(self.batch)

    def after(self, batch, metrics) -> None:
        if self.bbf:
            self.buffer.update_priorities(batch.idx, metrics["priority"])


def timed(case: Case, blocks: int, per_block: int, device) -> tuple[float, float]:
    """Median over blocks of the mean ms per sample (+ write-back) and per update."""
    sample_ms, update_ms = [], []
    for _ in range(blocks):
        s = u = 0.0
        for _ in range(per_block):
            t0 = time.perf_counter()
            batch = case.sample()
            sync(device)
            t1 = time.perf_counter()
            metrics = case.agent.update(batch)
            sync(device)
            t2 = time.perf_counter()
            case.after(batch, metrics)
            sync(device)
            s, u = s + (t1 - t0) + (time.perf_counter() - t2), u + (t2 - t1)
        sample_ms.append(1e3 * s / per_block)
        update_ms.append(1e3 * u / per_block)
    return statistics.median(sample_ms), statistics.median(update_ms)


def profiled(case: Case, updates: int, device):
    """torch.profiler events of `updates` updates on pre-sampled batches (2, reused), after one
    update that the profiler runs but discards (its first recorded update is slow)."""
    batches = [case.sample() for _ in range(2)]
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=updates, repeat=1),
                 acc_events=True) as prof:
        for i in range(updates + 1):
            with record_function("bench.update"):
                case.agent.update(batches[i % 2])
            sync(device)
            prof.step()
    return prof.events()


def part_of(name: str, inherited: str) -> str:
    if inherited != "forward":  # the outermost marker wins
        return inherited
    if name.startswith("autograd::engine::evaluate_function"):
        return "backward"
    if name.startswith("Optimizer.step#") or name.startswith("Optimizer.zero_grad#"):
        return "optimizer"
    if name in TARGET_OPS:
        return "target"
    return "forward"


def does_work(event) -> bool:
    if event.name not in VIEW_OPS:
        return True
    return any(does_work(c) for c in event.cpu_children if c.name.startswith("aten::"))


def analyse(events, updates: int) -> dict:
    """Per update: CPU self time (us) and GPU time (us) per part, compute calls, CUDA kernels."""
    cpu, gpu, calls, owner = defaultdict(float), defaultdict(float), [0], {}

    def walk(e, part: str, under_aten: bool, top: bool) -> None:
        if not top:
            part = part_of(e.name, part)
        cpu["other" if top else part] += e.self_cpu_time_total
        if e.id:  # GPU work launched by the update itself (no op between): a graph replay
            owner[e.id] = "graph" if top else part
        is_aten = e.name.startswith("aten::")
        if (is_aten and not under_aten and does_work(e)) or "cpp_fused" in e.name:
            calls[0] += 1
        for c in e.cpu_children:
            walk(c, part, under_aten or is_aten, False)

    for e in events:
        if e.device_type != DeviceType.CPU:
            continue
        if e.name == "bench.update":
            walk(e, "forward", False, True)
        elif e.cpu_parent is None and e.name.startswith("autograd::engine::evaluate_function"):
            walk(e, "backward", False, False)  # run on autograd's device thread
    kernels = 0
    for d in events:  # device work (kernels, copies, fills; not the GPU copies of annotations)
        if d.device_type != DeviceType.CUDA or d.activity_type not in ("kernel", "gpu_memcpy", "gpu_memset"):
            continue
        kernels += d.activity_type == "kernel"
        gpu[owner.get(d.linked_correlation_id, "graph")] += d.time_range.elapsed_us()
    return dict(cpu={k: v / updates for k, v in cpu.items()}, gpu={k: v / updates for k, v in gpu.items()},
                calls=calls[0] / updates, kernels=kernels / updates)


def split(stats: dict, update_ms: float, mode: str, cuda: bool) -> dict:
    """ms per part (see the module docstring), the fused case folded into `graph`."""
    if cuda:
        parts = {k: stats["gpu"].get(k, 0.0) / 1e3 for k in PARTS if k != "other"}
        parts["other"] = max(update_ms - sum(parts.values()), 0.0)
    else:
        total = sum(stats["cpu"].values()) or 1.0
        parts = {k: stats["cpu"].get(k, 0.0) / total * update_ms for k in PARTS}
    if mode != "none" and parts["backward"] == 0 and parts["optimizer"] == 0:
        for k in ("forward", "backward", "optimizer", "target"):
            parts["graph"] += parts.pop(k)
            parts[k] = None  # not separable
    return parts


def run_case(name: str, mode: str, args) -> dict:
    start = time.perf_counter()
    case = Case(name, mode, args)
    built = time.perf_counter()
    warmup = max(args.warmup, 4) if mode == "cudagraphs" else args.warmup  # 3 eager + capture
    for _ in range(warmup):
        batch = case.sample()
        case.after(batch, case.agent.update(batch))
    sync(args.device)
    warm = time.perf_counter()
    sample_ms, update_ms = timed(case, args.blocks, args.updates, args.device)
    stats = analyse(profiled(case, args.updates, args.device), args.updates)
    print(f"  {name}/{mode}: batch {case.batch}, built {built - start:.1f} s, warm-up {warm - built:.1f} s "
          f"({warmup} updates), profiled {sum(stats['cpu'].values()) / 1e3:.2f} ms CPU per update",
          flush=True)
    return dict(agent=name, mode=mode, batch=case.batch, sample=sample_ms, update=update_ms,
                parts=split(stats, update_ms, mode, args.device.type == "cuda"), **stats)


def per_agent(text: str) -> dict:
    """'drq=128,bbf=16' -> {'drq': 128, 'bbf': 16}"""
    return {k.strip(): int(v) for k, _, v in (item.partition("=") for item in text.split(",") if item)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--agents", default="sac,drq,drq_atari,bbf")
    p.add_argument("--modes", default=None, help="default none,compile (+ cudagraphs on cuda)")
    p.add_argument("--updates", type=int, default=20, help="updates per timed block and profiled")
    p.add_argument("--blocks", type=int, default=3, help="timed blocks (median)")
    p.add_argument("--warmup", type=int, default=5, help="untimed updates first (compile; capture: >= 4)")
    p.add_argument("--batch", type=per_agent, default={}, help="per-agent batch, e.g. drq=128,bbf=16")
    p.add_argument("--width", type=int, default=4, help="BBF width_scale (4: the reference)")
    p.add_argument("--transitions", type=int, default=5000, help="random transitions per buffer")
    args = p.parse_args()
    args.device = torch.device(args.device)
    cuda = args.device.type == "cuda"
    modes = (args.modes or ("none,compile,cudagraphs" if cuda else "none,compile")).split(",")
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch._inductor.config.cpp.enable_kernel_profile = True  # inductor C++ kernels as profiler events
    torch.manual_seed(0)
    np.random.seed(0)
    load = os.getloadavg()[0]
    rows = [run_case(a, m, args) for a in args.agents.split(",") for m in modes]

    device = torch.cuda.get_device_name(args.device) if cuda else "cpu"
    print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {device}; torch "
          f"{torch.__version__}; {torch.get_num_threads()} threads; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}; load {load:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"median of {args.blocks} blocks of {args.updates} updates; BBF width {args.width}")
    print("ms per update; parts: " + ("GPU kernel time, other = GPU idle" if cuda else
                                      "CPU self time shares scaled to the update") + "; '-': inside `graph`")
    head = ["agent", "mode", "batch", "sample", "update", *PARTS, "calls"] + (["kernels"] if cuda else [])
    print(" | ".join(head))
    for r in rows:
        cells = [r["agent"], r["mode"], str(r["batch"]), f"{r['sample']:.2f}", f"{r['update']:.2f}"]
        cells += ["-" if r["parts"][k] is None else f"{r['parts'][k]:.2f}" for k in PARTS]
        cells += [f"{r['calls']:.0f}"] + ([f"{r['kernels']:.0f}"] if cuda else [])
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
