"""zmqservice benchmark: raw pyzmq vs zmqservice, measured in one run on one machine.

    python bench/run.py                 # ~35 s
    python bench/run.py --pin           # every process (and zmq I/O thread) on core 0
    python bench/run.py --quick         # ~10 s smoke run
    python bench/run.py --seconds 3 --rounds 5

1. sequential request/reply round trips per second, raw REQ->REP vs requester->replyer;
2. pub/sub throughput with zero loss, raw PUB->SUB vs publisher->subscriber;
3. per-call cost of ``app.test_client().request`` and of each dispatch hot path, in-process;
4. requests/s of a replyer whose handler sleeps 10 ms, ``concurrency=1`` vs ``16``;
5. ``zmqservice run --workers 1`` vs ``--workers 2``: req/s of a 2 ms CPU-bound replyer.

Raw and zmqservice runs alternate (ABBA) over ``--rounds`` windows of ``--seconds`` each;
the table shows the median. Every child process is stopped on the way out, whatever happens.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import concurrent_replyer
import inprocess
import scaling
import workers

GOAL_REQREP = 0.85
GOAL_PUBSUB = 0.5
STARTUP_TIMEOUT = 30.0


# -- child processes ----------------------------------------------------------------------


class Children:
    """Every child this run starts; `stop_all` always leaves none behind."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.procs: list[tuple[Any, Any]] = []

    def start(self, target: Callable[..., None], name: str, *args: Any) -> tuple[Any, Any]:
        """Start `target(pipe, *args)` in a child; return (process, parent end of the pipe)."""
        ours, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(theirs, *args), name=name, daemon=True)
        proc.start()
        theirs.close()
        self.procs.append((proc, ours))
        return proc, ours

    def stop_all(self, grace: float = 3.0) -> None:
        """Ask politely (a ``quit`` or SIGTERM), join with a bound, then SIGKILL."""
        procs, self.procs = self.procs, []
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc, _ in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc, pipe in procs:
            if proc.is_alive():
                print(f"  ! {proc.name} (pid {proc.pid}) ignored SIGTERM: killing it")
                proc.kill()
                proc.join(2.0)
            pipe.close()


def receive(proc: Any, pipe: Any, timeout: float) -> Any:
    """The child's next message, or an error naming the child if it died or went quiet."""
    deadline = time.monotonic() + timeout
    while not pipe.poll(0.05):
        if not proc.is_alive():
            raise RuntimeError(f"{proc.name} exited (code {proc.exitcode}) before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not answer within {timeout:.0f}s")
    return pipe.recv()


def ask(proc: Any, pipe: Any, message: tuple[Any, ...], timeout: float) -> Any:
    pipe.send(message)
    return receive(proc, pipe, timeout)


def quit_client(proc: Any, pipe: Any) -> None:
    """Let a client leave its command loop (and, for zmqservice, return from main)."""
    try:
        pipe.send(("quit",))
        proc.join(3.0)
    except OSError:
        pass


# -- measurements -------------------------------------------------------------------------


def order(round_no: int, names: list[str]) -> list[str]:
    """ABBA: alternate which implementation goes first so drift hits both alike."""
    return names if round_no % 2 == 0 else names[::-1]


def profile_path(opts: argparse.Namespace, name: str) -> str | None:
    return str(Path(opts.profile_dir) / f"{name}.prof") if opts.profile_dir else None


def bench_reqrep(ctx: Any, opts: argparse.Namespace) -> dict[str, Any]:
    """Sequential round trips per second: raw REQ->REP and requester->replyer."""
    children = Children(ctx)
    try:
        pin = opts.pin
        raw_srv = children.start(workers.raw_rep_server, "raw-rep-server", pin)
        zs_srv = children.start(
            workers.zs_rep_server, "zs-replyer", pin, profile_path(opts, "zs-replyer")
        )
        _, raw_ep, aff_a = receive(*raw_srv, STARTUP_TIMEOUT)
        _, zs_ep, aff_b = receive(*zs_srv, STARTUP_TIMEOUT)
        clients = {
            "raw": children.start(workers.raw_req_client, "raw-req-client", raw_ep, pin),
            "zmqservice": children.start(
                workers.zs_req_client,
                "zs-requester",
                zs_ep,
                pin,
                profile_path(opts, "zs-requester"),
            ),
        }
        affinities = {str(aff_a), str(aff_b)}
        for client in clients.values():
            affinities.add(str(receive(*client, STARTUP_TIMEOUT)[1]))
        for client in clients.values():  # warm up: caches, allocator, TCP, branch predictors
            ask(*client, ("run", opts.warmup), opts.warmup + 30)
        rates: dict[str, list[float]] = {name: [] for name in clients}
        for round_no in range(opts.rounds):
            for name in order(round_no, list(clients)):
                calls, elapsed = ask(*clients[name], ("run", opts.seconds), opts.seconds + 30)
                rates[name].append(calls / elapsed)
        for client in clients.values():
            quit_client(*client)
        return {"rates": rates, "affinities": affinities}
    finally:
        children.stop_all()


def bench_pubsub(ctx: Any, opts: argparse.Namespace) -> dict[str, Any]:
    """Delivered messages per second, burst after burst, with loss counted."""
    children = Children(ctx)
    try:
        pin = opts.pin
        shared = {
            name: (ctx.RawValue("q", 0), ctx.RawValue("b", 0)) for name in ("raw", "zmqservice")
        }
        pubs = {
            "raw": children.start(workers.raw_publisher, "raw-pub", shared["raw"], pin),
            "zmqservice": children.start(
                workers.zs_publisher,
                "zs-publisher",
                shared["zmqservice"],
                pin,
                profile_path(opts, "zs-publisher"),
            ),
        }
        endpoints = {name: receive(*pub, STARTUP_TIMEOUT)[1] for name, pub in pubs.items()}
        subs = {
            "raw": children.start(
                workers.raw_subscriber, "raw-sub", endpoints["raw"], shared["raw"], pin
            ),
            "zmqservice": children.start(
                workers.zs_subscriber,
                "zs-subscriber",
                endpoints["zmqservice"],
                shared["zmqservice"],
                pin,
                profile_path(opts, "zs-subscriber"),
            ),
        }
        affinities = {str(receive(*sub, STARTUP_TIMEOUT)[1]) for sub in subs.values()}
        for name, pub in pubs.items():  # the slow joiner: no burst before a probe arrived
            _, seen = ask(*pub, ("probe", 10.0), 15.0)
            if not seen:
                raise RuntimeError(f"{name} subscriber never received a probe")
        result: dict[str, Any] = {
            "affinities": affinities,
            **{key: {name: [] for name in pubs} for key in ("rates", "loss", "stalls", "disorder")},
        }
        burst_id = 0

        def burst(name: str, seconds: float) -> tuple[float, int, int, int]:
            nonlocal burst_id
            burst_id += 1
            _, bid, sent, start, stalls = ask(
                *pubs[name], ("burst", seconds, burst_id), seconds + 30
            )
            _, sub_bid, got, end, disorder = receive(*subs[name], 30.0)
            if (bid, sub_bid) != (burst_id, burst_id):
                raise RuntimeError(f"{name}: burst ids out of step ({bid}, {sub_bid})")
            return got / (end - start), sent - got, stalls, disorder

        for name in pubs:
            burst(name, opts.warmup)
        for round_no in range(opts.rounds):
            for name in order(round_no, list(pubs)):
                rate, loss, stalls, disorder = burst(name, opts.seconds)
                result["rates"][name].append(rate)
                result["loss"][name].append(loss)
                result["stalls"][name].append(stalls)
                result["disorder"][name].append(disorder)
        for pub in pubs.values():
            quit_client(*pub)
        return result
    finally:
        children.stop_all()


def per_call_us(call: Callable[[], Any], seconds: float) -> float:
    workers.timed_calls(call, min(0.2, seconds / 4))
    calls, elapsed = workers.timed_calls(call, seconds)
    return elapsed / calls * 1e6


def bench_inprocess(opts: argparse.Namespace) -> dict[str, Any]:
    """Microseconds per call of the test client and of each hot path, no sockets."""
    out: dict[str, Any] = {"test_client": per_call_us(inprocess.test_client_case(), opts.seconds)}
    rows: dict[str, float | str] = {}
    try:
        cases = {**inprocess.dispatch_cases(), **inprocess.raw_cases()}
    except Exception as exc:  # the dispatch internals may move under us: never fail the run
        rows["dispatch breakdown"] = f"n/a ({type(exc).__name__}: {exc})"
        cases = inprocess.raw_cases()
    each = max(0.1, opts.seconds / 4)
    for name, call in cases.items():
        rows[name] = per_call_us(call, each)
    out["rows"] = rows
    return out


# -- report -------------------------------------------------------------------------------


def git_state() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "zmqservice"],
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{sha or 'unknown'}{' + uncommitted changes in zmqservice/' if dirty else ''}"


def spread(values: list[float]) -> str:
    return f"{min(values):>9,.0f} .. {max(values):,.0f}"


def verdict(ratio: float, goal: float) -> str:
    return f"goal >= {goal:.2f}: {'met' if ratio >= goal else 'NOT met'}"


def report_header(opts: argparse.Namespace) -> None:
    import msgpack
    import zmq

    import zmqservice

    affinity = sorted(os.sched_getaffinity(0))
    print("zmqservice benchmark")
    print(
        f"  zmqservice {zmqservice.__version__} @ {git_state()} | Python "
        f"{platform.python_version()} | pyzmq {zmq.__version__} | libzmq {zmq.zmq_version()}"
        f" | msgpack {'.'.join(map(str, msgpack.version))}"
    )
    print(
        f"  CPUs: {os.cpu_count()} (os.cpu_count), usable {len(affinity)} {affinity} | "
        f"pinned: {'yes, every process on core 0' if opts.pin else 'no'} | "
        f"start method: {opts.start_method}"
    )
    print(
        f"  {opts.rounds} rounds x {opts.seconds:g} s per implementation, raw/zmqservice "
        f"alternating (ABBA), after {opts.warmup:g} s warm-up; median shown"
    )
    load = os.getloadavg()
    print(f"  load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", end="")
    print("  (other processes are busy: expect noise)" if load[0] > 0.5 else "")
    if opts.profile_dir:
        print(f"  !! cProfile on in every zmqservice child ({opts.profile_dir}): numbers are slow")


def report_reqrep(res: dict[str, Any]) -> None:
    raw, zs = (statistics.median(res["rates"][k]) for k in ("raw", "zmqservice"))
    print()
    print("1. request/reply, sequential round trips, tcp://127.0.0.1, separate processes")
    print(f"   {'':58}{'median rt/s':>12}{'us/rt':>9}{'min .. max rt/s':>22}")
    rows = [
        ("raw pyzmq REQ -> REP, msgpack envelope", raw, res["rates"]["raw"]),
        ("zmqservice requester (to_send) -> @app.replyer, attrs", zs, res["rates"]["zmqservice"]),
    ]
    for label, rate, values in rows:
        print(f"   {label:58}{rate:>12,.0f}{1e6 / rate:>9.1f}{spread(values):>22}")
    ratio = zs / raw
    print(
        f"   {'ratio zmqservice / raw':58}{ratio:>12.2f}{1e6 / zs - 1e6 / raw:>+9.1f}"
        f"   {verdict(ratio, GOAL_REQREP)}"
    )
    print(f"   child affinities: {', '.join(sorted(res['affinities']))}")


def report_pubsub(res: dict[str, Any]) -> None:
    raw, zs = (statistics.median(res["rates"][k]) for k in ("raw", "zmqservice"))
    print()
    print(
        f"2. pub/sub throughput, delivered msg/s, tcp://127.0.0.1, hwm {workers.HWM:,}, "
        f"at most {workers.WINDOW:,} in flight"
    )
    print(f"   {'':44}{'median msg/s':>13}{'us/msg':>8}{'min .. max msg/s':>22}{'lost':>6}")
    rows = [
        ("raw pyzmq PUB -> SUB, msgpack envelope", raw, "raw"),
        ("zmqservice publisher -> @app.subscriber", zs, "zmqservice"),
    ]
    for label, rate, key in rows:
        lost = sum(res["loss"][key])
        print(
            f"   {label:44}{rate:>13,.0f}{1e6 / rate:>8.2f}{spread(res['rates'][key]):>22}{lost:>6}"
        )
    ratio = zs / raw
    print(f"   {'ratio zmqservice / raw':44}{ratio:>13.2f}   {verdict(ratio, GOAL_PUBSUB)}")
    stalls = {k: sum(v) for k, v in res["stalls"].items()}
    disorder = {k: sum(v) for k, v in res["disorder"].items()}
    print(
        f"   publisher flow-control waits (sub behind by > {workers.WINDOW:,}): "
        f"raw {stalls['raw']:,}, zmqservice {stalls['zmqservice']:,}; "
        f"sequence gaps: raw {disorder['raw']}, zmqservice {disorder['zmqservice']}"
    )


def report_inprocess(res: dict[str, Any]) -> None:
    print()
    print("3. in-process per-call cost, no sockets (one process)")
    print(f"   {'':58}{'us/call':>9}")
    label = 'app.test_client().request("quote", {...})'
    print(f"   {label:58}{res['test_client']:>9.2f}")
    rows = res["rows"]
    for name, value in rows.items():
        text = f"{value:>9.2f}" if isinstance(value, float) else f"  {value}"
        print(f"   {name:58}{text}")
    try:
        server = rows["replyer   Dispatcher.replier(conn)(frame)"]
        client = rows["requester to_send('quote', Quote) w/o socket"]
        raw_s, raw_c = rows["raw replyer   unpackb + packb"], rows["raw requester packb + unpackb"]
        pub = rows["publisher to_send('ticks', Tick(...)) w/o socket"]
        sub = rows["subscriber Dispatcher.receiver(conn)(frame)"]
        raw_p, raw_r = rows["raw publisher packb"], rows["raw subscriber unpackb"]
        assert all(isinstance(v, float) for v in (server, client, pub, sub))
    except (KeyError, AssertionError):
        return
    print(
        f"   => framework cost per round trip ~ {server - raw_s + client - raw_c:.1f} us "
        f"(replyer +{server - raw_s:.1f}, requester +{client - raw_c:.1f}); "
        f"per published message: publisher +{pub - raw_p:.1f}, subscriber +{sub - raw_r:.1f}"
    )


# -- main ---------------------------------------------------------------------------------


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the cleanup in `finally` blocks runs."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pin", action="store_true", help="pin every process to core 0")
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds per timed window (default 1.5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed windows per implementation (default 3)"
    )
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run")
    parser.add_argument("--start-method", choices=("spawn", "fork", "forkserver"), default="spawn")
    parser.add_argument(
        "--only",
        choices=("reqrep", "pubsub", "inprocess", "concurrency", "workers"),
        action="append",
        help="run only these sections (repeatable)",
    )
    parser.add_argument(
        "--profile-dir",
        help="cProfile every zmqservice child, writing <dir>/<child>.prof (slows it down)",
    )
    opts = parser.parse_args(argv)
    if opts.seconds is None:
        opts.seconds = 0.4 if opts.quick else 1.5
    if opts.rounds is None:
        opts.rounds = 2 if opts.quick else 3
    if opts.seconds <= 0 or opts.rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")
    opts.warmup = min(0.5, opts.seconds / 2)
    if opts.profile_dir:
        Path(opts.profile_dir).mkdir(parents=True, exist_ok=True)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if opts.pin:
        os.sched_setaffinity(0, {0})  # before any child: they and their threads inherit it
    ctx = mp.get_context(opts.start_method)
    sections = opts.only or ["reqrep", "pubsub", "inprocess", "concurrency", "workers"]
    started = time.monotonic()
    with sigterm_as_exit():
        report_header(opts)
        if "reqrep" in sections:
            report_reqrep(bench_reqrep(ctx, opts))
        if "pubsub" in sections:
            report_pubsub(bench_pubsub(ctx, opts))
        if "inprocess" in sections:
            report_inprocess(bench_inprocess(opts))
        if "concurrency" in sections:  # short: one window per level, at most 1 s
            concurrent_replyer.report(concurrent_replyer.bench(min(opts.seconds, 1.0)))
        if "workers" in sections:  # short: windows of at most 1 s
            scaling.report_workers(scaling.bench_workers(opts.rounds, min(opts.seconds, 1.0)))
    load = os.getloadavg()[0]
    print(f"\n  total {time.monotonic() - started:.1f} s, load average at end {load:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the children are already stopped by the finally blocks
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
