"""CurveZMQ: key files, per-connection CURVE settings and the ZAP authenticator.

A socket that binds is the CURVE server: it holds its own key pair, and pyzmq's ZAP
authenticator admits only the client public keys found in its ``allowed_clients``
directory. A socket that connects is a CURVE client: its own key pair plus the server's
public key. Keys are z85 text, in the certificate files `zmq.auth.create_certificates`
writes (``NAME.key`` public, ``NAME.key_secret`` both halves).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import zmq
import zmq.auth
from zmq.utils import z85

from ..errors import ConfigError

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

    from .addresses import Endpoint

__all__ = [
    "AllowedKeys",
    "CurveKeys",
    "configure",
    "create_keys",
    "load_curve",
    "start_authenticator",
    "stop_authenticator",
]

LOG = logging.getLogger("zmqservice.security")
FIELDS = ("secret_key", "allowed_clients", "server_key")
SERVER_FIELDS = ("secret_key", "allowed_clients")
CLIENT_FIELDS = ("secret_key", "server_key")
TRANSPORTS = ("tcp", "ipc")
"""Transports with a ZMTP handshake: inproc and multicast would silently skip CURVE."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_Z85 = frozenset(z85.Z85CHARS)


@attrs.define(frozen=True)
class CurveKeys:
    """One connection's CURVE keys (z85 bytes), loaded and checked at startup.

    Attributes:
        public_key: this socket's own public key.
        secret_key: this socket's own secret key (left out of the repr).
        domain: the ZAP domain a server socket authenticates under.
        server_key: a client's view of the server's public key; None on a server.
        allowed_clients: a server's directory of client ``*.key`` files; None on a client.
        client_keys: the public keys found there at startup.
    """

    public_key: bytes
    secret_key: bytes = attrs.field(repr=False)
    domain: str
    server_key: bytes | None = None
    allowed_clients: Path | None = None
    client_keys: frozenset[bytes] = frozenset()

    @property
    def server(self) -> bool:
        """True for the binding side, which authenticates clients."""
        return self.allowed_clients is not None


# -- key files ----------------------------------------------------------------------------


def create_keys(directory: str | Path, name: str = "zmqservice") -> tuple[Path, Path]:
    """Write a new key pair: ``NAME.key`` (public) and ``NAME.key_secret`` (mode 0600).

    Existing files are never overwritten: peers may already trust that key.

    Returns:
        The public and secret file paths.

    Raises:
        ConfigError: `directory` is not a writable directory, `name` is not a plain file
            name, or a file of that name exists.
    """
    folder = Path(directory)
    if not _NAME.match(name):
        raise ConfigError(f"key name {name!r}: use letters, digits, '.', '_' or '-'")
    if not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise ConfigError(f"key directory {str(folder)!r} {problem}")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    made: list[Path] = []
    try:
        # Create both files exclusively first, the secret one 0600 from its first byte;
        # pyzmq then fills them in place (open "w" keeps the mode).
        for path, mode in ((secret, 0o600), (public, 0o644)):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            made.append(path)
        os.chmod(secret, 0o600)
        zmq.auth.create_certificates(folder, name)
    except OSError as exc:
        for path in made:
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise ConfigError(
                f"{exc.filename} already exists; remove it or choose another --name"
            ) from None
        raise ConfigError(f"cannot write keys in {str(folder)!r}: {exc.strerror or exc}") from None
    return public, secret


def _read_certificate(path: Path, key: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        problem = "is not a file" if path.exists() else "no such file"
        raise ConfigError(f"{key}: {problem}: {str(path)!r}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(
            f"{key}: {str(path)!r} is not a CURVE key file (no public-key; "
            "make one with `zmqservice keygen`)"
        ) from None
    except IndexError:  # pyzmq splits a "public-key" / "secret-key" line at its "="
        raise ConfigError(
            f"{key}: {str(path)!r} is not a CURVE key file (a public-key or secret-key line "
            "without '='; make one with `zmqservice keygen`)"
        ) from None
    for half, value in (("public-key", public), ("secret-key", secret)):
        if value is not None and not _is_z85_key(value):
            raise ConfigError(f"{key}: {str(path)!r} has a malformed {half}")
    return public, secret


def _is_z85_key(value: bytes) -> bool:
    if len(value) != 40 or not set(value) <= _Z85:
        return False
    try:
        return len(z85.decode(value)) == 32
    except Exception:  # struct.error for chunks over 2**32
        return False


def _load_secret(path: Path, key: str) -> tuple[bytes, bytes]:
    public, secret = _read_certificate(path, key)
    if secret is None:
        raise ConfigError(
            f"{key}: {str(path)!r} holds no secret-key; give the NAME.key_secret file"
        )
    if zmq.curve_public(secret) != public:
        raise ConfigError(f"{key}: {str(path)!r}: its public-key does not match its secret-key")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        LOG.warning("%s: %s is readable by others (mode %o); chmod 600 it", key, path, mode & 0o777)
    return public, secret


def _load_public(path: Path, key: str) -> bytes:
    public, secret = _read_certificate(path, key)
    if secret is not None:
        raise ConfigError(
            f"{key}: {str(path)!r} holds a secret-key; give the public NAME.key file only"
        )
    return public


def _load_allowed(folder: Path, key: str) -> frozenset[bytes]:
    if not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "no such directory"
        raise ConfigError(f"{key}: {problem}: {str(folder)!r}")
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise ConfigError(f"{key}: cannot list {str(folder)!r}: {exc.strerror or exc}") from None
    secrets = [n for n in names if n.endswith(".key_secret")]
    if secrets:
        raise ConfigError(
            f"{key}: {str(folder)!r} holds secret key files ({', '.join(secrets)}); "
            "it must hold only client public *.key files"
        )
    keys = frozenset(_load_public(folder / n, key) for n in names if n.endswith(".key"))
    if not keys:
        raise ConfigError(
            f"{key}: no client public keys (*.key) in {str(folder)!r}: no client could connect"
        )
    return keys


# -- addresses ------------------------------------------------------------------------------


def load_curve(
    spec: Any,
    default: Mapping[str, Any] | None,
    *,
    bind: bool,
    url: str,
    domain: str,
    key: str,
    base: Path,
) -> CurveKeys | None:
    """Check one connection's ``"curve"`` entry, merged over the top-level one; load its keys.

    Args:
        spec: the connection's ``"curve"`` value: a mapping, ``False`` (plain), or
            `MISSING` when absent (then the top-level `default`, if any, applies).
        default: the addresses file's top-level ``"curve"`` mapping, or None.
        bind: the socket binds (CURVE server) or connects (client).
        url: the resolved endpoint (CURVE needs tcp:// or ipc://).
        domain: the ZAP domain of a server socket.
        key: how messages name the entry: ``addresses.in.cancel_order.curve``.
        base: the folder relative key paths start from.

    Raises:
        ConfigError: naming the offending key, for any missing, unreadable or malformed
            key file or directory, or a field that does not fit the socket's role.
    """
    if spec is MISSING:
        if default is None:
            return None
        spec = {}
    if spec is False:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{key}: expected an object of key files (or false for a plain connection), "
            f"got {spec!r}"
        )
    _check_fields(spec, key)
    fields = SERVER_FIELDS if bind else CLIENT_FIELDS
    role = "binds, so it is the CURVE server" if bind else "connects, so it is a CURVE client"
    for name in FIELDS:
        if name in spec and name not in fields:
            raise ConfigError(
                f"{key}.{name}: this connection {role}; it takes {' and '.join(fields)}"
            )
    paths: dict[str, Path] = {}
    names: dict[str, str] = {}
    for name in fields:
        value = spec[name] if name in spec else (default or {}).get(name)
        names[name] = f"{key}.{name}" if name in spec else f"addresses.curve.{name}"
        if value is None:
            raise ConfigError(
                f"{key}.{name}: missing; this connection {role}, which needs {' and '.join(fields)}"
            )
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise ConfigError(f"{names[name]}: expected a file path, got {value!r}")
        paths[name] = base / Path(value).expanduser()
    scheme = url.partition("://")[0]
    if scheme not in TRANSPORTS:
        raise ConfigError(
            f"{key}: CURVE needs a tcp:// or ipc:// address, not {url!r} "
            f"({scheme} has no handshake to secure)"
        )
    if not zmq.has("curve"):
        raise ConfigError(f"{key}: this libzmq was built without CURVE (zmq.has('curve'))")
    public, secret = _load_secret(paths["secret_key"], names["secret_key"])
    if bind:
        folder = paths["allowed_clients"]
        clients = _load_allowed(folder, names["allowed_clients"])
        return CurveKeys(public, secret, domain, allowed_clients=folder, client_keys=clients)
    server_key = _load_public(paths["server_key"], names["server_key"])
    return CurveKeys(public, secret, domain, server_key=server_key)


def check_default(spec: Any) -> Mapping[str, Any] | None:
    """Check the addresses file's top-level ``"curve"`` entry (None when absent)."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(f"addresses.curve: expected an object of key files, got {spec!r}")
    _check_fields(spec, "addresses.curve")
    return spec


def _check_fields(spec: Mapping[str, Any], key: str) -> None:
    unknown = sorted(str(name) for name in spec if name not in FIELDS)
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: unknown CURVE field; the fields are {', '.join(FIELDS)}"
        )


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""`load_curve`'s `spec` when a connection has no ``"curve"`` entry."""


# -- sockets ------------------------------------------------------------------------------


def configure(sock: zmq.Socket[bytes], endpoint: Endpoint) -> None:
    """Set an endpoint's CURVE options on `sock`; call it before bind or connect."""
    curve = endpoint.curve
    if curve is None:
        return
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public_key)
    if curve.server_key is not None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_key)
        return
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.ZAP_DOMAIN, curve.domain.encode())
    # Without a ZAP handler libzmq would admit every client; enforced, it refuses them all.
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def start_authenticator(
    context: zmq.Context[zmq.Socket[bytes]], endpoints: Iterable[Endpoint]
) -> ThreadAuthenticator | None:
    """Start pyzmq's ZAP authenticator on `context` if any endpoint is a CURVE server.

    Each server connection gets its own ZAP domain, admitting exactly the client public keys
    `load_curve` read and checked from its ``allowed_clients`` directory at startup (pyzmq's
    own loader would glob the directory's path again: ``keys/cl[ab]`` is a folder name, not
    a pattern). Stop it (``.stop()``) before terminating the context.

    Raises:
        ConfigError: a server endpoint holds no client key (only a hand-made `CurveKeys`).
    """
    servers = [e.curve for e in endpoints if e.curve is not None and e.curve.server]
    if not servers:
        return None
    for curve in servers:
        if not curve.client_keys:
            raise ConfigError(
                f"addresses.{curve.domain}.curve.allowed_clients: no client keys loaded "
                f"from {str(curve.allowed_clients)!r}"
            )
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context, log=LOG)
    auth.start()
    for curve in servers:
        auth.configure_curve_callback(curve.domain, AllowedKeys(curve.client_keys))
    LOG.debug("ZAP authenticator on for %s", ", ".join(c.domain for c in servers))
    return auth


@attrs.define(frozen=True)
class AllowedKeys:
    """A pyzmq ZAP credentials provider: admits the z85 public keys it holds, no others."""

    keys: frozenset[bytes]

    def callback(self, domain: str, key: bytes) -> bool:
        """Return whether `key` (z85) may connect; pyzmq calls it in the ZAP thread."""
        return key in self.keys


def stop_authenticator(auth: ThreadAuthenticator) -> None:
    """Stop the ZAP thread and close its sockets, so the context can terminate."""
    try:
        auth.stop()
    except zmq.ZMQError:  # the context is already terminating: close what stop() left open
        for sock in (auth.pipe, auth.zap_socket):
            if sock is not None:
                sock.close(linger=0)
        auth.pipe = auth.zap_socket = None  # type: ignore[assignment]
