"""Test support for the provider client: scripted raw TCP servers, a parser harness, a private CA (made
with ``cryptography``), a TLS server context signed by it, and a local HTTP proxy (CONNECT tunnels and
absolute-form forwarding, optional Basic auth)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy.upstream.client import UpstreamResponse
from proxy.upstream.connection import Connection
from proxy.upstream.egress import DEFAULT_EGRESS, Egress
from proxy.upstream.origin import PoolKey


@dataclass(slots=True)
class PrivateCA:
    """A CA and certificates it signed, as PEM files in ``folder``."""

    folder: Path
    ca_file: Path = field(init=False)
    _key: ec.EllipticCurvePrivateKey = field(init=False)
    _cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "efflux test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self.folder / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, client: bool = False) -> tuple[Path, Path]:
        """A certificate for ``name`` (and 127.0.0.1) signed by this CA, and its key: (cert, key) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = f"{name}-client" if client else name
        cert_path, key_path = self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    def server_context(self, name: str = "localhost", *, client_ca: bool = False) -> ssl.SSLContext:
        """A server's TLS context with a certificate for ``name``; ``client_ca``: clients must present a
        certificate this CA signed."""
        cert, key = self.issue(name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca_file))
        return context


class HTTPProxy:
    """A forward proxy on 127.0.0.1: ``CONNECT host:port`` opens a tunnel; an absolute-form request is
    forwarded to its origin (and the rest of the connection piped there); ``names`` resolves host names only
    the proxy knows. With ``credentials``
    (``user:pass``), a request without the matching ``Proxy-Authorization: Basic`` gets 407."""

    def __init__(self, credentials: str | None = None, names: dict[str, str] | None = None) -> None:
        self.credentials = credentials
        self.names = names or {}  # host name -> address, resolved by the proxy only
        self.heads: list[bytes] = []  # each request head the proxy read (CONNECT or absolute form)
        self.tunnels = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> HTTPProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, credentials: str | None = None) -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if self.credentials is not None and not self._authorized(head):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                host = self.names.get(host, host.strip("[]"))
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                self.tunnels += 1
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                parts = urlsplit(target)
                assert parts.hostname is not None
                up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
                kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"proxy-")]
                up_writer.write(b"\r\n".join(kept))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except asyncio.CancelledError:  # stopped: the test is over
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def _authorized(self, head: bytes) -> bool:
        assert self.credentials is not None
        expected = base64.b64encode(self.credentials.encode())
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, token = value.strip().partition(b" ")
                return scheme.lower() == b"basic" and token == expected
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A TCP (or, with ``ssl_context``, TLS) server running ``script(reader, writer, connection_number)``
    per connection; it keeps the raw requests it read (``read_request``) so tests can check what was sent."""

    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """Plain: by address; TLS: by the name the test certificates carry."""
        if self.ssl_context is None:
            return f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return f"https://localhost:{self.port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the test is over and the loop is closing
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def read_request(reader: asyncio.StreamReader, server: RawServer | None = None) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    if server is not None:
        server.requests.append(head + body)
    return head + body


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{h}\r\n" for h in extra) + "\r\n").encode() + body


def chunked(*pieces: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in pieces:
        out += f"{len(p):x}\r\n".encode() + p + b"\r\n"
    return out + b"0\r\n\r\n"


async def serve(script: Script, ssl_context: ssl.SSLContext | None = None) -> RawServer:
    return await RawServer(script, ssl_context).start()


async def answering(body: bytes, ssl_context: ssl.SSLContext | None = None) -> RawServer:
    """A server answering every request with ``body``, connections kept open (requests recorded)."""
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(r, server)
            w.write(answer(body))
            await w.drain()

    server = await serve(script, ssl_context)
    return server


class _NoPool:
    """A parsed answer has no connection to give back (a real client would load the CA store: slow)."""

    def put_back(self, key: PoolKey, conn: Connection, now: float) -> None:
        raise AssertionError("a parsed answer has no connection")


_NO_POOL = _NoPool()


def parse(raw: bytes, splits: list[int], egress: Egress = DEFAULT_EGRESS) -> tuple[UpstreamResponse, bytes]:
    """Feed ``raw`` to a response in pieces cut at ``splits``, collecting the body as it is decoded."""
    loop = asyncio.get_running_loop()
    response = UpstreamResponse(_NO_POOL, None, ("http", "x", 80, "", None), loop, None, None, egress)
    body = b""
    start = 0
    for cut in [*splits, len(raw)]:
        response.feed(raw[start:cut])
        start = cut
        if response._chunks:
            body += response._take()
    return response, body
