"""Benchmark the state store: transactions per second with concurrent writer processes,
and the time to load and validate a large state.

    python scripts/bench_state.py [--tasks 500] [--tx 120] [--writers 1,4,8] [--cli-tx 10]
                                  [--load-tasks 2000]

Each writer is a separate process doing read-modify-write transactions (one task's
heartbeat-like update each) on one shared state file. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planfleet import proc
from planfleet.state import records as sm
from planfleet.state.store import StateStore

TARGET_TX_PER_S = 300.0  # with 8 writers
TARGET_CLI_TX_PER_S = 50.0  # with 8 writers, each transaction one bin/planfleet process
LAUNCHER = Path(__file__).resolve().parent.parent / "bin" / "planfleet"
TARGET_LOAD_MS = 100.0  # 2,000 tasks


def make_state(path: Path, tasks: int) -> None:
    """Write a state file with ``tasks`` tasks in 10 phases, chained within each phase."""
    state = sm.new_state(name=path.stem, format="native", path="plan.yaml", title="bench")
    for i in range(tasks):
        phase = f"phase-{i % 10}"
        deps = [f"task-{i - 10}"] if i >= 10 else []
        state["tasks"][f"task-{i}"] = sm.new_task(
            title=f"Task {i}: do a thing", phase=phase, depends_on=deps, max_attempts=3
        )
        state["order"].append(f"task-{i}")
    StateStore(path).create(state)


def worker(path: Path, tx: int, sync_dir: Path, seed: int) -> None:
    """Do ``tx`` transactions once every writer is ready; print start and finish times."""
    store = StateStore(path, lock_timeout=120)
    ids = [f"task-{i}" for i in range(len(store.load()["tasks"]))]
    (sync_dir / f"ready-{seed}").touch()
    while not (sync_dir / "go").exists():  # a barrier: start together, after the imports
        time.sleep(0.001)
    started = time.time()
    for n in range(tx):
        with store.transaction() as state:
            record = state["tasks"][ids[(seed * 7919 + n) % len(ids)]]
            record["cost_usd"] += 0.01
            record["updated_at"] = sm.now_iso()
            state["totals"]["cost_usd"] += 0.01
    print(json.dumps({"started": started, "finished": time.time()}))


def cli_worker(path: Path, tx: int, sync_dir: Path, seed: int) -> None:
    """Like ``worker``, but each transaction is one `bin/planfleet state reset` process."""
    repo = path.parent.parent.parent  # <repo>/.planfleet/state/<plan>.json
    ids = [f"task-{i}" for i in range(len(StateStore(path).load()["tasks"]))]
    (sync_dir / f"ready-{seed}").touch()
    while not (sync_dir / "go").exists():
        time.sleep(0.001)
    started = time.time()
    for n in range(tx):
        task = ids[(seed * 7919 + n) % len(ids)]
        argv = [str(LAUNCHER), "state", "reset", path.stem, task, "--reason", f"{seed}-{n}"]
        subprocess.run(argv, cwd=repo, check=True, stdout=subprocess.DEVNULL)
    print(json.dumps({"started": started, "finished": time.time()}))


def run_writers(path: Path, writers: int, tx: int, mode: str = "--worker") -> float:
    """Return transactions per second for ``writers`` processes doing ``tx`` each."""
    work = Path(tempfile.mkdtemp(prefix="bench-out-"))
    procs = []
    for i in range(writers):
        out = (work / f"{i}.json").open("wb")
        argv = [sys.executable, __file__, mode, str(path), str(tx), str(work), str(i)]
        procs.append((proc.spawn(argv, cwd=Path.cwd(), stdout=out), out))
    try:
        while len(list(work.glob("ready-*"))) < writers:
            if any(p.poll() is not None for p, _ in procs):
                raise SystemExit("a writer exited before it was ready")
            time.sleep(0.01)
        (work / "go").touch()
        for p, out in procs:
            if p.wait(timeout=600) != 0:
                raise SystemExit(f"a writer failed with exit code {p.returncode}")
            out.close()
    finally:
        for p, _ in procs:
            if p.poll() is None:
                proc.stop_group(p)
    times = [json.loads((work / f"{i}.json").read_text()) for i in range(writers)]
    start = min(t["started"] for t in times)
    return writers * tx / (max(t["finished"] for t in times) - start)


def check_no_lost_update(path: Path, expected_cost: float) -> None:
    total = StateStore(path).load()["totals"]["cost_usd"]
    if abs(total - expected_cost) > 1e-6:
        raise SystemExit(f"lost updates: total cost {total}, expected {expected_cost}")


def time_load(path: Path, repeats: int) -> float:
    """Return the median milliseconds of a cold load + validate (a new store each time)."""
    times = []
    for _ in range(repeats):
        store = StateStore(path)
        start = time.perf_counter()
        store.load()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    if argv[:1] in (["--worker"], ["--cli-worker"]):
        run = worker if argv[0] == "--worker" else cli_worker
        run(Path(argv[1]), int(argv[2]), Path(argv[3]), int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500, help="tasks in the written state")
    parser.add_argument("--tx", type=int, default=120, help="transactions per writer")
    parser.add_argument("--writers", default="1,4,8", help="comma-separated writer counts")
    parser.add_argument(
        "--cli-tx", type=int, default=10, help="CLI transactions per writer (0: skip)"
    )
    parser.add_argument("--load-tasks", type=int, default=2000, help="tasks in the loaded state")
    parser.add_argument("--repeats", type=int, default=7, help="load timings (median)")
    ns = parser.parse_args(argv)
    results: dict[str, object] = {
        "tasks": ns.tasks,
        "tx_per_writer": ns.tx,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(os.getloadavg()[0], 2),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        for writers in (int(w) for w in ns.writers.split(",")):
            path = Path(tmp) / f"bench-{writers}.json"
            make_state(path, ns.tasks)
            rate = run_writers(path, writers, ns.tx)
            check_no_lost_update(path, round(writers * ns.tx * 0.01, 6))
            results[f"tx_per_s_{writers}"] = round(rate, 1)
            rows.append((f"{writers} writer(s), {ns.tasks} tasks", f"{rate:.0f} tx/s"))
        if ns.cli_tx:
            repo = Path(tmp) / "repo"
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
            path = repo / ".planfleet" / "state" / "bench-cli.json"
            path.parent.mkdir(parents=True)
            make_state(path, ns.tasks)
            revision = StateStore(path).load()["revision"]
            rate = run_writers(path, 8, ns.cli_tx, "--cli-worker")
            if StateStore(path).load()["revision"] != revision + 8 * ns.cli_tx:
                raise SystemExit("lost updates: the revision did not count every CLI transaction")
            results["cli_tx_per_s_8"] = round(rate, 1)
            rows.append((f"8 writers through bin/planfleet, {ns.tasks} tasks", f"{rate:.0f} tx/s"))
        big = Path(tmp) / "load.json"
        make_state(big, ns.load_tasks)
        load_ms = time_load(big, ns.repeats)
        results["load_ms"] = round(load_ms, 1)
        results["load_tasks"] = ns.load_tasks
        results["state_bytes"] = big.stat().st_size
        rows.append((f"load + validate, {ns.load_tasks} tasks", f"{load_ms:.1f} ms (median)"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    eight = results.get("tx_per_s_8")
    cli = results.get("cli_tx_per_s_8")
    ok = (not isinstance(eight, float) or eight >= TARGET_TX_PER_S) and load_ms < TARGET_LOAD_MS
    ok = ok and (not isinstance(cli, float) or cli >= TARGET_CLI_TX_PER_S)
    results["targets_met"] = ok
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
