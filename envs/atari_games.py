"""The 26 Atari-100k games with their random and human reference scores.

Atari-100k (Kaiser et al. 2020, "Model-Based Reinforcement Learning for Atari") evaluates on 26
games of the ALE (Bellemare et al. 2013). Scores are reported human-normalised,
``(score - random) / (human - random)`` (so a random agent scores 0 and the human tester 1), with
the random and human scores of the DQN/Rainbow literature (Mnih et al. 2015; van Hasselt et al.
2016; Hessel et al. 2018), aggregated with IQM, median, mean and optimality gap (Agarwal et al.
2021).
"""

from __future__ import annotations

import difflib
import re
from typing import NamedTuple

_MAX_MATCHES = 5


class GameScores(NamedTuple):
    """Reference scores of one game: a uniformly random agent and the human tester."""

    random: float
    human: float


# Canonical CamelCase names (as in the Atari-100k papers) -> (random, human).
SCORES: dict[str, GameScores] = {
    "Alien": GameScores(227.8, 7127.7),
    "Amidar": GameScores(5.8, 1719.5),
    "Assault": GameScores(222.4, 742.0),
    "Asterix": GameScores(210.0, 8503.3),
    "BankHeist": GameScores(14.2, 753.1),
    "BattleZone": GameScores(2360.0, 37187.5),
    "Boxing": GameScores(0.1, 12.1),
    "Breakout": GameScores(1.7, 30.5),
    "ChopperCommand": GameScores(811.0, 7387.8),
    "CrazyClimber": GameScores(10780.5, 35829.4),
    "DemonAttack": GameScores(152.1, 1971.0),
    "Freeway": GameScores(0.0, 29.6),
    "Frostbite": GameScores(65.2, 4334.7),
    "Gopher": GameScores(257.6, 2412.5),
    "Hero": GameScores(1027.0, 30826.4),
    "Jamesbond": GameScores(29.0, 302.8),
    "Kangaroo": GameScores(52.0, 3035.0),
    "Krull": GameScores(1598.0, 2665.5),
    "KungFuMaster": GameScores(258.5, 22736.3),
    "MsPacman": GameScores(307.3, 6951.6),
    "Pong": GameScores(-20.7, 14.6),
    "PrivateEye": GameScores(24.9, 69571.3),
    "Qbert": GameScores(163.9, 13455.0),
    "RoadRunner": GameScores(11.5, 7845.0),
    "Seaquest": GameScores(68.4, 42054.7),
    "UpNDown": GameScores(533.4, 11693.2),
}
GAMES: tuple[str, ...] = tuple(SCORES)


def _key(name: str) -> str:
    """Case- and separator-insensitive key: 'ms_pacman', 'MsPacman', 'ms-pacman' -> 'mspacman'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {_key(game): game for game in GAMES}


def rom_name(game: str) -> str:
    """The ale-py ROM id (snake_case) of a canonical game name: 'MsPacman' -> 'ms_pacman'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def check_game(name: str, env_id: str | None = None) -> str:
    """Return the canonical name of an Atari-100k game, accepting any case and '_' / '-'.

    Raises envs.registry.EnvIdError naming the valid games (and close matches) otherwise.
    """
    from envs.registry import EnvIdError  # imported here: registry imports this module lazily

    if isinstance(name, str) and _key(name) in _BY_KEY:
        return _BY_KEY[_key(name)]
    where = f" in {env_id!r}" if env_id else ""
    close = difflib.get_close_matches(_key(str(name)), list(_BY_KEY), n=_MAX_MATCHES, cutoff=0.6)
    hint = f"close matches: {', '.join(_BY_KEY[k] for k in close)}; " if close else ""
    raise EnvIdError(
        f"unknown Atari-100k game {name!r}{where}; {hint}valid games: {', '.join(GAMES)}"
    )


def human_normalized(game: str, score: float) -> float:
    """``(score - random) / (human - random)``: 0 for the random agent, 1 for the human tester."""
    ref = SCORES[check_game(game)]
    return (float(score) - ref.random) / (ref.human - ref.random)
