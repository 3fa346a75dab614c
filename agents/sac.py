"""Soft Actor-Critic (Haarnoja et al. 2018) with an ensemble of N critics.

    critic:  L_Q = sum_j E[(Q_j(s,a) - y)^2],  y = R + d * (min_{j in S} Q'_j(s',a') - alpha log pi(a'|s'))
    actor:   L_pi = E[alpha log pi(a|s) - Q(s,a)],  Q = min (or mean) over the ensemble
    alpha:   L_alpha = E[alpha * (-log pi(a|s) - H_target)],  H_target = c |A| (c = -1/2: jaxrl)
    target:  theta' <- (1 - tau) theta' + tau theta  (every `target_update_every`-th update)

R and d come from the replay buffer (n-step return and gamma^m, 0 at termination).
S is the whole ensemble or a random subset of M members (REDQ / RLPD). With
`actor_update_every` k > 1 the actor and alpha are updated on every k-th call only (RLPD: 20
critic updates and 1 actor update per env step: replay ratio 20, k = 20). `init` picks the
weight initialiser (agents/init.py: jaxrl's orthogonal by default), `log_std_bounds` and
`log_std_form` the policy's log-std range and how it is enforced, `layer_norm` LayerNorm in the
critics and `actor_layer_norm` in the actor (RLPD: critics only). The update
makes no host syncs: metrics are returned as detached tensors and read when logging.
Submodule names (`actor`, `critic`, `critic_target`, `log_alpha`, each net split into
`trunk` and `head`) are the handles plasticity groups use; nothing here resets anything.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from agents.acceleration import learning_rate, optimizer_options
from agents.base import Agent, UpdateResult
from agents.init import agent_init
from agents.networks import EnsembleCritic, TanhGaussianActor
from agents.simba import ObservationNormalizer, SimbaActor, SimbaCritic
from plasticity.injection import make_injectable

# Constructor arguments, with the reference defaults (Nikishin et al. 2022 / SR-SAC: jaxrl's SAC in
# evgenii-nikishin/rl_with_resets; configs/agent/sac.yaml cites the file of each value).
SAC_DEFAULTS = dict(
    hidden_dims=(256, 256), num_critics=2, num_target_critics=None, layer_norm=False,
    actor_layer_norm=False, activation="relu", lr=3e-4, tau=0.005, init_temperature=1.0,
    target_entropy=None, target_entropy_per_action=-0.5, actor_q="min", backup_entropy=True,
    actor_update_every=1, target_update_every=1, init="orthogonal", log_std_bounds=(-10.0, 2.0),
    log_std_form="tanh", compile="none",
    # SimBa (agents/simba.py; configs/agent/simba.yaml) and what its reference sets around it
    network="mlp", critic_hidden_dim=512, critic_num_blocks=2, actor_hidden_dim=128,
    actor_num_blocks=1, normalize_observations=False, weight_decay=0.0, update_order="critic_first",
    injection=False,
)
SIMBA_KEYS = ("network", "critic_hidden_dim", "critic_num_blocks", "actor_hidden_dim",
              "actor_num_blocks", "normalize_observations", "weight_decay", "update_order")


def target_entropy(value, per_action, action_dim: int) -> float:
    """H_target: `value` when given, else `per_action` * |A| (jaxrl SAC/RLPD -1/2, DrQ and SB3's
    "auto" -1)."""
    return float(value) if value is not None else float(per_action) * float(action_dim)


class SAC(Agent):
    """SAC for continuous actions in [-1, 1]. See the module docstring for the losses."""

    target_networks = {"critic": "critic_target"}  # online prefix -> its target, for plasticity groups

    defaults = SAC_DEFAULTS  # subclasses (DrQ) bring their own

    def __init__(self, obs_dim, action_dim: int, device="cpu", **hparams):
        super().__init__()
        h = self._set_hparams(self.defaults, obs_dim, action_dim, device, hparams)
        self.num_target_critics = h["num_target_critics"]
        self.actor_q, self.backup_entropy, self.tau = h["actor_q"], h["backup_entropy"], h["tau"]
        self.target_entropy = target_entropy(h["target_entropy"], h["target_entropy_per_action"], action_dim)
        agent_init(h["init"])
        h["log_std_bounds"] = self.hparams["log_std_bounds"] = tuple(float(b) for b in h["log_std_bounds"])
        self._build_networks(obs_dim, action_dim, h)
        if h.get("injection"):  # plasticity injection's spare heads (plasticity/injection.py)
            make_injectable(self)
            self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # running observation statistics (SimBa), updated while acting in training
        self.obs_norm = ObservationNormalizer(obs_dim) if h.get("normalize_observations") else None
        self.actor_first = h.get("update_order", "critic_first") == "actor_first"
        self.log_alpha = nn.Parameter(torch.tensor(math.log(h["init_temperature"])))
        self.to(self.device)

        self._critic_params, self._target_params = self._online_and_target_params()
        self._actor_params = list(self.actor.parameters())
        mode = self._set_update_mode(h.get("compile", "none"))
        adam, decay = optimizer_options(mode), float(h.get("weight_decay", 0.0))
        lr = lambda: learning_rate(h["lr"], mode, self.device)  # noqa: E731  a tensor each under cudagraphs

        def networks_optimizer(params):  # AdamW (decoupled decay) when weight_decay > 0 (SimBa)
            if decay:
                return torch.optim.AdamW(params, lr=lr(), weight_decay=decay, **adam)
            return torch.optim.Adam(params, lr=lr(), **adam)
        self.optimizers = {"actor": networks_optimizer(self._actor_params),
                           "critic": networks_optimizer(self._critic_params),
                           "log_alpha": torch.optim.Adam([self.log_alpha], lr=lr(), **adam)}
        self._critic_loss_fn, self._actor_loss_fn = self.critic_loss, self.actor_loss
        self.actor_update_every, self._update_calls = int(h["actor_update_every"]), 0
        self.target_update_every = int(h["target_update_every"])
        for key in ("actor_update_every", "target_update_every"):
            if not (isinstance(h[key], int) and not isinstance(h[key], bool) and h[key] >= 1):
                raise ValueError(f"{key} = {h[key]!r}: must be an integer >= 1")
        self._compiled = self._compile_update() if mode != "none" else None

    def _compile_update(self):
        """The `compile` mode: the whole update as one graph (agents/compile.py)."""
        from agents.compile import CompiledUpdate
        return CompiledUpdate(self, self._compiled_body)

    def _build_networks(self, obs_dim: int, action_dim: int, h: dict) -> None:
        """`actor`, `critic` and `critic_target` on flat observations (MLPs, or SimBa's)."""
        if h.get("network", "mlp") == "simba":
            self.actor = SimbaActor(obs_dim, action_dim, h["actor_hidden_dim"], h["actor_num_blocks"],
                                    **self._policy_options(h))
            self.critic = SimbaCritic(obs_dim, action_dim, h["critic_hidden_dim"], h["critic_num_blocks"],
                                      h["num_critics"])
            self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
            return
        net = dict(hidden_dims=h["hidden_dims"], activation=h["activation"], init=h["init"])
        self.actor = TanhGaussianActor(obs_dim, action_dim, layer_norm=h["actor_layer_norm"],
                                       **self._policy_options(h), **net)
        self.critic = EnsembleCritic(obs_dim, action_dim, num_critics=h["num_critics"],
                                     layer_norm=h["layer_norm"], **net)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    @staticmethod
    def _policy_options(h: dict) -> dict:
        return dict(log_std_bounds=h["log_std_bounds"], log_std_form=h["log_std_form"])

    def _online_and_target_params(self) -> tuple[list, list]:
        """What the critic optimizer trains, and the target parameters tracking it (same order)."""
        return list(self.critic.parameters()), list(self.critic_target.parameters())

    def initial_value(self, name: str) -> torch.Tensor:
        """Initial value of a bare parameter of the agent (a full reset re-initialises alpha)."""
        if name != "log_alpha":
            raise KeyError(name)
        return torch.full_like(self.log_alpha, math.log(self.hparams["init_temperature"]))

    # ------------------------------------------------------------------ acting
    _predicting = False  # inside predict(): the observation statistics stay as they are

    def _predict_action(self, observation, deterministic: bool):
        self._predicting = True
        try:
            return self.act(observation, deterministic)
        finally:
            self._predicting = False

    @torch.no_grad()
    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Action(s) in [-1, 1] for one observation [obs_dim] or a batch [B, obs_dim]."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        single = obs_t.dim() == 1
        if self.obs_norm is not None:  # SimBa: statistics of the observations acted on in training
            if not deterministic and not self._predicting:
                self.obs_norm.update(obs_t)
            obs_t = self.obs_norm(obs_t)
        action, _ = self.actor(obs_t.unsqueeze(0) if single else obs_t, deterministic)
        action = action.cpu().numpy()
        return action[0] if single else action

    # ---------------------------------------------------------------- learning
    def update(self, batch) -> UpdateResult:
        """One gradient step on critic, actor and temperature, then the target EMA
        (one compiled graph with `compile`, unless an optimizer has step hooks)."""
        return UpdateResult(self._run_update(self._next_due(), batch))

    def _next_due(self) -> tuple[bool, bool]:
        """Count this update; (actor due, target due). RLPD: the actor and alpha once per
        `actor_update_every` critic updates; Kostrikov's DrQ: actor and target every 2nd update."""
        self._update_calls += 1
        return (self._update_calls % self.actor_update_every == 0,
                self._update_calls % self.target_update_every == 0)

    @property
    def member_body(self):
        """The update body members run over stacked tensors (agents/members.py): SAC's own,
        which its subclasses with other losses (DrQ) do not have."""
        return self._compiled_body if type(self)._compiled_body is SAC._compiled_body \
            and type(self).critic_loss is SAC.critic_loss else None

    member_key_values = (2,)  # tau may differ between members (MemberStack merges it per member)

    def member_update_key(self) -> tuple:
        """Count this update; the key of `member_body` (actor due, target due, tau)."""
        return (*self._next_due(), self.tau)

    def _update_step(self, due: tuple[bool, bool], batch) -> dict[str, torch.Tensor]:
        actor_due, target_due = due
        if self._compiled is not None and not self._eager and self._compiled.supported():
            return self._compiled((actor_due, target_due, self.tau), batch)
        metrics = {}
        if actor_due and self.actor_first:  # SimBa: actor and temperature, then the critic
            metrics.update(self.update_actor(batch.obs))
        metrics.update(self.update_critic(batch))
        if actor_due and not self.actor_first:
            metrics.update(self.update_actor(batch.obs))
        if target_due:
            self.update_target()
        return metrics

    def _compiled_body(self, key, batch, ops) -> dict[str, torch.Tensor]:
        """`_update_step` written against agents/compile.py `FunctionalOps`: traced once per key
        (actor due, target due, tau), so critic-only updates (RLPD) are compiled too."""
        actor_due, target_due, tau = key
        metrics = {}
        if actor_due and self.actor_first:
            metrics.update(ops.step("actor_loss", ("actor", "log_alpha"), batch.obs))
        metrics.update(ops.step("critic_loss", ("critic",), batch))
        if actor_due and not self.actor_first:  # the actor loss reads the critic just updated
            metrics.update(ops.step("actor_loss", ("actor", "log_alpha"), batch.obs))
        if target_due:  # tau: one number, or each member's (agents/members.py PerMember)
            ops.ema_(self._target_params, self._critic_params, tau)
        return metrics

    def forward(self, loss: str, *args):
        """A loss by name ('critic_loss' | 'actor_loss'), for torch.func.functional_call."""
        return getattr(self, loss)(*args)

    def _target_q(self, q_next: torch.Tensor) -> torch.Tensor:
        """min over the ensemble, or over a random subset of M members; [N, B] -> [B]."""
        m = self.num_target_critics
        if m is not None and m < q_next.shape[0]:
            subset = torch.rand(q_next.shape[0], device=q_next.device).argsort()[:m]
            q_next = q_next.index_select(0, subset)
        return q_next.min(dim=0).values

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def critic_loss(self, batch) -> tuple[torch.Tensor, dict]:
        obs, next_obs = self._normalized(batch.obs), self._normalized(batch.next_obs)
        with torch.no_grad():
            next_action, next_log_prob = self.actor(next_obs)
            v_next = self._target_q(self.critic_target(next_obs, next_action))  # [B]
            if self.backup_entropy:
                v_next = v_next - self.log_alpha.exp() * next_log_prob
            target = batch.reward + batch.discount * v_next  # [B]
        q = self.critic(obs, batch.action)  # [N, B]
        loss = (q - target).pow(2).mean(dim=1).sum()
        return loss, {"critic_loss": loss.detach(), "q": q.detach().mean()}

    def actor_loss(self, obs) -> tuple[torch.Tensor, dict]:
        """Actor and temperature losses, summed: they share nothing with a gradient (alpha is
        detached in one, log pi in the other), so one backward serves both."""
        obs = self._normalized(obs)
        action, log_prob = self.actor(obs)
        q = self.critic(obs, action)  # [N, B]
        q = q.min(dim=0).values if self.actor_q == "min" else q.mean(dim=0)
        alpha = self.log_alpha.exp()
        actor_loss = (alpha.detach() * log_prob - q).mean()
        entropy = -log_prob.detach().mean()
        alpha_loss = alpha * (entropy - self.target_entropy)
        return actor_loss + alpha_loss, {"actor_loss": actor_loss.detach(), "alpha": alpha.detach(),
                                         "alpha_loss": alpha_loss.detach(), "entropy": entropy}

    def update_critic(self, batch) -> dict[str, torch.Tensor]:
        loss, metrics = (self.critic_loss if self._eager else self._critic_loss_fn)(batch)
        self._step(loss, self._critic_params, ("critic",))
        return metrics

    def update_actor(self, obs) -> dict[str, torch.Tensor]:
        loss, metrics = (self.actor_loss if self._eager else self._actor_loss_fn)(obs)
        self._step(loss, self._actor_params + [self.log_alpha], ("actor", "log_alpha"))
        return metrics

    def _step(self, loss, params, optimizer_names) -> None:
        for name in optimizer_names:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        for name in optimizer_names:
            self.optimizers[name].step()

    @torch.no_grad()
    def update_target(self) -> None:
        torch._foreach_lerp_(self._target_params, self._critic_params, self.tau)

    # ----------------------------------------------------------- persistence
    def training_state(self) -> dict:
        return {**super().training_state(), "update_calls": self._update_calls}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self._update_calls = state.get("update_calls", 0)
