"""Backend profiles: where the API is and how to authenticate. Pure Python; keys are never rendered.

Resolution (``resolve``): the config's ``backend`` names a profile, ``"openai"``, ``"local"`` or ``"off"``; without
it, ``OPENAI_API_KEY`` in the environment selects OpenAI (honouring ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``,
``OPENAI_PROJECT_ID``), and otherwise the local backend (``ftui serve``) is started. Profiles in the config file::

    backend = "azure"
    [profiles.azure]
    kind = "azure"                      # azure | compatible | openai | local
    endpoint = "https://NAME.openai.azure.com"
    api_version = "2025-04-01-preview"
    api_key_env = "AZURE_OPENAI_API_KEY"  # the key itself never goes in the file
    deployments = { "ft:gpt-4.1-mini-2025-04-14:org::abc" = "my-deployment" }  # chat model -> deployment

    [profiles.vllm]
    kind = "compatible"
    base_url = "http://gpu-box:8000/v1"
    api_key_env = "VLLM_API_KEY"        # optional
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..errors import FtuiError

KINDS = ("openai", "azure", "compatible", "local", "off")
OPENAI_URL = "https://api.openai.com/v1"
# default seconds between polls of live jobs: the local backend is next door; OpenAI asks for 5–30 s
POLL = {"local": 1.0, "compatible": 5.0, "openai": 15.0, "azure": 15.0, "off": 15.0}


class ProfileError(FtuiError, ValueError):
    pass


@dataclass
class Profile:
    name: str
    kind: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    organization: str | None = None
    project: str | None = None
    api_version: str | None = None
    deployments: dict[str, str] = field(default_factory=dict)
    poll_interval: float | None = None
    data_dir: str | None = None  # local: where `ftui serve` keeps its state (default: XDG data dir)

    @property
    def interval(self) -> float:
        return self.poll_interval or POLL.get(self.kind, 5.0)

    @property
    def is_openai(self) -> bool:
        return self.kind == "openai" and (self.base_url or OPENAI_URL).startswith(OPENAI_URL)

    def host(self) -> str:
        """host[:port] only: a base URL may carry ``user:pass@``, which is never shown."""
        url = urlparse(self.base_url or (OPENAI_URL if self.kind == "openai" else ""))
        try:
            host, port = url.hostname, url.port
        except ValueError:  # a port that is not a number
            host, port = url.hostname, None
        if not host:
            return "—"
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if port else host

    def label(self) -> str:
        """What the header shows: kind and host, never the key."""
        names = {"openai": "OpenAI", "azure": "Azure OpenAI", "compatible": self.name, "local": "local",
                 "off": "no backend"}
        if self.kind == "off":
            return names["off"]
        return f"{names[self.kind]} · {self.host()}" if self.base_url or self.kind == "openai" else names[self.kind]

    def __str__(self) -> str:  # f-strings and logs get the label, not the fields
        return self.label()


def _from_env(env) -> Profile:
    return Profile("openai", "openai", base_url=env.get("OPENAI_BASE_URL") or None,
                   api_key=env.get("OPENAI_API_KEY"), api_key_env="OPENAI_API_KEY",
                   organization=env.get("OPENAI_ORG_ID") or None, project=env.get("OPENAI_PROJECT_ID") or None)


def from_config(name: str, d: dict, env=os.environ) -> Profile:
    if not isinstance(d, dict):
        raise ProfileError(f"[profiles.{name}] must be a table")
    kind = d.get("kind", "compatible")
    if kind not in KINDS:
        raise ProfileError(f"[profiles.{name}] kind must be one of {', '.join(KINDS)}, not {kind!r}")
    known = {"kind", "base_url", "endpoint", "api_key_env", "organization", "project", "api_version", "deployments",
             "poll_interval", "data_dir"}
    unknown = set(d) - known
    if "api_key" in unknown:
        raise ProfileError(f"[profiles.{name}] must not hold the key itself: name the environment variable that "
                           "does with api_key_env")
    if unknown:
        raise ProfileError(f"[profiles.{name}] unknown setting(s) {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(sorted(known))})")
    base_url = d.get("base_url")
    if kind == "azure":
        endpoint = d.get("endpoint") or env.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ProfileError(f"[profiles.{name}] an azure profile needs endpoint (or $AZURE_OPENAI_ENDPOINT)")
        base_url = endpoint.rstrip("/")
        if not d.get("api_version") and not env.get("OPENAI_API_VERSION"):
            raise ProfileError(f"[profiles.{name}] an azure profile needs api_version")
    if kind == "compatible" and not base_url:
        raise ProfileError(f"[profiles.{name}] a compatible profile needs base_url (e.g. http://host:8000/v1)")
    key_env = d.get("api_key_env") or {"azure": "AZURE_OPENAI_API_KEY", "openai": "OPENAI_API_KEY"}.get(kind)
    deployments = d.get("deployments") or {}
    if not isinstance(deployments, dict) or not all(isinstance(v, str) for v in deployments.values()):
        raise ProfileError(f"[profiles.{name}] deployments maps model ids to deployment names")
    interval = d.get("poll_interval")
    if interval is not None and (not isinstance(interval, (int, float)) or interval <= 0):
        raise ProfileError(f"[profiles.{name}] poll_interval must be a positive number of seconds")
    return Profile(name, kind, base_url=base_url, api_key=env.get(key_env) if key_env else None,
                   api_key_env=key_env, organization=d.get("organization"), project=d.get("project"),
                   api_version=d.get("api_version") or env.get("OPENAI_API_VERSION"), deployments=deployments,
                   poll_interval=interval, data_dir=d.get("data_dir"))


def resolve(backend: str | None, profiles: dict | None = None, env=os.environ) -> Profile:
    """The active profile. Raises ProfileError (with a readable message) for a bad or unknown profile."""
    profiles = profiles or {}
    if backend and backend in profiles:
        return from_config(backend, profiles[backend], env)
    if backend in (None, ""):
        return _from_env(env) if env.get("OPENAI_API_KEY") else Profile("local", "local")
    if backend == "openai":
        p = _from_env(env)
        if not p.api_key:
            raise ProfileError("backend = \"openai\" but OPENAI_API_KEY is not set")
        return p
    if backend == "local":
        return Profile("local", "local")
    if backend == "off":
        return Profile("off", "off")
    raise ProfileError(f"backend {backend!r} is neither a profile in the config ({', '.join(profiles) or 'none'}) "
                       "nor openai, local or off")
