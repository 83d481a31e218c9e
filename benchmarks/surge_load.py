"""The booking surge's load generator, run as its own process: ``python surge_load.py SPEC.json OUT.json``.

C clients, each with one keep-alive HTTP/1.1 connection, take patients from a shared queue and book
``POST /api/v1/appointments`` (a fresh ``Idempotency-Key`` each) at random slots of the release until every
place is gone (phase 1, the release moment); then send R more attempts at the sold-out slots (phase 2).
A client that hears ``slot_full`` stops trying that slot, as an app refreshing its listing would.

Two clients: ``httpx`` (``httpx.AsyncClient``, one connection per client) and ``raw`` (a minimal HTTP/1.1
client on asyncio streams, for this one request shape). On a 2-core machine the load generator shares the
CPU with the server and the database; ``raw`` costs about a fifth of httpx's CPU per request, so it takes
less of the machine away from what is being measured. Latency is taken per request, send to full answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson


def log(msg: str) -> None:
    print(f"[load] {msg}", file=sys.stderr, flush=True)


class RawClient:
    """One keep-alive HTTP/1.1 connection; requests must carry a JSON body answered with Content-Length."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        head += [f"{k}: {v}".encode() for k, v in headers.items()]
        if body is not None:
            head.append(f"Content-Type: {content_type}".encode())
            head.append(f"Content-Length: {len(body)}".encode())
        message = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
        # Like any keep-alive client: a connection the server closed while idle (uvicorn's keep-alive timeout)
        # is replaced, and a request that found it closed before any answer is sent again once. Retrying a
        # booking is what the Idempotency-Key is for.
        reused = self.writer is not None and not self.reader.at_eof() and not self.writer.is_closing()  # type: ignore[union-attr]
        if not reused:
            await self.close()
            await self._connect()
        try:
            return await self._exchange(message)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
        await self._connect()
        return await self._exchange(message)

    async def _exchange(self, message: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(message)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by the raw client")
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self.reader = self.writer = None


class HttpxClient:
    def __init__(self, base_url: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url,
            http1=True,
            http2=False,
            timeout=60.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        response = await self.client.request(method, path, headers=headers, content=body)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


def error_code(status: int, payload: bytes) -> str:
    try:
        return str(orjson.loads(payload)["error"]["code"])
    except Exception:  # noqa: BLE001 - anything unexpected is reported by status
        return f"http_{status}"


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.sent_at: list[float] = []  # when each request was sent (perf_counter), in the order of latencies
        self.by_outcome: dict[str, list[float]] = {"booked": [], "full": []}  # the same latencies, by answer
        self.booked = 0
        self.rejected_full = 0
        self.errors: Counter[str] = Counter()
        self.started = 0.0
        self.ended = 0.0
        self.cpu = 0.0  # the load process's own CPU seconds in this phase
        self.requests: list[tuple[int, float, float, int]] = []  # (client, sent, latency ms, status) for --latency-log

    @property
    def attempts(self) -> int:
        return len(self.latencies)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float, of: list[float] = lat) -> float | None:
            return round(of[min(len(of) - 1, int(p * len(of)))], 2) if of else None

        booked, full = sorted(self.by_outcome["booked"]), sorted(self.by_outcome["full"])

        seconds = max(self.ended - self.started, 1e-9)
        return {
            "attempts": self.attempts,
            "booked": self.booked,
            "rejected_full": self.rejected_full,
            "errors": sum(self.errors.values()),
            "error_codes": dict(self.errors),
            "seconds": round(seconds, 3),
            "requests_per_s": round(self.attempts / seconds, 1),
            "client_cpu_s": round(self.cpu, 2),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1], 2) if lat else None,
            "p99_ms_by_tenth": self.p99_by_tenth(),
            # the same, by answer: bookings (201) and sold-out answers (409 slot_full)
            "booked_p50_p99_ms": [pct(0.50, booked), pct(0.99, booked)],
            "full_p50_p99_ms": [pct(0.50, full), pct(0.99, full)],
        }

    def p99_by_tenth(self) -> list[float | None]:
        """The p99 of the requests sent in each tenth of the phase: where in the phase the slow answers were."""
        if not self.sent_at:
            return []
        first, span = self.sent_at[0], max(self.sent_at[-1] - self.sent_at[0], 1e-9)
        tenths: list[list[float]] = [[] for _ in range(10)]
        for sent, latency in zip(self.sent_at, self.latencies, strict=False):
            tenths[min(9, int((sent - first) / span * 10))].append(latency)
        return [round(sorted(t)[min(len(t) - 1, int(0.99 * len(t)))], 1) if t else None for t in tenths]


class Release:
    """The clients' shared view of which slots may still have places."""

    def __init__(self, places: list[dict[str, Any]], rng: random.Random) -> None:
        self.left = {p["slot_id"]: p["capacity"] for p in places if p["capacity"] > 0}
        self.open = list(self.left)
        self.index = {slot: i for i, slot in enumerate(self.open)}
        self.rng = rng

    def pick(self) -> str | None:
        return self.open[self.rng.randrange(len(self.open))] if self.open else None

    def close(self, slot: str) -> None:
        i = self.index.pop(slot, None)
        if i is None:
            return
        last = self.open.pop()
        if last != slot:
            self.open[i] = last
            self.index[last] = i

    def booked(self, slot: str) -> None:
        if slot in self.left:
            self.left[slot] -= 1
            if self.left[slot] <= 0:
                self.close(slot)


async def book_once(client: Any, person: dict[str, str], slot: str, phase: Phase) -> str:
    """One POST; returns "booked", "full" or "error" and records latency."""
    body = orjson.dumps({"patient_id": person["patient_id"], "slot_id": slot, "channel": "platform"})
    headers = {"Authorization": f"Bearer {person['token']}", "Idempotency-Key": uuid.uuid4().hex}
    started = time.perf_counter()
    try:
        status, payload = await client.request("POST", "/api/v1/appointments", headers, body)
    except Exception as exc:  # noqa: BLE001 - a transport failure is an error, counted
        phase.sent_at.append(started)
        phase.latencies.append((time.perf_counter() - started) * 1000)
        phase.errors[f"transport:{type(exc).__name__}"] += 1
        return "error"
    phase.sent_at.append(started)
    phase.latencies.append((time.perf_counter() - started) * 1000)
    phase.requests.append((id(client), started, phase.latencies[-1], status))
    if status == 201:
        phase.booked += 1
        phase.by_outcome["booked"].append(phase.latencies[-1])
        return "booked"
    code = error_code(status, payload)
    if status == 409 and code == "slot_full":
        phase.rejected_full += 1
        phase.by_outcome["full"].append(phase.latencies[-1])
        return "full"
    phase.errors[f"{status}:{code}"] += 1
    return "error"


async def book_until_sold_out(
    clients: list[Any], places: list[dict[str, Any]], people: list[dict[str, str]], phase: Phase, rng: random.Random
) -> None:
    release = Release(places, rng)
    queue = list(reversed(people))

    async def run(client: Any) -> None:
        while release.open and queue:
            person = queue.pop()
            while True:
                slot = release.pick()
                if slot is None:
                    return
                outcome = await book_once(client, person, slot, phase)
                if outcome == "booked":
                    release.booked(slot)
                    break
                if outcome == "full":
                    release.close(slot)
                    continue
                break  # an error: this patient's state is unknown, take the next one

    phase.started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(run(c) for c in clients))
    phase.ended = time.perf_counter()
    phase.cpu += time.process_time() - cpu


async def reject_sold_out(
    clients: list[Any],
    places: list[dict[str, Any]],
    people: list[dict[str, str]],
    attempts: int,
    phase: Phase,
    rng: random.Random,
) -> None:
    slots = [p["slot_id"] for p in places]
    remaining = attempts

    async def run(client: Any) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await book_once(client, people[rng.randrange(len(people))], slots[rng.randrange(len(slots))], phase)

    phase.started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(run(c) for c in clients))
    phase.ended = time.perf_counter()
    phase.cpu += time.process_time() - cpu


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(spec["seed"])
    make = RawClient if spec["client"] == "raw" else HttpxClient
    clients = [make(spec["base_url"]) for _ in range(spec["clients"])]
    try:
        # Open every connection first (a client that has the app open has its connection).
        warm = Phase("connect")
        warm.started = time.perf_counter()
        await asyncio.gather(*(c.request("GET", "/healthz", {}, None) for c in clients))
        warm.ended = time.perf_counter()
        results: dict[str, Any] = {}
        if spec["warmup"]:
            phase = Phase("warmup")
            await book_until_sold_out(clients, spec["warmup"], spec["warmup_people"], phase, rng)
            await reject_sold_out(clients, spec["warmup"], spec["warmup_people"], 4 * len(clients), phase, rng)
            phase.ended = time.perf_counter()
            results["warmup"] = phase.summary()
            log(f"warm-up: {results['warmup']}")
            await asyncio.sleep(1.0)
        log(f"release: {len(clients)} clients, {sum(p['capacity'] for p in spec['release'])} places")
        surge = Phase("surge")
        await book_until_sold_out(clients, spec["release"], spec["people"], surge, rng)
        results["surge"] = surge.summary()
        if spec.get("latency_log"):
            Path(spec["latency_log"]).write_text(json.dumps(surge.requests))  # noqa: ASYNC240 - after the phase
        log(f"surge: {results['surge']}")
        rejections = Phase("rejections")
        await reject_sold_out(clients, spec["release"], spec["people"], spec["rejections"], rejections, rng)
        results["rejections"] = rejections.summary()
        log(f"rejections: {results['rejections']}")
        return results
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as fh:
        loaded = json.load(fh)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(main(loaded))
    with open(out_path, "w") as fh:
        json.dump(result, fh)
