"""Quantities in the field's notation: ``7B`` parameters, ``1.4T`` tokens, ``1e21`` FLOPs, ``80GiB``, ``$2M``.

Parsing is strict: a number, an optional SI multiplier (K, M, B/G, T, P, E) and, optionally, a unit that
matches the kind of quantity asked for (``1e21 flops`` is fine for compute, ``1e21 parsecs`` is not).
Formatting gives the same notation back, so ``format_count(parse_count("7B")) == "7B"``.
"""

from __future__ import annotations

import math
import re

from scalinglab.errors import UnitError

# Counts use "B" for billion (the field's convention for parameters/tokens); "G" is accepted as a synonym.
_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL_BYTES = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}

# The unit words each kind of quantity accepts (lower-case).
UNIT_WORDS = {
    "count": {"", "params", "parameters", "param", "tokens", "token", "tok", "steps"},
    "flops": {"", "flop", "flops", "flop/s"},
    "tokens": {"", "tokens", "token", "tok"},
    "params": {"", "params", "parameters", "param"},
    "usd": {"", "usd", "$", "dollars", "dollar"},
    "hours": {"", "h", "hr", "hrs", "hours", "hour", "gpu-hours", "gpuh"},
}

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_COUNT_RE = re.compile(rf"^\$?\s*({_NUM})\s*([kKMBGTPE]?)\s*([A-Za-z$/\-]*)$")
_BYTES_RE = re.compile(rf"^({_NUM})\s*([KkMGTP]i?|)\s*([Bb]|bytes?|)$")


def _clean(text: str | float | int) -> str:
    if isinstance(text, bool):
        raise UnitError(f"expected a quantity, got {text!r}")
    return str(text).strip().replace("_", "").replace(",", "")


def _positive_finite(value: float, text: str, what: str) -> float:
    if not math.isfinite(value):
        raise UnitError(f"{what} {text!r} is not finite; give a number like 1e21 or 7B")
    return value


def parse_quantity(text: str | float | int, kind: str = "count") -> float:
    """Parse ``"7B"``, ``"1.4T tokens"``, ``"1e21 FLOPs"``, ``"$2M"`` into a float.

    Parameters
    ----------
    text : str or number
        The quantity. Numbers pass through unchanged.
    kind : {"count", "flops", "tokens", "params", "usd", "hours"}
        Which unit words are accepted after the number.
    """
    if kind not in UNIT_WORDS:
        raise UnitError(f"unknown quantity kind {kind!r}; use one of {sorted(UNIT_WORDS)}")
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _positive_finite(float(text), str(text), kind)
    s = _clean(text)
    m = _COUNT_RE.match(s)
    if not m:
        raise UnitError(f"cannot read {text!r} as a {kind} quantity; write e.g. 7B, 1.4T, 1e21 or 2.5e6")
    number, mult, unit = m.groups()
    if unit.lower() not in UNIT_WORDS[kind]:
        allowed = ", ".join(sorted(u for u in UNIT_WORDS[kind] if u)) or "none"
        raise UnitError(f"unit {unit!r} in {text!r} is not a {kind} unit (allowed: {allowed})")
    return _positive_finite(float(number) * _SI[mult], str(text), kind)


def parse_count(text: str | float | int) -> float:
    """Parse a parameter/token/step count: ``"7B"`` → 7e9, ``"20M"`` → 2e7, ``"1e21"`` → 1e21."""
    return parse_quantity(text, "count")


def parse_flops(text: str | float | int) -> float:
    """Parse a compute budget in FLOPs: ``"1e21"``, ``"1e21 flops"``, ``"3.5E"`` (3.5e18)."""
    return parse_quantity(text, "flops")


def parse_usd(text: str | float | int) -> float:
    """Parse an amount of money in US dollars: ``"$2M"``, ``"2e6"``, ``"500k usd"``."""
    return parse_quantity(text, "usd")


def parse_bytes(text: str | float | int) -> float:
    """Parse a memory size: ``"80GiB"`` (binary), ``"80GB"``/``"80G"`` (decimal, 1 GB = 1e9 bytes),
    ``"1024"``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _positive_finite(float(text), str(text), "bytes")
    s = _clean(text)
    m = _BYTES_RE.match(s)
    if not m:
        raise UnitError(f"cannot read {text!r} as a memory size; write e.g. 80GiB, 80GB or 1.5e9")
    number, mult, _ = m.groups()
    scale = _BINARY[mult] if mult.endswith("i") else _DECIMAL_BYTES[mult]
    return _positive_finite(float(number) * scale, str(text), "bytes")


def parse_list(text: str, parse=parse_count) -> list[float]:
    """Parse a comma-separated list of quantities (``"1e11,3e11,1e12"``); empty items are an error."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise UnitError(f"cannot read {text!r} as a list; write comma-separated values like 1e11,3e11,1e12")
    return [parse(t) for t in items]


def _trim(x: float, digits: int) -> str:
    s = f"{x:.{digits}g}"
    return s


def format_count(x: float, digits: int = 3) -> str:
    """Format a count in the field's notation: 7e9 → ``"7B"``, 1.4e12 → ``"1.4T"``, 512 → ``"512"``."""
    if not math.isfinite(x):
        return str(x)
    ax = abs(x)
    for suffix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if ax >= scale:
            if ax >= 1000 * scale and suffix == "E":
                return f"{x:.{digits}g}"
            return _trim(x / scale, digits) + suffix
    return _trim(x, digits)


def format_flops(x: float, digits: int = 3) -> str:
    """Format FLOPs in scientific notation, the way budgets are written: 5.76e23 → ``"5.76e+23"``."""
    return f"{x:.{digits}g}"


def format_bytes(x: float, digits: int = 3, binary: bool = False) -> str:
    """Format bytes: decimal (``"14GB"``) by default, binary (``"13GiB"``) with ``binary=True``."""
    units = (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)) if binary else (
        ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3))
    for suffix, scale in units:
        if abs(x) >= scale:
            return _trim(x / scale, digits) + suffix
    return _trim(x, digits) + "B"


def format_usd(x: float, digits: int = 3) -> str:
    """Format dollars: 2.1e6 → ``"$2.1M"``."""
    return "$" + format_count(x, digits)
