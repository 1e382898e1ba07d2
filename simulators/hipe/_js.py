"""JavaScript value semantics the reference server applies to query values.

HIPE's query language is nestjsx/crud, a Node library: what a value *means* (is ``"1.50"`` a
number? is ``"2024-01-01"`` a date? what text does ``%${value}%`` make of an array?) is
decided by JavaScript's ``JSON.parse``, ``String()``, ``Number.prototype.toLocaleString``
and ``Date``, and by the ``pg`` driver that sends parameters to Postgres. This module
reproduces those few functions. The server's time zone is taken to be UTC.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_MAX_SAFE_INTEGER = 2**53

# @nestjsx/util isDateString, ASCII digits as in JavaScript.
_DATE_STRING = re.compile(
    r"^\d{4}-[01]\d-[0-3]\d(?:T[0-2]\d:[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:Z|[-+][0-2]\d(?::?[0-5]\d)?)?)?$",
    re.ASCII,
)
_DATE_PARTS = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
    r"(Z|[-+]\d\d(?::?\d\d)?)?)?$",
    re.ASCII,
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JsDate:
    """A JavaScript ``Date`` (milliseconds since the epoch, or an Invalid Date)."""

    __slots__ = ("ms",)

    def __init__(self, ms: int | None) -> None:
        self.ms = ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsDate) and other.ms == self.ms

    def __hash__(self) -> int:
        return hash(("JsDate", self.ms))

    def __repr__(self) -> str:
        return f"JsDate({self.iso()!r})"

    @classmethod
    def parse(cls, text: str) -> JsDate:
        """``new Date(text)`` for the ISO forms ``isDateString`` lets through (V8's rules)."""
        match = _DATE_PARTS.match(text)
        if match is None:
            return cls(None)
        year, month, day = int(match[1]), int(match[2]), int(match[3])
        hour = int(match[4] or 0)
        minute = int(match[5] or 0)
        second = int(match[6] or 0)
        millis = int((match[7] or "0")[:3].ljust(3, "0"))
        zone = match[8]
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23):
            return cls(None)
        offset_min = 0
        if zone and zone != "Z":
            if len(zone) == 3:  # "+01": V8 wants minutes too
                return cls(None)
            digits = zone[1:].replace(":", "")
            offset_min = int(digits[:2]) * 60 + int(digits[2:])
            if zone[0] == "-":
                offset_min = -offset_min
        # V8 lets a day overflow into the next month (2000-02-30 is 1 March).
        moment = datetime(year, month, 1, hour, minute, second, tzinfo=UTC) + timedelta(
            days=day - 1, milliseconds=millis, minutes=-offset_min
        )
        return cls(round((moment - _EPOCH).total_seconds() * 1000))

    def as_datetime(self) -> datetime | None:
        """The instant, in UTC; None for an Invalid Date."""
        if self.ms is None:
            return None
        return _EPOCH + timedelta(milliseconds=self.ms)

    def iso(self) -> str | None:
        """``toISOString()`` (what ``JSON.stringify`` writes); None for an Invalid Date."""
        moment = self.as_datetime()
        if moment is None:
            return None
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def to_string(self) -> str:
        """``String(date)`` on a server in UTC."""
        moment = self.as_datetime()
        if moment is None:
            return "Invalid Date"
        return (
            f"{_WEEKDAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} "
            f"{moment.year:04d} {moment:%H:%M:%S} GMT+0000 (Coordinated Universal Time)"
        )

    def pg(self) -> str | None:
        """How the ``pg`` driver sends a Date parameter (local time with offset, UTC here)."""
        moment = self.as_datetime()
        if moment is None:
            return None
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def is_number(value: Any) -> bool:
    """@nestjsx/util ``isNumber``: a finite JavaScript number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number_to_string(value: float) -> str:
    """``String(n)`` for a JavaScript number (ECMAScript Number::toString)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    exponent = int(exponent)  # finite here: NaN and infinities were handled above
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def to_string(value: Any) -> str:
    """``String(value)``, as a template literal such as ``%${value}%`` applies it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_to_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, JsDate):
        return value.to_string()
    if isinstance(value, list):
        return ",".join("" if item is None else to_string(item) for item in value)
    return "[object Object]"


def _locale_string(value: float) -> str:
    """``n.toLocaleString('fullwide', {useGrouping: false})``: en-US, at most 3 decimals."""
    if isinstance(value, int):
        return str(value)
    rounded = Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = format(rounded, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _js_int(text: str) -> int | float:
    number = int(text)
    return number if abs(number) <= _MAX_SAFE_INTEGER else float(text)


def json_parse(text: str) -> Any:
    """``JSON.parse(text)``: raises ValueError where JavaScript throws a SyntaxError."""
    return json.loads(text, parse_constant=_reject_constant, parse_int=_js_int)


def coerce_to_string(value: Any) -> str:
    """What ``JSON.parse`` sees when handed a non-string (it calls ``String()`` first)."""
    return value if isinstance(value, str) else to_string(value)


def parse_value(value: Any) -> Any:
    """nestjsx ``RequestQueryParser.parseValue``: JSON scalars, safe numbers, ISO dates."""
    try:
        parsed = json_parse(coerce_to_string(value))
    except ValueError:
        if isinstance(value, str) and value and _DATE_STRING.match(value):
            return JsDate.parse(value)
        return value
    if isinstance(parsed, dict | list):
        return value
    if is_number(parsed) and _locale_string(parsed) != value:
        # "JS cannot handle big numbers. Leave it as a string to prevent data loss"
        return value
    if isinstance(parsed, float) and math.isinf(parsed):
        return value
    return parsed


def is_value(value: Any) -> bool:
    """@nestjsx/util ``isValue``: a non-empty string, a finite number, a boolean or a Date."""
    return (
        (isinstance(value, str) and value != "")
        or is_number(value)
        or isinstance(value, bool | JsDate)
    )


def has_value(value: Any) -> bool:
    """@nestjsx/util ``hasValue``."""
    if isinstance(value, list) and value:
        return all(is_value(item) for item in value)
    return is_value(value)


def object_keys(value: Any) -> list[str]:
    """``Object.keys``: integer-like keys first in ascending order, then insertion order."""
    if isinstance(value, list):
        return [str(i) for i in range(len(value))]
    if not isinstance(value, dict):
        return []
    keys = list(value)
    indexes = sorted(
        (k for k in keys if k.isascii() and k.isdigit() and (k == "0" or k[0] != "0")),
        key=int,
    )
    indexes = [k for k in indexes if int(k) < 2**32 - 1]
    if not indexes:
        return keys
    index_set = set(indexes)
    return indexes + [k for k in keys if k not in index_set]


def get_property(value: Any, key: str) -> Any:
    """``value[key]`` for a parsed JSON value (arrays answer to index keys only)."""
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list) and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else None
    return None


def is_object(value: Any) -> bool:
    """@nestjsx/util ``isObject``: objects and arrays, not null."""
    return isinstance(value, dict | list)


def to_json(value: Any) -> Any:
    """A parsed value as ``JSON.stringify`` would write it (Dates as ISO strings)."""
    if isinstance(value, JsDate):
        return value.iso()
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
