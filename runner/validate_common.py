"""What the config validators share: the error collector, value predicates, brief quoting of
values and "did you mean" suggestions."""
from __future__ import annotations

import difflib
import math

QUOTE_LIMIT = 80  # characters of a quoted value in a message; longer ones are cut


def brief(value, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)`, cut to `limit` characters (a message never dumps a whole tensor)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " ...>"


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v) -> bool:
    return is_num(v) and math.isfinite(v)


def int_ge(low: int):
    return lambda v: is_int(v) and v >= low


def num_in(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """A predicate: a finite number in the interval (each end closed unless said open)."""
    def ok(v) -> bool:
        return (finite(v) and (v > low if low_open else v >= low)
                and (v < high if high_open else v <= high))
    return ok


def is_bool(v) -> bool:
    return isinstance(v, bool)


def suggest(name: str, allowed) -> str | None:
    """The allowed name closest to a misspelt `name`, if one is close."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.75)
    return close[0] if close else None


class Errors:
    """Invalid keys with their messages, one message per key (the first found), in order.
    `checked` holds the keys a specific rule looked at, so generic type checks skip them."""

    def __init__(self):
        self.messages: dict[str, str] = {}
        self.checked: set[str] = set()

    def add(self, key: str, message: str) -> None:
        self.messages.setdefault(key, message)

    def bad(self, key: str, value, allowed: str) -> None:
        self.add(key, f"{key} = {brief(value)}: must be {allowed}")

    def __contains__(self, key: str) -> bool:
        return key in self.messages

    def __bool__(self) -> bool:
        return bool(self.messages)

    def text(self) -> str:
        return "invalid config:\n  " + "\n  ".join(self.messages.values())


def lookup(cfg: dict, dotted: str):
    """(True, value) of a dotted key of nested dicts, else (False, None)."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check(e: Errors, cfg: dict, key: str, ok, allowed: str) -> None:
    """Report `key` (dotted) when it is missing or `ok(value)` is false."""
    e.checked.add(key)
    if key in e:
        return
    found, value = lookup(cfg, key)
    if not found:
        e.add(key, f"{key}: missing (expected {allowed})")
    elif not passes(ok, value):
        e.bad(key, value, allowed)


def passes(ok, value) -> bool:
    """`ok(value)`, false where the test cannot even be applied (`[1] in {...}`)."""
    try:
        return bool(ok(value))
    except (TypeError, ValueError):
        return False
