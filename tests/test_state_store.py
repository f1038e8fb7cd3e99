"""The state store: files, transactions, validation, migration, lock errors, .planfleet/."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import git
from planfleet import paths
from planfleet.errors import InputError, RefusedError
from planfleet.state import ops
from planfleet.state import records as sm
from planfleet.state.store import StateLockedError, StateStore
from state_support import create_store, flat_state, read_valid, temp_files


def canonical(doc: dict[str, Any]) -> str:
    """Return the text the store must write for ``doc`` (unset task fields left out)."""
    disk = {**doc, "tasks": {t: sm.without_defaults(r) for t, r in doc["tasks"].items()}}
    return json.dumps(disk, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_create_then_load_round_trips(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a", "b"])
    state = store.load()
    assert state["revision"] == 1
    assert state["tasks"]["a"]["commit"] is None  # unset fields are present in memory
    text = store.path.read_text(encoding="utf-8")
    assert text == canonical(state)
    assert '"commit"' not in text  # ...and left out on disk
    read_valid(store.path)


def test_create_refuses_an_existing_state_unless_replaced(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    with pytest.raises(RefusedError) as info:
        store.create(flat_state("demo", ["b"]))
    assert info.value.reason == "state_exists"
    store.create(flat_state("demo", ["b"]), replace=True)
    assert list(store.load()["tasks"]) == ["b"]
    assert '"a"' in (tmp_path / "demo.json.bak").read_text()


def test_transaction_writes_changes_atomically_and_bumps_revision(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a", "b"])
    with store.transaction() as state:
        ops.claim(state, "a", owner="me")
        before = state["updated_at"]
    assert state["revision"] == 2
    assert state["updated_at"] >= before
    loaded = store.load()
    assert loaded["tasks"]["a"]["status"] == "in_progress"
    assert store.path.read_text(encoding="utf-8") == canonical(loaded)
    assert temp_files(store.path) == []


def test_unchanged_transaction_writes_nothing(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    mtime = store.path.stat().st_mtime_ns
    inode = store.path.stat().st_ino
    for fresh in (False, True):  # with a warm codec and with a fresh one
        reader = StateStore(store.path) if fresh else store
        with reader.transaction() as state:
            assert state["tasks"]["a"]["status"] == "pending"
    assert store.path.stat().st_ino == inode
    assert store.path.stat().st_mtime_ns == mtime
    assert store.load()["revision"] == 1


def test_exception_inside_a_transaction_writes_nothing(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    before = store.path.read_text()

    def claim_then_crash() -> None:
        with store.transaction() as state:
            ops.claim(state, "a")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        claim_then_crash()
    assert store.path.read_text() == before


def test_invalid_state_is_refused_before_it_is_written(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    before = store.path.read_text()
    with pytest.raises(InputError) as info, store.transaction() as state:
        state["tasks"]["a"]["attempts"] = -1
    assert "tasks/a/attempts" in info.value.message
    with pytest.raises(InputError), store.transaction() as state:
        state["tasks"]["a"]["status"] = "done"  # not a task status
    with pytest.raises(InputError), store.transaction() as state:
        state["tasks"]["x y"] = sm.new_task(title="bad id", phase="p")
    with pytest.raises(InputError), store.transaction() as state:
        state["events"].append({"ts": "yesterday", "event": "x", "task": None, "detail": None})
    assert store.path.read_text() == before


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"plan": {}}', "schema_version"),
    ],
)
def test_damaged_files_give_a_clear_error(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "demo.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        StateStore(path).load()
    assert expect in info.value.message
    assert info.value.file == str(path)


def test_a_value_the_schema_forbids_is_refused_on_load(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a", "b"])
    with store.transaction() as state:  # the codec now remembers the file's parts
        ops.claim(state, "a")
    text = store.path.read_text()
    for bad in ('"attempts": true', '"attempts": -3', '"attempts": "1"'):
        store.path.write_text(text.replace('"attempts": 1', bad, 1))
        for reader in (store, StateStore(store.path)):  # warm and cold
            with pytest.raises(InputError) as info:
                reader.load()
            assert "tasks/a/attempts" in info.value.message


def test_missing_state_names_the_init_command(tmp_path: Path) -> None:
    with pytest.raises(RefusedError) as info:
        StateStore(tmp_path / "demo.json").load()
    assert info.value.reason == "no_state"
    assert "planfleet state init demo" in (info.value.next_step or "")


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    doc = json.loads(store.path.read_text())
    doc["schema_version"] = sm.SCHEMA_VERSION + 1
    store.path.write_text(json.dumps(doc))
    with pytest.raises(RefusedError) as info:
        StateStore(store.path).load()
    assert info.value.reason == "state_too_new"
    assert "newer planfleet" in info.value.message
    assert "upgrade" in (info.value.next_step or "")


def _v0_document() -> dict[str, Any]:
    """A synthetic version-0 layout: a task list with 'state' instead of a status map."""
    return {
        "schema_version": 0,
        "name": "demo",
        "started": "2026-01-01T00:00:00Z",
        "tasks": [{"id": "a", "state": "done", "tries": 2}, {"id": "b", "state": "todo"}],
    }


def _v0_to_v1(doc: dict[str, Any]) -> dict[str, Any]:
    state = sm.new_state(name=doc["name"], now=doc["started"])
    for item in doc["tasks"]:
        status = {"done": "verified", "todo": "pending"}[item["state"]]
        state["tasks"][item["id"]] = sm.new_task(
            title=item["id"], phase="p1", status=status, now=doc["started"]
        )
        state["tasks"][item["id"]]["attempts"] = item.get("tries", 0)
        state["order"].append(item["id"])
    return state


def test_migration_registry_upgrades_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(_v0_document()))
    with pytest.raises(InputError) as info:  # the shipped registry has no step from 0
        StateStore(path).load()
    assert "no migration from state schema_version 0" in info.value.message

    store = StateStore(path, migrations={0: _v0_to_v1})
    state = store.load()
    assert state["schema_version"] == 1
    assert state["tasks"]["a"]["status"] == "verified"
    assert state["tasks"]["a"]["attempts"] == 2
    assert json.loads(path.read_text())["schema_version"] == 0  # a load never writes
    with store.transaction() as state:
        ops.claim(state, "b")
    assert read_valid(path)["schema_version"] == 1
    assert json.loads((tmp_path / "demo.json.v0.bak").read_text()) == _v0_document()


def test_a_migration_must_produce_the_next_version(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(_v0_document()))
    with pytest.raises(AssertionError):
        StateStore(path, migrations={0: lambda d: d}).load()


def test_nested_transactions_are_refused(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    with store.transaction(), pytest.raises(RuntimeError, match="nested"), store.transaction():
        pass


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from planfleet.state.store import StateStore
store = StateStore(Path(sys.argv[1]), command="planfleet state claim demo a")
with store.transaction() as state:
    print("locked", flush=True)
    time.sleep(30)
"""


def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"], lock_timeout=0.3)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(store.path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(StateLockedError) as info, store.transaction():
            pass
        assert time.monotonic() - started < 5
        err = info.value
        assert err.reason == "state_locked"
        assert f"pid {holder.pid}" in err.message
        assert sm.hostname() in err.message
        assert "planfleet state claim demo a" in err.message
        assert "waited 0.3s" in err.message
        assert err.details["holder"]["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with store.transaction() as state:  # the kernel released the dead holder's lock
        ops.claim(state, "a")


def test_temp_files_of_a_crashed_writer_go_with_the_next_transaction(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a"])
    stale = tmp_path / ".demo.json.abc123.tmp"
    stale.write_text("half a file")
    other = tmp_path / ".other.json.abc123.tmp"
    other.write_text("someone else's")
    with store.transaction():
        pass
    assert temp_files(store.path) == []
    assert other.exists()


def test_the_text_is_canonical_whatever_the_path_through_the_codec(tmp_path: Path) -> None:
    a = create_store(tmp_path / "demo.json", [f"t{i}" for i in range(30)])
    b = StateStore(a.path)
    for i in range(30):  # two writers take turns, each with its own remembered parts
        store = a if i % 2 else b
        with store.transaction() as state:
            if i % 3 == 0:
                ops.claim(state, f"t{i}", owner=f"ü-{i}")
            sm.add_event(state, "tick", f"t{i}", 'quote " and \\ backslash')
            state["tasks"][f"t{(i * 7) % 30}"]["note"] = f"note {i}\nsecond line"
        text = a.path.read_text()
        assert text == canonical(
            json.loads(text)
            | {"tasks": {t: sm.with_defaults(r) for t, r in json.loads(text)["tasks"].items()}}
        )
    assert a.load()["revision"] == 31
    read_valid(a.path)


def test_a_hand_formatted_file_is_read_and_written_back_canonical(tmp_path: Path) -> None:
    store = create_store(tmp_path / "demo.json", ["a", "b"])
    with store.transaction():
        pass
    doc = json.loads(store.path.read_text())
    doc["tasks"]["a"]["commit"] = None  # an explicit null is valid, just not canonical
    store.path.write_text(json.dumps(doc, indent=4))
    state = store.load()
    assert state["tasks"]["b"] == sm.with_defaults(doc["tasks"]["b"])
    with store.transaction() as state:
        state["tasks"]["b"]["note"] = "x"
    assert store.path.read_text() == canonical(store.load())


# -- the .planfleet folder ------------------------------------------------------------


def test_planfleet_dir_is_created_with_readme_and_excluded_once(git_repo: Path) -> None:
    root = paths.ensure_planfleet_dir(git_repo)
    assert root == git_repo / ".planfleet"
    assert "state/<plan>.json" in (root / "README.md").read_text()
    paths.ensure_planfleet_dir(git_repo)
    exclude = (git_repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.planfleet/") == 1
    assert not (git_repo / ".gitignore").exists()
    (root / "state").mkdir()
    (root / "state" / "x.json").write_text("{}")
    assert git(git_repo, "status", "--porcelain") == ""


def test_exclude_goes_to_the_common_git_dir_from_a_worktree(git_repo: Path) -> None:
    wt = git_repo.parent / "wt"
    git(git_repo, "worktree", "add", "-q", str(wt), "-b", "side")
    paths.ensure_planfleet_dir(wt)
    assert "/.planfleet/" in (git_repo / ".git" / "info" / "exclude").read_text()


def test_exclude_keeps_existing_lines(git_repo: Path) -> None:
    exclude = git_repo / ".git" / "info" / "exclude"
    exclude.write_text("*.log")  # no trailing newline
    assert paths.ensure_excluded(git_repo)
    assert exclude.read_text() == "*.log\n/.planfleet/\n"
    assert not paths.ensure_excluded(git_repo)


def test_paths_check_ids(git_repo: Path) -> None:
    assert paths.state_path(git_repo, "demo") == git_repo / ".planfleet/state/demo.json"
    assert paths.logs_dir(git_repo, "demo") == git_repo / ".planfleet/logs/demo"
    assert paths.worktree_path(git_repo, "demo", "t1") == (
        git_repo / ".planfleet/worktrees/demo/t1"
    )
    assert paths.worktrees_root(git_repo) == git_repo / ".planfleet/worktrees"
    assert paths.lock_dir(git_repo).is_dir()
    for bad in ("../x", "a/b", "", "-x"):
        with pytest.raises(InputError):
            paths.state_path(git_repo, bad)
    with pytest.raises(InputError):
        paths.worktree_path(git_repo, "demo", "../../etc")


def test_for_plan_creates_the_folder_on_first_write(git_repo: Path) -> None:
    store = StateStore.for_plan(git_repo, "demo")
    assert store.path == git_repo / ".planfleet/state/demo.json"
    store.create(flat_state("demo", ["a"]))
    assert (git_repo / ".planfleet" / "README.md").exists()
