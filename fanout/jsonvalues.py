"""Only RFC 8259 JSON: no NaN, no Infinity, no number too large for a double.

pydantic's JSON parser accepts `NaN` and `Infinity` and reads `1e999` as infinity; none of them
is JSON (RFC 8259 section 6), and echoed back they make responses and webhooks no JSON parser
can read. Values typed as floats refuse them by field (`allow_inf_nan=False`); free-form values
(items, params) are searched here, by path. The search only runs when the raw bytes hold
something that could have produced such a number, so an ordinary body costs a byte scan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

# The tokens pydantic reads as non-finite, and the numbers that can overflow a double (an
# exponent of three digits or more, or a run of 300 digits).
_MAYBE = re.compile(rb"NaN|Infinity|[eE][+-]?0*[1-9]\d{2}|\d{300}")
MESSAGE = "NaN, Infinity and numbers beyond a double's range are not JSON (RFC 8259)"


def suspicious(raw: bytes | memoryview) -> bool:
    return _MAYBE.search(raw) is not None


def non_finite(value: Any, path: str, limit: int = 50) -> list[str]:
    """The paths (`items[3].x`) of up to `limit` non-finite floats in a parsed JSON value."""
    found: list[str] = []
    for where in _walk(value, path):
        found.append(where)
        if len(found) >= limit:
            break
    return found


def _walk(value: Any, path: str) -> Iterator[str]:
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            yield where
        elif isinstance(node, dict):
            stack.extend((v, f"{where}.{k}") for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))
