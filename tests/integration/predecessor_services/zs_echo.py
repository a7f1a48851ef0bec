"""The sf_echo service written natively for zmqservice, with attrs models.

It also returns the workflow id it handled the request under, so tests can see how a
predecessor's UUID-marker workflow_id arrives.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import attrs

from zmqservice import App
from zmqservice.log import WORKFLOW_ID

app = App("zs_echo")


@attrs.define
class EchoArgs:
    amount: Decimal
    ident: UUID
    tags: set[str]
    note: str = ""
    explode: bool = False


@attrs.define
class EchoReply:
    amount: Decimal
    ident: UUID
    tags: set[str]
    note: str
    served_by: str
    workflow_id: str


@app.replyer("echo", args=EchoArgs, returns=EchoReply)
def echo(args: EchoArgs) -> EchoReply:
    if args.explode:
        raise RuntimeError("asked to explode")
    return EchoReply(
        amount=args.amount * 2,
        ident=args.ident,
        tags=args.tags | {"echoed"},
        note=args.note,
        served_by="zs_echo",
        workflow_id=WORKFLOW_ID.get(),
    )
