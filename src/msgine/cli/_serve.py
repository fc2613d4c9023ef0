"""``msgine init``, ``msgine serve``, ``msgine worker`` and ``msgine db upgrade``.

``init`` and ``serve`` are the only commands that create a gateway (data directory, database,
master key file, default account); everything else refuses where none exists.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import socket
from typing import Annotated, Any

import typer

from msgine.cli._app import app, fail, runtime
from msgine.cli._output import JsonOption, emit_json, say

db = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db, name="db")

KEY_HINT = "msgine keys create --name NAME [--mode test|live] [--scopes S,S]"


def _where(settings: Any) -> str:
    if settings.is_sqlite:
        return str(settings.data_dir.resolve())
    from msgine.server.runtime import describe_database

    return describe_database(settings)


def _first_start(rt: Any, *, key: bool = True) -> Any:
    """The default account and its first test key on a new gateway, or None on an existing one
    (and without ``key``: the account only)."""
    from msgine.server.accounts import DEFAULT_ACCOUNT_NAME, create_account, list_accounts
    from msgine.server.runtime import ensure_default_account

    if key:
        return ensure_default_account(rt)
    now = rt.now()
    rt.db.write(lambda conn: list_accounts(conn) or create_account(conn, DEFAULT_ACCOUNT_NAME, now))
    return None


@app.command()
def init(
    no_key: Annotated[
        bool,
        typer.Option(
            "--no-key",
            help="Create no first key (for automated deployments, whose output is logged)",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a gateway here: data directory, database, master key file, a default account and
    a first test-mode key (shown once). On an existing gateway it only applies migrations."""
    with runtime(create=True) as rt:
        first = _first_start(rt, key=not no_key)
        where = _where(rt.settings)
    if no_key:
        say(f"gateway ready at {where}; to create an API key: {KEY_HINT}")
        if as_json:
            emit_json({"location": where})
        return
    if as_json:
        payload: dict[str, Any] = {"created": first is not None, "location": where}
        if first is not None:
            payload.update(account=first.record["account_id"], keyId=first.record["id"])
            payload["key"] = first.secret
        emit_json(payload)
        return
    if first is None:
        say(f"a gateway already exists at {where}: nothing created (migrations are up to date)")
        say(f"to create an API key: {KEY_HINT}")
        return
    say(f"created a gateway at {where}")
    typer.echo("Created the default account and a test-mode API key (shown only once):")
    typer.echo(f"  {first.secret}")


def _listen(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """Bind the listening socket before anything else starts, so a busy port is one clear line
    (and no half-started gateway) instead of a server log and a traceback. ``shared``: with
    SO_REUSEPORT, for the processes of ``serve --processes N``, each listening on its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=shared)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use (another gateway?); choose another "
                "with --port N or MSGINE_PORT=N"
            )
        fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another address "
            "with --host/--port or MSGINE_HOST/MSGINE_PORT"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (MSGINE_HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Listen port (MSGINE_PORT)")
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only")] = False,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="API processes sharing the port (PostgreSQL only); each runs the worker too "
            "unless --no-worker",
        ),
    ] = 1,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the start-up facts (address, location, a first key) as one JSON line",
        ),
    ] = False,
) -> None:
    """Run the gateway: the HTTP API and, unless --no-worker, the delivery worker."""
    from msgine.server.config import load_settings

    configured = load_settings()
    host = host or configured.host
    port = configured.port if port is None else port
    if processes > 1 and configured.is_sqlite:
        fail(
            "--processes needs PostgreSQL (MSGINE_DATABASE_URL=postgresql://...): SQLite has one "
            "writer, so a second process only waits for the first one's write lock"
        )
    # Bound alone first, even for several processes: a port another program (or gateway)
    # listens on is refused here, not silently shared through SO_REUSEPORT.
    listener = _listen(host, port)
    port = listener.getsockname()[1]
    with runtime(create=True) as rt:
        _configure_logging(rt.settings)
        first = _first_start(rt)
        _announce(rt.settings, host, port, no_worker, first, as_json=as_json)
        if processes == 1:
            _run_api(rt, listener, no_worker)
            return
    listener.close()
    _run_processes(processes, host, port, no_worker)


def _configure_logging(settings: Any) -> None:
    from msgine.server.logging import configure_logging

    configure_logging(
        level=settings.log_level,
        security_log_path=str(settings.security_log_path) if settings.security_log_path else None,
    )


def _announce(
    settings: Any, host: str, port: int, no_worker: bool, first: Any, *, as_json: bool
) -> None:
    if as_json:
        emit_json(
            {
                "url": f"http://{host}:{port}",
                "worker": not no_worker,
                "location": _where(settings),
                "key": first.secret if first is not None else None,
            }
        )
    elif first is not None:
        typer.echo("Created the default account and a test-mode API key (shown only once):")
        typer.echo(f"  {first.secret}")
    if first is None:
        say(
            f"existing gateway at {_where(settings)}: its first key was shown on the first "
            f"start only; to create another: {KEY_HINT}"
        )
    say(f"listening on http://{host}:{port} ({'API only' if no_worker else 'API and worker'})")


def _run_api(rt: Any, listener: socket.socket, no_worker: bool) -> None:
    """Serve the API (and the worker) of this process on ``listener`` until stopped."""
    import uvicorn

    from msgine.server.api import connection_protocol, create_app
    from msgine.server.worker import background_tasks

    settings = rt.settings
    tasks = [] if no_worker else background_tasks(rt)
    api = create_app(rt, background=tasks)
    _settle_heap()
    config = uvicorn.Config(
        api,
        log_config=None,
        # The gateway writes its own access line (msgine.access) naming the route template;
        # uvicorn's would log the raw path, which can hold a phone number.
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http=connection_protocol(settings),
        timeout_keep_alive=settings.keepalive_timeout,
    )
    uvicorn.Server(config).run(sockets=[listener])


def _run_processes(count: int, host: str, port: int, no_worker: bool) -> None:
    """Start ``count`` API processes, each with its own listening socket on the port
    (SO_REUSEPORT: the kernel spreads new connections over them), and wait for them.

    The parent passes SIGINT and SIGTERM on, and when one process ends, it stops the others:
    a supervisor (systemd, a container runtime) then restarts the whole gateway instead of it
    running on at part strength unnoticed.
    """
    import multiprocessing
    import threading

    # Forked, not spawned: a child then starts in a fraction of a second instead of importing
    # the gateway again (seconds of CPU on a busy machine). Safe because the parent has closed
    # its runtime (pools, writer thread) and runs no other thread: nothing half-held is copied.
    import msgine.server.api
    import msgine.server.worker  # noqa: F401 - imported once, before the fork

    if threading.active_count() > 1:
        raise RuntimeError("serve --processes: threads still running before the fork")
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_api_process, args=(host, port, no_worker), name=f"msgine-api-{n}")
        for n in range(count)
    ]
    for child in children:
        child.start()
    say(f"started {count} API processes (pids {', '.join(str(c.pid) for c in children)})")

    def stop(_signum: int, _frame: Any) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = _wait_first(children)
    stop(signal.SIGTERM, None)
    for child in children:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    if code:
        raise typer.Exit(1)


def _wait_first(children: list[Any]) -> int:
    """The exit code of the first child to end (0 when stopped by a signal we passed on)."""
    from multiprocessing.connection import wait

    ready = wait([child.sentinel for child in children])
    ended = next(child for child in children if child.sentinel in ready)
    ended.join()
    code = ended.exitcode or 0
    return 0 if code == -signal.SIGTERM else code


def _api_process(host: str, port: int, no_worker: bool) -> None:
    """One of ``serve --processes N``: its own runtime, pools, listening socket and worker."""
    listener = _listen(host, port, shared=True)
    with runtime() as rt:
        _configure_logging(rt.settings)
        _run_api(rt, listener, no_worker)


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT/metrics",
        ),
    ] = None,
) -> None:
    """Run only the delivery worker (several may run against PostgreSQL)."""
    from msgine.server.logging import configure_logging, get_logger
    from msgine.server.worker import background_tasks

    with runtime() as rt:
        settings = rt.settings
        configure_logging(level=settings.log_level)
        where = f"database {settings.database_description}, data dir {settings.data_dir.resolve()}"
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1")
            where += f", metrics http://127.0.0.1:{metrics_port}/metrics"
        typer.echo(f"msgine worker started: {where}")
        get_logger("msgine.worker").info(
            "worker_process_started",
            database=settings.database_description,
            data_dir=str(settings.data_dir.resolve()),
            metrics_port=metrics_port,
        )

        _settle_heap()

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await asyncio.gather(*(task(rt, stop) for task in background_tasks(rt)))

        asyncio.run(run())


def _settle_heap() -> None:
    """Before serving: move what start-up built (modules, phone number metadata, schema) out of
    the garbage collector's sight, and collect young objects less often. A long-running
    gateway allocates many short-lived objects per request; without this, full collections
    keep traversing hundreds of thousands of start-up objects that never die (measured under
    send load: collections took 1.7% of the CPU before, 0.3% after)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


@db.command("upgrade")
def upgrade(as_json: JsonOption = False) -> None:
    """Apply database migrations to an existing gateway (serve and worker also do this at
    start); 'msgine init' creates a new one."""
    from msgine.server.storage import current_revision

    with runtime() as rt:
        revision = rt.db.read(current_revision)
    if as_json:
        emit_json({"revision": revision})
    else:
        typer.echo(f"database is up to date (revision {revision})")
