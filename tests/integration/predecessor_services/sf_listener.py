"""A subscriber with a topic, written for service-framework 0.0.20, unchanged.

It records every tick it hears in `out_dir`.

The predecessor's Subscriber cannot be declared the documented way: its constructor
validates the creation arguments against `{"connection_function"}` (+ `topic`, `is_binder`),
yet its serving loop reads `required_creation_arguments["on_new_message"]` (KeyError).
Adding that key up front fails the validation, so `init_function` (which runs after the
connections are built and before the loop) adds it. zmqservice reads `connection_function`
and runs this init function harmlessly.
"""

import os
import pickle
import uuid
from decimal import Decimal
from uuid import UUID


def record(out_dir, tag, value):
    tmp = os.path.join(out_dir, f".{tag}-{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as file:
        pickle.dump(value, file)
    os.replace(tmp, os.path.join(out_dir, f"{tag}-{uuid.uuid4().hex}.pkl"))


def on_tick(args, to_send, config):
    record(config["out_dir"], "tick", args)


def init_function(to_send, config):
    creation = connection_models["in"]["ticks"]["required_creation_arguments"]
    creation.setdefault("on_new_message", on_tick)


config_model = {"required": {"out_dir": str}, "optional": {}}

connection_models = {
    "in": {
        "ticks": {
            "connection_type": "subscriber",
            "required_creation_arguments": {"connection_function": on_tick},
            "optional_creation_arguments": {"topic": "prices"},
            "required_arguments": {
                "n": int,
                "symbol": str,
                "price": Decimal,
                "ident": UUID,
                "flags": {str},
            },
            "optional_arguments": {},
        },
    },
}
