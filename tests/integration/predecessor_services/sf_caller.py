"""A main-mode requester written for service-framework 0.0.20 (the predecessor), unchanged.

Sends REQUESTS to the `echo` requester, records what came back in `out_dir`, and returns it
(the predecessor ignores main's return value; zmqservice's InlineServices.start returns it).
With config `explode=True` it first sends a request the replyer's handler raises on.
"""

import os
import pickle
import time
import uuid
from decimal import Decimal
from uuid import UUID

REQUESTS = [
    {
        "amount": Decimal("1.25"),
        "ident": UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"a", "b"},
        "note": "first",
    },
    {"amount": Decimal("-0.001"), "ident": UUID(int=7), "tags": set()},
]


def record(out_dir, tag, value):
    tmp = os.path.join(out_dir, f".{tag}-{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as file:
        pickle.dump(value, file)
    os.replace(tmp, os.path.join(out_dir, f"{tag}-{uuid.uuid4().hex}.pkl"))


def main(to_send, config):
    # The predecessor's main mode starts a thread that replaces each requester's socket
    # (Requester.get_inbound_sockets_and_triggered_functions) while main may already be
    # using it: a race in principle, so the tests give that thread a moment first.
    time.sleep(config.get("warmup_s", 0.0))
    if config.get("explode"):  # ask the replyer to fail: what does this side make of it?
        to_send(
            "echo", {"amount": Decimal(1), "ident": UUID(int=1), "tags": set(), "explode": True}
        )
    replies = [to_send("echo", request) for request in REQUESTS]
    record(config["out_dir"], "caller", {"sent": REQUESTS, "got": replies})
    return replies


config_model = {
    "required": {"out_dir": str},
    "optional": {"warmup_s": float, "explode": bool},
}

connection_models = {
    "out": {
        "echo": {
            "connection_type": "requester",
            "required_creation_arguments": {},
            "optional_creation_arguments": {},
            "required_arguments": {"amount": Decimal, "ident": UUID, "tags": {str}},
            "optional_arguments": {"note": str, "explode": bool},
            "required_return_arguments": {
                "amount": Decimal,
                "ident": UUID,
                "tags": {str},
                "note": str,
                "served_by": str,
            },
            # zs_echo also says which workflow id it handled the request under.
            "optional_return_arguments": {"workflow_id": str},
        },
    },
}
