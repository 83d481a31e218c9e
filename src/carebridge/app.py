"""The application factory: settings in, a FastAPI app out, every domain's router mounted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from carebridge import __version__
from carebridge.auth.service import configure_hashing
from carebridge.config import Settings, get_settings, parse_data_keys
from carebridge.consultations import quality
from carebridge.consultations import service as consultations
from carebridge.consultations.api import DOCUMENT_PATH, UPLOAD_PATH
from carebridge.consultations.hub import Hub
from carebridge.core import cache, crypto, direct, handlers, idempotency, live, notify, signing
from carebridge.core import logging as cb_logging
from carebridge.core.files import FileStore
from carebridge.core.middleware import BodyLimitMiddleware, RequestContextMiddleware
from carebridge.core.routing import DomainRouter
from carebridge.database.engine import Database
from carebridge.events.bus import MemoryBus
from carebridge.events.relay import OutboxRelay
from carebridge.openplatform import json_access
from carebridge.openplatform.usage import UsageMiddleware
from carebridge.prescribing import knowledge
from carebridge.prescribing import service as prescriptions
from carebridge.prescribing.api import FORMULARY_IMPORT_PATH
from carebridge.scheduling import waitlist
from carebridge.supervision import daily as supervision_daily
from carebridge.supervision import precheck as supervision
from carebridge.supervision.api import INGEST_PATH

# Each domain package with an ``api.router``; ``events.subscribe(bus, app)`` where it consumes events.
DOMAINS = [
    "auth",
    "directory",
    "patients",
    "scheduling",
    "consultations",
    "prescribing",
    "notifications",
    "supervision",
    "openplatform",
    "interop.fhir",
    "web",
]
# A regulator's standalone engine (``carebridge supervise``): accounts, regions, notifications, supervision.
SUPERVISOR_DOMAINS = ["auth", "directory", "notifications", "supervision"]


def configure_crypto(settings: Settings) -> None:
    import base64

    crypto.configure(parse_data_keys(settings.data_keys), base64.b64decode(settings.blind_index_key))
    signing.configure(settings.signing_key)


def settle_collector(settings: Settings) -> None:
    """What start-up built lives as long as the process: keep the garbage collector from walking it again and
    again (full collections over it stalled every connection for a few hundred milliseconds), and collect the
    youngest generation less often (``gc_thresholds``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.gc_thresholds)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    cb_logging.configure(settings.log_level, settings.log_json)
    configure_crypto(settings)
    waitlist.configure(settings.waitlist_hold_minutes)
    consultations.configure(
        request_minutes=settings.consultation_request_minutes, min_practice_years=settings.min_practice_years
    )
    configure_hashing(settings.argon2_time_cost, settings.argon2_memory_kib)
    quality.configure(sign_hours=settings.record_sign_hours)
    prescriptions.configure(
        validity_days=settings.prescription_validity_days,
        max_items=settings.prescription_max_items,
        ordinary_days=settings.prescription_ordinary_days,
        long_term_days=settings.prescription_long_term_days,
    )
    knowledge.configure(settings.knowledge_files)
    supervision.configure(enabled=settings.supervision_embedded, zone=settings.default_timezone)
    supervision_daily.configure(
        high_value_fen=settings.supervision_high_value_fen,
        refresh_seconds=settings.supervision_indicator_refresh_seconds,
    )
    db = Database(settings)
    bus = MemoryBus(db)
    chat_hub = Hub(db)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay = OutboxRelay(db, bus) if settings.event_relay else None
        live.bind(asyncio.get_running_loop())
        tasks = app.state.background
        for start in tasks:  # first: the supervision engine's rules are in place before the relay hands it events
            await start.start()
        if relay is not None:
            await relay.start()
        await chat_hub.start()
        idempotency.KNOWN.bind(db)  # SQLite: loaded now; PostgreSQL: by the listener once it listens
        listener = asyncio.create_task(notify.listen(db)) if not db.is_sqlite else None
        settle_collector(settings)
        try:
            yield
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            idempotency.KNOWN.unbind()
            for start in reversed(tasks):
                await start.stop()
            await chat_hub.stop()
            if relay is not None:
                await relay.stop()
            await db.dispose()

    app = FastAPI(
        title="CareBridge API",
        version=__version__,
        description=(
            "The open internet-hospital platform. Errors: docs/errors.md. Events: docs/events.md. "
            "The consultation chat WebSocket (GET /api/v1/consultations/{id}/chat): docs/chat.md. Records, "
            "prescriptions, pharmacist review and delivery: docs/prescribing.md; the medication knowledge the "
            "prescription checks read: docs/medication-knowledge.md. The regulator's supervision engine: "
            "docs/supervision.md; how platforms report to it and answer rectification requests: docs/reporting.md. "
            "Partner apps and hospitals' grants: docs/openplatform.md. Settings and the distributed layout "
            "(carebridge worker): docs/configuration.md."
        ),
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # FastAPI's own pages load Swagger UI from a CDN: the portal serves it (/portal/docs/api)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.bus = bus
    app.state.chat = chat_hub
    app.state.files = FileStore(settings.files_dir)
    app.state.background = []
    handlers.install(app)
    uploads = [
        (UPLOAD_PATH, settings.max_attachment_bytes + 64 * 1024),  # multipart framing on top of the file
        (DOCUMENT_PATH, settings.max_attachment_bytes + 64 * 1024),
        (FORMULARY_IMPORT_PATH, settings.max_formulary_csv_bytes),
        (INGEST_PATH, settings.supervision_ingest_max_bytes),
    ]
    direct_routes: dict[tuple[str, str], Any] = {}  # filled with the domains' below
    if settings.direct_routes:
        app.add_middleware(direct.DirectRoutesMiddleware, table=direct_routes, handlers=app.exception_handlers)
    app.add_middleware(UsageMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, larger=uploads)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: the database answers and is migrated")
    async def readyz() -> JSONResponse:
        try:
            async with db.read() as session:
                version = await session.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception as exc:  # readiness reports, it does not raise
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready", "database": "ok", "schema": version})

    for name in SUPERVISOR_DOMAINS if settings.deployment == "supervisor" else DOMAINS:
        module = importlib.import_module(f"carebridge.{name}.api")
        app.include_router(DomainRouter(module.router))
        direct_routes.update(module.DIRECT.table if hasattr(module, "DIRECT") else {})
        if importlib.util.find_spec(f"carebridge.{name}.events") is not None:
            importlib.import_module(f"carebridge.{name}.events").subscribe(bus, app)
    if settings.deployment != "supervisor":
        json_access.register()  # partner apps' tokens on the JSON endpoints open to them
    cache.configure(settings)  # every domain's caches exist once its modules are imported
    idempotency.configure(settings)
    return app
