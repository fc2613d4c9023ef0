"""Side by side: accepted sends/s of Jasmin 0.11's HTTP API ``/send`` and of ``msgine serve``.

Rounds alternate on the same machine: wrk (--connections, --seconds) against a running Jasmin's
``/send`` (POST form, a different recipient per request, "Your code is NNNNNN"; only 200
``Success "id"`` answers count), then the same traffic against ``msgine serve`` started as
send_throughput.py starts it (fresh SQLite, worker in process, delivering through its simulator;
only 201s count), then msgine's and Jasmin's no-op rates (``/healthz``, ``/ping``). Per round it
prints sends/s, p99 and the server's CPU per accepted send, accepting and delivering it: after
each send round it waits until the work is done (msgine: every recipient final; Jasmin: every
accepted send seen by the SMSC when --smsc-control is given, else jasmind idle). jasmind's CPU
is read from /proc (its pid is found from the port of --url), and so is RabbitMQ's (the process
listening on --amqp-port), which Jasmin queues every send through. It also prints how fast
sends left for the carrier during the load (msgine: recipients past queued; Jasmin: submit_sm
the SMSC saw, with --smsc-control): Jasmin answers once a send is in RabbitMQ, and its SMPP
client in the same process delivers from there. Then the msgine/Jasmin ratio per round and
the median.

Jasmin is not installed by this script. One way (Python 3.11, RabbitMQ on 5672, Redis):

    python3 -m venv /tmp/jasmin-venv && /tmp/jasmin-venv/bin/pip install jasmin==0.11.1
    mkdir -p /etc/jasmin/resource /etc/jasmin/store /var/log/jasmin
    cp /tmp/jasmin-venv/lib/python3.11/site-packages/txamqp/specs/standard/amqp0-9-1.stripped.xml \\
       /etc/jasmin/resource/amqp0-9-1.xml
    # /etc/jasmin/jasmin.cfg: [amqp-broker] host/port/username/password/vhost, [redis-client]
    # host/port; [http-api] port = 1401, [jcli] port = 8990; bind = 127.0.0.1 in each section.
    # Jasmin 0.11 ignores [redis-client] dbid unless a password is set: give it its own
    # redis-server (e.g. --port 6380 --save '') rather than db 0 of a shared one.
    /tmp/jasmin-venv/bin/jasmind.py --username jcliadmin --password jclipwd &
    cd tests/carriers/smsc && node smsc.js --system-id msgine --password s3cret  # prints ports
    # jCli (telnet 127.0.0.1 8990, jcliadmin/jclipwd); "ok" ends each interactive add:
    #   group -a: gid bench / ok
    #   user -a: username bench / password benchpw / gid bench / uid bench / ok
    #   smppccm -a: cid smsc / host 127.0.0.1 / port SMPP_PORT / username msgine /
    #               password s3cret / submit_throughput 0 / ok     (the default is 1/s)
    #   smppccm -1 smsc          (start; smppccm -l shows BOUND_TRX)
    #   mtrouter -a: type DefaultRoute / connector smppc(smsc) / rate 0 / ok
    #   persist                  (jasmind --username/--password loads it when restarted)
    # Check: curl -d 'username=bench&password=benchpw&to=256701500000&content=hi' \\
    #   127.0.0.1:1401/send answers 200 Success "id", and the SMSC's GET /state lists the submit.
    # Jasmin logs every send at INFO by default (http-api.log, messages.log, an access log):
    # [http-api] access_log = None, log_level = WARNING quiet it (about +6% sends/s here).

    python bench/vs_jasmin.py --username bench --password benchpw
        [--url http://127.0.0.1:1401/send] [--smsc-control http://127.0.0.1:CONTROL_PORT]
        [--rounds 3] [--seconds 10] [--connections 32] [--amqp-port 5672] [--jasmin-only]
        [--worker-process]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import sqlalchemy as sa
from send_throughput import (
    COUNTING_LUA,
    bench_env,
    bench_key,
    free_port,
    process_cpu,
    send_script,
    server_cpu,
    start,
    start_worker,
    wait_until_final,
    wrk,
)

JASMIN_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local auth = "AUTH"
-- A different recipient on every request, as real traffic has (and as send_throughput's).
request = function()
  local body = auth .. string.format("&to=2567015%05d&content=Your+code+is+%06d",
                                     math.random(0, 99998), math.random(0, 999999))
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status == 200 and string.sub(body, 1, 8) == 'Success ' then created = created + 1 end
end
"""


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (IPv4 or IPv6), from /proc; None if not found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().as_posix() in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def cpu(pid: int | None) -> float:
    return process_cpu(pid) if pid else float("nan")


class Smsc:
    """The Node SMSC's control channel (tests/carriers/smsc): how many submit_sm it answered."""

    def __init__(self, url: str | None) -> None:
        self.client = httpx.Client(base_url=url, timeout=30) if url else None

    def reset(self) -> None:
        if self.client:
            self.client.post("/reset").raise_for_status()

    def submits(self) -> list[float] | None:
        """When each submit_sm since the last reset came (epoch seconds); None without it."""
        if not self.client:
            return None
        return [s["t"] for s in self.client.get("/state").json()["submits"]]


def jasmin_drain(
    pid: int, smsc: Smsc, accepted: int, timeout: float = 600
) -> tuple[float, list[float] | None]:
    """Wait until Jasmin has delivered the round: the SMSC saw ``accepted`` submits (with
    --smsc-control), or else jasmind stayed idle (under 5% of a core) for 3 s; idle for 5 s
    ends the wait either way (a stopped connector never delivers). Returns the seconds waited
    and the times of the submits the SMSC saw (None without it)."""
    started = time.perf_counter()
    idle = 0
    last = process_cpu(pid)
    seen = None
    while time.perf_counter() - started < timeout:
        time.sleep(1)
        now = process_cpu(pid)
        idle = idle + 1 if now - last < 0.05 else 0
        last = now
        seen = smsc.submits()
        if (seen is not None and len(seen) >= accepted) or idle >= (3 if seen is None else 5):
            return time.perf_counter() - started, seen
    return float("inf"), seen


SUBMITTED = "SELECT count(*) FROM recipients WHERE status NOT IN ('pending', 'scheduled', 'queued')"


def submitted(engine: sa.Engine) -> int:
    """msgine's recipients handed to the carrier so far (their status is past queued)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(SUBMITTED)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:1401/send", help="Jasmin's /send")
    parser.add_argument("--username", required=True, help="a Jasmin user allowed http_send")
    parser.add_argument("--password", required=True)
    parser.add_argument("--smsc-control", default=None, help="the Node SMSC's control URL")
    parser.add_argument("--amqp-port", type=int, default=5672, help="RabbitMQ's, for its CPU")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jasmin-only", action="store_true", help="no msgine rounds")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="msgine as serve --no-worker beside a `msgine worker` process (both measured)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed")
    jasmin_port = urlsplit(args.url).port or 80
    jasmin_pid = listening_pid(jasmin_port)
    if jasmin_pid is None:
        raise SystemExit(f"nothing listens on port {jasmin_port}: start jasmind first")
    broker_pid = listening_pid(args.amqp_port)
    smsc = Smsc(args.smsc_control)
    ping_url = args.url.rsplit("/", 1)[0] + "/ping"

    data = Path(tempfile.mkdtemp(prefix="msgine-vs-jasmin-"))
    jasmin_lua = data / "jasmin.lua"
    auth = urlencode({"username": args.username, "password": args.password})
    jasmin_lua.write_text(JASMIN_LUA.replace("AUTH", auth.replace("\\", "\\\\")) + COUNTING_LUA)
    check = httpx.post(
        args.url,
        data={
            "username": args.username,
            "password": args.password,
            "to": "256701500000",
            "content": "Your code is 000000",
        },
    )
    if check.status_code != 200 or not check.text.startswith("Success "):
        raise SystemExit(f"Jasmin refused a send: {check.status_code} {check.text[:200]}")

    env = bench_env(data)
    proc = worker = None
    jasmin: list[dict[str, float]] = []
    msgine: list[dict[str, float]] = []
    healthz: list[dict[str, float]] = []
    pings: list[dict[str, float]] = []
    try:
        if not args.jasmin_only:
            key = bench_key(env)
            port = free_port()
            proc = start(env, port, args.worker_process)
            if args.worker_process:
                worker = start_worker(env)
            pids = [proc.pid] + ([worker.pid] if worker else [])

            def msgine_cpu() -> float:
                return sum(server_cpu(pid) for pid in pids)

            base = f"http://127.0.0.1:{port}"
            msgine_lua = data / "send.lua"
            msgine_lua.write_text(send_script(key))
            engine = sa.create_engine(f"sqlite:///{data / 'msgine.db'}")
            wrk(f"{base}/healthz", 2, args.connections, None)  # warm up
        wrk(ping_url, 2, args.connections, None)

        for number in range(1, args.rounds + 1):
            smsc.reset()
            before, broker = process_cpu(jasmin_pid), cpu(broker_pid)
            started = time.time()
            result = wrk(args.url, args.seconds, args.connections, jasmin_lua)
            loaded, ended = process_cpu(jasmin_pid), time.time()
            accepted = int(result.get("created", 0))
            result["drain"], seen = jasmin_drain(jasmin_pid, smsc, accepted)
            result["seen"] = -1 if seen is None else len(seen)
            if seen is not None:
                during = sum(1 for t in seen if t <= ended)
                result["out_rate"] = during / (ended - started)
            result["cpu_load"] = (loaded - before) / max(accepted, 1)
            result["cpu"] = (process_cpu(jasmin_pid) - before) / max(accepted, 1)
            result["broker_cpu"] = (cpu(broker_pid) - broker) / max(accepted, 1)
            jasmin.append(result)
            before = process_cpu(jasmin_pid)
            pings.append(wrk(ping_url, args.seconds, args.connections, None))
            pings[-1]["cpu"] = (process_cpu(jasmin_pid) - before) / max(pings[-1]["requests"], 1)
            line = f"round {number}  Jasmin {_send(result)}, {_cpu(result)}"
            if broker_pid:
                line += f" + RabbitMQ {result['broker_cpu'] * 1e6:.0f} us"
            print(line, flush=True)
            line = f"         Jasmin {_out(result)}"
            if result["seen"] >= accepted:
                line += f"; SMSC saw {result['seen']:.0f} submits for {accepted} accepted"
            print(line, flush=True)
            print(f"         Jasmin /ping   {_noop(pings[-1])}", flush=True)
            if args.jasmin_only:
                continue
            before, out = msgine_cpu(), submitted(engine)
            started = time.time()
            result = wrk(f"{base}/api/v1/messages/sms", args.seconds, args.connections, msgine_lua)
            loaded, ended = msgine_cpu(), time.time()
            result["out_rate"] = (submitted(engine) - out) / (ended - started)
            result["drain"] = wait_until_final(engine, timeout=600)
            created = max(int(result.get("created", 0)), 1)
            result["cpu_load"] = (loaded - before) / created
            result["cpu"] = (msgine_cpu() - before) / created
            msgine.append(result)
            before = msgine_cpu()
            healthz.append(wrk(f"{base}/healthz", args.seconds, args.connections, None))
            healthz[-1]["cpu"] = (msgine_cpu() - before) / max(healthz[-1]["requests"], 1)
            print(f"         msgine {_send(result)}, {_cpu(result)}", flush=True)
            print(f"         msgine {_out(result)}", flush=True)
            print(f"         msgine /healthz {_noop(healthz[-1])}", flush=True)
            print(
                f"         msgine / Jasmin: {_accepted(result) / _accepted(jasmin[-1]):.0%} "
                f"of the sends/s; Jasmin's CPU per send {jasmin[-1]['cpu'] / result['cpu']:.2f}x "
                "msgine's (RabbitMQ's not counted)",
                flush=True,
            )
        if proc is not None:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
            engine.dispose()
    finally:
        for process in (worker, proc):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)

    print()
    print(
        f"load                : wrk, {args.connections} connections, {args.rounds} x "
        f"{args.seconds} s per side, alternating; medians of the rounds"
    )
    _summary("Jasmin /send", jasmin, "200 Success")
    if broker_pid:
        broker = statistics.median(r["broker_cpu"] for r in jasmin)
        print(f"                      + RabbitMQ {broker * 1e6:.0f} us CPU per accepted send")
    _summary("Jasmin /ping", pings, None)
    if args.jasmin_only:
        return
    _summary("msgine send", msgine, "201")
    _summary("msgine /healthz", healthz, None)
    created = sum(int(r.get("created", 0)) for r in msgine)
    print(
        f"msgine stored       : {stored} messages for {created} 201s "
        f"({'OK' if stored >= created else 'LOST'})"
    )
    ratios = [_accepted(m) / _accepted(j) for m, j in zip(msgine, jasmin, strict=True)]
    print(
        f"msgine / Jasmin     : {statistics.median(ratios):.0%} median of the rounds' send "
        f"rates ({', '.join(f'{r:.0%}' for r in ratios)})"
    )


def _accepted(result: dict[str, float]) -> float:
    """Accepted sends/s: wrk's rate of the successful answers only."""
    return result.get("created", 0) / max(result["requests"], 1) * result["rate"]


def _send(result: dict[str, float]) -> str:
    refused = result["requests"] - result.get("created", 0)
    return (
        f"{_accepted(result):6.0f} sends/s "
        f"(of {result['rate']:.0f} req/s, {refused:.0f} not accepted)  p99 {result['p99']:.1f} ms"
    )


def _out(result: dict[str, float]) -> str:
    """How fast sends left for the carrier during the load, and how long the rest took."""
    rate = result.get("out_rate")
    during = "" if rate is None else f"handed {rate:.0f}/s to the carrier during the load; "
    if 0 <= result.get("seen", -1) < result.get("created", 0):
        return (
            f"{during}only {result['seen']:.0f} of {result['created']:.0f} reached the SMSC "
            f"(it was idle {result['drain']:.0f} s after the load)"
        )
    if result.get("seen", -1) < 0 and rate is None:  # no SMSC to count: jasmind's CPU told
        return f"busy {max(result['drain'] - 3, 0):.0f} s after the load (delivering), then idle"
    return f"{during}the rest delivered in {result['drain']:.1f} s after it"


def _cpu(result: dict[str, float]) -> str:
    return (
        f"CPU {result['cpu'] * 1e6:.0f} us per send "
        f"({result['cpu_load'] * 1e6:.0f} us during the load)"
    )


def _noop(result: dict[str, float]) -> str:
    return (
        f"{result['rate']:6.0f} req/s  p99 {result['p99']:.1f} ms  "
        f"CPU {result['cpu'] * 1e6:.0f} us per request"
    )


def _summary(name: str, results: list[dict[str, float]], accepted: str | None) -> None:
    rate = statistics.median(_accepted(r) if accepted else r["rate"] for r in results)
    p99 = statistics.median(r["p99"] for r in results)
    cpu = statistics.median(r["cpu"] for r in results)
    unit = "accepted send" if accepted else "request"
    rounds = ", ".join(f"{_accepted(r) if accepted else r['rate']:.0f}" for r in results)
    print(
        f"{name:20}: {rate:.0f}/s  p99 {p99:.1f} ms  CPU {cpu * 1e6:.0f} us per {unit}"
        f"{f' ({accepted} only)' if accepted else ''}   (rounds: {rounds})"
    )
    out = [r["out_rate"] for r in results if "out_rate" in r]
    if out:
        print(f"{'':20}  handed to the carrier during the load: {statistics.median(out):.0f}/s")


if __name__ == "__main__":
    main()
