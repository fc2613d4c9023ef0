"""A crash run: real gateway processes killed with SIGKILL under load, and the outcome read from
the database. Used by ``tests/gateway/test_crashes*.py`` (sized for CI) and ``bench/crashes.py``
(the larger run).

On SQLite the deployment is one ``msgine serve`` (API and worker in one process); on PostgreSQL
it is ``msgine serve --no-worker`` and a ``msgine worker``, killed in turn. Clients send all the
while; what counts as accepted is a 201. After the last restart, everything must settle:

- every accepted message is stored (a message stored whose 201 was lost is allowed);
- every recipient has exactly one carrier submission (a repeat carries the same key, which the
  carrier dedupes: counted as ``repeated_submits``);
- none is stuck: every recipient is final and no job is left.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from msgine.server.storage._tables import jobs, messages, recipients, simulator_submissions
from support import FINAL, MASTER_KEY, NO_LIMITS, Gateway, gateway_env, start_gateway

# A start under load on a busy machine can take a while (the usual 30 s is too short there).
START_TIMEOUT = 90


@dataclass
class Load:
    """Clients sending to the API until stopped; the ids of the 201s."""

    base_url: str
    api_key: str = field(repr=False)
    clients: int = 8
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        sent = 0
        with httpx.Client(headers=headers, timeout=5) as client:
            while not self._stop.is_set():
                sent += 1
                body = {"to": f"+25670{n % 10}{sent:06d}", "message": f"crash {sent}"}
                try:
                    r = client.post(f"{self.base_url}/messages/sms", json=body)
                except httpx.HTTPError:  # the API is down: not accepted
                    self.refused += 1
                    time.sleep(0.05)
                    continue
                if r.status_code == 201:
                    self.accepted.append(r.json()["id"])
                else:
                    self.refused += 1


@dataclass
class Deployment:
    """The gateway's processes; ``worker`` only on PostgreSQL (on SQLite the API runs it)."""

    env: dict[str, str] = field(repr=False)
    cwd: Path
    api: Gateway
    worker: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @classmethod
    def start(cls, tmp_path: Path, database_url: str | None) -> Deployment:
        env = gateway_env(
            tmp_path, database_url, MSGINE_MASTER_KEY=MASTER_KEY, MSGINE_SIMULATOR_DLR_DELAY="0.2"
        )
        env.update(NO_LIMITS)
        args = ("--no-worker",) if database_url else ()
        api = start_gateway(env, cwd=tmp_path, args=args, timeout=START_TIMEOUT)
        deployment = cls(env, tmp_path, api)
        if database_url:
            deployment.worker = deployment._start_worker()
        return deployment

    def _start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "msgine", "worker"],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill_and_restart(self, which: str) -> None:
        """SIGKILL the API or the worker process and start it again."""
        self.kills += 1
        if which == "worker" and self.worker is not None:
            self.worker.kill()
            self.worker.wait(timeout=15)
            self.worker = self._start_worker()
            return
        key = self.api.api_key
        self.api.stop(kill=True)
        args = ("--no-worker",) if self.worker is not None else ()
        # A restart under load on a busy machine can take a while; CI's default is too short.
        self.api = start_gateway(self.env, cwd=self.cwd, port=self.api.port, args=args, timeout=90)
        self.api.api_key = key

    def stop(self) -> None:
        self.api.stop()
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=15)


def database_engine(tmp_path: Path, database_url: str | None) -> sa.Engine:
    if database_url:
        return sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    return sa.create_engine(f"sqlite:///{tmp_path / 'gw-data' / 'msgine.db'}")


@dataclass
class Outcome:
    accepted: int
    stored: int
    lost: int
    recipients: int
    not_final: int
    jobs_left: int
    submissions: int
    repeated_submits: int
    unsubmitted: int


def outcome(engine: sa.Engine, accepted: list[str]) -> Outcome:
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(messages.c.id)).scalars())
        statuses = dict(conn.execute(sa.select(recipients.c.id, recipients.c.status)).all())
        submissions = dict(
            conn.execute(
                sa.select(simulator_submissions.c.submit_key, simulator_submissions.c.calls)
            ).all()
        )
        left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    return Outcome(
        accepted=len(accepted),
        stored=len(stored),
        lost=len(set(accepted) - stored),
        recipients=len(statuses),
        not_final=sum(status not in FINAL for status in statuses.values()),
        jobs_left=left,
        submissions=len(submissions),
        repeated_submits=sum(calls > 1 for calls in submissions.values()),
        unsubmitted=sum(
            rid not in submissions for rid, status in statuses.items() if status != "rejected"
        ),
    )


def settled(engine: sa.Engine, accepted: list[str], timeout: float) -> Outcome:
    """The outcome once nothing is left to do (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = outcome(engine, accepted)
        if (found.not_final == 0 and found.jobs_left == 0) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def crash_run(
    tmp_path: Path,
    database_url: str | None,
    *,
    kills: int,
    between: float,
    clients: int = 8,
    settle: float = 30,
) -> tuple[Outcome, Deployment]:
    """Start the deployment, kill a process every ``between`` seconds under load (worker and
    API in turn on PostgreSQL), then settle and read the outcome."""
    deployment = Deployment.start(tmp_path, database_url)
    load = Load(deployment.api.base_url, deployment.api.api_key, clients)
    engine = database_engine(tmp_path, database_url)
    try:
        load.start()
        for n in range(kills):
            time.sleep(between)
            which = "worker" if deployment.worker is not None and n % 2 == 0 else "api"
            deployment.kill_and_restart(which)
        time.sleep(between)
        load.stop()
        return settled(engine, load.accepted, settle), deployment
    finally:
        load.stop()
        deployment.stop()
        engine.dispose()


def check(found: Outcome) -> None:
    """The run's promises (see the module's docstring)."""
    assert found.accepted > 0, found
    assert found.lost == 0, found
    assert found.not_final == 0 and found.jobs_left == 0, found
    assert found.unsubmitted == 0 and found.submissions <= found.recipients, found
