"""Amazon ECR as far as it can run here: its API is moto_server's (repositories, the login from
`get_authorization_token`), and its registry host, `<account>.dkr.ecr.<region>.amazonaws.com`,
is a real docker-registry behind TLS and a password, reached through a local HTTPS proxy.

Every client involved finds the host the way it would find the real one: buildah and the Python
registry calls go through HTTPS_PROXY (a CONNECT tunnel to the local registry) and trust a test
certificate authority (SSL_CERT_FILE for Go, REQUESTS_CA_BUNDLE for requests); boto3 reaches
moto_server through AWS_ENDPOINT_URL, past the proxy (NO_PROXY)."""

from __future__ import annotations

import datetime
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.servers import docker_registry, htpasswd_line

ACCOUNT, REGION = "123456789012", "us-east-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# moto's get_authorization_token answers AWS:<account>-auth-token.
PASSWORD = f"{ACCOUNT}-auth-token"


def _certificates(directory: Path, hostname: str) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for `hostname`, in PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "migration_pipeline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Tunnel(socketserver.BaseRequestHandler):
    """`CONNECT <host>:443` to the one address the proxy serves; anything else is refused."""

    server: _ConnectProxy

    def handle(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            request += chunk
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT" or target != f"{self.server.host}:443":
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        self.server.tunnels.append(target)
        with socket.create_connection(self.server.upstream) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.request else self.request).sendall(data)


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, upstream: tuple[str, int]):
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.host, self.upstream = host, upstream
        self.tunnels: list[str] = []


@contextmanager
def ecr_registry(root: Path) -> Iterator[dict[str, str]]:
    """The ECR registry host on loopback: yields the environment that leads every client to
    it (set it with moto_server's)."""
    ca, certificate, key = _certificates(root / "tls", HOST)
    with docker_registry(
        root / "registry", htpasswd=htpasswd_line("AWS", PASSWORD), tls=(certificate, key)
    ) as address:
        host, port = address.rsplit(":", 1)
        proxy = _ConnectProxy(HOST, (host, int(port)))
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
            yield {
                "HTTPS_PROXY": proxy_url,
                "https_proxy": proxy_url,
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "SSL_CERT_FILE": str(ca),
                "REQUESTS_CA_BUNDLE": str(ca),
            }
        finally:
            proxy.shutdown()
            proxy.server_close()
