"""``msgine serve``, ``msgine worker`` and ``msgine db upgrade``."""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import Annotated

import typer

from msgine.cli._app import app, runtime

db = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db, name="db")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (MSGINE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (MSGINE_PORT)")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only")] = False,
) -> None:
    """Run the gateway: the HTTP API and, unless --no-worker, the delivery worker."""
    import uvicorn

    from msgine.server.api import create_app
    from msgine.server.logging import configure_logging
    from msgine.server.runtime import ensure_default_account
    from msgine.server.worker import background_tasks

    with runtime() as rt:
        settings = rt.settings
        configure_logging(
            level=settings.log_level,
            security_log_path=str(settings.security_log_path)
            if settings.security_log_path
            else None,
        )
        first = ensure_default_account(rt)
        if first is not None:
            typer.echo("Created the default account and a test-mode API key (shown only once):")
            typer.echo(f"  {first.secret}")
        tasks = [] if no_worker else background_tasks(rt)
        api = create_app(rt, background=tasks)
        _settle_heap()
        config = uvicorn.Config(
            api,
            host=host or settings.host,
            port=settings.port if port is None else port,
            log_config=None,
            # The gateway writes its own access line (msgine.access) naming the route template;
            # uvicorn's would log the raw path, which can hold a phone number.
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
        uvicorn.Server(config).run()


@app.command()
def worker() -> None:
    """Run only the delivery worker (several may run against PostgreSQL)."""
    from msgine.server.logging import configure_logging
    from msgine.server.worker import background_tasks

    with runtime() as rt:
        configure_logging(level=rt.settings.log_level)

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
def upgrade() -> None:
    """Apply database migrations (serve and worker also do this at start)."""
    with runtime():
        pass
    typer.echo("database is up to date")
