"""The `Dispatcher`'s async driver: `dispatch`'s sync driver, but for `await`.

The same `inbound` steps around the handler call, as httpx's `AsyncClient.send` mirrors
`Client.send`. An ``async def`` handler or hook is awaited with an `AsyncToSend`; a sync
one runs in a worker thread (`asyncio.to_thread`) with a sync `ToSend`, so it never
blocks the loop. Only async apps call into this module; asyncio is imported when they do,
so `import zmqservice` stays free of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .inbound import ReplySteps, SubscriberSteps
from .invoke import handler_call, hook_invoker
from .log import WORKFLOW_ID
from .sending import AsyncToSend, ToSend

if TYPE_CHECKING:
    from .dispatch import Dispatcher

__all__ = ["receiver", "replier", "run_hook", "runner"]

Run = Callable[[Any, str], Awaitable[Any]]
"""``await run(value, workflow_id)``: one handler call, however it has to be made."""


def replier(steps: ReplySteps, run: Run) -> Callable[[bytes], Awaitable[bytes]]:
    """The async frame -> reply-frame function of a replyer; it never raises."""
    accept, finish, fail, _ = steps
    reset = WORKFLOW_ID.reset

    async def reply(frame: bytes) -> bytes:
        accepted = accept(frame)
        if isinstance(accepted, bytes):
            return accepted  # an error reply: the handler is not reached
        value, workflow_id, token = accepted
        try:
            try:
                result = await run(value, workflow_id)
            except Exception as exc:
                return fail(exc, workflow_id)
            return finish(result, workflow_id)
        finally:
            reset(token)

    return reply


def receiver(steps: SubscriberSteps, run: Run) -> Callable[[bytes], Awaitable[Exception | None]]:
    """The async frame -> handler function of a subscriber; returns the error, if any."""
    accept, fail, _ = steps
    reset = WORKFLOW_ID.reset

    async def receive(frame: bytes) -> Exception | None:
        accepted = accept(frame)
        if isinstance(accepted, Exception):
            return accepted  # dropped: the handler is not reached
        value, workflow_id, token = accepted
        try:
            await run(value, workflow_id)
        except Exception as exc:
            return fail(exc)
        finally:
            reset(token)
        return None

    return receive


def runner(dispatcher: Dispatcher, fn: Callable[..., Any]) -> Run:
    """Plan handler `fn`'s call once: awaited on the loop, or a sync one in a thread."""
    import asyncio

    call, needs_context = handler_call(fn)
    config = dispatcher.config
    if inspect.iscoroutinefunction(fn):

        async def run_coroutine(value: Any, workflow_id: str) -> Any:
            if needs_context:
                return await call(value, AsyncToSend(dispatcher, workflow_id), config)
            return await call(value)

        return run_coroutine

    async def run_in_thread(value: Any, workflow_id: str) -> Any:
        if needs_context:
            return await asyncio.to_thread(call, value, ToSend(dispatcher, workflow_id), config)
        return await asyncio.to_thread(call, value)

    return run_in_thread


async def run_hook(dispatcher: Dispatcher, hook: str, *extra: Any) -> Any:
    """`Dispatcher.run_hook`, awaited: an ``async def`` hook gets an `AsyncToSend`."""
    fn = dispatcher.app.hooks.get(hook)
    if fn is None:
        return None
    if not inspect.iscoroutinefunction(fn):
        import asyncio

        return await asyncio.to_thread(dispatcher.run_hook, hook, *extra)
    to_send = AsyncToSend.sharing(dispatcher.root_sender)  # one numbering per run
    token = WORKFLOW_ID.set(to_send.workflow_id)
    try:
        return await hook_invoker(fn, extra)(*extra, to_send, dispatcher.config)
    finally:
        WORKFLOW_ID.reset(token)
