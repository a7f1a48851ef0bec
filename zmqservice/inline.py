"""`InlineServices`: several services in one thread, wired by relations instead of sockets.

Each service gets the same `Dispatcher` the ZMQ runtime uses; only `to_send` is routed
in-process. Frames still go through the codec, so validation, markers and error replies
behave exactly as over ZMQ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import codec
from .config import build_config
from .dispatch import Dispatcher
from .errors import ConfigError
from .invoke import is_async_app
from .sending import DEFAULT, Default, call_target

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection

__all__ = ["InlineServices"]

LOG = logging.getLogger("zmqservice.inline")


class _Service:
    def __init__(self, name: str, target: Any, app: App, config: Any) -> None:
        self.name = name
        self.target = target
        self.app = app
        self.config = config
        self.dispatcher: Dispatcher | None = None


class _Route:
    """The in-connections one out-connection feeds, as frame functions.

    A relation delivers whatever the topics (the predecessor's did): a subscriber whose
    topic the frame does not start with gets it re-framed under its own topic, as
    ``(cut, prefix, receive)``: ``receive(prefix + frame[cut:])``; ``(0, b"", receive)``
    passes the frame as it is.
    """

    def __init__(self) -> None:
        self.replier: Callable[[bytes], bytes] | None = None
        self.receivers: list[tuple[int, bytes, Callable[[bytes], Any]]] = []

    def deliver(self, frame: bytes) -> None:
        for cut, prefix, receive in self.receivers:
            receive(prefix + frame[cut:] if prefix else frame)


class _InlineOutbound:
    def __init__(self, services: InlineServices, service: str) -> None:
        self._services = services
        self._service = service

    def _route(self, conn: Connection) -> _Route:
        route = self._services._routes.get((self._service, conn.name))
        if route is None:
            raise ValueError(
                f"no relation from {self._service}.{conn.name}: call "
                f"add_relation({self._service!r}, {conn.name!r}, in_service, in_connection)"
            )
        return route

    def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str = "",
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> bytes:
        # In-process nothing is lost or late: timeout and retries have nothing to do.
        route = self._route(conn)
        route.deliver(frame)
        if route.replier is None:
            _, workflow_id = codec.decode_request(frame)
            return codec.encode_reply(None, workflow_id)
        return route.replier(frame)

    def call(self, conn: Connection, target: Callable[..., Any], args: Any) -> Any:
        return call_target(target, args)

    def publish(self, conn: Connection, frame: bytes) -> None:
        route = self._route(conn)
        route.deliver(frame)
        if route.replier is not None:
            route.replier(frame[len(codec.topic_prefix(conn.topic)) :])


class InlineServices:
    """Run several services in one thread with no sockets (the predecessor's API).

    Example:
        ```python
        inline = InlineServices()
        inline.set_main_service("strategy", strategy_app)
        inline.add_service("desk", "examples/order_desk.py")
        inline.add_relation("strategy", "place_order", "desk", "place_order")
        inline.start()
        ```

    The logging arguments are accepted for compatibility; configure logging with
    `zmqservice.log.setup_logging` if you want console or file output.
    """

    def __init__(
        self,
        console_loglevel: str = "INFO",
        log_path: str | None = None,
        file_loglevel: str = "INFO",
        backup_count: int = 24,
    ) -> None:
        self.logging_args = {
            "console_loglevel": console_loglevel,
            "log_path": log_path,
            "file_loglevel": file_loglevel,
            "backup_count": backup_count,
        }
        self._services: dict[str, _Service] = {}
        self._main: str | None = None
        self._relations: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._routes: dict[tuple[str, str], _Route] = {}

    # -- building ---------------------------------------------------------------------------

    def add_service(
        self, name: str, app_or_target: Any, config: dict[str, Any] | None = None
    ) -> None:
        """Add a service: an `App`, a predecessor module, or a target string/path."""
        from .loading import load_target

        if name in self._services:
            raise ValueError(f"a service named {name!r} is already added; choose another name")
        app = load_target(app_or_target)
        if is_async_app(app):
            raise ConfigError(
                f"service {name!r} has async handlers: InlineServices runs sync apps only "
                "(test async ones with app.test_client())"
            )
        service = _Service(name, app_or_target, app, build_config(app, config))
        service.dispatcher = Dispatcher(app, service.config, _InlineOutbound(self, name))
        self._services[name] = service

    def set_main_service(
        self, name: str, app_or_target: Any, config: dict[str, Any] | None = None
    ) -> None:
        """Add the service whose `main` `start()` runs."""
        if self._main is not None:
            raise ValueError(f"the main service is already set to {self._main!r}")
        self.add_service(name, app_or_target, config)
        self._main = name

    # The predecessor's names for module targets; every method here takes modules anyway.
    add_service_by_module = add_service
    set_main_service_by_module = set_main_service

    def _service(self, name: str, role: str) -> _Service:
        service = self._services.get(name)
        if service is None:
            known = ", ".join(self._services) or "none"
            raise ValueError(f"{role} service {name!r} has not been added (added: {known})")
        return service

    def add_relation(
        self, out_service: str, out_connection: str, in_service: str, in_connection: str
    ) -> None:
        """Route `out_service`'s `out_connection` to `in_service`'s `in_connection`.

        One out-connection may feed several in-connections; at most one may be a replyer.
        A relation is explicit wiring: a subscriber gets every message whatever the topics,
        as the predecessor's relations did; one warning says when over sockets its
        subscription would not match what the out-connection sends.

        Raises:
            ValueError: an unknown service or connection name (named in the message), or a
                second replyer for the same out-connection.
        """
        source = self._service(out_service, "out")
        sink = self._service(in_service, "in")
        out_conn = source.app.connections.get(out_connection)
        if out_conn is None or out_conn.kind not in ("requester", "publisher"):
            raise ValueError(
                f"service {out_service!r} has no requester or publisher named {out_connection!r}"
            )
        in_conn = sink.app.connections.get(in_connection)
        if in_conn is None or in_conn.side != "in":
            raise ValueError(
                f"service {in_service!r} has no replyer or subscriber named {in_connection!r}"
            )
        assert sink.dispatcher is not None
        route = self._routes.setdefault((out_service, out_connection), _Route())
        if in_conn.kind == "replyer":
            if route.replier is not None:
                raise ValueError(
                    f"{out_service}.{out_connection} already feeds a replyer: at most one "
                    "in-connection may reply"
                )
            route.replier = sink.dispatcher.replier(in_conn)
        else:
            sent = codec.topic_prefix(out_conn.topic) if out_conn.kind == "publisher" else b""
            wanted = codec.topic_prefix(in_conn.topic)
            # msgpack strings carry their length: a subscription matches a topic it equals.
            matches = sent.startswith(wanted)
            if not matches:
                LOG.warning(
                    "relation %s.%s -> %s.%s: the subscriber's topic %r does not match what "
                    "the %s sends (%s); delivered here, since a relation is explicit wiring, "
                    "but over sockets this subscription would not match",
                    out_service,
                    out_connection,
                    in_service,
                    in_connection,
                    in_conn.topic,
                    out_conn.kind,
                    f"topic {out_conn.topic!r}" if sent else "no topic",
                )
            receive = sink.dispatcher.receiver(in_conn)
            route.receivers.append((0, b"", receive) if matches else (len(sent), wanted, receive))
        self._relations.setdefault((out_service, out_connection), []).append(
            (in_service, in_connection)
        )

    # -- reading ----------------------------------------------------------------------------

    def get_service_config(self, name: str) -> Any:
        """The validated config service `name` runs with."""
        return self._service(name, "the").config

    def get_service_module(self, name: str) -> Any:
        """What service `name` was added from: its `App`, module or target string."""
        return self._service(name, "the").target

    def get_service_app(self, name: str) -> App:
        """The `App` service `name` runs."""
        return self._service(name, "the").app

    @property
    def relations(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """``(out_service, out_connection) -> [(in_service, in_connection), ...]``."""
        return {key: list(value) for key, value in self._relations.items()}

    # -- running ----------------------------------------------------------------------------

    def send(self, service: str, connection: str, args: Any, **options: Any) -> Any:
        """Call `to_send(connection, args)` as service `service` would (``timeout=`` ...)."""
        dispatcher = self._service(service, "the").dispatcher
        assert dispatcher is not None
        return dispatcher.root_sender(connection, args, **options)

    def start(self) -> Any:
        """Run every service's `init`, then the main service's `main`; return what it returns.

        Raises:
            ValueError: no main service was set, or it has no main.
        """
        if self._main is None:
            raise ValueError("no main service: call set_main_service(name, app_or_target) first")
        main = self._services[self._main]
        if "main" not in main.app.hooks:
            raise ValueError(f"main service {self._main!r} has no main function")
        for service in self._services.values():
            assert service.dispatcher is not None
            service.dispatcher.run_hook("init")
        assert main.dispatcher is not None
        return main.dispatcher.run_hook("main")
