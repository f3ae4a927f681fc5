"""Every request this service makes to an address a client registered (``jwks_uri``, back-channel
logout): one mechanism, so each rule holds on every path (security.md "server-side request forgery").

* Destinations: the host is resolved once and every address it resolves to must be public
  (``ipaddress`` ``is_global``, not multicast, no non-public IPv4 address embedded in an IPv6 one);
  loopback only where ``Settings.outbound_loopback_allowed`` (development). The connection goes to
  an address that was checked, never through a second lookup, so DNS rebinding has no gap to use.
* https only (http to loopback in development); no redirects (a 3xx is a failure); one total
  deadline of ``DEADLINE_SECONDS`` for the lookup, connection, TLS and response together; at most
  ``MAX_BODY_BYTES`` of body.
* At most ``MAX_OPERATIONS`` at once per process, and nobody waits for a slot: with none free the
  caller gets :class:`OutboundBusy` at once (a 503 with Retry-After). So a slow destination holds at
  most ``MAX_OPERATIONS`` threads, each for at most ``DEADLINE_SECONDS``, whatever the request rate.

Each operation runs in a short-lived thread of its own that holds the slot; the caller waits for it
until the deadline, then shuts its socket down so that the thread ends too. Only a name lookup
cannot be interrupted: its thread keeps the slot until the system resolver gives up.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, Generic, TypeVar
from urllib.parse import SplitResult, urlencode, urlsplit

from idp.config import Settings

log = logging.getLogger(__name__)

DEADLINE_SECONDS: Final = 3.0
MAX_BODY_BYTES: Final = 64 * 1024  # a JWK Set of a dozen RSA keys is ~6 KiB
MAX_OPERATIONS: Final = 2  # per process; gunicorn runs 4 threads per worker (idp/gunicorn_conf.py)
RETRY_AFTER_SECONDS: Final = 1
DEFAULT_PORTS: Final = {"https": 443, "http": 80}
NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1
IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1 (deprecated)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")
_slots = threading.BoundedSemaphore(MAX_OPERATIONS)
_tls = ssl.create_default_context()


class OutboundError(Exception):
    """An outbound request that was refused or failed; the message is safe to show the client."""


class DestinationRefused(OutboundError):
    """The URL's scheme, host or resolved addresses are not a destination we may reach."""


class FetchFailed(OutboundError):
    """The destination did not answer usably: unreachable, too slow, too large, or redirected."""


class OutboundBusy(OutboundError):
    """Every outbound slot of this process is taken; try again in ``RETRY_AFTER_SECONDS``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DestinationPolicy:
    allow_loopback: bool
    production: bool  # https only; at registration, a host name must resolve

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationPolicy:
        return cls(allow_loopback=settings.outbound_loopback_allowed, production=settings.is_production)


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def fetch(url: str, policy: DestinationPolicy, *, form: Mapping[str, str] | None = None) -> Reply:
    """GET ``url``, or POST ``form`` to it (application/x-www-form-urlencoded), under every rule above."""
    parts, port = parse(url)
    return _bounded(lambda operation: _exchange(operation, parts, port, policy, form))


def check_registered_uri(url: str, policy: DestinationPolicy) -> None:
    """Refuse at registration a URI that would be refused at fetch time. A name that does not resolve
    is refused in production; in development (offline, ``.example`` names) fetch time decides."""
    parts, port = parse(url)
    try:
        addresses = _bounded(lambda _operation: _resolve(parts, port))
    except FetchFailed:
        if policy.production:
            raise DestinationRefused("names a host that does not resolve") from None
        return
    check_addresses(parts.scheme, addresses, policy)


def parse(url: str) -> tuple[SplitResult, int]:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        raise DestinationRefused("is not a valid URL") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        raise DestinationRefused("must be an https URL with a host and no user name or password")
    if parts.fragment:
        raise DestinationRefused("must not have a fragment")
    return parts, port


def check_addresses(scheme: str, addresses: tuple[Address, ...], policy: DestinationPolicy) -> None:
    if not all(is_public(address) or (policy.allow_loopback and is_loopback(address)) for address in addresses):
        raise DestinationRefused("resolves to an address that is not public")
    if scheme == "http" and (policy.production or not all(map(is_loopback, addresses))):
        raise DestinationRefused("must use https (http only to loopback, in development)")


def is_public(address: Address) -> bool:
    embedded = _embedded_ipv4(address)
    if embedded is not None and not is_public(embedded):
        return False
    return address.is_global and not address.is_multicast


def is_loopback(address: Address) -> bool:
    embedded = _embedded_ipv4(address)
    return address.is_loopback or (embedded is not None and embedded.is_loopback)


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: RFC 4291 §2.5.5 (mapped, compatible), RFC 3056 (6to4),
    RFC 6052 (NAT64), so ``::ffff:10.0.0.1`` is judged as ``10.0.0.1``."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in NAT64 or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# --- one operation, in its own thread, within the deadline ----------------------------------

class _Operation(Generic[T]):
    """Runs ``work`` in a thread that holds one slot until it ends, whatever the caller does."""

    def __init__(self, work: Callable[[_Operation[T]], T]) -> None:
        self.work, self.deadline = work, time.monotonic() + DEADLINE_SECONDS
        self.done, self.lock = threading.Event(), threading.Lock()
        self.cancelled = False
        self.sockets: list[socket.socket] = []
        self.result: T | None = None
        self.error: OutboundError | None = None

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.cancelled:
            raise FetchFailed(f"did not answer within {DEADLINE_SECONDS:g} seconds")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Keep a duplicate of the socket: shutting it down ends a blocked read from another thread."""
        with self.lock:
            if self.cancelled:
                sock.close()
                raise FetchFailed(f"did not answer within {DEADLINE_SECONDS:g} seconds")
            self.sockets.append(sock.dup())

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            for sock in self.sockets:
                _shut_down(sock)

    def run(self) -> None:
        try:
            self.result = self.work(self)
        except OutboundError as error:
            self.error = error
        except TimeoutError:  # a socket timeout: set from the deadline's remaining time
            self.error = FetchFailed(f"did not answer within {DEADLINE_SECONDS:g} seconds")
        except (OSError, http.client.HTTPException, ValueError) as error:
            self.error = FetchFailed(f"could not be fetched ({type(error).__name__})")
        except Exception:  # noqa: BLE001 - the thread must always report and free its slot
            log.exception("outbound request failed unexpectedly")
            self.error = FetchFailed("could not be fetched")
        finally:
            with self.lock:
                for sock in self.sockets:
                    sock.close()
            _slots.release()
            self.done.set()


def _bounded(work: Callable[[_Operation[T]], T]) -> T:
    if not _slots.acquire(blocking=False):
        raise OutboundBusy("too many outbound requests in progress")
    operation = _Operation(work)
    try:
        threading.Thread(target=operation.run, name="idp-outbound", daemon=True).start()
    except RuntimeError:
        _slots.release()
        raise OutboundBusy("no thread for the outbound request") from None
    if not operation.done.wait(DEADLINE_SECONDS):
        operation.cancel()
        raise FetchFailed(f"did not answer within {DEADLINE_SECONDS:g} seconds")
    if operation.error is not None:
        raise operation.error
    return operation.result  # type: ignore[return-value]  # set whenever error is None


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to interrupt


# --- the exchange ---------------------------------------------------------------------------

def _resolve(parts: SplitResult, port: int) -> tuple[Address, ...]:
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchFailed("names a host that does not resolve") from None
    return tuple(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos))


def _exchange(operation: _Operation[Reply], parts: SplitResult, port: int, policy: DestinationPolicy,
              form: Mapping[str, str] | None) -> Reply:
    addresses = _resolve(parts, port)
    check_addresses(parts.scheme, addresses, policy)
    connection = _PinnedConnection(parts, port, _connect(operation, addresses, port))
    try:
        _send(connection, parts, port, form)
        with connection.getresponse() as response:
            return _read(operation, response)
    finally:
        connection.close()


def _connect(operation: _Operation[Reply], addresses: tuple[Address, ...], port: int) -> socket.socket:
    """Connect to the first checked address that answers, never to a name looked up again."""
    last: OSError = ConnectionError("no address")
    for address in addresses:
        try:
            sock = socket.create_connection((str(address), port), timeout=operation.remaining())
        except OSError as error:
            last = error
            continue
        operation.watch(sock)
        return sock
    raise last


def _send(connection: _PinnedConnection, parts: SplitResult, port: int, form: Mapping[str, str] | None) -> None:
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else str(parts.hostname)
    headers = {"Host": host if port == DEFAULT_PORTS[parts.scheme] else f"{host}:{port}",
               "Accept": "application/json", "Connection": "close", "User-Agent": "idp-outbound"}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if form is None:
        connection.request("GET", target, headers=headers)
        return
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request("POST", target, body=urlencode(form).encode(), headers=headers)


def _read(operation: _Operation[Reply], response: http.client.HTTPResponse) -> Reply:
    if 300 <= response.status < 400:
        raise FetchFailed(f"answered with a redirect (HTTP {response.status}), which is not followed")
    operation.remaining()
    body = response.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise FetchFailed(f"answered with more than {MAX_BODY_BYTES} bytes")
    return Reply(status=response.status, body=body)


class _PinnedConnection(http.client.HTTPConnection):
    """http.client over a socket already connected to a checked address (TLS verified for the host)."""

    def __init__(self, parts: SplitResult, port: int, sock: socket.socket) -> None:
        super().__init__(str(parts.hostname), port)
        self.sock = _tls.wrap_socket(sock, server_hostname=parts.hostname) if parts.scheme == "https" else sock

    def connect(self) -> None:
        raise FetchFailed("closed the connection")  # never reconnect: that would look the name up again
