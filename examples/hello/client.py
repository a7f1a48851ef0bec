"""Client: asks the hello service to greet `--name` (main mode), logs the reply and exits.

Run: `zmqservice run client.py -a client.json -m --name ada` (from this directory).
"""

from __future__ import annotations

import attrs

from zmqservice import App, get_logger


@attrs.define
class Config:
    name: str = "world"


app = App("client", config=Config)
app.requester("greet", args={"name": str}, returns={"text": str}, timeout=5.0)
LOG = get_logger()


@app.main
def main(to_send, config: Config) -> str:
    reply = to_send("greet", {"name": config.name})
    LOG.info("the hello service says: %s", reply["text"])
    return reply["text"]
