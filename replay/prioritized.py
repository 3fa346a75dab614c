"""Prioritized replay: a sum tree on the storage's device and a sampler built on it.

Sampling probability of slot i is P(i) = p_i / sum_j p_j, where p_i = priority_i ** alpha is
the leaf of slot i. BBF passes priority = sqrt(loss + 1e-10) with no further exponent
(alpha = 1 here, the default). New transitions get the largest leaf value ever recorded
(starting at 1.0, as Dopamine/BBF do); slots that hold no sampleable transition (not yet
written, or `FrameStorage.valid` False) have leaf 0 and are never drawn.

Importance-sampling weights come with a draw when asked for (`sample(storage, B, beta)`; they
are not applied here). Note that BBF's public agent does weight its loss by (P(i) + 1e-10) ** -0.5,
normalised by the batch maximum; that is `importance_weights(idx, beta=0.5)`.
"""
from __future__ import annotations

import math

import torch

from replay.sampler import Draw


class SumTree:
    """Complete binary tree over `capacity` non-negative leaves, one flat tensor.

    Layout: `L = 2 ** depth >= capacity` leaf positions; node 1 is the root, node n has
    children 2n and 2n + 1, leaf i is node L + i (positions >= capacity stay 0; node 0 is
    unused). Every internal node equals left child + right child, always recomputed from the
    children (never updated by deltas), so the tree is the exact bottom-up sum of its leaves.
    Batch updates and batch searches loop over the `depth` levels only, never over the batch.
    """

    def __init__(self, capacity: int, device="cpu", dtype=torch.float64):
        if capacity < 1:
            raise ValueError(f"sum tree capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.depth = math.ceil(math.log2(self.capacity)) if self.capacity > 1 else 0
        self.leaf0 = 1 << self.depth  # node index of leaf 0
        self.nodes = torch.zeros(2 * self.leaf0, dtype=dtype, device=torch.device(device))

    @property
    def total(self) -> torch.Tensor:
        """Sum of all leaves (0-d tensor, no host read)."""
        return self.nodes[1]

    @property
    def leaves(self) -> torch.Tensor:
        """The `capacity` leaf values (a view)."""
        return self.nodes[self.leaf0:self.leaf0 + self.capacity]

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        return self.nodes[self.leaf0 + idx]

    def set(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        """leaf[idx] = values for a batch; with duplicate indices the LAST occurrence wins
        (deterministically: every duplicate writes the value of the last one)."""
        idx = idx.reshape(-1).to(device=self.nodes.device, dtype=torch.long)  # [B]
        values = values.reshape(-1).to(self.nodes)  # [B]
        if idx.numel() == 0:
            return
        sorted_idx, order = torch.sort(idx, stable=True)  # [B] equal keys keep their order
        values = values[order]  # [B] in sorted order
        n = idx.numel()
        positions = torch.arange(n, device=idx.device)  # [B]
        is_last = torch.ones(n, dtype=torch.bool, device=idx.device)
        is_last[:-1] = sorted_idx[1:] != sorted_idx[:-1]  # last occurrence of each index
        # for each position, the position of the last occurrence of its index (suffix min)
        candidate = torch.where(is_last, positions, n)  # [B]
        last = torch.flip(torch.cummin(torch.flip(candidate, [0]), 0).values, [0])  # [B]
        node = self.leaf0 + sorted_idx  # [B]
        self.nodes[node] = values[last]
        for _ in range(self.depth):  # parents from their (final) children, level by level
            node = node // 2
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def rebuild(self, leaves: torch.Tensor | None = None) -> None:
        """Set all `capacity` leaves at once (if given) and recompute every internal node."""
        if leaves is not None:
            self.leaves.copy_(leaves)
        size = self.leaf0
        while size > 1:  # nodes [size, 2 size) -> their parents [size / 2, size)
            children = self.nodes[size:2 * size].view(size // 2, 2)  # [size/2, 2]
            self.nodes[size // 2:size] = children[:, 0] + children[:, 1]
            size //= 2

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """Prefix-sum search: for each value u in `mass` [B] (in [0, total)), the leaf i with
        leaf[0] + .. + leaf[i-1] <= u < leaf[0] + .. + leaf[i]. Never returns a zero leaf while
        total > 0 (a child of zero mass is never entered, whatever the rounding)."""
        u = mass.to(self.nodes)  # [B]
        node = torch.ones_like(u, dtype=torch.long)  # [B] at the root
        for _ in range(self.depth):
            left = 2 * node  # [B]
            left_sum, right_sum = self.nodes[left], self.nodes[left + 1]  # [B], [B]
            right = ((u >= left_sum) & (right_sum > 0)) | (left_sum <= 0)  # [B]
            u = torch.where(right, u - left_sum, u)
            node = left + right.long()
        return (node - self.leaf0).clamp_(max=self.capacity - 1)  # clamp: only if total == 0


class PrioritizedSampler:
    """Proportional prioritized sampling with the `UniformSampler` interface.

    `sample(storage, batch_size)` first brings the tree up to date with the storage (new
    transitions -> the max priority, slots no longer sampleable -> 0), then draws with its own
    `torch.Generator`: stratified by default as in BBF/Dopamine (draw b is uniform in the b-th
    of `batch_size` equal slices of the total mass, so indices come out in slot order), or
    i.i.d. with `stratified=False`. Either way each draw has marginal probability P(i).

    Tracking the storage: `FrameStorage` counts frames written (`head`), so its updates are
    exact. `TensorStorage` only exposes `pos`/`size`, so the sampler must see it (a `sample`
    or `sync` call) at least once per `capacity` transitions written; training samples every
    step, so this only matters for bulk loads (call `sync` after them, or accept that
    transitions written in more than a full turn of the ring keep their slot's old leaf).
    """

    def __init__(self, device="cpu", seed: int = 0, alpha: float = 1.0, stratified: bool = True,
                 initial_priority: float = 1.0):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.alpha, self.stratified = float(alpha), bool(stratified)
        self.initial_priority = float(initial_priority)
        self.tree: SumTree | None = None  # built at the first sync (needs the capacity)
        self.max_priority = torch.tensor(self.initial_priority, dtype=torch.float64,
                                         device=self.device)  # largest leaf ever set
        self.clock = None  # what the tree reflects: FrameStorage head, or TensorStorage (pos, size)
        self._valid = None  # the synced storage's `valid` mask, if it has one

    # ------------------------------------------------------------------ sampling
    prioritized = True

    def sample(self, storage, batch_size: int, beta: float | None = None) -> Draw:
        """`batch_size` slots drawn in proportion to their priorities, with importance weights
        (`importance_weights(idx, beta)`) when `beta` is given."""
        if len(storage) == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        self.sync(storage)
        shape = (batch_size,)
        u = torch.rand(shape, generator=self.generator, device=self.device, dtype=torch.float64)
        if self.stratified:
            u = (torch.arange(batch_size, device=self.device, dtype=torch.float64) + u) / batch_size
        idx = self.tree.find(u * self.tree.total)  # [B] int64
        return Draw(idx, None if beta is None else self.importance_weights(idx, beta))

    def probabilities(self, idx: torch.Tensor) -> torch.Tensor:
        """P(i) = leaf_i / total for slots `idx`."""
        return self.tree.get(idx) / self.tree.total

    def importance_weights(self, idx: torch.Tensor, beta: float = 0.5,
                           eps: float = 1e-10) -> torch.Tensor:
        """(P(i) + eps) ** -beta divided by its batch maximum, float32 [B] (optional; BBF's
        agent uses beta = 0.5)."""
        w = (self.probabilities(idx) + eps) ** -beta
        return (w / w.max()).float()

    # ------------------------------------------------------------------ priorities
    def update_priorities(self, idx: torch.Tensor, priorities: torch.Tensor) -> None:
        """Leaves of slots `idx` <- priorities ** alpha (raw values, e.g. sqrt(loss + 1e-10);
        they must be finite and >= 0, not checked to avoid a host read). Duplicate slots: the
        last one wins. Slots the synced storage marks invalid stay at 0."""
        if self.tree is None:
            raise RuntimeError("update_priorities before any sample: nothing has been drawn")
        if idx.numel() == 0:
            return
        idx = idx.to(self.device)
        leaf = torch.as_tensor(priorities, device=self.device).to(torch.float64) ** self.alpha
        if self._valid is not None:
            leaf = torch.where(self._valid[idx], leaf, 0.0)
        self.max_priority = torch.maximum(self.max_priority, leaf.max())
        self.tree.set(idx, leaf)

    def sync(self, storage) -> None:
        """Bring the tree up to date with what was written to `storage` since the last sync."""
        if self.tree is None:
            self.tree = SumTree(storage.capacity, self.device)
        elif self.tree.capacity != storage.capacity:
            raise ValueError(f"sampler tree has capacity {self.tree.capacity}, the storage "
                             f"{storage.capacity}")
        self._valid = getattr(storage, "valid", None)
        if hasattr(storage, "head"):
            self._sync_frames(storage)
        else:
            self._sync_ring(storage)

    def _sync_ring(self, storage) -> None:
        """TensorStorage: slots pos0 .. pos - 1 (mod capacity) were written since (pos0, size0)."""
        cap, now = storage.capacity, (storage.pos, storage.size)
        if now == self.clock:
            return
        if self.clock is None or now[1] < self.clock[1]:  # first sync, or the storage was reloaded
            filled = torch.arange(cap, device=self.device) < now[1]  # [cap]
            self.tree.rebuild(torch.where(filled, self.max_priority, 0.0))
        else:
            written = (now[0] - self.clock[0]) % cap or cap  # size changed or pos moved
            slots = (self.clock[0] + torch.arange(written, device=self.device)) % cap  # [w]
            self.tree.set(slots, self.max_priority.expand(written))
        self.clock = now

    def _sync_frames(self, storage) -> None:
        """FrameStorage (see `replay.frames`): writing frame p (absolute) completes transition
        p - 1, invalidates slot p and may invalidate the k - 1 slots after it (stacks showing the
        overwritten frame). So since the last head h0, slots holding absolute p in
        [max(h0, h1 + k - cap), h1 + k - 1] may have changed; those whose transition is newer
        than h0 get the max priority if valid, the others keep their leaf if valid, else 0."""
        cap, head, k = storage.capacity, storage.head, storage.stack
        if head == self.clock:
            return
        if self.clock is None or head < self.clock:  # first sync, or the storage was reloaded
            self.tree.rebuild(torch.where(storage.valid, self.max_priority, 0.0))
        else:
            start = max(self.clock, head + k - cap)
            p = torch.arange(start, head + k, device=self.device)  # [n] absolute frame slots
            slots = p % cap  # [n]
            newest = torch.where(p <= head, p, p - cap)  # [n] absolute index each slot holds now
            keep = torch.where(newest >= self.clock, self.max_priority, self.tree.get(slots))
            self.tree.set(slots, torch.where(storage.valid[slots], keep, 0.0))
        self.clock = head

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "alpha": self.alpha,
                "stratified": self.stratified, "clock": self.clock,
                "max_priority": self.max_priority.item(),
                "capacity": None if self.tree is None else self.tree.capacity,
                "leaves": None if self.tree is None else self.tree.leaves.cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())  # a CPU ByteTensor, on any device
        self.alpha, self.stratified = float(state["alpha"]), bool(state["stratified"])
        self.clock = state["clock"] if not isinstance(state["clock"], list) else tuple(state["clock"])
        self.max_priority.fill_(state["max_priority"])
        if state["capacity"] is None:
            self.tree = None
        else:
            self.tree = SumTree(state["capacity"], self.device)
            self.tree.rebuild(state["leaves"].to(self.device))
