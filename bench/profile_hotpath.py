"""Where a zmqservice message's microseconds go: stage timings, what-ifs and cProfile.

    python bench/profile_hotpath.py                 # stages + what-ifs + cProfile top 12
    python bench/profile_hotpath.py --top 20
    python bench/run.py --pin --only reqrep --profile-dir /tmp/zsprof
    python bench/profile_hotpath.py --stats /tmp/zsprof   # the live child processes' profiles

Stage timings call zmqservice's own building blocks (codec functions, `Model.load` /
`Model.dump`, the workflow-id context variable) one at a time, without a profiler, so their
sum can be compared with the whole path. What-ifs time alternatives *here, in the bench*:
nothing in zmqservice/ is changed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack
from inprocess import (
    REPLY_FRAME,
    REQUEST_FRAME,
    TICK_FRAME,
    client_app,
    dispatch_cases,
    server_app,
)
from workers import ACK, QUOTE, SYMBOL, TOPIC, WORKFLOW_ID, Ack, Quote, Tick

from zmqservice import codec
from zmqservice.log import WORKFLOW_ID as WORKFLOW_VAR


def us(call: Callable[[], Any], seconds: float) -> float:
    """Microseconds per call, best of 3 windows (the least disturbed)."""
    import time

    best = float("inf")
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for _ in range(32):
                call()
            n += 32
            now = time.perf_counter()
            if now >= deadline:
                break
        best = min(best, (now - start) / n * 1e6)
    return best


def _ctxvar() -> None:
    WORKFLOW_VAR.reset(WORKFLOW_VAR.set(WORKFLOW_ID))


def stages() -> dict[str, dict[str, Callable[[], Any]]]:
    """Each hot path cut into the zmqservice calls it makes, in order."""
    server, client = server_app(), client_app()
    q_in, a_out = server.connections["quote"].args, server.connections["quote"].returns
    t_in = server.connections["ticks"].args
    q_out, t_out = client.connections["quote"].args, client.connections["ticks"].args
    assert a_out is not None
    handler = server.connections["quote"].handler
    assert handler is not None
    quote, ack = Quote(**QUOTE), Ack(**ACK)  # type: ignore[arg-type]
    tick = Tick(seq=7, symbol=SYMBOL, price=101.25, qty=7)
    prefix = codec.topic_prefix(TOPIC)
    args_plain, _ = codec.decode_request(REQUEST_FRAME)
    tick_plain, _ = codec.decode_published(TICK_FRAME, prefix)
    counter = iter(range(10**12))
    names = ("replyer", "requester", "publisher", "subscriber")
    whole = dict(zip(names, dispatch_cases().values(), strict=True))
    return {
        "replyer (server side of one round trip)": {
            "codec.decode_request(frame)": lambda: codec.decode_request(REQUEST_FRAME),
            "WORKFLOW_ID.set + reset": _ctxvar,
            "args Model.load -> Quote (cattrs structure)": lambda: q_in.load(args_plain, "w"),
            "handler(Quote) -> Ack": lambda: handler(quote),
            "returns Model.dump(Ack) (unstructure + re-structure)": lambda: a_out.dump(ack, "w"),
            "codec.encode_reply(plain, wf)": lambda: codec.encode_reply(ACK, WORKFLOW_ID),
            "= whole Dispatcher.replier(conn)(frame)": whole["replyer"],
        },
        "requester (client side of one round trip, no socket)": {
            "workflow id f'{wf}_{n}'": lambda: f"{WORKFLOW_ID}_{next(counter)}",
            "args Model.dump(Quote) (unstructure + re-structure)": lambda: q_out.dump(quote, "w"),
            "codec.encode_request(plain, wf)": lambda: codec.encode_request(QUOTE, WORKFLOW_ID),
            "codec.decode_reply(frame)": lambda: codec.decode_reply(REPLY_FRAME),
            "= whole to_send('quote', Quote)": whole["requester"],
        },
        "publisher (no socket)": {
            "Tick(...) construction (user code)": lambda: Tick(
                seq=7, symbol=SYMBOL, price=101.25, qty=7
            ),
            "args Model.dump(Tick) (unstructure + re-structure)": lambda: t_out.dump(tick, "w"),
            "prefix + codec.encode_request(plain, wf)": lambda: (
                prefix + codec.encode_request(tick_plain, WORKFLOW_ID)
            ),
            "= whole to_send('ticks', Tick(...))": whole["publisher"],
        },
        "subscriber": {
            "codec.decode_published(frame, prefix)": lambda: codec.decode_published(
                TICK_FRAME, prefix
            ),
            "WORKFLOW_ID.set + reset": _ctxvar,
            "args Model.load -> Tick (cattrs structure)": lambda: t_in.load(tick_plain, "w"),
            "= whole Dispatcher.receiver(conn)(frame)": whole["subscriber"],
        },
    }


def _fast_converter() -> Any:
    """zmqservice's converter rebuilt with ``detailed_validation=False`` (bench-only)."""
    import cattrs

    from zmqservice import convert

    original = cattrs.Converter

    class Fast(original):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            kwargs["detailed_validation"] = False
            super().__init__(**kwargs)

    cattrs.Converter = Fast  # type: ignore[misc]
    try:
        return convert.make_converter()
    finally:
        cattrs.Converter = original  # type: ignore[misc]


def _hand_check_quote(data: dict[str, Any]) -> Quote:
    """What a generated strict structure for `Quote` could look like: type() checks only."""
    if type(data) is not dict or not data.keys() <= _QUOTE_KEYS:
        raise TypeError("bad keys")
    symbol, side, qty, price = data["symbol"], data["side"], data["qty"], data["price"]
    client_id = data.get("client_id", "bench")
    if (
        type(symbol) is not str
        or type(side) is not str
        or type(qty) is not int
        or type(price) not in (float, int)
        or type(client_id) is not str
    ):
        raise TypeError("bad type")
    return Quote(symbol, side, qty, float(price), client_id)


_QUOTE_KEYS = frozenset(QUOTE)


def what_ifs() -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(question, current zmqservice call, the alternative) pairs, timed side by side."""
    from zmqservice.convert import converter

    fast = _fast_converter()
    cur_q, fast_q = converter.get_structure_hook(Quote), fast.get_structure_hook(Quote)
    unstructure_ack = converter.get_unstructure_hook(Ack)
    quote, ack = Quote(**QUOTE), Ack(**ACK)  # type: ignore[arg-type]
    a_out = server_app().connections["quote"].returns
    assert a_out is not None
    import threading

    lock = threading.Lock()

    def locked() -> None:
        with lock:
            pass

    def decode_skip_hook(
        frame: bytes, unpackb: Any = msgpack.unpackb, decode: Any = codec.decode
    ) -> Any:
        # Every marker key starts with "__": without those bytes there is no marker to find.
        if b"__" in frame:
            return decode(frame)
        return unpackb(frame, raw=False)

    def structure_twice() -> Any:
        plain = converter.unstructure(quote)
        return cur_q(plain, Quote)

    return [
        (
            "decode: object_hook on every map vs. plain unpackb unless b'__' is in the bytes",
            lambda: codec.decode(REQUEST_FRAME),
            lambda: decode_skip_hook(REQUEST_FRAME),
        ),
        (
            "structure Quote: detailed_validation=True vs. False (re-run detailed on error)",
            lambda: cur_q(QUOTE, Quote),
            lambda: fast_q(QUOTE, Quote),
        ),
        (
            "structure Quote: cattrs + per-field hooks vs. one generated type() check",
            lambda: cur_q(QUOTE, Quote),
            lambda: _hand_check_quote(QUOTE),
        ),
        (
            "dump(Ack instance): unstructure + re-structure vs. unstructure only",
            lambda: a_out.dump(ack, "w"),
            lambda: unstructure_ack(ack),
        ),
        (
            "requester dump(Quote): unstructure + structure vs. unstructure + type() check",
            structure_twice,
            lambda: _hand_check_quote(converter.unstructure(quote)),
        ),
        ("publish: threading.Lock around sock.send vs. no lock", locked, lambda: None),
    ]


def profile(name: str, call: Callable[[], Any], n: int, top: int) -> str:
    for _ in range(2000):
        call()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        call()
    prof.disable()
    return render(pstats.Stats(prof), n, top, name)


def render(stats: pstats.Stats, per: int, top: int, title: str) -> str:
    """The `top` functions by own time, in microseconds per message (cProfile-inflated)."""
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).name}:{line}({func})" if line else func
        rows.append((tottime, cumtime, ncalls, where))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    out = io.StringIO()
    out.write(f"\n{title}: {total / per * 1e6:.2f} us/msg under cProfile\n")
    out.write(f"   {'own us/msg':>10} {'cum us/msg':>10} {'calls/msg':>9}  function\n")
    for tottime, cumtime, ncalls, where in rows[:top]:
        out.write(
            f"   {tottime / per * 1e6:>10.3f} {cumtime / per * 1e6:>10.3f} "
            f"{ncalls / per:>9.2f}  {where[:90]}\n"
        )
    return out.getvalue()


MESSAGE_FUNCS = ("reply", "receive", "request", "publish")
"""zmqservice's per-message closures in dispatch.py and dispatch_async.py (one call each)."""


def live_stats(directory: str, top: int) -> None:
    """Summarize the ``.prof`` files `bench/run.py --profile-dir` wrote."""
    for path in sorted(Path(directory).glob("*.prof")):
        stats = pstats.Stats(str(path))
        # One message = one call of the dispatcher's per-message closure, whichever it is.
        per = max(
            (
                ncalls
                for (filename, _, func), (_, ncalls, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
                if filename.endswith(("dispatch.py", "dispatch_async.py")) and func in MESSAGE_FUNCS
            ),
            default=0,
        )
        print(render(stats, max(per, 1), top, f"{path.name} ({per:,} messages)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="per timed stage")
    parser.add_argument("--top", type=int, default=12, help="cProfile rows per path")
    parser.add_argument("--n", type=int, default=100_000, help="messages per cProfile run")
    parser.add_argument("--stats", metavar="DIR", help="summarize run.py --profile-dir output")
    opts = parser.parse_args(argv)
    if opts.stats:
        live_stats(opts.stats, opts.top)
        return 0

    print("A. stage timings, us per message (no profiler; best of 3)")
    for path, parts in stages().items():
        print(f"\n  {path}")
        total = 0.0
        for label, call in parts.items():
            cost = us(call, opts.seconds)
            if label.startswith("="):
                print(f"    {'sum of the stages above':60}{total:>8.2f}")
            else:
                total += cost
            print(f"    {label:60}{cost:>8.2f}")

    print("\nB. what-ifs, us per call: current zmqservice building block vs. an alternative")
    for question, current, alternative in what_ifs():
        now, then = us(current, opts.seconds), us(alternative, opts.seconds)
        print(f"  {question}\n    {now:>6.2f} -> {then:>6.2f}   saves {now - then:>5.2f} us")

    print("\nC. cProfile, top functions by own time (absolute values inflated by the profiler)")
    for name, call in dispatch_cases().items():
        print(profile(name, call, opts.n, opts.top), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
