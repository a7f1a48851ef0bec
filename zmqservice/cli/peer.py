"""``zmqservice call``, ``describe``, ``publish`` and ``listen``: talk to running services."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import click

from . import _common as common
from ._common import CONTEXT, TIMEOUT, ToolError

__all__ = ["call", "describe", "listen", "publish"]


@click.command(context_settings=CONTEXT)
@click.argument("endpoint")
@click.argument("name")
@click.argument("args_json")
@click.option("-t", "--timeout", type=TIMEOUT, default=5.0, show_default=True, help="Seconds.")
@click.option("-w", "--workflow-id", help="The request's workflow_id (default: a new uuid4).")
@click.option(
    "--check-name",
    is_flag=True,
    help="First ask the app to describe itself; send nothing unless NAME is one of its "
    "replyers. Not for service-framework replyers: a describe request stops them.",
)
@common.talking()
def call(
    endpoint: str,
    name: str,
    args_json: str,
    timeout: float,
    workflow_id: str | None,
    check_name: bool,
) -> None:
    """Send one request to a running replyer.

    Prints the reply's return_args as JSON. ENDPOINT is host:port or a ZMQ endpoint; it
    alone selects the replyer, NAME is for messages (--check-name checks it). ARGS_JSON is
    the args as JSON ('-' reads stdin); Decimal, UUID and set go as their wire markers,
    e.g. {"__decimal__": true, "as_str": "1.5"}. Exit 1 on an error reply, a timeout or a
    NAME the app does not have, 2 on bad ARGS_JSON, 130 on Ctrl-C.
    """
    from .. import codec
    from ..errors import DecodeError

    url, args = common.endpoint(endpoint), common.parse_args(args_json)
    if check_name:
        _check_name(url, name, timeout)
    frame = common.envelope(args, common.workflow_id(workflow_id))
    reply = common.request(url, frame, timeout, name)
    try:
        return_args, error = codec.decode_reply(reply)
    except DecodeError as exc:
        raise ToolError(f"{name}: {exc}") from None
    if error is not None:
        raise ToolError(f"{name}: {error['type']}: {error['message']}")
    common.echo_json(return_args)


def _check_name(url: str, name: str, timeout: float) -> None:
    """Exit 1, having sent nothing else, unless the app at `url` has a replyer `name`."""
    what = f"{name}: cannot check the name, nothing was sent"
    description = _description(url, timeout, what)
    connections = [c for c in description["connections"] if isinstance(c, dict)]
    replyers = [c.get("name") for c in connections if c.get("kind") == "replyer"]
    if name not in replyers:
        known = ", ".join(str(n) for n in replyers) or "none"
        raise ToolError(
            f"{name}: App {description.get('app')!r} at {url} has no replyer {name!r} "
            f"(its replyers: {known}); nothing was sent"
        )


def _description(url: str, timeout: float, what: str) -> dict[str, Any]:
    """The describe payload of the app at `url`; `ToolError` starting with `what` else."""
    import msgpack

    from .. import codec

    frame = codec.encode(
        {"args": None, "workflow_id": common.workflow_id(None), codec.DESCRIBE_KEY: True}
    )
    reply = common.request(url, frame, timeout, what)
    try:
        envelope = msgpack.unpackb(reply, raw=False)  # no marker hook: the payload is plain
    except Exception as exc:
        raise ToolError(
            f"{what}: {url} answered with something that is not msgpack: {exc}"
        ) from None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if error is not None:
        raise ToolError(f"{what}: {error.get('type')}: {error.get('message')}")
    description = envelope.get("return_args") if isinstance(envelope, dict) else None
    if not isinstance(description, dict) or not isinstance(description.get("connections"), list):
        raise ToolError(
            f"{what}: {url} answered, but not with a description (is it a zmqservice replyer?)"
        )
    return description


@click.command(context_settings=CONTEXT)
@click.argument("endpoint")
@click.option("-t", "--timeout", type=TIMEOUT, default=5.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default when piped).")
@common.talking()
def describe(endpoint: str, timeout: float, as_json: bool) -> None:
    """Ask a running replyer to describe its app.

    Prints the app's connections and their JSON Schemas: a tree on a terminal, JSON with
    --json or when piped. ENDPOINT is host:port or a ZMQ endpoint.
    """
    description = _description(common.endpoint(endpoint), timeout, "describe")
    if as_json or not sys.stdout.isatty():
        common.echo_json(description)
        return
    from rich.console import Console

    from .render import description_tree

    Console().print(description_tree(description))


@click.command(context_settings=CONTEXT)
@click.argument("endpoint")
@click.argument("args_json")
@click.option("--topic", default="", help="The topic, as a zmqservice publisher sets it.")
@click.option("-t", "--timeout", type=TIMEOUT, default=5.0, show_default=True, help="Seconds.")
@click.option("-w", "--workflow-id", help="The message's workflow_id (default: a new uuid4).")
@common.talking()
def publish(
    endpoint: str, args_json: str, topic: str, timeout: float, workflow_id: str | None
) -> None:
    """Publish one message to a subscriber.

    ENDPOINT is a subscriber that binds, or a pub/sub proxy's frontend. The frame is the one
    a zmqservice publisher sends: packb(topic) + packb(envelope). It leaves once a peer has
    subscribed to a matching prefix; exit 1 if none does in time.
    """
    from .. import codec
    from ..transport.oneshot import publish as publish_once

    url, args, wid = (
        common.endpoint(endpoint),
        common.parse_args(args_json),
        common.workflow_id(workflow_id),
    )
    frame = codec.topic_prefix(topic) + common.envelope(args, wid)
    try:
        publish_once(url, frame, timeout)
    except TimeoutError as exc:
        raise ToolError(str(exc)) from None
    click.echo(f"published to {url}: topic {topic!r}, workflow_id {wid}")


@click.command(context_settings=CONTEXT)
@click.argument("endpoint")
@click.option("--topic", default="", help="Only this topic (default: every topic).")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("-t", "--timeout", type=TIMEOUT, help="Stop after S seconds.")
def listen(endpoint: str, topic: str, count: int | None, timeout: float | None) -> None:
    """Print the messages a publisher sends.

    Each message shows its topic, workflow_id and args. Runs until Ctrl-C or SIGTERM, N
    messages, or S seconds (exit 0; exit 1 when S seconds pass before N messages). On a
    terminal one highlighted line per message; piped, one JSON object per line.
    """

    from .. import codec
    from ..errors import DecodeError
    from ..transport import signals
    from ..transport.oneshot import listen as listen_frames

    url = common.endpoint(endpoint)
    prefix = codec.topic_prefix(topic)
    stop = threading.Event()
    restore = signals.install(lambda *_: stop.set())
    terminal = sys.stdout.isatty()
    console = None
    if terminal:
        from rich.console import Console

        from .render import message_line

        console = Console(soft_wrap=True)
    received = 0
    where = f"listening on {url}, topic {topic!r}" if topic else f"listening on {url}"
    frames = listen_frames(url, prefix, stop.is_set, timeout, lambda: click.echo(where, err=True))
    try:
        with common.talking():
            for frame in frames:
                try:
                    msg_topic, args, wid = codec.split_published(frame, prefix)
                except DecodeError as exc:
                    click.echo(f"skipped a frame that is not a published message: {exc}", err=True)
                    continue
                line = {"topic": msg_topic, "workflow_id": wid, "args": common.jsonable(args)}
                if console is not None:
                    console.print(message_line(msg_topic, wid, line["args"]))
                else:
                    click.echo(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
                received += 1
                if count is not None and received >= count:
                    break
    finally:
        restore()
    if count is not None and received < count and not stop.is_set():
        raise ToolError(f"got {received} of {count} messages within {timeout:g}s")
