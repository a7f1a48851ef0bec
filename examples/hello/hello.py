"""Hello: one replyer, `greet`, that answers {"name": ...} with {"text": "hello ..."}.

Run: `zmqservice run hello.py -a addresses.json` (from this directory), then call it with
`zmqservice call ipc://hello.ipc greet '{"name": "world"}'` or `python client.py`.
"""

from __future__ import annotations

from zmqservice import App, get_logger

app = App("hello")
LOG = get_logger()


@app.init
def ready() -> None:
    LOG.info("hello ready: send me a name")


@app.replyer("greet", args={"name": str}, returns={"text": str})
def greet(args: dict[str, str]) -> dict[str, str]:
    LOG.info("greeting %s", args["name"])
    return {"text": f"hello {args['name']}"}
