"""CurveZMQ keys and the ``"curve"`` addresses entries (`transport.curve`, `.addresses`)."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from zmqservice import App, ConfigError
from zmqservice.transport.addresses import Endpoint, resolve_addresses
from zmqservice.transport.curve import CurveKeys, configure, create_keys, start_authenticator

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """tmp_path/keys: server and client pairs, clients/ with client.key, a stray pair."""
    folder = tmp_path / "keys"
    (folder / "clients").mkdir(parents=True)
    (folder / "other").mkdir()
    create_keys(folder, "server")
    create_keys(folder, "client")
    create_keys(folder / "other", "stray")
    (folder / "clients" / "client.key").write_bytes((folder / "client.key").read_bytes())
    return folder


@pytest.fixture
def app() -> App:
    app = App("orders")

    @app.replyer("cancel_order")
    def cancel_order(args: Any) -> Any:
        return args

    app.requester("exchange")
    return app


def server_entry(keys: Path, **curve: Any) -> dict[str, Any]:
    spec = {
        "secret_key": str(keys / "server.key_secret"),
        "allowed_clients": str(keys / "clients"),
    }
    return {"replyer": "tcp://192.0.2.1:5001", "curve": {**spec, **curve}}


def client_entry(keys: Path, **curve: Any) -> dict[str, Any]:
    spec = {"secret_key": str(keys / "client.key_secret"), "server_key": str(keys / "server.key")}
    return {"requester": "tcp://10.0.0.2:6000", "curve": {**spec, **curve}}


def addresses(keys: Path, server: Any = None, client: Any = None) -> dict[str, Any]:
    return {
        "in": {"cancel_order": server or server_entry(keys)},
        "out": {"exchange": client or client_entry(keys)},
    }


def public(path: Path) -> bytes:
    return zmq.auth.load_certificate(path)[0]


# -- key files ------------------------------------------------------------------------------


def test_create_keys_writes_a_public_and_a_0600_secret_file(tmp_path: Path) -> None:
    public_path, secret_path = create_keys(tmp_path, "svc")

    assert (public_path, secret_path) == (tmp_path / "svc.key", tmp_path / "svc.key_secret")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    pub, secret = zmq.auth.load_certificate(secret_path)
    assert secret is not None
    assert zmq.curve_public(secret) == pub
    assert zmq.auth.load_certificate(public_path) == (pub, None)


def test_create_keys_never_overwrites_a_key(tmp_path: Path) -> None:
    _, secret_path = create_keys(tmp_path, "svc")
    before = secret_path.read_bytes()

    with pytest.raises(ConfigError, match=r"svc\.key_secret already exists"):
        create_keys(tmp_path, "svc")
    assert secret_path.read_bytes() == before


def test_create_keys_leaves_nothing_behind_when_the_public_file_exists(tmp_path: Path) -> None:
    (tmp_path / "svc.key").write_text("mine", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"svc\.key already exists"):
        create_keys(tmp_path, "svc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.key"]


@pytest.mark.parametrize("sub, problem", [("missing", "does not exist"), ("file", "is not a dir")])
def test_create_keys_needs_an_existing_directory(tmp_path: Path, sub: str, problem: str) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")

    with pytest.raises(ConfigError, match=f"^key directory .*{problem}"):
        create_keys(tmp_path / sub)


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-x"])
def test_create_keys_takes_a_plain_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"^key name"):
        create_keys(tmp_path, name)


# -- parsing --------------------------------------------------------------------------------


def test_no_curve_entry_means_a_plain_endpoint(app: App) -> None:
    plain = {"in": {"cancel_order": {"replyer": "h:1"}}, "out": {"exchange": {"requester": "h:2"}}}
    endpoints = resolve_addresses(app, plain, {})
    assert endpoints["cancel_order"] == Endpoint("tcp://*:1", bind=True)
    assert endpoints["exchange"].curve is None


def test_binding_side_is_a_curve_server_with_its_allowed_keys(app: App, keys: Path) -> None:
    curve = resolve_addresses(app, addresses(keys), {})["cancel_order"].curve

    assert curve is not None
    assert curve.server
    assert curve.domain == "in.cancel_order"
    assert curve.public_key == public(keys / "server.key")
    assert curve.allowed_clients == keys / "clients"
    assert curve.client_keys == {public(keys / "client.key")}
    assert curve.server_key is None


def test_connecting_side_is_a_curve_client_with_the_server_key(app: App, keys: Path) -> None:
    curve = resolve_addresses(app, addresses(keys), {})["exchange"].curve

    assert curve is not None
    assert not curve.server
    assert curve.public_key == public(keys / "client.key")
    assert curve.server_key == public(keys / "server.key")


def test_repr_hides_the_secret_key(app: App, keys: Path) -> None:
    curve = resolve_addresses(app, addresses(keys), {})["exchange"].curve
    assert curve is not None
    assert curve.secret_key.decode() not in repr(curve)
    assert "secret_key" not in repr(curve)


def test_relative_paths_start_at_the_addresses_file(
    app: App, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relative = {
        "in": {
            "cancel_order": {
                "replyer": "h:1",
                "curve": {
                    "secret_key": "keys/server.key_secret",
                    "allowed_clients": "keys/clients",
                },
            }
        },
        "out": {"exchange": client_entry(keys)},
    }
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps(relative), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    curve = resolve_addresses(app, path, {})["cancel_order"].curve
    assert curve is not None
    assert curve.allowed_clients == tmp_path / "keys" / "clients"


def test_relative_paths_in_a_dict_start_at_the_current_directory(
    app: App, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    entry = client_entry(keys, server_key="keys/server.key")
    curve = resolve_addresses(app, addresses(keys, client=entry), {})["exchange"].curve
    assert curve is not None
    assert curve.server_key == public(keys / "server.key")


def test_top_level_default_secures_every_connection(app: App, keys: Path) -> None:
    given = {
        "curve": {
            "secret_key": str(keys / "server.key_secret"),
            "allowed_clients": str(keys / "clients"),
            "server_key": str(keys / "server.key"),
        },
        "in": {"cancel_order": {"replyer": "h:1"}},
        "out": {"exchange": {"requester": "h:2"}},
    }
    endpoints = resolve_addresses(app, given, {})
    server, client = endpoints["cancel_order"].curve, endpoints["exchange"].curve
    assert server is not None
    assert server.server
    assert client is not None
    assert client.server_key == public(keys / "server.key")


def test_a_connection_overrides_the_default_key_by_key(app: App, keys: Path) -> None:
    given = {
        "curve": {"secret_key": str(keys / "server.key_secret")},
        "in": {"cancel_order": server_entry(keys)},
        "out": {
            "exchange": {"requester": "h:2", "curve": {"server_key": str(keys / "server.key")}}
        },
    }
    curve = resolve_addresses(app, given, {})["exchange"].curve
    assert curve is not None
    assert curve.public_key == public(keys / "server.key")  # the default's key pair


def test_curve_false_opts_one_connection_out_of_the_default(app: App, keys: Path) -> None:
    given = {
        "curve": {"secret_key": str(keys / "server.key_secret")},
        "in": {"cancel_order": {"replyer": "h:1", "curve": False}},
        "out": {"exchange": client_entry(keys)},
    }
    assert resolve_addresses(app, given, {})["cancel_order"].curve is None


def test_default_without_a_server_key_names_the_connection_that_needs_one(
    app: App, keys: Path
) -> None:
    given = {
        "curve": {
            "secret_key": str(keys / "server.key_secret"),
            "allowed_clients": str(keys / "clients"),
        },
        "in": {"cancel_order": {"replyer": "h:1"}},
        "out": {"exchange": {"requester": "h:2"}},
    }
    with pytest.raises(
        ConfigError, match=r"^addresses\.out\.exchange\.curve\.server_key: missing; .*client"
    ):
        resolve_addresses(app, given, {})


def test_a_bad_default_file_is_named_as_the_default(app: App, keys: Path) -> None:
    given = {
        "curve": {"secret_key": str(keys / "nope.key_secret")},
        "in": {"cancel_order": {"replyer": "h:1", "curve": {"allowed_clients": str(keys)}}},
        "out": {"exchange": {"requester": "h:2", "curve": False}},
    }
    with pytest.raises(ConfigError, match=r"^addresses\.curve\.secret_key: no such file"):
        resolve_addresses(app, given, {})


# -- errors ---------------------------------------------------------------------------------


def garbage(keys: Path) -> Path:
    path = keys / "garbage.key_secret"
    path.write_bytes(b"\x00\xffnot a certificate\n")
    return path


def bad_z85(keys: Path) -> Path:
    path = keys / "bad.key_secret"
    path.write_text('curve\n    public-key = "short"\n    secret-key = "short"\n', "utf-8")
    return path


def mismatched(keys: Path) -> Path:
    path = keys / "mixed.key_secret"
    server = zmq.auth.load_certificate(keys / "server.key_secret")
    client = zmq.auth.load_certificate(keys / "client.key_secret")
    assert client[1] is not None
    path.write_text(
        f'curve\n    public-key = "{server[0].decode()}"\n'
        f'    secret-key = "{client[1].decode()}"\n',
        "utf-8",
    )
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda k: k / "missing.key_secret", "no such file"),
        (lambda k: k, "is not a file"),
        (lambda k: k / "server.key", "holds no secret-key"),
        (garbage, "is not a CURVE key file"),
        (bad_z85, "malformed public-key"),
        (mismatched, "does not match"),
    ],
    ids=["missing", "directory", "public-only", "garbage", "bad-z85", "mismatched"],
)
def test_bad_secret_key_file_names_the_key(app: App, keys: Path, make: Any, message: str) -> None:
    given = addresses(keys, server=server_entry(keys, secret_key=str(make(keys))))
    with pytest.raises(
        ConfigError, match=rf"^addresses\.in\.cancel_order\.curve\.secret_key: .*{message}"
    ):
        resolve_addresses(app, given, {})


def test_bad_server_key_names_the_key(app: App, keys: Path) -> None:
    given = addresses(keys, client=client_entry(keys, server_key=str(keys / "nope.key")))
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.curve\.server_key: no such"):
        resolve_addresses(app, given, {})


def test_a_server_secret_file_is_refused_as_the_server_key(app: App, keys: Path) -> None:
    entry = client_entry(keys, server_key=str(keys / "server.key_secret"))
    with pytest.raises(ConfigError, match=r"server_key: .*holds a secret-key"):
        resolve_addresses(app, addresses(keys, client=entry), {})


@pytest.mark.parametrize(
    "line", ["public-key", 'public-key "x"', "secret-key"], ids=["bare", "no-equals", "secret"]
)
@pytest.mark.parametrize("field", ["secret_key", "allowed_clients"])
def test_a_key_line_without_equals_is_a_config_error(
    app: App, keys: Path, line: str, field: str
) -> None:
    folder = keys / "odd"
    folder.mkdir()
    path = folder / ("odd.key_secret" if field == "secret_key" else "odd.key")
    good = 'public-key = "' + public(keys / "client.key").decode() + '"'
    lines = [good, line] if line.startswith("secret") else [line]
    path.write_text("curve\n" + "".join(f"    {text}\n" for text in lines), "utf-8")
    spec = str(path) if field == "secret_key" else str(folder)
    given = addresses(keys, server=server_entry(keys, **{field: spec}))
    with pytest.raises(
        ConfigError, match=rf"^addresses\.in\.cancel_order\.curve\.{field}: .*line without '='"
    ):
        resolve_addresses(app, given, {})


def stray_secret(folder: Path) -> None:
    (folder / "client.key_secret").write_text("x", encoding="utf-8")


def malformed_public(folder: Path) -> None:
    (folder / "broken.key").write_text("curve\n", encoding="utf-8")


@pytest.mark.parametrize(
    "where, prepare, message",
    [
        ("missing", None, "no such directory"),
        ("clients/client.key", None, "is not a directory"),
        ("empty", "mkdir", "no client public keys"),
        ("clients", stray_secret, "holds secret key files"),
        ("clients", malformed_public, "is not a CURVE key file"),
    ],
    ids=["missing", "a-file", "empty", "secret-inside", "malformed-key"],
)
def test_bad_allowed_clients_directory_names_the_key(
    app: App, keys: Path, where: str, prepare: Any, message: str
) -> None:
    folder = keys / where
    if prepare == "mkdir":
        folder.mkdir()
    elif prepare is not None:
        prepare(folder)
    given = addresses(keys, server=server_entry(keys, allowed_clients=str(folder)))
    with pytest.raises(
        ConfigError, match=rf"^addresses\.in\.cancel_order\.curve\.allowed_clients: .*{message}"
    ):
        resolve_addresses(app, given, {})


def test_a_server_needs_allowed_clients(app: App, keys: Path) -> None:
    entry = server_entry(keys)
    del entry["curve"]["allowed_clients"]
    with pytest.raises(
        ConfigError, match=r"^addresses\.in\.cancel_order\.curve\.allowed_clients: missing"
    ):
        resolve_addresses(app, addresses(keys, server=entry), {})


def test_a_server_refuses_a_server_key(app: App, keys: Path) -> None:
    entry = server_entry(keys, server_key=str(keys / "server.key"))
    with pytest.raises(ConfigError, match=r"curve\.server_key: this connection binds"):
        resolve_addresses(app, addresses(keys, server=entry), {})


def test_a_client_refuses_allowed_clients(app: App, keys: Path) -> None:
    entry = client_entry(keys, allowed_clients=str(keys / "clients"))
    with pytest.raises(ConfigError, match=r"curve\.allowed_clients: this connection connects"):
        resolve_addresses(app, addresses(keys, client=entry), {})


def test_unknown_curve_field_is_a_config_error(app: App, keys: Path) -> None:
    entry = client_entry(keys, public_key="x")
    with pytest.raises(ConfigError, match=r"curve\.public_key: unknown CURVE field"):
        resolve_addresses(app, addresses(keys, client=entry), {})


@pytest.mark.parametrize("value", [True, None, "keys/", 1])
def test_curve_entry_must_be_an_object_or_false(app: App, keys: Path, value: Any) -> None:
    entry = {"requester": "h:2", "curve": value}
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.curve: expected an object"):
        resolve_addresses(app, addresses(keys, client=entry), {})


def test_misspelt_curve_key_is_not_silently_ignored(app: App, keys: Path) -> None:
    entry = {"requester": "h:2", "curv": client_entry(keys)["curve"]}
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.curv: unknown key"):
        resolve_addresses(app, addresses(keys, client=entry), {})


def test_top_level_curve_must_be_an_object(app: App, keys: Path) -> None:
    with pytest.raises(ConfigError, match=r"^addresses\.curve: expected an object"):
        resolve_addresses(app, {**addresses(keys), "curve": "keys/"}, {})


def test_curve_over_inproc_is_refused(app: App, keys: Path) -> None:
    entry = {**client_entry(keys), "requester": "inproc://exchange"}
    with pytest.raises(
        ConfigError, match=r"^addresses\.out\.exchange\.curve: CURVE needs a tcp://"
    ):
        resolve_addresses(app, addresses(keys, client=entry), {})


def test_a_secret_file_others_can_read_is_a_warning(
    app: App, keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (keys / "server.key_secret").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="zmqservice.security"):
        resolve_addresses(app, addresses(keys), {})
    assert "readable by others" in caplog.text


# -- sockets --------------------------------------------------------------------------------


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def test_configure_makes_a_server_that_enforces_its_zap_domain(
    app: App, keys: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    endpoint = resolve_addresses(app, addresses(keys), {})["cancel_order"]
    sock = context.socket(zmq.REP)
    configure(sock, endpoint)
    assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE
    assert sock.getsockopt(zmq.CURVE_SERVER) == 1
    assert sock.getsockopt(zmq.ZAP_DOMAIN) == b"in.cancel_order"
    assert sock.getsockopt(zmq.ZAP_ENFORCE_DOMAIN) == 1
    sock.close(linger=0)


def test_configure_makes_a_curve_client(
    app: App, keys: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    endpoint = resolve_addresses(app, addresses(keys), {})["exchange"]
    sock = context.socket(zmq.REQ)
    configure(sock, endpoint)
    assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE
    assert sock.getsockopt(zmq.CURVE_SERVER) == 0  # libzmq keeps CURVE keys write-only
    sock.close(linger=0)


def test_configure_leaves_a_plain_socket_alone(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    sock = context.socket(zmq.REQ)
    configure(sock, Endpoint("tcp://h:1", bind=False))
    assert sock.getsockopt(zmq.MECHANISM) == zmq.NULL
    sock.close(linger=0)


def test_no_authenticator_without_a_curve_server(
    context: zmq.Context[zmq.Socket[bytes]], keys: Path
) -> None:
    client = CurveKeys(b"p" * 40, b"s" * 40, "out.x", server_key=b"k" * 40)
    endpoints = [Endpoint("tcp://h:1", bind=False), Endpoint("tcp://h:2", False, client)]
    assert start_authenticator(context, endpoints) is None


def test_authenticator_holds_each_server_domain(
    app: App, keys: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    endpoints = resolve_addresses(app, addresses(keys), {})
    auth = start_authenticator(context, endpoints.values())
    assert auth is not None
    try:
        assert set(auth.credentials_providers) == {"in.cancel_order"}
        provider = auth.credentials_providers["in.cancel_order"]
        assert provider.callback("in.cancel_order", public(keys / "client.key"))
        assert not provider.callback("in.cancel_order", public(keys / "other" / "stray.key"))
    finally:
        auth.stop()


def test_authenticator_admits_the_keys_checked_at_startup_not_a_glob_of_the_path(
    app: App, keys: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    (keys / "cl[ab]").mkdir()
    (keys / "cla").mkdir()
    (keys / "cl[ab]" / "teller.key").write_bytes((keys / "client.key").read_bytes())
    (keys / "cla" / "stranger.key").write_bytes((keys / "other" / "stray.key").read_bytes())
    entry = server_entry(keys, allowed_clients=str(keys / "cl[ab]"))
    endpoints = resolve_addresses(app, addresses(keys, server=entry), {})
    assert endpoints["cancel_order"].curve is not None
    assert endpoints["cancel_order"].curve.client_keys == {public(keys / "client.key")}

    auth = start_authenticator(context, endpoints.values())
    assert auth is not None
    try:
        provider = auth.credentials_providers["in.cancel_order"]
        assert provider.callback("in.cancel_order", public(keys / "client.key"))
        assert not provider.callback("in.cancel_order", public(keys / "other" / "stray.key"))
    finally:
        auth.stop()


def test_authenticator_refuses_a_server_without_client_keys(
    context: zmq.Context[zmq.Socket[bytes]], keys: Path
) -> None:
    server = CurveKeys(b"p" * 40, b"s" * 40, "in.x", allowed_clients=keys / "clients")
    with pytest.raises(ConfigError, match=r"^addresses\.in\.x\.curve\.allowed_clients: no client"):
        start_authenticator(context, [Endpoint("tcp://*:1", True, server)])
