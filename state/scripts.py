"""The Lua scripts erpsync runs in Redis, read once from ``state/lua/*.lua`` (package data).

A script that starts with a shared prelude (``many.lua``: a command over many arguments in
chunks; ``limits_refilled.lua``: a token bucket refilled to now) is the prelude's text
followed by its own, as :func:`lua` joins them. Register the result with redis-py's
``register_script`` (EVALSHA, loaded once per server).
"""

from __future__ import annotations

import functools
from importlib.resources import files


@functools.cache
def source(name: str) -> str:
    """The text of ``state/lua/<name>.lua``."""
    return files("state").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def lua(*names: str) -> str:
    """The texts of the named scripts, joined in order (preludes first)."""
    return "".join(source(name) for name in names)
