"""TOML configuration (standard-library tomllib) read into frozen dataclasses.

Every error names the file and the dotted key, e.g.
``config/baseliner.toml: aws.regions: expected "all" or a list of strings, got 42``.
Unknown keys are errors too: a typo must not silently turn a control off.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG = Path("config/baseliner.toml")
DEFAULT_STORE = Path("snapshots/baseliner.db")
DEFAULT_MAX_WORKERS = 32
DEFAULT_MAX_ATTEMPTS = 5

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/.+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class StoreConfig:
    path: Path = DEFAULT_STORE
    keep_last: int | None = None
    keep_daily: int | None = None


@dataclass(frozen=True)
class AwsAccount:
    name: str
    role_arn: str | None = None
    profile: str | None = None
    external_id: str | None = None

    @property
    def account_hint(self) -> str:
        """The account id when the ARN says it, else the configured name."""
        if self.role_arn and (m := _ROLE_ARN.match(self.role_arn)):
            return m.group(1)
        return self.name


@dataclass(frozen=True)
class AwsOrganization:
    role_name: str
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class AwsConfig:
    regions: tuple[str, ...] | None = None
    """None means every region enabled for the account."""
    max_workers: int = DEFAULT_MAX_WORKERS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    accounts: tuple[AwsAccount, ...] = ()
    organization: AwsOrganization | None = None


@dataclass(frozen=True)
class GcpOrganization:
    parent: str | None = None
    """``organizations/123`` or ``folders/456``; None searches every project the credential sees."""


@dataclass(frozen=True)
class GcpConfig:
    projects: tuple[str, ...] = ()
    organization: GcpOrganization | None = None
    credentials_file: Path | None = None
    endpoint: str | None = None
    resource_manager_endpoint: str | None = None
    max_workers: int = DEFAULT_MAX_WORKERS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class AzureConfig:
    subscriptions: tuple[str, ...] = ()
    tenant_id: str | None = None
    client_id: str | None = None
    cloud: str = "public"
    endpoint: str | None = None
    max_workers: int = DEFAULT_MAX_WORKERS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    credential: str | None = None
    """None: ``client_secret`` when tenant_id and client_id are set, else ``default``."""


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    aws: AwsConfig | None = None
    gcp: GcpConfig | None = None
    azure: AzureConfig | None = None
    rules: Any = None
    """Parsed by ``baseliner.rules.parse_config`` (the [rules] table)."""
    daemon: Any = None
    """Parsed by ``baseliner.daemon.parse_config`` (the [daemon] table)."""
    alerts: Any = None
    """Parsed by ``baseliner.alerts.parse_config`` (the [[alerts]] tables)."""

    @property
    def providers(self) -> list[str]:
        """Providers to collect, in a fixed order. No provider section at all = AWS ambient."""
        names = [n for n in ("aws", "gcp", "azure") if getattr(self, n) is not None]
        return names or ["aws"]

    def aws_or_default(self) -> AwsConfig:
        return self.aws or AwsConfig()


class Section:
    """Reads one table, remembering which keys were used so leftovers are reported."""

    def __init__(self, file: str, prefix: str, data: Any) -> None:
        self.file, self.prefix = file, prefix
        if not isinstance(data, dict):
            self.fail(prefix, f"expected a table, got {_describe(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def fail(self, key: str, message: str) -> None:
        raise ConfigError(f"{self.file}: {key}: {message}")

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(
                k.__name__ for k in kind
            )
            self.fail(self.name(key), f"expected {_KIND_NAMES.get(expected, expected)}, "
                      f"got {_describe(value)}")
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, str, default)
        if value is not None and not value.strip():
            self.fail(self.name(key), "must not be empty")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in value):
            self.fail(self.name(key), "expected a list of non-empty strings")
        return tuple(value)

    def positive(self, key: str, default: int, maximum: int = 1024) -> int:
        value = self.get(key, int, default)
        if not 1 <= value <= maximum:
            self.fail(self.name(key), f"expected an integer from 1 to {maximum}, got {value}")
        return value

    def table(self, key: str) -> Section | None:
        self.used.add(key)
        if key not in self.data:
            return None
        return Section(self.file, self.name(key), self.data[key])

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(self.name(unknown[0]), "unknown key")


_KIND_NAMES = {"str": "a string", "int": "an integer", "list": "a list", "dict": "a table",
               "bool": "true or false"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def load(path: Path | None) -> Config:
    """Read ``path``; None means the default file, which may be absent (built-in defaults)."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: configuration file not found")
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse(data, str(path), path)


def parse(data: dict[str, Any], file: str, path: Path | None = None) -> Config:
    root = Section(file, "", data)
    store = StoreConfig()
    if (s := root.table("store")) is not None:
        keep_last = s.positive("keep_last", 0, 100_000) if "keep_last" in s.data else None
        keep_daily = s.positive("keep_daily", 0, 100_000) if "keep_daily" in s.data else None
        store = StoreConfig(Path(s.string("path") or DEFAULT_STORE), keep_last, keep_daily)
        s.done()
    aws = _aws(s) if (s := root.table("aws")) is not None else None
    gcp = _gcp(s) if (s := root.table("gcp")) is not None else None
    azure = _azure(s) if (s := root.table("azure")) is not None else None
    extensions = {
        name: _extension(name, root.get(name, kind, None), file) for name, kind in _EXTENSIONS
    }
    root.done()
    return Config(path=path, store=store, aws=aws, gcp=gcp, azure=azure, **extensions)


_EXTENSIONS = (("rules", dict), ("daemon", dict), ("alerts", list))
"""Sections parsed by the module that owns them: ``baseliner.<name>.parse_config``."""


def _extension(name: str, data: Any, file: str) -> Any:
    """``parse_config(data, file)`` of ``baseliner.<name>``; raises ConfigError naming the key.
    An absent section stays None: its owner applies the defaults."""
    import importlib

    if data is None:
        return None
    module = importlib.import_module(f"baseliner.{name}")
    return module.parse_config(data, file)


def _aws(s: Section) -> AwsConfig:
    regions_value = s.get("regions", (str, list), "all")
    if isinstance(regions_value, str):
        if regions_value != "all":
            s.fail(s.name("regions"), f'expected "all" or a list of region names, got '
                   f"{regions_value!r}")
        regions = None
    else:
        regions = s.strings("regions")
        for region in regions:
            if not _REGION.match(region):
                s.fail(s.name("regions"), f"not a region name: {region!r}")
        if not regions:
            s.fail(s.name("regions"), 'empty list; use "all" or name at least one region')
    accounts = []
    raw_accounts = s.get("accounts", list, [])
    names: set[str] = set()
    for i, item in enumerate(raw_accounts):
        a = Section(s.file, f"{s.name('accounts')}[{i}]", item)
        name = a.string("name")
        if name is None:
            a.fail(a.name("name"), "required")
        if name in names:
            a.fail(a.name("name"), f"duplicate account name {name!r}")
        names.add(name)
        role_arn = a.string("role_arn")
        profile = a.string("profile")
        if role_arn and profile:
            a.fail(a.prefix, "set role_arn or profile, not both")
        if role_arn and not _ROLE_ARN.match(role_arn):
            a.fail(a.name("role_arn"), f"not an IAM role ARN: {role_arn!r}")
        external_id = a.string("external_id")
        a.done()
        accounts.append(AwsAccount(name, role_arn, profile, external_id))
    organization = None
    if (o := s.table("organization")) is not None:
        role_name = o.string("role_name")
        if role_name is None:
            o.fail(o.name("role_name"), "required")
        organization = AwsOrganization(role_name, o.strings("exclude"))
        o.done()
    config = AwsConfig(
        regions=regions,
        max_workers=s.positive("max_workers", DEFAULT_MAX_WORKERS),
        max_attempts=s.positive("max_attempts", DEFAULT_MAX_ATTEMPTS, 20),
        accounts=tuple(accounts),
        organization=organization,
    )
    s.done()
    return config


_GCP_PARENT = re.compile(r"^(organizations|folders)/\d+$")


def _gcp(s: Section) -> GcpConfig:
    organization = None
    if (o := s.table("organization")) is not None:
        parent = o.string("parent")
        if parent is not None and not _GCP_PARENT.match(parent):
            o.fail(o.name("parent"), f"expected organizations/<id> or folders/<id>, got {parent!r}")
        organization = GcpOrganization(parent=parent)
        o.done()
    credentials = s.string("credentials_file")
    endpoints: dict[str, str | None] = {}
    for key in ("endpoint", "resource_manager_endpoint"):
        url = s.string(key)
        if url is not None and not url.startswith(("https://", "http://")):
            s.fail(s.name(key), f"expected an https:// (or http://) URL, got {url!r}")
        endpoints[key] = url
    config = GcpConfig(
        projects=s.strings("projects"),
        organization=organization,
        credentials_file=Path(credentials) if credentials else None,
        endpoint=endpoints["endpoint"],
        resource_manager_endpoint=endpoints["resource_manager_endpoint"],
        max_workers=s.positive("max_workers", DEFAULT_MAX_WORKERS),
        max_attempts=s.positive("max_attempts", DEFAULT_MAX_ATTEMPTS, 20),
    )
    if not config.projects and organization is None:
        s.fail(s.prefix, "set projects = [...] or a [gcp.organization] table")
    s.done()
    return config


AZURE_CLOUDS = ("public", "china", "usgov")
AZURE_CREDENTIALS = ("default", "client_secret", "cli", "managed_identity")


def _azure(s: Section) -> AzureConfig:
    cloud = s.string("cloud", "public") or "public"
    if cloud not in AZURE_CLOUDS:
        s.fail(s.name("cloud"), f"expected one of {', '.join(AZURE_CLOUDS)}, got {cloud!r}")
    if "client_secret" in s.data:
        s.fail(s.name("client_secret"), "never read from a file; set AZURE_CLIENT_SECRET")
    credential = s.string("credential")
    if credential is not None and credential not in AZURE_CREDENTIALS:
        s.fail(s.name("credential"),
               f"expected one of {', '.join(AZURE_CREDENTIALS)}, got {credential!r}")
    endpoint = s.string("endpoint")
    if endpoint is not None and not endpoint.startswith("https://"):
        s.fail(s.name("endpoint"), f"expected an https:// URL, got {endpoint!r}")
    config = AzureConfig(
        subscriptions=s.strings("subscriptions"),
        tenant_id=s.string("tenant_id"),
        client_id=s.string("client_id"),
        cloud=cloud,
        endpoint=endpoint,
        max_workers=s.positive("max_workers", DEFAULT_MAX_WORKERS),
        max_attempts=s.positive("max_attempts", DEFAULT_MAX_ATTEMPTS, 20),
        credential=credential,
    )
    if credential == "client_secret" and not (config.tenant_id and config.client_id):
        s.fail(s.name("credential"), "client_secret needs tenant_id and client_id")
    s.done()
    return config
