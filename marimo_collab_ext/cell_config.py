"""marimo's cell config: the keys a cell may carry and the type of each (pure, no marimo import).

Mirrors marimo's `CellConfig` (marimo/_ast/cell.py); tests/test_hardening_limits.py checks that
the installed marimo has no key this table lacks. Anything else is refused from clients and
dropped from files, so a config stays a few bytes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONFIG_KEYS", "clean_config", "config_problem"]

MAX_COLUMN = 1000  # marimo's column layout index; no notebook has a thousand columns


def _column(value: object) -> bool:
    return value is None or (type(value) is int and 0 <= value <= MAX_COLUMN)


def _bool(value: object) -> bool:
    return type(value) is bool


# key -> (check, what the check wants, in words)
CONFIG_KEYS = {
    "column": (_column, f"an integer from 0 to {MAX_COLUMN}, or null"),
    "disabled": (_bool, "a boolean"),
    "hide_code": (_bool, "a boolean"),
    "expand_output": (_bool, "a boolean"),
}


def config_problem(key: object, value: object) -> str | None:
    """Why `key: value` is not a valid cell config entry, or None when it is."""
    known = CONFIG_KEYS.get(key) if isinstance(key, str) else None
    if known is None:
        return f"unknown cell config key {key!r} (marimo knows {', '.join(CONFIG_KEYS)})"
    check, wanted = known
    if not check(value):
        return f"cell config {key!r} must be {wanted}"
    return None


def clean_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The valid entries of a config read from a file or an old journal, and why others went."""
    kept, dropped = {}, []
    for key, value in config.items():
        problem = config_problem(key, value)
        if problem is None:
            kept[key] = value
        else:
            dropped.append(f"{problem}; {key}={value!r:.40} dropped")
    return kept, dropped
