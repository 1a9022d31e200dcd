"""What the commands share: exit codes, the config's default model, the terminal's style, progress lines."""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import FtuiError

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2


def config_model() -> str | None:
    """The config file's default_model (what `--model` defaults to); a broken config is reported, not fatal."""
    from ..config import load

    config, error = load()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    return config.default_model


def colour() -> bool:
    """Colour on stdout: a terminal, and $NO_COLOR unset."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def clear_line() -> None:
    """Erase the progress line on stderr (a terminal only)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


class NoBackend(FtuiError):
    """No backend to ask: a bad profile, the backend switched off, or the local one would not start."""


async def open_service():
    """The configured backend's Service (the local backend started or reused when the profile says local) and the
    LocalBackend it started, if any (release it when done). NoBackend says why there is none."""
    import asyncio

    from ..config import load as load_config
    from ..service import profiles
    from ..service.client import Service

    config, error = load_config()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    try:
        profile = profiles.resolve(config.backend, config.profiles)
    except profiles.ProfileError as exc:
        raise NoBackend(str(exc)) from None
    if profile.kind == "off":
        raise NoBackend("the config says backend = \"off\": no backend to ask")
    local = None
    base_url = None
    if profile.kind == "local":
        from ..service.local import LocalBackend, LocalBackendError

        local = LocalBackend(profile.data_dir)
        try:
            base_url = await asyncio.to_thread(local.start)
        except LocalBackendError as exc:
            raise NoBackend(f"the local backend did not start: {exc}") from None
        profile.base_url = base_url
        profile.api_key = local.api_key
    return Service(profile, base_url=base_url), local


@contextlib.asynccontextmanager
async def backend():
    """``async with backend() as svc``: the configured backend's Service; a failure it explains (ServiceError) is
    NoBackend; the service is closed and a local backend this command started is released afterwards."""
    from ..service.errors import ServiceError

    svc, local = await open_service()
    try:
        yield svc
    except ServiceError as exc:
        raise NoBackend(str(exc)) from None
    finally:
        await svc.close()
        if local is not None and local.owned:
            local.release()
