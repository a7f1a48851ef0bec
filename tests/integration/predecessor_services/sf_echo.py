"""A replyer written for service-framework 0.0.20 (the predecessor), unchanged.

Doubles a Decimal, echoes a UUID, adds a tag to a set of strings. `explode=True` makes the
handler raise (the predecessor dies on that; zmqservice answers with an error reply).
"""

from decimal import Decimal
from uuid import UUID


def echo(args, to_send, config):
    # The predecessor checks this function's signature against `(args, to_send, config)`:
    # the names must match exactly and it must carry no annotations.
    if args.get("explode"):
        raise RuntimeError("asked to explode")
    return {
        "amount": args["amount"] * 2,
        "ident": args["ident"],
        "tags": args["tags"] | {"echoed"},
        "note": args.get("note", ""),
        "served_by": "sf_echo",
    }


connection_models = {
    "in": {
        "echo": {
            "connection_type": "replyer",
            "required_creation_arguments": {"connection_function": echo},
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
            "optional_return_arguments": {},
        },
    },
}
