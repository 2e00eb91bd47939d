"""Configuration from the environment.

Every deployment knob is one environment variable; the names are a public contract (deployments,
docker-compose and scripts rely on them). API keys are listed so that a missing or blank key can be
reported at start, but providers read them from the environment at call time and never copy them
into workflow inputs, results, logs or the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["API_KEY_ENV", "Settings", "SettingsError", "load_settings"]

#: The environment variable each provider's API key is read from, at call time.
API_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    temporal_address: str = Field("localhost:7233", validation_alias=_env("DURABATCH_TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("DURABATCH_TEMPORAL_NAMESPACE"))
    task_queue: str = Field("durabatch", validation_alias=_env("DURABATCH_TASK_QUEUE"))
    database_url: str = Field("", validation_alias=_env("DURABATCH_DATABASE_URL"))
    data_dir: Path = Field(Path(".durabatch"), validation_alias=_env("DURABATCH_DATA_DIR"))
    openai_base_url: str = Field(
        "https://api.openai.com/v1", validation_alias=_env("DURABATCH_OPENAI_BASE_URL")
    )
    anthropic_base_url: str = Field(
        "https://api.anthropic.com", validation_alias=_env("DURABATCH_ANTHROPIC_BASE_URL")
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com", validation_alias=_env("DURABATCH_GEMINI_BASE_URL")
    )
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_env("ANTHROPIC_API_KEY"))
    gemini_api_key: SecretStr | None = Field(None, validation_alias=_env("GEMINI_API_KEY"))
    #: Standard Webhooks signing secrets (`whsec_...`) of the providers' webhooks (`durabatch hooks`)
    openai_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("DURABATCH_OPENAI_WEBHOOK_SECRET")
    )
    gemini_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("DURABATCH_GEMINI_WEBHOOK_SECRET")
    )
    #: Temporal Cloud API-key namespaces (implies TLS); read by the worker and CLI, never logged
    temporal_api_key: SecretStr | None = Field(None, validation_alias=_env("DURABATCH_TEMPORAL_API_KEY"))
    #: TLS to the Temporal frontend; implied by an API key or a client certificate
    temporal_tls: bool = Field(False, validation_alias=_env("DURABATCH_TEMPORAL_TLS"))
    #: mTLS client certificate and key (PEM files), e.g. a Temporal Cloud mTLS namespace
    temporal_tls_cert: Path | None = Field(None, validation_alias=_env("DURABATCH_TEMPORAL_TLS_CERT"))
    temporal_tls_key: Path | None = Field(None, validation_alias=_env("DURABATCH_TEMPORAL_TLS_KEY"))
    #: a private CA for a self-hosted cluster (PEM); the system roots otherwise
    temporal_tls_ca: Path | None = Field(None, validation_alias=_env("DURABATCH_TEMPORAL_TLS_CA"))
    prices_file: Path | None = Field(None, validation_alias=_env("DURABATCH_PRICES_FILE"))
    #: each account's queue limits (durabatch/admission.py); JSON map model -> enqueued tokens
    openai_queue_tokens: dict[str, int] = Field(
        default_factory=dict, validation_alias=_env("DURABATCH_OPENAI_QUEUE_TOKENS")
    )
    openai_queue_requests: int | None = Field(None, validation_alias=_env("DURABATCH_OPENAI_QUEUE_REQUESTS"))
    openai_max_concurrent_batches: int | None = Field(
        None, validation_alias=_env("DURABATCH_OPENAI_MAX_CONCURRENT_BATCHES")
    )
    anthropic_queue_tokens: dict[str, int] = Field(
        default_factory=dict, validation_alias=_env("DURABATCH_ANTHROPIC_QUEUE_TOKENS")
    )
    #: Anthropic's documented queue at the lowest tier: 100,000 requests per organisation
    anthropic_queue_requests: int | None = Field(
        100_000, validation_alias=_env("DURABATCH_ANTHROPIC_QUEUE_REQUESTS")
    )
    anthropic_max_concurrent_batches: int | None = Field(
        None, validation_alias=_env("DURABATCH_ANTHROPIC_MAX_CONCURRENT_BATCHES")
    )
    gemini_queue_tokens: dict[str, int] = Field(
        default_factory=dict, validation_alias=_env("DURABATCH_GEMINI_QUEUE_TOKENS")
    )
    gemini_queue_requests: int | None = Field(None, validation_alias=_env("DURABATCH_GEMINI_QUEUE_REQUESTS"))
    #: Gemini's documented limit: about 100 concurrent batch jobs per project
    gemini_max_concurrent_batches: int | None = Field(
        100, validation_alias=_env("DURABATCH_GEMINI_MAX_CONCURRENT_BATCHES")
    )
    otlp_endpoint: str = Field("", validation_alias=_env("DURABATCH_OTLP_ENDPOINT"))
    metrics_address: str = Field("", validation_alias=_env("DURABATCH_METRICS_ADDRESS"))
    log_level: str = Field("INFO", validation_alias=_env("DURABATCH_LOG_LEVEL"))
    #: where a worker may read a local `requests_uri` from: paths separated by ':' (os.pathsep);
    #: empty means the data dir and the worker's working directory
    requests_roots: str = Field("", validation_alias=_env("DURABATCH_REQUESTS_ROOTS"))
    #: whether a worker may fetch an http(s) `requests_uri`
    requests_http: bool = Field(True, validation_alias=_env("DURABATCH_REQUESTS_HTTP"))
    #: real-time calls and tokens per minute per provider, where a real-time run sets none itself;
    #: unset = no client-side limit (the provider's 429s and rate-limit headers still pace calls)
    openai_rpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_OPENAI_RPM"))
    openai_tpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_OPENAI_TPM"))
    anthropic_rpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_ANTHROPIC_RPM"))
    anthropic_tpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_ANTHROPIC_TPM"))
    gemini_rpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_GEMINI_RPM"))
    gemini_tpm: int | None = Field(None, ge=1, validation_alias=_env("DURABATCH_GEMINI_TPM"))
    #: the account sweep's cadence: every this many seconds one list call per provider account
    #: wakes the batches whose status changed (docs/webhooks.md); 0 = no sweep
    sweep_seconds: float = Field(0.0, validation_alias=_env("DURABATCH_SWEEP_SECONDS"))
    #: how long a workflow task waits for the worker that has the workflow cached before any
    #: worker may take it: what a worker that died stalls each of its batches (the SDK's default)
    sticky_timeout_seconds: float = Field(
        10.0, gt=0, le=300, validation_alias=_env("DURABATCH_STICKY_TIMEOUT_SECONDS")
    )
    #: batches a worker keeps in memory between their workflow tasks; a batch woken after it was
    #: evicted is replayed from its history first (docs/benchmarks.md, "A fleet of live batches")
    max_cached_workflows: int = Field(1000, ge=0, validation_alias=_env("DURABATCH_MAX_CACHED_WORKFLOWS"))

    def account_limits(self, provider: str) -> dict[str, object]:
        """The provider account's queue limits, as durabatch.admission.AccountLimits fields."""
        return {
            "queue_tokens": dict(getattr(self, f"{provider}_queue_tokens")),
            "queue_requests": getattr(self, f"{provider}_queue_requests"),
            "max_concurrent_batches": getattr(self, f"{provider}_max_concurrent_batches"),
        }

    @field_validator("temporal_address", mode="after")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("temporal_namespace", "task_queue", mode="after")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("postgres", "postgresql"):
            raise ValueError(
                f"expected a postgresql:// URL (or empty for embedded PostgreSQL), got {value!r}"
            )
        return value

    @field_validator("openai_base_url", "anthropic_base_url", "gemini_base_url", mode="after")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("openai_queue_tokens", "anthropic_queue_tokens", "gemini_queue_tokens", mode="before")
    @classmethod
    def _json_map(cls, value: object) -> object:
        # the environment holds text: `{"gpt-4o-mini": 2000000}` is JSON to decode, not a dict yet
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f'expected a JSON map of model to tokens, e.g. {{"gpt-4o-mini": 2000000}}, got {value!r}'
            ) from None

    @field_validator("sweep_seconds", mode="after")
    @classmethod
    def _sweep_cadence(cls, value: float) -> float:
        # NaN fails both comparisons, so it is refused too
        if not (value == 0 or 1 <= value <= 86400):
            raise ValueError("expected 0 (off) or a number of seconds from 1 to 86400")
        return value

    @field_validator("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca", mode="after")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "DURABATCH_TEMPORAL_TLS_CERT and DURABATCH_TEMPORAL_TLS_KEY must be set together"
            )
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        return bool(self.temporal_tls or self.temporal_api_key or self.temporal_tls_cert)

    @field_validator("log_level", mode="after")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    def requests_root_paths(self) -> list[Path]:
        """The resolved roots a local `requests_uri` must lie under (DURABATCH_REQUESTS_ROOTS)."""
        if self.requests_roots.strip():
            return [Path(p).resolve() for p in self.requests_roots.split(os.pathsep) if p.strip()]
        return [self.data_dir.resolve(), Path.cwd().resolve()]

    def realtime_limits(self, provider: str) -> tuple[int | None, int | None]:
        """(rpm, tpm) defaults of `provider`'s real-time calls (DURABATCH_<PROVIDER>_RPM / _TPM)."""
        return {
            "openai": (self.openai_rpm, self.openai_tpm),
            "anthropic": (self.anthropic_rpm, self.anthropic_tpm),
            "gemini": (self.gemini_rpm, self.gemini_tpm),
        }[provider]

    def base_url(self, provider: str) -> str:
        return {
            "openai": self.openai_base_url,
            "anthropic": self.anthropic_base_url,
            "gemini": self.gemini_base_url,
        }[provider]


def _variable_for(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return first if isinstance(first, str) else field
    return field


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings, turning a validation failure into one message that names each bad variable."""
    source = dict(os.environ if environ is None else environ)
    try:
        return Settings.model_validate(
            {k: v for k, v in source.items() if k.startswith("DURABATCH_") or k.endswith("_API_KEY")}
        )
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a rule across variables: its message names them
                problems.append(message)
                continue
            field = str(err["loc"][0])
            name = field if field.isupper() else _variable_for(field)
            problems.append(f"{name}: {message}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
