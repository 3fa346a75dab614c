"""Atari-100k environments: the ALE with the protocol of BBF's and Dopamine's reference code.

References: google-research ``bigger_better_faster/bbf/eval_run_experiment.py`` (BBF's runner),
google/dopamine ``dopamine/labs/atari_100k/atari_100k_runner.py`` (the same runner),
``atari_100k_rainbow_agent.py`` (the acting stack) and ``dopamine/discrete_domains/atari_lib.py``
(``AtariPreprocessing``, with ``terminal_on_life_loss=True`` for training and evaluation envs).

Preprocessing (``atari_lib.py`` AtariPreprocessing; Mnih et al. 2015), training and evaluation:

- frame skip 4: each agent action is repeated for 4 emulator frames, rewards summed, stopping
  early at a game over or a life loss;
- max-pool over the last two frames of the skip (Atari sprites flicker between frames);
- grayscale (the ALE's luminance palette) resized to 84x84 with ``cv2.INTER_AREA``;
- a stack of the last ``frame_stack`` (4) frames, newest LAST, uint8 [frame_stack, 84, 84],
  ZERO-padded: a new game starts at [0, 0, 0, o_0] and every life loss restarts the stack at
  [0, 0, 0, o] (``reset_all`` / ``reset_one``: ``self.state[env_id].fill(0)``, which the runner
  calls at a game over and at ``elif done`` = a life loss, in training and evaluation alike);
- no-op starts at every new game (not at a life loss): ``n ~ U{0, ..., noop_max - 1}`` (0..29:
  ``jax.random.randint(rng, (), 0, max_noops)``, an exclusive bound, max_noops 30) NOOP agent
  steps, each a full frame-skip step as above; a no-op step that ends the game or loses a life
  restarts the game (``if terminal: env.reset()``) and the no-ops go on. No-ops are not agent
  steps (the 27k cap does not count them). Drawn from the env's seeded ``np_random``;
- sticky actions off (``repeat_action_probability=0``), the minimal action set;
- an episode cap of 27k agent steps (108k frames) per game: ``truncated=True``.

``info`` has ``lives``, ``episode_frame_number``, ``raw_reward``, ``life_lost`` (step: the lives
dropped, also on the game-over step) and ``game_over`` (step: the game ended, lost or cut by the
cap, so the next ``reset()`` starts a new game); ``reset()`` adds ``noops`` and ``continued``.

Life loss:

- training (``training=True``): the agent's episode ends, ``terminated=True`` with
  ``info["game_over"] = False``; the returned obs is the plain next stack (the terminal
  transition's). The next ``reset()`` does NOT restart the game: it continues it with the stack
  [0, 0, 0, o], o the last frame (its ``seed`` is ignored). A real game over or the cap gives a
  real reset. Rewards are clipped to [-1, 1]; the raw reward is in ``info["raw_reward"]``.
- evaluation (``training=False``): the episode goes on (no ``terminated``; returns are whole-game
  returns, raw rewards) but the returned obs is already the restarted stack [0, 0, 0, o].

No FIRE reset: Dopamine's Atari-100k (DER, SPR, BBF) does not press FIRE after a reset or a life
loss; agents learn to press it (FIRE is in the minimal action set of every game that needs it).
The C++ ``ale_py.AtariVectorEnv`` defaults to a FIRE reset.

With sticky actions off the emulator is deterministic (the ALE's own seed changes nothing, checked
on several games), so the no-op count is the only randomness: ``reset(seed=s)`` makes a new game
reproducible.

Implementation: a small env on ``ale_py.ALEInterface`` rather than ``ale_py.AtariVectorEnv`` or
gymnasium's ``AtariPreprocessing`` + ``FrameStackObservation``. All three give identical frames and
rewards for the same actions (checked on Pong, Breakout, MsPacman, Seaquest) except on a step that
stops early: at a game over the other two return the previous step's pooled frame, this env the
real last frame (Dopamine's ``AtariPreprocessing`` pools what its two buffers hold, stale when the
step stops before its last two frames); at a life loss they (by default) play all the frames. ``AtariVectorEnv`` cannot
return the screen for ``render()`` and restarts the game on every ``reset()``; gymnasium's
``reset()`` restarts the game too. For one env this one is as fast or faster, the emulator
dominating (``bench/atari_env_speed.py``, medians on a busy 2-core CPU, agent steps/s: Pong ~3.1k
vs ~1.5-2.1k for the gymnasium wrappers and ~2.4-2.6k for ``AtariVectorEnv`` with 1-2 threads;
Breakout ~1.5k for all three).
"""

from __future__ import annotations

from typing import Any

import ale_py
import cv2
import gymnasium
import numpy as np
from ale_py import roms
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from envs.atari_games import check_game, rom_name

FRAME_SKIP = 4
NOOP_MAX = 30  # exclusive bound: 0..29 no-op steps (BBF.gin DataEfficientAtariRunner.max_noops)
MAX_EPISODE_STEPS = 27_000  # agent steps = 108k frames
SCREEN_SIZE = 84


class AtariEnv100k(gymnasium.Env):
    """One ALE game under the Atari-100k protocol (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, game: str, *, seed: int | None = None, training: bool = True,
                 frame_stack: int = 4, noop_max: int = NOOP_MAX,
                 max_episode_steps: int = MAX_EPISODE_STEPS, frame_skip: int = FRAME_SKIP,
                 render_mode: str | None = "rgb_array") -> None:
        if render_mode not in ("rgb_array", None):
            raise ValueError(f"the Atari env renders rgb_array only (render_mode 'rgb_array' or "
                             f"None), got {render_mode!r}")
        if frame_stack < 1 or frame_skip < 1 or noop_max < 0 or max_episode_steps < 1:
            raise ValueError(f"bad Atari settings: frame_stack={frame_stack}, "
                             f"frame_skip={frame_skip}, noop_max={noop_max}, "
                             f"max_episode_steps={max_episode_steps}")
        self.game = check_game(game)
        self.training = bool(training)
        self.frame_skip, self.noop_max = int(frame_skip), int(noop_max)
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = "rgb_array"  # render() always works; None is accepted for gymnasium
        # gymnasium.make(self.spec) builds this env again (check_env, Minari's recover_environment)
        self.spec = EnvSpec(
            id=f"plasticrl/atari-{self.game}-v0", entry_point="envs.atari:AtariEnv100k",
            kwargs={"game": self.game, "seed": None if seed is None else int(seed),
                    "training": self.training, "frame_stack": int(frame_stack),
                    "noop_max": self.noop_max, "max_episode_steps": self.max_episode_steps,
                    "frame_skip": self.frame_skip},
            order_enforce=False, disable_env_checker=True)  # it checks its own step order

        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setFloat("repeat_action_probability", 0.0)  # sticky actions off
        self.ale.setInt("random_seed", 0 if seed is None else int(seed) % (2**31 - 1))
        self.ale.loadROM(roms.get_rom_path(rom_name(self.game)))
        self._actions = self.ale.getMinimalActionSet()

        self.action_space = spaces.Discrete(len(self._actions))
        self.observation_space = spaces.Box(0, 255, (frame_stack, SCREEN_SIZE, SCREEN_SIZE),
                                            np.uint8)
        height, width = self.ale.getScreenDims()
        self._raw = np.zeros((2, height, width), np.uint8)  # the last two frames, for max-pool
        self._stack = np.zeros(self.observation_space.shape, np.uint8)
        self._lives = 0
        self._steps = 0  # agent steps since the last real reset (the 27k cap is per game)
        self._continue_game = False  # the last step was a life loss in training
        self._started = False
        if seed is not None:
            self._np_random, _ = gymnasium.utils.seeding.np_random(int(seed))
            self.action_space.seed(int(seed))

    # ---------------------------------------------------------------- frames
    def _grab(self, slot: int) -> None:
        self.ale.getScreenGrayscale(self._raw[slot])

    def _frame(self) -> np.ndarray:
        """Max-pool the last two raw frames and resize to 84x84."""
        pooled = np.maximum(self._raw[0], self._raw[1])
        return cv2.resize(pooled, (SCREEN_SIZE, SCREEN_SIZE), interpolation=cv2.INTER_AREA)

    def _restart_stack(self, frame: np.ndarray) -> np.ndarray:
        """Zero-pad: [0, ..., 0, frame] (dopamine atari_100k_rainbow_agent.py ``reset_all`` /
        ``reset_one``, BBF's agent the same)."""
        self._stack[:] = 0
        self._stack[-1] = frame
        return self._stack.copy()

    def _repeat(self, ale_action) -> tuple[float, bool, bool]:
        """Play ``ale_action`` for ``frame_skip`` frames, stopping early at a game over or a life
        loss (dopamine atari_lib.py ``AtariPreprocessing.step``, terminal_on_life_loss); leaves
        the frames to pool in ``_raw``. Returns (raw reward, game over, life lost)."""
        raw_reward, game_over, life_lost = 0.0, False, False
        last = self.frame_skip - 1
        for t in range(self.frame_skip):
            raw_reward += self.ale.act(ale_action)
            game_over = self.ale.game_over(with_truncation=False)
            lives = self.ale.lives()
            life_lost, self._lives = lives < self._lives, lives
            if game_over or life_lost:  # stop early: the frame now is the last
                self._grab(1)
                if t < last:
                    self._raw[0] = self._raw[1]
                break
            if t >= last - 1:
                self._grab(t - last + 1)  # frame skip-1 -> slot 0, frame skip -> slot 1
        if self.frame_skip == 1:  # nothing to pool with
            self._raw[0] = self._raw[1]
        return raw_reward, game_over, life_lost

    def _reset_game(self) -> None:
        """Restart the ALE; pool(first frame, first frame) = the first frame, as
        ``AtariPreprocessing.reset``'s pool with a zero buffer."""
        self.ale.reset_game()
        self._grab(0)
        self._raw[1] = self._raw[0]
        self._lives = self.ale.lives()

    def _new_game(self, noops: int) -> None:
        """A new game then ``noops`` NOOP agent steps (BBF eval_run_experiment.py
        ``_initialize_episode``: ``env.step(0)``, ``if terminal: env.reset()``)."""
        self._reset_game()
        for _ in range(noops):
            _, game_over, life_lost = self._repeat(self._actions[0])  # NOOP: action 0 of every set
            if game_over or life_lost:
                self._reset_game()
        self._steps = 0

    # ---------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game (no-op start), or continue the game after a training life loss.

        ``options={"new_game": True}`` forces a new game.
        """
        new_game = bool(options and options.get("new_game"))
        if self._continue_game and not new_game:
            self._continue_game = False
            obs = self._restart_stack(self._stack[-1].copy())
            return obs, self._info(game_over=False, continued=True, noops=0)
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self._continue_game = False
        self._started = True
        noops = int(self.np_random.integers(0, self.noop_max)) if self.noop_max else 0
        self._new_game(noops)
        return self._restart_stack(self._frame()), self._info(game_over=False, continued=False,
                                                              noops=noops)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``frame_skip`` frames; see the module docstring for the ends."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._continue_game:
            raise RuntimeError("the episode ended with a life loss: call reset() to continue")
        raw_reward, game_over, life_lost = self._repeat(self._actions[int(action)])
        self._steps += 1
        frame = self._frame()
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = frame
        terminated = game_over or (self.training and life_lost)
        truncated = self._steps >= self.max_episode_steps and not game_over
        self._continue_game = self.training and life_lost and not game_over and not truncated
        if life_lost and not self.training and not game_over:
            obs = self._restart_stack(frame)  # evaluation: the episode goes on, the stack restarts
        else:
            obs = self._stack.copy()
        reward = float(np.clip(raw_reward, -1.0, 1.0)) if self.training else raw_reward
        info = self._info(game_over=game_over or truncated)  # the next reset starts a new game
        info["raw_reward"], info["life_lost"] = raw_reward, life_lost
        return obs, reward, terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """The emulator (``cloneState(include_rng=True)``), the pooling and stack buffers, the
        counters and the no-op RNG (envs/snapshot.py)."""
        rng = self._np_random.bit_generator.state if self._np_random is not None else None
        return {"ale": self.ale.cloneState(include_rng=True), "raw": self._raw.copy(),
                "stack": self._stack.copy(), "lives": self._lives, "steps": self._steps,
                "continue_game": self._continue_game, "started": self._started, "rng": rng}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``'s state."""
        self.ale.restoreState(state["ale"])
        self._raw[:], self._stack[:] = state["raw"], state["stack"]
        self._lives, self._steps = state["lives"], state["steps"]
        self._continue_game, self._started = state["continue_game"], state["started"]
        if state["rng"] is not None:
            if self._np_random is None:
                self._np_random, _ = gymnasium.utils.seeding.np_random(0)
            self._np_random.bit_generator.state = state["rng"]

    def _info(self, **extra: Any) -> dict[str, Any]:
        return {"lives": self._lives, "episode_frame_number": self.ale.getEpisodeFrameNumber(),
                **extra}

    def render(self) -> np.ndarray:
        """The current screen, RGB uint8 (210, 160, 3)."""
        return self.ale.getScreenRGB()

    def get_action_meanings(self) -> list[str]:
        """Names of the minimal action set, e.g. ['NOOP', 'FIRE', 'RIGHT', ...]."""
        return [a.name for a in self._actions]


def make_atari(game: str, seed: int | None = None, training: bool = True, frame_stack: int = 4,
               **kwargs: Any) -> gymnasium.Env:
    """The Atari-100k env of ``game`` (any case, e.g. 'Pong', 'ms_pacman'); ``training`` False
    drops life loss as terminal (the stack still restarts) and reward clipping. ``kwargs``
    (noop_max, max_episode_steps, frame_skip) are for tests; the defaults are the protocol."""
    return AtariEnv100k(game, seed=seed, training=training, frame_stack=frame_stack, **kwargs)
