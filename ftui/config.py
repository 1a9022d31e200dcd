"""The TUI's typed configuration: a TOML file in the XDG config dir (``$FTUI_CONFIG_FILE`` overrides the path).

    # ~/.config/ftui/config.toml
    default_model = "gpt-4o-mini-2024-07-18"
    theme = "textual-dark"
    histogram_log = false
    cursor_blink = true
    backend = "local"   # or "openai", "off", or a profile name (see ftui/service/profiles.py); unset: OpenAI when
                        # OPENAI_API_KEY is set, else the local backend

    [profiles.azure]    # kind = azure | compatible | openai | local; keys come from api_key_env, never this file
    kind = "azure"
    endpoint = "https://NAME.openai.azure.com"
    api_version = "2025-04-01-preview"

    [keymap]            # binding id = keys (see F1 in the app for the ids)
    "ftui.reanalyse" = "ctrl+r"

Pure Python (no Textual import), so the CLI and tests can read it cheaply. A broken file never stops the app: the
error (with the file and line tomllib gives) is reported and the defaults are used.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import FtuiError

CONFIG_ENV = "FTUI_CONFIG_FILE"


def config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ftui" / "config.toml"


@dataclass
class Config:
    default_model: str | None = None  # None: ftui.core.catalog.DEFAULT_MODEL
    theme: str = "textual-dark"
    histogram_log: bool = False
    cursor_blink: bool = True
    backend: str | None = None  # a profile name, "openai", "local" or "off"; None: from the environment
    chat_save_path: str | None = None  # where "save exchange" appends training examples
    upload_threshold_mb: int = 512  # files above it go through the Uploads API in parts
    upload_part_mb: int = 64  # the size of those parts (the Uploads API takes at most 64 MB a part)
    keymap: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)


class ConfigError(FtuiError, ValueError):
    pass


def parse(text: str, where: str = "config") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: {e}") from None
    known = {f.name: f for f in fields(Config)}
    cfg = Config()
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(known)})")
        default = getattr(cfg, key)
        if key == "keymap":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{where}: [keymap] maps binding ids to key strings, e.g. \"ftui.reanalyse\" = "
                                  "\"ctrl+r\"")
        elif key in ("default_model", "backend", "chat_save_path"):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {key} must be a string")
        elif key == "profiles":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{where}: profiles are tables: [profiles.NAME] with kind, base_url, …")
        elif type(value) is not type(default):
            raise ConfigError(f"{where}: {key} must be {type(default).__name__}, got {type(value).__name__}")
        setattr(cfg, key, value)
    return cfg


def load(path: Path | None = None) -> tuple[Config, str | None]:
    """-> (config, error message or None). A missing file is not an error."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(), None
    except (OSError, UnicodeDecodeError) as e:
        return Config(), f"{path}: cannot read ({e}); using defaults"
    try:
        return parse(text, str(path)), None
    except ConfigError as e:
        return Config(), f"{e}; using defaults"


def save(cfg: Config, path: Path | None = None, only: tuple[str, ...] | None = None) -> Path:
    """Write settings into the config file without destroying it: the file is edited with tomlkit, so the user's
    comments, key order and keys ftui does not know stay as they were; only the settings named in ``only`` (default:
    every setting that is set) change. A file that does not parse is never overwritten: ConfigError says why. The
    file is written atomically and 0600 (profiles name the variables that hold keys)."""
    import tomlkit

    from ftui.core.files import atomic_write

    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# ftui settings (see docs/app.md, Configuration)\n"
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({e}); not saved, so nothing of it is lost") from None
    try:
        tomllib.loads(text)
        doc = tomlkit.parse(text)
    except (tomllib.TOMLDecodeError, tomlkit.exceptions.ParseError) as e:
        raise ConfigError(f"{path} is not valid TOML ({e}): fix it first; it was not overwritten") from None
    for f in fields(Config):
        if only is not None and f.name not in only:
            continue
        value = getattr(cfg, f.name)
        if value is None or (isinstance(value, dict) and not value):
            continue  # unset here: whatever the file says stays
        if isinstance(value, dict):
            table = doc.get(f.name)
            if table is None:
                table = tomlkit.table(is_super_table=f.name == "profiles")
                doc[f.name] = table
            for k, v in value.items():
                if table.get(k) != v:
                    table[k] = v
        elif doc.get(f.name) != value:
            doc[f.name] = value
    atomic_write(path, tomlkit.dumps(doc).encode("utf-8"), mode=0o600)
    return path
