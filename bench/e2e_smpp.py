"""End to end over SMPP: HTTP send -> worker -> submit_sm at the Node SMSC -> its delivery receipt
(deliver_sm) -> status ``delivered`` -> signed webhook at a local HTTPS receiver.

Starts the Node SMSC of the tests (tests/carriers/smsc, npm ``smpp``; it answers each submit_sm
and sends a DELIVRD receipt at once), an HTTPS receiver (uvicorn, certificate from a throwaway
CA, verifying every signature with ``msgine.webhooks.verify``), and ``msgine serve`` on a fresh
data directory with an SMPP carrier, a route for Uganda, a live key and a webhook endpoint for
``message.delivered``. Then it offers ``--rate`` sends per second for ``--seconds`` (open loop,
``--connections`` at most in flight) and waits for every webhook.

Prints the sustained rate (messages whose webhook arrived, over the time from the first send to
the last webhook), p50/p99 of send-to-webhook latency, and the SMSC's own count of submit_sm.

    python bench/e2e_smpp.py [--rate 1000] [--seconds 20] [--connections 64] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

ROOT = Path(__file__).resolve().parents[1]
SMSC_DIR = ROOT / "tests" / "carriers" / "smsc"

RECEIVER = textwrap.dedent(
    """
    import json, os, sys, time
    import uvicorn
    from msgine.webhooks import verify

    SECRET = os.environ["BENCH_WEBHOOK_SECRET"]
    arrived, bad = {}, 0

    async def app(scope, receive, send):
        global bad
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = b""
        if scope["method"] == "POST":
            now = time.time()
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            try:
                event = verify(body, headers, SECRET)
                arrived.setdefault(event["messageId"], now)
            except Exception:
                bad += 1
        else:
            payload = json.dumps({"arrived": arrived, "bad": bad}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_certfile=sys.argv[2],
                ssl_keyfile=sys.argv[3], log_level="warning", access_log=False)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, verify: Any = True, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=verify, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_smsc() -> tuple[subprocess.Popen[bytes], int, str]:
    if not (SMSC_DIR / "node_modules" / "smpp").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=SMSC_DIR, check=True
        )
    process = subprocess.Popen(
        ["node", "smsc.js", "--system-id", "bench", "--password", "bench"],
        cwd=SMSC_DIR,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    ports = json.loads(process.stdout.readline())
    control = f"http://127.0.0.1:{ports['control']}"
    httpx.post(f"{control}/config", json={"receipts": {"stat": "DELIVRD"}}).raise_for_status()
    return process, int(ports["smpp"]), control


def cli(env: dict[str, str], *argv: str, stdin: str | None = None) -> str:
    """One ``msgine`` command, as an operator runs it; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", "msgine", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def configure(env: dict[str, str], smsc_port: int, args: argparse.Namespace) -> str:
    """The carrier, its route and a live key, with the CLI as an operator would."""

    options = {
        "host": "127.0.0.1",
        "port": smsc_port,
        "binds": args.binds,
        "window": args.window,
    }
    cli(
        env,
        "carriers",
        "add",
        "smsc",
        "--kind",
        "smpp",
        "--credentials-file",
        "-",
        *[arg for key, value in options.items() for arg in ("-o", f"{key}={value}")],
        stdin=json.dumps({"system_id": "bench", "password": "bench"}),
    )
    cli(
        env,
        "routes",
        "add",
        "--country",
        "UG",
        "--carriers",
        "smsc",
        "--price",
        "25",
        "--currency",
        "UGX",
    )
    return str(json.loads(cli(env, "keys", "create", "--mode", "live", "--json"))["key"])


async def offer(
    base: str, key: str, rate: float, seconds: float, connections: int
) -> dict[str, float]:
    """Open-loop sends at ``rate``; returns message id -> when its send started."""
    sent: dict[str, float] = {}
    failures = 0
    limit = asyncio.Semaphore(connections)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base,
        headers=headers,
        timeout=30,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    ) as client:

        async def one(n: int) -> None:
            nonlocal failures
            async with limit:
                started = time.time()
                body = {
                    "to": f"+2567015{n % 100000:05d}",
                    "message": f"Your code is {n:06d}",
                    "from": "MsGine",
                }
                try:
                    response = await client.post("/api/v1/messages/sms", json=body)
                except httpx.HTTPError:  # counted: a refused or dropped send is a result too
                    failures += 1
                    return
                if response.status_code == 201:
                    sent[response.json()["id"]] = started
                else:
                    failures += 1

        tasks = []
        begin = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            delay = begin + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    if failures:
        print(f"refused sends       : {failures}")
    return sent


def wait_for_webhooks(
    stats_url: str, trust: Any, count: int, within: float
) -> tuple[dict[str, float], int]:
    """The receiver's arrivals (message id -> time) and bad signatures, once ``count`` arrived
    or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    arrived: dict[str, float] = {}
    bad = 0
    while time.monotonic() < deadline:
        stats = httpx.get(stats_url, verify=trust, timeout=30).json()
        arrived, bad = stats["arrived"], stats["bad"]
        if len(arrived) >= count:
            break
        time.sleep(0.5)
    return arrived, bad


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--binds", type=int, default=1)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="msgine-e2e-smpp-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile, ca_file = work / "cert.pem", work / "key.pem", work / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(ca_file))

    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env.update(
        MSGINE_DATA_DIR=str(work / "data"),
        MSGINE_RATE_LIMIT_PER_KEY="100000000/minute",
        MSGINE_RATE_LIMIT_PER_ACCOUNT="100000000/minute",
        MSGINE_RATE_LIMIT_PER_IP="100000000/minute",
        MSGINE_RATE_LIMIT_PER_RECIPIENT="100000000/hour",
        MSGINE_WEBHOOK_ALLOW_PRIVATE="true",
        MSGINE_WEBHOOK_CA_BUNDLE=str(ca_file),
        MSGINE_LOG_LEVEL="WARNING",
    )
    if args.database_url:
        env["MSGINE_DATABASE_URL"] = args.database_url

    smsc, smsc_port, control = start_smsc()
    processes: list[subprocess.Popen[Any]] = [smsc]
    try:
        # The first start creates the data directory and the default account.
        port = free_port()
        first = subprocess.Popen(
            [sys.executable, "-m", "msgine", "serve", "--port", str(port), "--no-worker"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{port}/healthz")
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        key = configure(env, smsc_port, args)

        gateway = subprocess.Popen(
            [sys.executable, "-m", "msgine", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        processes.append(gateway)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        hook = httpx.post(
            f"{base}/api/v1/webhooks",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "url": f"https://127.0.0.1:{(receiver_port := free_port())}/hook",
                "events": ["message.delivered"],
            },
        )
        hook.raise_for_status()
        script = work / "receiver.py"
        script.write_text(RECEIVER)
        receiver = subprocess.Popen(
            [sys.executable, str(script), str(receiver_port), str(certfile), str(keyfile)],
            env={**os.environ, "BENCH_WEBHOOK_SECRET": hook.json()["secret"]},
        )
        processes.append(receiver)
        import ssl

        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        stats_url = f"https://127.0.0.1:{receiver_port}/stats"
        wait_http(stats_url, verify=trust)
        time.sleep(2)  # the worker binds to the SMSC on its first live batch; give it a moment

        sent = asyncio.run(offer(base, key, args.rate, args.seconds, args.connections))
        arrived, bad = wait_for_webhooks(stats_url, trust, len(sent), max(120, args.seconds * 5))
        smsc_state = httpx.get(f"{control}/state", timeout=30).json()
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

    latencies = sorted(arrived[m] - sent[m] for m in sent if m in arrived)
    first_send = min(sent.values())
    last_hook = max(arrived.values()) if arrived else first_send
    submits = len(smsc_state["submits"])
    print(f"database            : {'PostgreSQL' if args.database_url else 'SQLite'}")
    print(
        f"offered             : {args.rate:.0f}/s for {args.seconds:.0f} s, {args.connections} connections, "
        f"{args.binds} bind(s), window {args.window}"
    )
    print(f"accepted (201)      : {len(sent)}")
    print(f"webhooks (verified) : {len(latencies)} (bad signatures: {bad})")
    print(
        f"SMSC submit_sm      : {submits} (receipts acknowledged: {len(smsc_state['delivered'])})"
    )
    print(f"sustained           : {len(latencies) / (last_hook - first_send):.0f} msg/s end to end")
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"send -> webhook     : p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms")


if __name__ == "__main__":
    main()
