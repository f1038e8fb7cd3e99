"""ids, fsutil, proc and the format registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from planfleet import fsutil, proc
from planfleet.errors import CommandError, InputError
from planfleet.ids import check_id, id_problem, slugify
from planfleet.plan import formats

ALLOWED = "use letters, digits, '.', '_', '-'"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("-rf", "starts with '-'"),
        ("a..b", "contains '..'"),
        (
            "../etc",
            "contains characters that are not allowed ('/'); use letters, digits, '.', '_', '-'",
        ),
        (
            "a b",
            "contains characters that are not allowed (' '); use letters, digits, '.', '_', '-'",
        ),
        (
            "$(rm)",
            "contains characters that are not allowed ('$', '(', ')'); " + ALLOWED,
        ),
        (
            "tâche",
            "contains characters that are not allowed ('â'); use letters, digits, '.', '_', '-'",
        ),
        ("x.lock", "ends with '.' or '.lock'"),
        (".hidden", "must start with a letter or digit"),
        ("a" * 65, "is longer than 64 characters"),
    ],
)
def test_bad_ids(value: str, problem: str) -> None:
    assert id_problem(value) == problem
    with pytest.raises(InputError) as exc:
        check_id(value, what="task id", file="p.md", line=3)
    assert exc.value.line == 3
    assert exc.value.field == "task id"


@pytest.mark.parametrize("value", ["a", "L1-001", "1.2", "phase_3", "A.b-c_d"])
def test_good_ids(value: str) -> None:
    assert check_id(value) == value


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("My Plan: v2!", "My-Plan-v2"),
        ("../../x", "x"),
        ("", "plan"),
        ("élan vital", "elan-vital"),
        ("a..b", "a.b"),
        ("name.lock", "name"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert id_problem(slugify(text)) is None


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    fsutil.atomic_write(target, "one\n")
    fsutil.atomic_write(target, "two\n")
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_read_text_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        fsutil.read_text(tmp_path / "missing")
    (tmp_path / "bin").write_bytes(b"a\x00b")
    with pytest.raises(InputError, match="NUL bytes"):
        fsutil.read_text(tmp_path / "bin")
    (tmp_path / "big").write_text("x" * 100)
    with pytest.raises(InputError, match="larger than the 10-byte limit"):
        fsutil.read_text(tmp_path / "big", limit=10)
    (tmp_path / "bom").write_bytes(b"\xef\xbb\xbfhi")
    assert fsutil.read_text(tmp_path / "bom") == "hi"


def test_is_within(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert fsutil.is_within(tmp_path / "root" / "a", tmp_path / "root")
    assert not fsutil.is_within(tmp_path / "root" / "link" / "x", tmp_path / "root")
    assert not fsutil.is_within(tmp_path / "root" / ".." / "x", tmp_path / "root")


def test_proc_run_reports_command_and_output(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as exc:
        proc.run([sys.executable, "-c", "import sys; print('out'); sys.exit('bad thing')"])
    err = exc.value
    assert err.returncode == 1
    assert "bad thing" in err.stderr
    assert "command failed (exit 1)" in err.message
    assert "bad thing" in err.message
    with pytest.raises(InputError, match="program not found: no-such-prog"):
        proc.run(["no-such-prog"])


def test_proc_timeout_kills_the_whole_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    script = (
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
        f"'import time; time.sleep(60)']); open({str(pidfile)!r}, 'w').write(str(p.pid)); "
        "time.sleep(60)"
    )

    class Started(subprocess.Popen):  # type: ignore[type-arg]
        """Returns once the grandchild is in the group: the 1.5 s must not end it sooner."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            try:
                wait_for("the grandchild's pid", lambda: pidfile.is_file() and pidfile.read_text())
            except BaseException:
                os.killpg(self.pid, signal.SIGKILL)
                raise

    gated = types.ModuleType("subprocess")
    gated.__dict__.update(vars(subprocess), Popen=Started)
    monkeypatch.setattr(proc, "subprocess", gated)
    start = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        proc.run([sys.executable, "-c", script], timeout=1.5)
    assert time.monotonic() - start < 20
    child = int(pidfile.read_text())
    wait_for("the grandchild to be gone", lambda: not proc.pid_alive(child), timeout=5)


def test_stop_group_escalates_to_kill(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)"
    )
    p = proc.spawn([sys.executable, "-c", script], cwd=tmp_path, stdout=-1)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"ready"
    code = proc.stop_group(p, grace_s=0.3)
    assert code == -signal.SIGKILL
    p.stdout.close()


def test_pid_alive_and_start_time() -> None:
    assert proc.pid_alive(os.getpid())
    assert proc.process_start_time(os.getpid()) is not None
    assert not proc.pid_alive(0)


def test_user_command_passes_text_as_one_argument(tmp_path: Path) -> None:
    argv = proc.user_command("echo $((1+2)) > out.txt")
    assert argv[:2] == ["/bin/sh", "-c"]
    assert len(argv) == 3
    proc.run(argv, cwd=tmp_path)
    assert (tmp_path / "out.txt").read_text() == "3\n"


def test_all_eight_formats_are_registered() -> None:
    assert sorted(formats.reader_names()) == sorted(
        ["planfleet", "spec", "ai", "maxvision", "plan-dir", "xml-tasks", "gsd", "superpowers"]
    )
    for reader in formats.readers():
        assert reader.summary
