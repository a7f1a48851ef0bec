"""The sf_caller service written natively for zmqservice: main mode, one requester."""

from __future__ import annotations

import os
import pickle
import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from zmqservice import App

REQUESTS: list[dict[str, Any]] = [
    {
        "amount": Decimal("1.25"),
        "ident": UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"a", "b"},
        "note": "first",
    },
    {"amount": Decimal("-0.001"), "ident": UUID(int=7), "tags": set()},
]


@attrs.define
class Config:
    out_dir: str
    warmup_s: float = 0.0


app = App("zs_caller", config=Config)
app.requester(
    "echo",
    args={"amount": Decimal, "ident": UUID, "tags": {str}},
    optional_args={"note": str},
    returns={"amount": Decimal, "ident": UUID, "tags": {str}, "note": str, "served_by": str},
    optional_returns={"workflow_id": str},
    timeout=10.0,
)


def record(out_dir: str, tag: str, value: Any) -> None:
    tmp = os.path.join(out_dir, f".{tag}-{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as file:
        pickle.dump(value, file)
    os.replace(tmp, os.path.join(out_dir, f"{tag}-{uuid.uuid4().hex}.pkl"))


@app.main
def main(to_send: Any, config: Config) -> list[Any]:
    replies = [to_send("echo", request) for request in REQUESTS]
    record(config.out_dir, "caller", {"sent": REQUESTS, "got": replies})
    return replies
