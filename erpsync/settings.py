"""Typed settings: one TOML file (``ERPSYNC_CONFIG``) with ``ERPSYNC_*`` environment overrides.

Nested values are overridden with a double underscore, for example
``ERPSYNC_SYSTEMS__PROPELLER__CLIENT_SECRET``. Secrets are :class:`~pydantic.SecretStr` and
are registered with :mod:`erpsync.redaction` as soon as they are loaded, so that no log line,
dead letter or exception can carry them. Everything is validated at start-up and every
problem is listed at once (:class:`~erpsync.errors.ConfigError`).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from erpsync.errors import ConfigError, ErrorClass
from erpsync.flows import (
    SOURCES,
    flow_support_problems,
    mapping_problems,
    source_fields_problems,
)
from erpsync.mapping import target_mapping
from erpsync.matching import match_rules, rules_problems
from erpsync.redaction import register_secrets

CONFIG_ENV = "ERPSYNC_CONFIG"

SystemName = Literal["onlineerp", "propeller", "hipe", "atollon"]
SYSTEM_NAMES: tuple[SystemName, ...] = ("onlineerp", "propeller", "hipe", "atollon")
#: entities a flow can carry: ERP customers, their people and products, Atollon billing (to
#: invoices), ERP invoices
FLOW_ENTITIES = frozenset(entity for _, entity in SOURCES)


def is_loopback_host(host: str) -> bool:
    """True for localhost and any address in 127.0.0.0/8 or ::1."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSystemSettings(_Model):
    """What every HTTP system has: where it is, how long to wait, how fast to go."""

    allow_insecure_http: bool = Field(
        default=False, description="allow plain http:// to a host that is not loopback"
    )
    base_url: str = Field(description="the API's base URL")
    timeout_s: float = Field(default=30.0, gt=0, description="seconds to wait for an answer")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="seconds to connect")
    verify_tls: bool = Field(default=True, description="verify the server's TLS certificate")
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="requests per second shared by all workers"
    )
    rate_limit_burst: int = Field(default=1, ge=1, description="requests allowed at once")
    max_connections: int = Field(default=20, ge=1, description="HTTP connections per process")

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"must be an http(s) URL with a host, not {value!r}")
        if (
            parts.scheme == "http"
            and not is_loopback_host(parts.hostname)
            and not info.data.get("allow_insecure_http", False)
        ):
            raise ValueError(
                f"{value!r} is plain http:// to a non-loopback host "
                "(use https:// or set allow_insecure_http = true)"
            )
        return value.rstrip("/")

    def secrets(self) -> list[str]:
        """Every secret value this system holds (registered for redaction)."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr)
        ]


class OnlineErpSettings(HttpSystemSettings):
    """OnlineERP / ERPConnector: HTTP Basic (licence code : secret) plus ``COMPANY_ID``."""

    licence_code: str = Field(min_length=1, description="CodeLicence (Basic auth user)")
    secret: SecretStr = Field(description="secret key (Basic auth password)")
    company_id: str = Field(default="0", description="sent as the COMPANY_ID header")
    # A robot at the customer's site answers: latency is high, so the default is generous.
    timeout_s: float = Field(default=60.0, gt=0, description="the ERP's robot answers slowly")
    page_size: int = Field(default=500, ge=1, le=1000, description="the ERP caps $top at 1000")


class PropellerSettings(HttpSystemSettings):
    """Propeller REST v2: OAuth2 client credentials, 30-minute bearer tokens."""

    client_id: str = Field(min_length=1, description="OAuth2 client id")
    client_secret: SecretStr = Field(description="OAuth2 client secret")
    token_path: str = Field(default="/oauth2/token", description="token endpoint path")
    api_prefix: str = Field(default="/v2", description="REST API version prefix")
    source: str = Field(
        default="ERPSYNC", min_length=1, description="Propeller `source` of our sourceIds"
    )
    language: str = Field(
        default="EN", min_length=2, max_length=2, description="language of our companies"
    )
    token_refresh_margin_s: float = Field(
        default=120.0, ge=0, description="refresh the token this long before it expires"
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="search page size")
    bulk_batch_size: int = Field(default=200, ge=1, le=1000, description="companies per bulk call")
    inactive_attribute: str = Field(
        default="ERPSYNC_INACTIVE",
        min_length=1,
        description="company attribute (text) that marks an inactive customer: Y or N",
    )
    on_source_delete: Literal["mark", "delete"] = Field(
        default="mark",
        description="a customer deleted in the source: mark it inactive, or delete it "
        "(recycle bin: only Propeller's backoffice restores it)",
    )
    bulk_contact_fields: Literal["auto", "inline", "patch"] = Field(
        default="auto",
        description="e-mail and phone of bulk loads: inline in the bulk items (the "
        "integration guide's reading), patch (one PATCH per company that needs them: the "
        "endpoint reference's field list), or auto: inline until Propeller refuses them "
        "(10007), then patch",
    )


class HipeSettings(HttpSystemSettings):
    """HIPE by Packitoo: long-lived ``X-ACCESS-TOKEN``."""

    access_token: SecretStr = Field(description="X-ACCESS-TOKEN")
    page_size: int = Field(default=100, ge=1, le=1000, description="list page size")
    import_poll_interval_s: float = Field(
        default=1.0, gt=0, description="seconds between import status polls"
    )
    import_timeout_s: float = Field(
        default=600.0, gt=0, description="give up on a CSV import after this long"
    )
    bulk_threshold: int = Field(
        default=500, ge=1, description="backfills above this use CSV import"
    )


class AtollonSettings(HttpSystemSettings):
    """Atollon crawler import service: ``?instance=`` on every call."""

    instance: str = Field(min_length=1, description="the ?instance= of every call")
    # The crawler's authentication is not documented; a token is sent when configured.
    api_token: SecretStr | None = Field(
        default=None, description="sent as a Bearer token when set (auth undocumented)"
    )
    erp_system: str = Field(
        default="onlineerp", description="the externalId `system` our ERP keys are stored under"
    )
    deactivation: Literal["none", "group"] = Field(
        default="none",
        description="none: a deactivated customer's contact keeps following its fields, "
        "nothing marks it inactive; group: it is assigned to the Inactive contact group, "
        "which the crawler documents no way to leave (a reactivation cannot undo it)",
    )
    client_folder_category: str = Field(
        default="com.atollon.project.fpatypecategory.client",
        description="contact folder category (FPATypeCategory) every synced customer gets, "
        "created once and kept (default: the documented client category; empty: none)",
    )
    page_size: int = Field(
        default=100, ge=1, le=1000, description="page size of the contact and product read"
    )


class SystemsSettings(_Model):
    """The systems erpsync talks to; a missing one is simply not used."""

    onlineerp: OnlineErpSettings | None = None
    propeller: PropellerSettings | None = None
    hipe: HipeSettings | None = None
    atollon: AtollonSettings | None = None

    def configured(self) -> dict[str, HttpSystemSettings]:
        """The configured systems by name."""
        return {name: value for name in SYSTEM_NAMES if (value := getattr(self, name)) is not None}


class FlowSettings(_Model):
    """One flow: an entity from a source system to one or more targets."""

    enabled: bool = Field(default=True, description="off: nothing of this flow is produced")
    source: SystemName = Field(description="the system changes come from")
    entity: str = Field(description="customer, person, product, billing or invoice")
    targets: list[SystemName] = Field(default_factory=list, description="systems to update")
    # canonical custom field <- source field (dotted), e.g. {"segment": "Secteur"}
    source_fields: dict[str, str] = Field(
        default_factory=dict,
        description="custom.<name> <- the source's field (ERP customers and products only)",
    )
    # per target: {"custom_fields": {target key: canonical path}, "fields": {...}}
    mapping: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per target: fields and custom_fields it honours (erpsync doctor shows them)",
    )
    # ordered match rules (erpsync.matching): one list for every target, or a table per target
    match: list[str] | dict[str, list[str]] = Field(
        default_factory=list,
        description="rules that adopt target records without our external id "
        '(tax_number, email, name), e.g. ["tax_number", "email", "name"]; per target: a table',
    )
    poll_interval_s: float = Field(default=30.0, gt=0, description="seconds between polls")
    reconcile_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="seconds between periodic reconciles run by the producer (off when unset)",
    )

    def match_rules(self) -> dict[str, tuple[str, ...]]:
        """Per target, the ordered match rules (targets without rules left out)."""
        return match_rules(self.match, list(self.targets))


class WorkerSettings(_Model):
    """How workers consume, retry and protect targets."""

    pool: Literal["threads", "prefork", "solo"] = Field(
        default="threads", description="threads suit HTTP-bound work; prefork isolates crashes"
    )
    concurrency: int = Field(default=8, ge=1, le=512, description="deliveries at once")
    prefetch_multiplier: int = Field(default=4, ge=1, le=1000, description="Celery prefetch")
    # kombu's own recovery: an unacked message comes back after this long whether its worker
    # lives or not. Leases (lease_s) give a dead worker's messages back sooner and keep a live
    # one's (state.leases); this stays a fallback.
    visibility_timeout_s: float = Field(
        default=300.0, ge=5, description="kombu's fallback: unacked messages return after this"
    )
    unacked_restore_interval_s: float = Field(
        default=10.0, gt=0, description="how often workers look for such messages"
    )
    transient_max_attempts: int = Field(
        default=8, ge=1, description="attempts before a transient error dead-letters"
    )
    # A 429 says the call was not done and when to try again: it is a wait, not a failure
    # (Airbyte's Slack connector, #5708: "do not give up retry attempts if there is 429"),
    # so it spends this budget instead of the attempts, which a shared, busy target's 429s
    # would otherwise exhaust for records that never failed.
    rate_limited_max_waits: int = Field(
        default=100, ge=1, description="waits a target's 429 asks for before dead-lettering"
    )
    transient_base_s: float = Field(default=1.0, gt=0, description="first retry's backoff ceiling")
    transient_cap_s: float = Field(default=300.0, gt=0, description="largest retry backoff")
    dependency_max_waits: int = Field(
        default=30, ge=0, description="waits for a parent or customer before dead-lettering"
    )
    dependency_base_s: float = Field(default=2.0, gt=0, description="first dependency wait")
    dependency_cap_s: float = Field(default=120.0, gt=0, description="longest dependency wait")
    # A worker renews its leases every lease_s / 5 while it works; one that stops (dead, cut
    # off from Redis, stalled) loses its deliveries to other workers after this long.
    lease_s: float = Field(
        default=15.0, ge=1, description="a delivery held without renewal this long is taken over"
    )
    lock_ttl_s: float = Field(
        default=15.0, gt=0, description="per-record lock lease, renewed while its delivery runs"
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, description="transient failures in a row that open a circuit"
    )
    circuit_cooldown_s: float = Field(default=15.0, gt=0, description="first open period")
    circuit_cooldown_max_s: float = Field(default=300.0, gt=0, description="longest open period")
    # A delivery sent, started or due that has not reached its outcome after this long, and
    # is no longer in its queue, is sent again (the broker lost it: see state.pump). Keep
    # it above the longest task and above visibility_timeout_s (kombu restores first).
    delivery_lease_s: float = Field(
        default=600.0, ge=5, description="a delivery with no progress for this long is resent"
    )
    # A batch's own work (reading, locking and mapping its records, recording outcomes) is
    # CPU under one interpreter lock; its waits (the bulk call, parents) are not. See
    # delivery.pipeline.scheduling and bench section batch_slots for what each size costs.
    batch_cpu_slots: int = Field(
        default=2,
        ge=0,
        le=512,
        description="batches at their own (CPU) work at once per worker process; 0: no bound",
    )
    pump_interval_s: float = Field(
        default=0.2, gt=0, le=10, description="how often due retries are re-queued"
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="serve Prometheus metrics on this port"
    )
    metrics_address: str = Field(
        default="127.0.0.1", description="address the metrics port binds (0.0.0.0 in containers)"
    )


class DlqSettings(_Model):
    """Dead-letter retention."""

    max_entries: int = Field(default=100_000, ge=1, description="dead letters kept at most")
    max_age_days: float = Field(default=30.0, gt=0, description="dead letters older are dropped")


class ConsoleUser(_Model):
    """One person who may use ``erpsync console``."""

    password_hash: SecretStr = Field(
        description="scrypt hash made by `erpsync console hash-password` (never the password)"
    )
    role: Literal["viewer", "operator"] = Field(
        default="viewer", description="viewer: reads; operator: also replays, edits, pauses"
    )


class ConsoleSettings(_Model):
    """The operator's web console (``erpsync console``)."""

    users: dict[str, ConsoleUser] = Field(
        default_factory=dict,
        description="who may log in (name -> password_hash, role); none: no login, loopback only",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="signs session cookies (random at each start when unset: sessions end "
        "with a restart)",
    )
    session_hours: float = Field(default=12.0, gt=0, description="a login lasts this long")
    flower_url: str | None = Field(
        default=None, description="Flower's URL, linked from the console's pages"
    )


class Settings(BaseSettings):
    """All of erpsync's settings."""

    model_config = SettingsConfigDict(
        env_prefix="ERPSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis: broker and state store"
    )
    key_prefix: str = Field(
        default="erpsync",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="prefix of every Redis key (several installations can share a Redis)",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON unless on a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    systems: SystemsSettings = Field(default_factory=SystemsSettings)
    flows: dict[str, FlowSettings] = Field(default_factory=dict)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    dlq: DlqSettings = Field(default_factory=DlqSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    trace_max_events: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="events kept per record for `erpsync trace` (the oldest go first; 0: off)",
    )
    trace_ttl_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="a record's trace expires this long after its last event",
    )
    # error-policy overrides: system -> vendor code or "http-<status>" -> class
    errors: dict[SystemName, dict[str, ErrorClass]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_flows(self) -> Settings:
        configured = set(self.systems.configured())
        problems: list[str] = []
        for name, flow in self.flows.items():
            problems.extend(
                flow_problems(
                    name,
                    entity=flow.entity,
                    source=flow.source,
                    targets=list(flow.targets),
                    mapping=flow.mapping,
                    source_fields=flow.source_fields,
                    enabled=flow.enabled,
                    configured=configured,
                )
            )
            problems.extend(rules_problems(name, flow.entity, list(flow.targets), flow.match))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secrets(self) -> list[str]:
        """Every secret value in these settings."""
        found: list[str] = []
        for system in self.systems.configured().values():
            found.extend(system.secrets())
        password = urlsplit(self.redis_url).password
        if password:
            found.append(password)
        if self.console.session_secret is not None:
            found.append(self.console.session_secret.get_secret_value())
        found.extend(u.password_hash.get_secret_value() for u in self.console.users.values())
        return found

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (the parsed file, passed by load_settings) < environment: env wins.
        return env_settings, init_settings


def flow_problems(
    name: str,
    *,
    entity: object,
    source: object,
    targets: list[object],
    mapping: object,
    enabled: object,
    configured: set[str],
    source_fields: object = None,
) -> list[str]:
    """What is wrong with one flow as a whole: its entity, mapping and systems.

    Takes plain values so that it can also judge the flows of a file whose other parts
    do not validate (pydantic skips model checks then), and list every problem at once.
    """
    problems: list[str] = []
    known_entity = isinstance(entity, str) and entity in FLOW_ENTITIES
    if isinstance(entity, str) and not known_entity:
        problems.append(f"flows.{name}.entity: {entity!r} is not one of {sorted(FLOW_ENTITIES)}")
    if known_entity and source in SYSTEM_NAMES:
        systems = [str(t) for t in targets if t in SYSTEM_NAMES]
        problems.extend(
            f"flows.{name}.{where}: {problem}"
            for where, problem in flow_support_problems(str(entity), str(source), systems)
        )
    read_fields = _text_table(source_fields)
    if known_entity and source in SYSTEM_NAMES and read_fields is not None:
        problems.extend(
            f"flows.{name}.{where}: {problem}"
            for where, problem in source_fields_problems(str(source), str(entity), read_fields)
        )
    for target, raw in mapping.items() if isinstance(mapping, dict) else ():
        if target not in targets:
            problems.append(f"flows.{name}.mapping.{target}: not a target of this flow")
        try:
            parsed = target_mapping(raw)
        except ValidationError as exc:
            problems.extend(f"flows.{name}.mapping.{target}.{p}" for p in _describe(exc))
            continue
        if known_entity:
            problems.extend(
                f"flows.{name}.mapping.{target}.{where}: {problem}"
                for where, problem in mapping_problems(
                    str(entity), str(target), parsed, read_fields
                )
            )
    if enabled is False:
        return problems
    if source in SYSTEM_NAMES and source not in configured:
        problems.append(f"flows.{name}.source: system {source!r} is not configured")
    for target in targets:
        if target in SYSTEM_NAMES and target not in configured:
            problems.append(f"flows.{name}.targets: system {target!r} is not configured")
    return problems


def _text_table(value: object) -> dict[str, str] | None:
    """``source_fields`` as a table of text, or None when it is not one (reported apart)."""
    if value is None:
        return {}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return None


def _raw_flow_problems(data: dict[str, Any]) -> list[str]:
    """The flows' checks on the raw file and environment (when other parts are invalid)."""
    flows = data.get("flows")
    if not isinstance(flows, dict):
        return []
    systems = data.get("systems")
    # A system present but invalid is reported on its own, not as "not configured".
    configured = {str(n) for n in systems} if isinstance(systems, dict) else set()
    prefix = "ERPSYNC_SYSTEMS__"
    configured |= {
        key[len(prefix) :].split("__")[0].lower()
        for key in os.environ
        if key.upper().startswith(prefix)
    }
    problems: list[str] = []
    for name, raw in flows.items():
        if not isinstance(raw, dict):
            continue
        targets = raw.get("targets")
        problems.extend(
            flow_problems(
                str(name),
                entity=raw.get("entity"),
                source=raw.get("source"),
                targets=list(targets) if isinstance(targets, list) else [],
                mapping=raw.get("mapping", {}),
                enabled=raw.get("enabled", True),
                configured=configured,
                source_fields=raw.get("source_fields", {}),
            )
        )
    return problems


def _describe(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        # A model-level check names its own fields ("flows.x.entity: ...").
        problems.extend(f"{where}: {part}" if where else part for part in message.split("; "))
    return problems


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the TOML flow file; a missing or malformed file is a :class:`ConfigError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None


def load_settings(config_path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load and validate settings from the TOML file and the environment.

    ``config_path`` defaults to ``$ERPSYNC_CONFIG``; with neither, only the environment is
    read. Raises :class:`ConfigError` listing every problem.
    """
    path = config_path if config_path is not None else os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = read_config_file(Path(path)) if path else {}
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems = _describe(exc)
        if all(err["loc"] for err in exc.errors()):
            # Field errors stop pydantic before the flows' checks: run them on the raw
            # values, so that every problem is listed at once.
            problems += [p for p in _raw_flow_problems(data) if p not in problems]
        raise ConfigError(problems) from None
    register_secrets(settings.secrets())
    return settings
