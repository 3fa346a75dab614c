"""Pixel replay: every frame is stored once and frame stacks are rebuilt when sampling.

Observations are uint8 stacks `[k * C, H, W]` of the `k` newest frames, newest LAST
(`obs[-C:]`). At an episode start the env pads its stack, and the constructor's `padding` says how
(the first add of every episode checks it on the host):

- `padding="repeat"` (the default; DMC pixels): the first frame repeated, as jaxrl's / DrQ's
  frame stack and gymnasium `FrameStackObservation(padding_type="reset")`;
- `padding="zero"` (Atari): zero frames, as the acting stack of BBF/Dopamine (google/dopamine
  dopamine/labs/atari_100k/atari_100k_rainbow_agent.py `reset_all`/`reset_one`) and their replay:
  google-research bigger_better_faster/bbf/replay_memory/subsequence_replay_buffer.py masks the
  frames before the last terminal in the stack with zeros (`result * mask`), and dopamine
  dopamine/jax/replay_memory/accumulator.py fills only the current trajectory into a zero stack.
  A life loss is a terminal there (`terminal_on_life_loss`), so with `terminated=True` at a life
  loss each life is an episode here and replayed stacks equal the env's [0, .., 0, o] stacks.

Layout: one ring of `capacity` slots, each holding ONE frame plus the transition data:

    frames[s]      uint8 [C, H, W]  newest frame of the observation at slot s
    back[s]        uint8            frames back to its episode's first frame, capped at k - 1
    action[s], reward[s], terminated[s], truncated[s]   transition s (s_s, a_s, r_s, s'_s)
    valid[s]       bool             s holds a transition whose whole stack is still stored

Transition t of an episode lives in slot p; its next observation's newest frame goes into
slot p + 1 (the write head), which is where transition t + 1 lives when the episode goes
on. When an episode ends at p, slot p + 1 keeps only its final frame (never sampleable)
and the next episode starts at p + 2. So an episode of L steps takes L + 1 slots.

The stack of slot s is `frames[s - j]` for j = k-1 .. 0 (oldest first), where frames
before the episode start (j > back[s]) are the first frame again (repeat) or zeros.
`next_obs` of slot s is the stack of slot s + 1. A slot is sampleable (valid) when it holds
a transition, is not the write head, and no frame of its stack has been overwritten yet.

The host keeps a copy of `back` and `valid` (2 bytes a slot, host memory) so that the
number of valid slots (`len`) is known without reading the device; sampling and gathering
never sync with the host. Device memory is `capacity * (C*H*W + 8 + itemsize(action))`
bytes: with L-step episodes that is `(1 + 1/L) * (1 + small/CHW)` frames per transition.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from replay.storage import transition_specs

PADDINGS = ("repeat", "zero")
SCALARS = ("action", "reward", "terminated", "truncated")


def nbytes(tensors) -> int:
    """Total bytes of an iterable of tensors."""
    return sum(t.numel() * t.element_size() for t in tensors)


def _host(value):
    """A torch tensor as is (no device read), anything else as a numpy array."""
    return value if isinstance(value, torch.Tensor) else np.asarray(value)


class FrameStorage:
    """Ring of `capacity` frame slots with the `TensorStorage` interface (see module doc)."""

    def __init__(self, capacity: int, frame_shape, stack: int, action_shape=(),
                 action_dtype=torch.int64, device="cpu", padding: str = "repeat"):
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if stack < 1 or stack > 255:
            raise ValueError(f"stack must be in [1, 255], got {stack}")
        if capacity <= stack:
            raise ValueError(f"replay capacity must exceed the frame stack ({stack}), "
                             f"got {capacity}")
        self.capacity, self.stack, self.padding = int(capacity), int(stack), padding
        self.frame_shape = tuple(int(d) for d in frame_shape)  # (C, H, W)
        if len(self.frame_shape) != 3:
            raise ValueError(f"frame_shape must be (C, H, W), got {frame_shape}")
        c, h, w = self.frame_shape
        self.obs_shape = (self.stack * c, h, w)
        self.device = torch.device(device)
        # the logical transition fields (what `gather` returns), for MixedReplayBuffer's check
        self.specs = transition_specs(self.obs_shape, action_shape, torch.uint8, action_dtype)

        def zeros(shape, dtype):
            return torch.zeros((self.capacity, *shape), dtype=dtype, device=self.device)

        self.fields = {"frames": zeros(self.frame_shape, torch.uint8),
                       "back": zeros((), torch.uint8), "valid": zeros((), torch.bool),
                       "action": zeros(tuple(action_shape), action_dtype),
                       "reward": zeros((), torch.float32), "terminated": zeros((), torch.bool),
                       "truncated": zeros((), torch.bool)}
        self.valid = self.fields["valid"]  # the sampler draws uniformly among these slots
        self._ages = torch.arange(self.stack - 1, -1, -1, device=self.device)  # [k], oldest first
        self._reset_host()

    def _reset_host(self) -> None:
        self.head = -1  # absolute index (slots written - 1) of the newest frame: the write head
        self.open = False  # whether the newest transition's episode goes on
        self.count = 0  # number of valid slots
        self.back_host = np.zeros(self.capacity, np.uint8)
        self.valid_host = np.zeros(self.capacity, bool)
        self.last_frame = None  # host copy of the write head's frame, to check continuity

    # ------------------------------------------------------------------ writing
    def __len__(self) -> int:
        return self.count

    def nbytes(self) -> int:
        """Device bytes of every stored tensor."""
        return nbytes(self.fields.values())

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Write one transition of the stream; `terminated`/`truncated` must be host values."""
        obs, next_obs = _host(obs), _host(next_obs)
        c = self.frame_shape[0]
        if self.open:
            self._check_continues(obs)
            p = self.head  # obs's newest frame is already there (the previous next frame)
        else:  # a new episode: one slot after the previous episode's final frame
            self._check_start(obs, next_obs)
            p = self.head + 1
            self._write_frame(p, obs[-c:], back=0)
        slot = p % self.capacity
        for name, value in (("action", action), ("reward", reward),
                            ("terminated", terminated), ("truncated", truncated)):
            self.fields[name][slot].copy_(torch.as_tensor(value), non_blocking=True)
        self._set_valid(slot, True)
        back = min(int(self.back_host[slot]) + 1, self.stack - 1)
        self._write_frame(p + 1, next_obs[-c:], back)
        self.open = not (bool(terminated) or bool(truncated))
        self.last_frame = next_obs[-c:].copy() if isinstance(next_obs, np.ndarray) else None

    def add_batch(self, **transitions) -> None:
        """Consecutive transitions of one stream, leading dimension = time."""
        for t in range(len(transitions["reward"])):
            self.add(**{name: value[t] for name, value in transitions.items()})

    def _write_frame(self, p: int, frame, back: int) -> None:
        """Move the write head to absolute slot p, overwriting the frame stored capacity ago."""
        slot = p % self.capacity
        if p >= self.capacity:  # frame p - capacity is lost: drop every stack that shows it
            self._set_valid(slot, False)
            for j in range(1, self.stack):
                later = (p + j) % self.capacity  # holds absolute p - capacity + j
                if self.valid_host[later] and self.back_host[later] >= j:
                    self._set_valid(later, False)
        self.fields["frames"][slot].copy_(torch.as_tensor(frame), non_blocking=True)
        self.fields["back"][slot] = back
        self.back_host[slot] = back
        self.head = p

    def _set_valid(self, slot: int, value: bool) -> None:
        if self.valid_host[slot] != value:
            self.valid_host[slot] = value
            self.valid[slot] = value
            self.count += 1 if value else -1

    def _check_start(self, obs, next_obs) -> None:
        """Host check of dtype, shape, padding and frame order at an episode's first add."""
        for name, value in (("obs", obs), ("next_obs", next_obs)):
            if tuple(value.shape) != self.obs_shape:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected stacks "
                                 f"{self.obs_shape} (stack {self.stack} x frame "
                                 f"{self.frame_shape})")
            if value.dtype != (torch.uint8 if isinstance(value, torch.Tensor) else np.uint8):
                raise ValueError(f"{name} must be uint8 pixels, got {value.dtype}")
        if isinstance(obs, torch.Tensor) or isinstance(next_obs, torch.Tensor):
            return  # reading a device tensor would sync; only host arrays are checked
        frames = obs.reshape(self.stack, *self.frame_shape)  # [k, C, H, W]
        if self.padding == "repeat" and not (frames == frames[-1]).all():
            raise ValueError(
                "the first obs of an episode must repeat its first frame (padding='repeat', "
                "gymnasium FrameStackObservation(padding_type='reset')); for zero-padded "
                "stacks use padding='zero'")
        if self.padding == "zero" and frames[:-1].any():
            raise ValueError("the first obs of an episode must be zero frames then its first "
                             "frame (padding='zero'); for repeat-padded stacks use "
                             "padding='repeat'")
        nxt = next_obs.reshape(self.stack, *self.frame_shape)  # [k, C, H, W]
        if not np.array_equal(nxt[:-1], frames[1:]):
            raise ValueError("next_obs must be obs shifted by one frame with the new frame LAST "
                             "(obs[-C:] is the newest frame)")

    def _check_continues(self, obs) -> None:
        if tuple(obs.shape) != self.obs_shape:
            raise ValueError(f"obs has shape {tuple(obs.shape)}, expected {self.obs_shape}")
        if self.last_frame is None or isinstance(obs, torch.Tensor):
            return
        if not np.array_equal(obs[-self.frame_shape[0]:], self.last_frame):
            raise ValueError("obs does not continue the previous transition's next_obs: mark "
                             "episode ends with terminated/truncated (or truncate_newest) and add "
                             "one stream in time order")

    def truncate_newest(self) -> None:
        """End the newest transition's episode (a run stopped mid-episode); the next add
        starts a new episode."""
        if self.open:
            self.fields["truncated"][(self.head - 1) % self.capacity] = True
            self.open = False

    # ------------------------------------------------------------------ reading
    def gather(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Field `name` at slots `idx` (any shape S): obs/next_obs are [*S, k*C, H, W] uint8."""
        if name in ("obs", "next_obs"):
            return self.stacks(idx if name == "obs" else (idx + 1) % self.capacity)
        if name not in SCALARS:
            raise KeyError(f"FrameStorage has no field {name!r}")
        return self.fields[name][idx]

    def stacks(self, slot: torch.Tensor, read=None) -> torch.Tensor:
        """The observation stacks of slots `slot` (any shape S). `read(field, slots)` reads a
        stored field; by default this storage's own (a member-stacked replay reads every
        member's storage at once with its own, replay/member_replay.py)."""
        read = read or (lambda name, idx: self.fields[name][idx])
        back = read("back", slot).long().unsqueeze(-1)  # [*S, 1]
        ages = torch.minimum(self._ages, back)  # [*S, k]: frames back, clamped at the episode start
        src = (slot.unsqueeze(-1) - ages) % self.capacity  # [*S, k] slots, oldest frame first
        frames = read("frames", src)  # [*S, k, C, H, W]
        if self.padding == "zero":  # frames before the episode start are zeros
            before = (self._ages > back)[..., None, None, None]  # [*S, k, 1, 1, 1]
            frames = frames.masked_fill(before, 0)
        return frames.reshape(*slot.shape, *self.obs_shape)  # [*S, k*C, H, W]

    def steps_ahead(self, idx: torch.Tensor) -> torch.Tensor:
        """How many time-consecutive slots start at `idx` (itself included, up to the newest
        transition, which is the slot before the write head)."""
        return (self.head - 1 - idx) % self.capacity + 1

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        filled = min(self.head + 1, self.capacity)  # slots [0, filled) were ever written
        return {"capacity": self.capacity, "frame_shape": self.frame_shape, "stack": self.stack,
                "padding": self.padding, "head": self.head, "open": self.open,
                "fields": {k: v[:filled].cpu().clone() for k, v in self.fields.items()}}

    def load_state_dict(self, state: dict) -> None:
        for key in ("capacity", "frame_shape", "stack", "padding"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"pixel replay {key} mismatch: checkpoint has {state.get(key)}, "
                                 f"this buffer has {getattr(self, key)}")
        if set(state["fields"]) != set(self.fields):
            raise ValueError(f"replay fields differ from the checkpoint's: "
                             f"{sorted(set(state['fields']) ^ set(self.fields))}")
        for name, value in state["fields"].items():
            own = self.fields[name]
            if value.shape[1:] != own.shape[1:] or value.dtype != own.dtype:
                raise ValueError(f"replay field '{name}' is {value.dtype} {tuple(value.shape[1:])} "
                                 f"in the checkpoint, {own.dtype} {tuple(own.shape[1:])} here")
        self._reset_host()
        for name, tensor in self.fields.items():
            tensor.zero_()
            tensor[: len(state["fields"][name])].copy_(state["fields"][name])
        self.head, self.open = int(state["head"]), bool(state["open"])
        self.back_host[:] = self.fields["back"].cpu().numpy()
        self.valid_host[:] = self.fields["valid"].cpu().numpy()
        self.count = int(self.valid_host.sum())
        if self.head >= 0:
            self.last_frame = self.fields["frames"][self.head % self.capacity].cpu().numpy()


def naive_bytes_per_transition(obs_shape, action_shape=(), action_dtype=torch.int64) -> int:
    """Bytes a `TensorStorage` of (obs, action, reward, next_obs, flags) uses per transition."""
    specs = transition_specs(obs_shape, action_shape, torch.uint8, action_dtype)
    return sum(math.prod(s.shape) * torch.empty((), dtype=s.dtype).element_size()
               for s in specs.values())
