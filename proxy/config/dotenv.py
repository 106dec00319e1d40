"""The ``.env`` file beside the config: ``NAME=value`` lines that ``${NAME}`` in the YAML may use.

``efflux-gateway init`` writes one with fresh secrets; ``load_settings`` reads it from the config file's
folder, and a variable set in the process environment wins over the file (so a deployment can override
any of it). Lines: ``NAME=value``, ``export NAME=value``, ``# comments`` and blank lines; a value may be
quoted with ``'...'`` or ``"..."`` (no escapes, no interpolation). Anything else is an error naming the
line, never guessed at.
"""

from __future__ import annotations

import re
from pathlib import Path

from proxy.config.errors import ConfigError

ENV_FILE = ".env"
MAX_BYTES = 1024 * 1024  # a .env file is a few lines; a larger one is not what we think it is
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def parse_env_file(text: str, where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{where} line {number}: expected NAME=value")
        name, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value ends at a comment
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def env_beside(config: Path) -> dict[str, str]:
    """The variables of the ``.env`` file in ``config``'s folder; none when there is no such file."""
    path = config.parent / ENV_FILE
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_env_file(text, str(path))
