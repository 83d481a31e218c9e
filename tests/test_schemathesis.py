"""schemathesis against the OpenAPI description: every operation, fed generated input (valid and invalid) as a
platform admin, never answers 5xx. It runs against a server of its own on a fresh database with demo data,
because what it writes (renamed hospitals, deactivated rules) would disturb the other tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.conftest import start_process
from tests.test_worker import _free_port

SEED = "186059392340951168858564896806902917653"


def test_no_server_errors_for_generated_input(fresh_database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CAREBRIDGE_DATABASE_URL": fresh_database_url,
        "CAREBRIDGE_ARGON2_TIME_COST": "1",
        "CAREBRIDGE_ARGON2_MEMORY_KIB": "1024",
        "CAREBRIDGE_LOG_LEVEL": "WARNING",
        "CAREBRIDGE_FILES_DIR": str(tmp_path / "files"),
    }
    assert start_process(["migrate"], env).wait(timeout=120) == 0
    assert start_process(["demo-data", "--hospitals", "1", "--days", "3"], env).wait(timeout=300) == 0
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        server = start_process(["serve", "--host", "127.0.0.1", "--port", str(port)], env, ready_port=port, log=log)
        try:
            base = f"http://127.0.0.1:{port}"
            login = {"username": "admin", "password": "Demo-2026!"}
            token = httpx.post(f"{base}/api/v1/auth/login", json=login).json()["access_token"]
            run = subprocess.run(  # noqa: S603
                [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "2",
                    "--seed",
                    SEED,
                    "--exclude-path-regex",
                    "logout|password",  # they would end the token the run uses
                    "-H",
                    f"Authorization: Bearer {token}",
                ],
                capture_output=True,
                text=True,
                timeout=1200,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        failures = [line for line in run.stdout.splitlines() if line.startswith("___") or "curl -X" in line]
        assert run.returncode == 0, "\n".join(failures[:40]) + run.stdout[-3000:] + run.stderr[-2000:]
