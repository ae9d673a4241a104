"""Which API key is which tenant: from `FANOUT_API_KEYS`, or from an SSM Parameter Store
SecureString (`FANOUT_API_KEYS_PARAMETER`) read again every `FANOUT_API_KEYS_TTL` seconds.

Fails closed: a configured source that holds no key, or that cannot be read, refuses every
request (503), never lets one through as the default tenant. Only a server with no source at
all is open, as one tenant, and `fanout serve` then listens on loopback only; on Lambda there is
no loopback, so the API refuses to start without keys (`require_keys`).
"""

from __future__ import annotations

from typing import Any, Protocol

from fanout.settings import Settings


class NoApiKeys(RuntimeError):
    """The API must not start: it would answer everyone as one tenant."""


class KeysUnavailable(RuntimeError):
    """The configured keys cannot be read now: refuse the request."""


def parse_keys(entries: list[str]) -> dict[str, str]:
    """`key:tenant` entries (a key alone is its own tenant) as {key: tenant}. Empty keys are
    dropped: an empty bearer token must never match."""
    keys: dict[str, str] = {}
    for entry in entries:
        key, _, tenant = entry.strip().partition(":")
        if key.strip():
            keys[key.strip()] = tenant.strip() or key.strip()
    return keys


class ApiKeys(Protocol):
    @property
    def open(self) -> bool:
        """No source of keys is configured: every caller is the default tenant."""
        ...

    def tenants(self) -> dict[str, str]:
        """{key: tenant}; raises KeysUnavailable when a configured source yields none."""
        ...


class StaticKeys:
    """Keys from the environment, fixed for the process's life."""

    def __init__(self, entries: list[str]) -> None:
        self._keys = parse_keys(entries)

    @property
    def open(self) -> bool:
        return not self._keys

    def tenants(self) -> dict[str, str]:
        return self._keys


class ParameterKeys:
    """Keys from an SSM SecureString, with Powertools' parameter cache (`ttl` seconds): a
    rotation (`aws ssm put-parameter --overwrite`) reaches every container within `ttl`. A read
    that fails, or a value with no key in it, refuses requests until a read succeeds."""

    def __init__(self, name: str, ttl: float, client: Any = None) -> None:
        # Powertools and boto3: only where keys live in SSM (the AWS path).
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self.name = name
        self.ttl = int(ttl)
        self.provider = SSMProvider(boto3_client=client) if client is not None else SSMProvider()

    @property
    def open(self) -> bool:
        return False

    def tenants(self) -> dict[str, str]:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self.provider.get(self.name, max_age=self.ttl, decrypt=True)
        except GetParameterError as error:
            raise KeysUnavailable(f"reading {self.name}: {error}") from error
        keys = parse_keys(str(value).split(","))
        if not keys:
            raise KeysUnavailable(f"{self.name} holds no API key")
        return keys


def load_api_keys(settings: Settings, ssm_client: Any = None) -> ApiKeys:
    if settings.api_keys_parameter:
        return ParameterKeys(settings.api_keys_parameter, settings.api_keys_ttl, ssm_client)
    return StaticKeys(settings.api_keys)


def require_keys(keys: ApiKeys) -> None:
    """Raise NoApiKeys unless `keys` holds at least one key now (read once, at start)."""
    if keys.open:
        raise NoApiKeys(
            "no API keys: set FANOUT_API_KEYS_PARAMETER (an SSM SecureString of key:tenant"
            " pairs) or FANOUT_API_KEYS; without them every caller would be one tenant"
        )
    try:
        keys.tenants()
    except KeysUnavailable as error:
        raise NoApiKeys(str(error)) from error
