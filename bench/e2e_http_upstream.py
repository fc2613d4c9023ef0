"""End to end through the MsGine relay: HTTP send to the relay -> its worker submits to the
"hosted" gateway (``msgine`` carrier, ``POST /messages/sms``) -> the hosted simulator delivers ->
the hosted gateway's signed webhook reaches the relay's callback route -> the relay's recipient is
``delivered`` -> the relay's own signed webhook reaches a local HTTPS receiver.

Two ``msgine serve`` processes on fresh SQLite data directories (or ``--database-url`` twice:
``--database-url`` for the relay, ``--hosted-database-url`` for the hosted one), each behind a
TLS-terminating proxy (the tests' ``TcpProxy``, with a throwaway CA), as a deployment's reverse
proxy would stand. The relay reaches the hosted API over TLS (``--plain`` : loopback http, to
see what TLS costs).

Prints the sustained rate (messages whose webhook arrived, over the time from the first send to
the last webhook), p50/p99 of send-to-webhook latency, and where the time goes: each stage's
mean from the gateways' own Prometheus histograms, and each process's CPU time per message.

    python bench/e2e_http_upstream.py [--rate 200] [--seconds 20] [--connections 32]
        [--batch-size 1] [--plain]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "carriers")]

from e2e_smpp import RECEIVER, cli, free_port, offer, wait_for_webhooks, wait_http  # noqa: E402
from http_support import TcpProxy  # noqa: E402

UNLIMITED = {
    "MSGINE_RATE_LIMIT_PER_KEY": "100000000/minute",
    "MSGINE_RATE_LIMIT_PER_ACCOUNT": "100000000/minute",
    "MSGINE_RATE_LIMIT_PER_IP": "100000000/minute",
    "MSGINE_RATE_LIMIT_PER_RECIPIENT": "100000000/hour",
    "MSGINE_DAILY_CAP": "0",
    "MSGINE_WEBHOOK_ALLOW_PRIVATE": "true",
    "MSGINE_SIMULATOR_DLR_DELAY": "0",
    "MSGINE_LOG_LEVEL": "WARNING",
}


def serve(env: dict[str, str], port: int, *, read_key: bool = False) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "msgine", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE if read_key else subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return process


def test_key(process: subprocess.Popen[bytes]) -> str:
    """The key a first start prints once; the rest of its output is drained in a thread."""
    stdout = process.stdout
    assert stdout is not None
    for line in stdout:
        text = line.decode().strip()
        if text.startswith("msgine_test_"):
            threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
            return text
    raise RuntimeError("the hosted gateway printed no test key")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def histogram_means(metrics: str, name: str) -> dict[str, float]:
    """Mean of each labelled series of a Prometheus histogram (sum / count)."""
    sums = dict(re.findall(rf"^{name}_sum\{{(.*?)\}} (\S+)$", metrics, re.MULTILINE))
    counts = dict(re.findall(rf"^{name}_count\{{(.*?)\}} (\S+)$", metrics, re.MULTILINE))
    return {k: float(sums[k]) / float(c) for k, c in counts.items() if float(c) > 0}


def setup(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile, ca_file = work / "cert.pem", work / "key.pem", work / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(tls)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    common = {**base_env, **UNLIMITED, "MSGINE_WEBHOOK_CA_BUNDLE": str(ca_file)}

    hosted_env = {**common, "MSGINE_DATA_DIR": str(work / "hosted")}
    if args.hosted_database_url:
        hosted_env["MSGINE_DATABASE_URL"] = args.hosted_database_url
    hosted_port = free_port()
    hosted = serve(hosted_env, hosted_port, read_key=True)
    hosted_key = test_key(hosted)
    hosted_front = TcpProxy(hosted_port, tls=tls)

    relay_port = free_port()
    relay_front = TcpProxy(relay_port, tls=tls)
    relay_env = {
        **common,
        "MSGINE_DATA_DIR": str(work / "relay"),
        "MSGINE_PUBLIC_URL": f"https://localhost:{relay_front.port}",
    }
    if args.database_url:
        relay_env["MSGINE_DATABASE_URL"] = args.database_url
    relay = serve(relay_env, relay_port)
    base_url = (
        f"http://127.0.0.1:{hosted_port}/api/v1"
        if args.plain
        else f"https://localhost:{hosted_front.port}/api/v1"
    )
    added = json.loads(
        cli(
            relay_env,
            "carriers", "add", "up", "--kind", "msgine", "--json",
            "-o", f"base_url={base_url}", "-o", f"ca_bundle={ca_file}",
            "-o", f"batch_size={args.batch_size}", "-o", "max_connections=64",
            "--credentials-file", "-",
            stdin=json.dumps({"api_key": hosted_key}),
        )
    )  # fmt: skip
    endpoint = httpx.post(
        f"http://127.0.0.1:{hosted_port}/api/v1/webhooks",
        headers={"Authorization": f"Bearer {hosted_key}"},
        json={"url": added["callbackUrl"] + "/events", "events": ["message.delivered"]},
    )
    endpoint.raise_for_status()
    creds = {"api_key": hosted_key, "webhook_secret": endpoint.json()["secret"]}
    cli(relay_env, "carriers", "update", "up", "--credentials-file", "-", stdin=json.dumps(creds))
    cli(relay_env, "routes", "add", "--country", "UG", "--carriers", "up", "--price", "25",
        "--currency", "UGX")  # fmt: skip
    key = str(json.loads(cli(relay_env, "keys", "create", "--mode", "live", "--json"))["key"])

    receiver_port = free_port()
    hook = httpx.post(
        f"http://127.0.0.1:{relay_port}/api/v1/webhooks",
        headers={"Authorization": f"Bearer {key}"},
        json={"url": f"https://127.0.0.1:{receiver_port}/hook", "events": ["message.delivered"]},
    )
    hook.raise_for_status()
    script = work / "receiver.py"
    script.write_text(RECEIVER)
    receiver = subprocess.Popen(
        [sys.executable, str(script), str(receiver_port), str(certfile), str(keyfile)],
        env={**os.environ, "BENCH_WEBHOOK_SECRET": hook.json()["secret"]},
    )
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    stats_url = f"https://127.0.0.1:{receiver_port}/stats"
    wait_http(stats_url, verify=trust)
    return {
        "processes": {"hosted": hosted, "relay": relay, "receiver": receiver},
        "proxies": [hosted_front, relay_front],
        "relay": f"http://127.0.0.1:{relay_port}",
        "hosted": f"http://127.0.0.1:{hosted_port}",
        "key": key,
        "stats": stats_url,
        "trust": trust,
    }


def report(args: argparse.Namespace, run: dict[str, Any], sent: dict[str, float]) -> None:
    arrived, cpu = run["arrived"], run["cpu"]
    latencies = sorted(arrived[m] - sent[m] for m in sent if m in arrived)
    first_send = min(sent.values())
    last_hook = max(arrived.values()) if arrived else first_send
    print(f"databases           : relay {'PostgreSQL' if args.database_url else 'SQLite'}, "
          f"hosted {'PostgreSQL' if args.hosted_database_url else 'SQLite'}")  # fmt: skip
    print(f"relay -> hosted     : {'http (loopback)' if args.plain else 'https (TLS proxy)'}, "
          f"batch_size {args.batch_size}")  # fmt: skip
    print(
        f"offered             : {args.rate:.0f}/s for {args.seconds:.0f} s, {args.connections} connections"
    )
    print(f"accepted (201)      : {len(sent)}")
    print(f"webhooks (verified) : {len(latencies)} (bad signatures: {run['bad']})")
    if not latencies:
        return
    print(f"sustained           : {len(latencies) / (last_hook - first_send):.0f} msg/s end to end")
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"send -> webhook     : p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms")
    relay_metrics, hosted_metrics = run["relay_metrics"], run["hosted_metrics"]
    submit = histogram_means(relay_metrics, "msgine_carrier_submit_seconds").get('carrier="up"')
    receipt = histogram_means(relay_metrics, "msgine_carrier_receipt_seconds").get('carrier="up"')
    hook = histogram_means(hosted_metrics, "msgine_webhook_attempt_seconds")
    relay_hook = histogram_means(relay_metrics, "msgine_webhook_attempt_seconds")
    print("where the time goes (means):")
    if submit is not None:
        print(f"  relay submit to hosted (HTTP round trip)  : {submit * 1000:.1f} ms")
    if receipt is not None:
        print(f"  relay submit -> hosted receipt at relay   : {receipt * 1000:.1f} ms")
    for label, value in hook.items():
        print(f"  hosted webhook attempt ({label}) : {value * 1000:.1f} ms")
    for label, value in relay_hook.items():
        print(f"  relay webhook attempt ({label})  : {value * 1000:.1f} ms")
    print("CPU per delivered message (ms):")
    for name, seconds in cpu.items():
        print(f"  {name:<9}: {seconds * 1000 / len(latencies):.2f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="relay -> hosted over loopback http")
    parser.add_argument("--database-url", default=None, help="the relay's database")
    parser.add_argument("--hosted-database-url", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="msgine-e2e-http-"))
    run = setup(args, work)
    processes: dict[str, subprocess.Popen[Any]] = run["processes"]
    try:
        time.sleep(1)
        before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        before["bench"] = _own_cpu()
        sent = asyncio.run(
            offer(run["relay"], run["key"], args.rate, args.seconds, args.connections)
        )
        run["arrived"], run["bad"] = wait_for_webhooks(
            run["stats"], run["trust"], len(sent), max(120, args.seconds * 5)
        )
        run["cpu"] = {n: cpu_seconds(p.pid) - before[n] for n, p in processes.items()}
        run["cpu"]["bench"] = _own_cpu() - before["bench"]  # load generator and TLS proxies
        run["relay_metrics"] = httpx.get(run["relay"] + "/metrics", timeout=30).text
        run["hosted_metrics"] = httpx.get(run["hosted"] + "/metrics", timeout=30).text
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        for proxy in run["proxies"]:
            proxy.close()
    report(args, run, sent)


if __name__ == "__main__":
    main()
