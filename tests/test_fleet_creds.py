"""``--broker-creds`` against a real nats-server in operator mode (docs/operations.md, "Production"): an operator,
an account with JetStream and a user are made here as NATS JWTs signed with nkeys, the server trusts the operator
and preloads the account; ``fleet status`` and a worker connect with the user's credentials file, and without it
(or with a missing or malformed one: status, worker and the ingest) the commands say so in one line."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nkeys
import pytest

from conftest import REPO
from fleetkit import FLEET, NAMES, Worker, ensure_fleet, intent_task, publish, take_results
from natsserver import NatsServer

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1,
             "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _keypair(prefix: int) -> Any:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _jwt(signer: Any, subject: Any, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT for ``subject`` signed by ``signer`` (jti: base32 of the SHA-256 of the claims without it)."""
    claims: dict[str, Any] = {"jti": "", "iat": int(time.time()), "iss": signer.public_key.decode(),
                              "name": name, "sub": subject.public_key.decode(), "nats": {**nats, "version": 2}}
    digest = hashlib.sha256(json.dumps(claims, separators=(",", ":")).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


def _creds(jwt: str, seed: bytes) -> str:
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n")


@pytest.fixture(name="secured")
def _secured(tmp_path: Path) -> Iterator[tuple[NatsServer, str]]:
    """A nats-server trusting one operator, with one JetStream account preloaded; the user's creds file."""
    operator, system, account = (_keypair(p) for p in (nkeys.PREFIX_BYTE_OPERATOR, nkeys.PREFIX_BYTE_ACCOUNT,
                                                       nkeys.PREFIX_BYTE_ACCOUNT))
    user = _keypair(nkeys.PREFIX_BYTE_USER)
    sys_pub = system.public_key.decode()
    op_jwt = _jwt(operator, operator, "op", {"type": "operator", "system_account": sys_pub})
    sys_jwt = _jwt(operator, system, "SYS", {"type": "account"})  # JetStream needs a system account
    acc_jwt = _jwt(operator, account, "fleet", {"type": "account", "limits": UNLIMITED,
                                                "default_permissions": {"pub": {}, "sub": {}}})
    user_jwt = _jwt(account, user, "worker", {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1,
                                              "payload": -1})
    creds = tmp_path / "user.creds"
    creds.write_text(_creds(user_jwt, user.seed))
    preload = f'{sys_pub}: "{sys_jwt}", {account.public_key.decode()}: "{acc_jwt}"'
    config = f'operator: "{op_jwt}"\nsystem_account: {sys_pub}\nresolver: MEMORY\nresolver_preload: {{ {preload} }}\n'
    server = NatsServer(tmp_path / "nats", config=config).start()
    try:
        yield server, str(creds)
    finally:
        server.kill()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    env.pop("CONDUCTOR_BROKER_CREDS", None)
    argv = [sys.executable, "-m", "conductor_loop", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_status_and_a_worker_connect_with_creds_and_status_without_them_is_refused(
    secured: tuple[NatsServer, str], tmp_path: Path
) -> None:
    server, creds = secured
    ensure_fleet(server.url, creds=creds)
    done = _cli("fleet", "status", "--json", "--broker", server.url, "--broker-creds", creds, "--fleet", FLEET)
    assert done.returncode == 0, done.stderr
    assert [s["name"] for s in json.loads(done.stdout)["streams"]] == [NAMES.task_stream, NAMES.result_stream]
    refused = _cli("fleet", "status", "--json", "--broker", server.url, "--fleet", FLEET)
    assert refused.returncode == 1 and "authorization refused" in _one_line(refused), refused.stderr
    worker = Worker(tmp_path, server.url, "w-creds", "--broker-creds", creds, "--porch", "builtin", "--slots", "1")
    try:
        task = intent_task(target="odu", namespace="ns", replicas=2)
        publish(server.url, task, creds=creds)
        (result,) = take_results(server.url, 1, creds=creds)
        assert result.ok and result.task_id == task.task_id and result.worker == "w-creds", result.message
        assert worker.stop() == 0
    finally:
        worker.kill()


@pytest.mark.parametrize("kind", ["missing", "malformed"])
def test_a_missing_or_malformed_creds_file_is_one_line_and_exit_2(
    secured: tuple[NatsServer, str], tmp_path: Path, kind: str
) -> None:
    server, _ = secured
    bad = tmp_path / "bad.creds"
    if kind == "malformed":
        bad.write_text("-----BEGIN NATS USER JWT-----\nnot a jwt\n------END NATS USER JWT------\n")
    base = ("--broker", server.url, "--broker-creds", str(bad), "--fleet", FLEET)
    dirs = [str(tmp_path / d) for d in ("handoff", "out")]
    for d in dirs:
        os.mkdir(d)
    ingest = ("run", "--handoff", dirs[0], "--out", dirs[1], "--executor", "fleet", *base)
    for argv in (("fleet", "status", *base), ("worker", *base, "--porch", "builtin"), ingest):
        done = _cli(*argv)
        assert done.returncode == 2 and str(bad) in _one_line(done), (argv, done.stderr)
