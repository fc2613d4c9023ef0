"""One SMPP bind: an asyncio connection, its window, its timers.

Why not ``smpp34``'s own client session (the fastest one measured): it acknowledges every
inbound ``deliver_sm`` itself, before the application sees it, so a crash between that
acknowledgement and our commit would lose a receipt or an MO message the SMSC will never send
again; a refused bind surfaces only as a timeout, without its command status; and its TLS
trusts only the process-wide store, so a carrier's own CA cannot be configured. This session is
small (its codec is still ``smpp34``'s for submit_sm and deliver_sm) and answers a deliver_sm
only after the handler returns, that is after the receipt or message is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import smpp34

from msgine.server.carriers.smpp import _pdu
from msgine.server.carriers.smpp._options import SmppCredentials, SmppOptions
from msgine.server.carriers.smpp._status import command_status

#: Bytes waiting in the socket's buffer past which a sender waits for it to drain.
_HIGH_WATER = 256 * 1024

#: Called with each deliver_sm; returns the command status to answer it with.
DeliverHandler = Callable[[smpp34.DeliverSm], Awaitable[int]]


class SessionClosed(Exception):
    """The bind ended (dropped, unbound, timed out) before a response came. ``sent`` tells
    whether the request had been written: if so, the SMSC may have acted on it."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__("sent" if sent else "not sent")
        self.sent = sent


class BindRefused(Exception):
    """The SMSC answered the bind with an error status (its name is the message)."""

    def __init__(self, status: int) -> None:
        super().__init__(command_status(status).name)
        self.status = status


@dataclass(frozen=True)
class SubmitResponse:
    status: int
    message_id: str


def tls_context(options: SmppOptions) -> ssl.SSLContext:
    """Verify the SMSC's certificate and name, against ``ca_bundle`` when set."""
    context = ssl.create_default_context(
        cafile=str(options.ca_bundle) if options.ca_bundle else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Session:
    """A bound connection. ``open`` binds (raising :class:`BindRefused` with the SMSC's status);
    ``submit`` sends one submit_sm within the window; ``closed`` completes when the bind ends."""

    def __init__(
        self,
        options: SmppOptions,
        credentials: SmppCredentials,
        kind: str,
        on_deliver: DeliverHandler,
    ) -> None:
        self.kind = kind
        self._options = options
        self._credentials = credentials
        self._on_deliver = on_deliver
        self._window = asyncio.Semaphore(options.window)
        # Requests awaiting their response, oldest first (dicts keep insertion order), with
        # the loop time each was sent.
        self._waiting: dict[int, tuple[asyncio.Future[tuple[int, bytes]], float]] = {}
        self._out: list[bytes] = []
        self._sequence = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed: asyncio.Event = asyncio.Event()
        self.in_flight = 0

    def __repr__(self) -> str:
        return f"Session(kind={self.kind!r}, in_flight={self.in_flight})"

    @property
    def can_submit(self) -> bool:
        return self.kind != "receiver" and not self.closed.is_set()

    async def open(self) -> None:
        options = self._options
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    options.host,
                    options.port,
                    ssl=tls_context(options) if options.tls else None,
                    limit=_pdu.MAX_PDU_LENGTH,
                ),
                options.connect_timeout,
            )
        except BaseException:
            self.closed.set()
            raise
        self._spawn(self._read_loop())
        self._spawn(self._watch())
        try:
            status, _ = await self._request(
                _pdu.BIND_COMMANDS[self.kind],
                lambda seq: _pdu.bind(
                    self.kind,
                    seq,
                    self._credentials.system_id,
                    self._credentials.password.get_secret_value(),
                    options.system_type,
                ),
            )
        except BaseException:
            await self.close()
            raise
        if status != 0:
            await self.close()
            raise BindRefused(status)
        self._spawn(self._enquire_loop())

    async def submit(self, pdu: bytes) -> SubmitResponse:
        """Send an encoded submit_sm (its sequence number is ours to set) and wait for its
        response."""
        async with self._window:
            self.in_flight += 1
            try:
                status, body = await self._request(
                    _pdu.SUBMIT_SM, lambda seq: _with_sequence(pdu, seq)
                )
            finally:
                self.in_flight -= 1
        return SubmitResponse(status, _pdu.first_c_string(body))

    async def close(self, *, unbind: bool = False) -> None:
        """End the bind; an orderly ``unbind`` first when asked (and still connected)."""
        if unbind and not self.closed.is_set() and self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._request(_pdu.UNBIND, lambda seq: _pdu.pdu(_pdu.UNBIND, seq)),
                    min(self._options.response_timeout, 2.0),
                )
        self._teardown()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals -----------------------------------------------------------------------------

    def _teardown(self) -> None:
        self.closed.set()
        if self._writer is not None:
            self._writer.close()
        waiting, self._waiting = self._waiting, {}
        for waiter, _ in waiting.values():
            if not waiter.done():
                waiter.set_exception(SessionClosed(sent=True))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    async def _request(self, command_id: int, build: Callable[[int], bytes]) -> tuple[int, bytes]:
        """Send a request PDU and wait for its response: (command status, response body).

        The response timeout is kept by one watchdog per session (``_watch``), not a timer per
        request: at thousands of requests a second the timers cost more than the PDUs."""
        if self.closed.is_set() or self._writer is None:
            raise SessionClosed(sent=False)
        sequence = self._next_sequence()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self._waiting[sequence] = (waiter, loop.time())
        try:
            self._send(build(sequence))
            if self._writer.transport.get_write_buffer_size() > _HIGH_WATER:
                await self._writer.drain()
            return await waiter
        except ConnectionError:
            self._teardown()
            raise SessionClosed(sent=True) from None
        finally:
            self._waiting.pop(sequence, None)

    def _send(self, data: bytes) -> None:
        """Queue a PDU; the PDUs queued in one turn of the event loop leave in one write (one
        system call instead of one per PDU)."""
        if self._writer is None or self.closed.is_set():
            return
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._writer is not None and not self.closed.is_set():
            self._writer.write(b"".join(out))

    async def _watch(self) -> None:
        """Drop the bind when its oldest request has waited longer than ``response_timeout``:
        an SMSC that stops answering is as good as gone, so rebind rather than wait on it."""
        timeout = self._options.response_timeout
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            oldest = next(iter(self._waiting.values()), None)
            if oldest is not None and loop.time() - oldest[1] > timeout:
                self._teardown()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), min(timeout / 4, 1.0))

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                head = _pdu.parse_header(await self._reader.readexactly(_pdu.HEADER.size))
                body = await self._reader.readexactly(head.length - _pdu.HEADER.size)
                self._dispatch(head, body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, _pdu.PduError):
            pass
        finally:
            self._teardown()

    def _dispatch(self, head: _pdu.Header, body: bytes) -> None:
        if head.command_id & _pdu.RESPONSE:
            waiting = self._waiting.get(head.sequence)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result((head.status, body))
            return
        if head.command_id == _pdu.ENQUIRE_LINK:
            self._send(_pdu.response(_pdu.ENQUIRE_LINK, head.sequence))
        elif head.command_id == _pdu.DELIVER_SM:
            raw = _pdu.HEADER.pack(head.length, head.command_id, head.status, head.sequence) + body
            self._spawn(self._deliver(head.sequence, raw))
        elif head.command_id == _pdu.UNBIND:
            self._send(_pdu.response(_pdu.UNBIND, head.sequence))
            self._flush()  # the answer leaves before the connection closes
            self._teardown()
        else:
            self._send(_pdu.generic_nack(head.sequence, _pdu.ESME_RINVCMDID))

    async def _deliver(self, sequence: int, raw: bytes) -> None:
        """Hand a deliver_sm to the handler; answer only once it returned (stored)."""
        try:
            deliver = _pdu.decode_deliver_sm(raw)
        except _pdu.PduError:
            self._send(_pdu.deliver_sm_resp(sequence, _pdu.ESME_RSYSERR))
            return
        try:
            status = await self._on_deliver(deliver)
        except Exception:
            # Not stored: a temporary error makes the SMSC deliver it again later.
            status = _pdu.ESME_RX_T_APPN
        self._send(_pdu.deliver_sm_resp(sequence, status))

    async def _enquire_loop(self) -> None:
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), self._options.enquire_link_interval)
                return
            try:
                await self._request(_pdu.ENQUIRE_LINK, lambda seq: _pdu.pdu(_pdu.ENQUIRE_LINK, seq))
            except SessionClosed:
                return


def _with_sequence(pdu: bytes, sequence: int) -> bytes:
    """The encoded PDU with ``sequence`` written into its header (bytes 12-15)."""
    return pdu[:12] + sequence.to_bytes(4, "big") + pdu[16:]
