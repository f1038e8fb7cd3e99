"""Background dispatch in the real Claude Code CLI: `claude --bg` sessions write and commit.

`planfleet dispatch` starts one real `claude --bg` 2.1.328 session per plan of a `.maxvision`
phase, against a scripted model on 127.0.0.1 (reference §6: a test-owned CLAUDE_CONFIG_DIR
whose `.claude.json` trusts the repository and whose `settings.json` has an apiKeyHelper).
The user adds no allow rule: planfleet gives each session its own worktree and the rules
`run` gives its agents. The model's answers are scripted; the tools really run, so the files
are really written and committed, `planfleet agents collect` really verifies and merges, and
the repository's tests really run on the integration branch. The test stops every session
and the supervisor it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import git, make_repo
from scripted_model import (
    Block,
    ScriptedModel,
    all_text,
    bash,
    block_text,
    system_text,
    text,
    tool_results,
    tool_use,
    turn,
)
from test_plugin_e2e import ROOT, claude_env, run_group, stop_leftovers
from test_plugin_manifest import find_claude

pytestmark = pytest.mark.e2e

TESTS = "python3 -m unittest discover -s tests -t ."
PLANS = ".maxvision/phase-1/plans"
RUN = "maxvision-phase-1"
DONE_DEADLINE_S = 360.0  # two sessions of five turns each, on a busy two-core machine
EXECUTOR = "You are planfleet's background plan executor"
CLASSIFIER = "decide which of four states"  # Claude Code's own session-state request
REPORT = "all committed, tests green"  # ends a session's closing report (nowhere else)

SLUG = '''"""Slugs for titles."""


def slugify(title: str) -> str:
    """Return ``title`` in lower case with runs of other characters turned into one dash."""
    out, dash = [], False
    for ch in title.lower():
        if ch.isalnum():
            out.append(ch)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")
'''
SLUG_TEST = """import unittest

from app.slug import slugify


class SlugifyTest(unittest.TestCase):
    def test_words(self) -> None:
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_empty(self) -> None:
        self.assertEqual(slugify("  "), "")
"""
CENTS = '''"""Amounts of money in cents."""


def to_cents(amount: str) -> int:
    """Return a decimal amount such as "12.5" in cents (1250)."""
    whole, _, frac = amount.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])
'''
CENTS_TEST = """import unittest

from app.cents import to_cents


class ToCentsTest(unittest.TestCase):
    def test_fraction(self) -> None:
        self.assertEqual(to_cents("12.5"), 1250)

    def test_whole(self) -> None:
        self.assertEqual(to_cents("3"), 300)
"""
# plan file -> the files its session writes
WORK = {
    f"{PLANS}/plan-001-slug.md": {"app/slug.py": SLUG, "tests/test_slug.py": SLUG_TEST},
    f"{PLANS}/plan-002-cents.md": {"app/cents.py": CENTS, "tests/test_cents.py": CENTS_TEST},
}


def plan_file(title: str, files: list[str]) -> str:
    created = "".join(f"  - {f}\n" for f in files)
    return (
        f"---\nstatus: pending\nfiles_created:\n{created}verify:\n  - {TESTS}\n---\n"
        f"# {title}\n\nWrite {files[0]} and its tests in {files[1]}.\n"
    )


FILES = {
    "README.md": "# app\n",
    "app/__init__.py": "",
    "app/base.py": "def double(x: int) -> int:\n    return 2 * x\n",
    "tests/__init__.py": "",
    "tests/test_base.py": "import unittest\n\nfrom app.base import double\n\n\n"
    "class DoubleTest(unittest.TestCase):\n    def test_double(self) -> None:\n"
    "        self.assertEqual(double(2), 4)\n",
    **{plan: plan_file(Path(plan).stem, list(files)) for plan, files in WORK.items()},
}


def executor(body: dict[str, Any], seen: dict[str, list[str]]) -> list[Block]:
    """Play one session: write its plan's files, run the tests, commit, report."""
    asked = re.search(r"Execute the plan in (\S+) \(phase", all_text(body))
    where = re.search(r"Primary working directory: (\S+)", system_text(body) + all_text(body))
    assert asked, "the session's prompt names its plan"
    assert where, "the session is told where it works"
    plan, worktree = asked[1], where[1]
    assert f"You start in your own git worktree, {worktree}, on branch" in all_text(body)
    files = WORK[plan]
    seen[plan] = [block_text(b) for b in tool_results(body)]
    writes = [
        tool_use("Write", {"file_path": f"{worktree}/{f}", "content": c}) for f, c in files.items()
    ]
    answers = [
        writes,
        [bash(TESTS, "Run the tests the plan names")],
        [bash(f"git add {' '.join(files)}", "Stage the plan's files")],
        [bash(f"git commit -m '{Path(plan).stem}: done'", "Commit the plan's work")],
    ]
    k = turn(body)
    if k < len(answers):
        return answers[k]
    return [text(f"Committed {', '.join(files)} on my branch; {REPORT}.")]


def script_for(seen: dict[str, list[str]]) -> Any:
    def script(body: dict[str, Any]) -> list[Block]:
        system = system_text(body)
        if CLASSIFIER in system:  # done once the executor's closing report is the tail
            finished = REPORT in all_text(body)
            result = {"result": "plan committed, tests pass"} if finished else {}
            word = "done" if finished else "working"
            state = {"state": word, "detail": word, "tempo": "idle", "output": result}
            return [text(json.dumps(state))]
        if EXECUTOR in system:
            return executor(body, seen)
        return [text("ok")]

    return script


@pytest.fixture
def claude() -> str:
    found = find_claude()
    if found is None:
        pytest.skip("no Claude Code CLI: set PLANFLEET_CLAUDE or run .ci/run, which installs it")
    return found


def bg_config(folder: Path, repo: Path) -> None:
    """Write the CLI config a background session needs: a trusted repo, an apiKeyHelper."""
    folder.mkdir(parents=True, exist_ok=True)
    trusted = {"projects": {str(repo): {"hasTrustDialogAccepted": True}}}
    (folder / ".claude.json").write_text(
        json.dumps({**trusted, "hasCompletedOnboarding": True}), encoding="utf-8"
    )
    helper = {"apiKeyHelper": "echo sk-planfleet-test"}
    (folder / "settings.json").write_text(json.dumps(helper), encoding="utf-8")


def agents(claude: str, repo: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Return `claude agents --json --all`."""
    out = subprocess.run(
        [claude, "agents", "--json", "--all"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found: list[dict[str, Any]] = json.loads(out)
    return found


def wait_done(claude: str, repo: Path, env: dict[str, str], ids: set[str]) -> dict[str, Any]:
    """Poll `claude agents` until every session in ``ids`` is done; fail with their logs."""
    deadline = time.monotonic() + DONE_DEADLINE_S
    while True:
        states = {e["id"]: e for e in agents(claude, repo, env) if e.get("id") in ids}
        if len(states) == len(ids) and all(e.get("state") == "done" for e in states.values()):
            return states
        ended = [e for e in states.values() if e.get("state") in ("failed", "stopped", "blocked")]
        if ended or time.monotonic() > deadline:
            logs = [
                subprocess.run(
                    [claude, "logs", sid], env=env, capture_output=True, text=True, timeout=60
                ).stdout[-3000:]
                for sid in ids
            ]
            pytest.fail(f"sessions did not finish: {states}\n" + "\n---\n".join(logs))
        time.sleep(1)  # a poll interval on claude's own state, not a wait for something


@contextlib.contextmanager
def stopped_afterwards(
    claude: str, repo: Path, env: dict[str, str], folder: Path
) -> Iterator[None]:
    """Stop every session and the supervisor of this test's config folder on the way out."""
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.SubprocessError, ValueError, OSError):
            for entry in agents(claude, repo, env):
                if entry.get("id"):
                    subprocess.run(
                        [claude, "stop", entry["id"]], env=env, capture_output=True, timeout=60
                    )
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [claude, "daemon", "stop", "--any"], env=env, capture_output=True, timeout=60
            )
        stop_leftovers(folder)  # what is left (spare PTY hosts) runs with its CLAUDE_CONFIG_DIR


def planfleet(repo: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_group(
        [str(ROOT / "bin" / "planfleet"), *args, "--json"], cwd=repo, env=env, timeout=300
    )
    assert out.strip(), err
    data: dict[str, Any] = json.loads(out)
    return code, data


def test_two_plans_are_written_committed_collected_and_merged(claude: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    bg_config(tmp_path / "claude-config", repo)
    seen: dict[str, list[str]] = {}
    with ScriptedModel(script_for(seen)) as model:
        env = claude_env(claude, tmp_path, model.url)
        with stopped_afterwards(claude, repo, env, tmp_path):
            # no allow rule from the user: only the plugin and the dispatch's own flags
            code, out = planfleet(
                repo, env, "dispatch", "--phase", "1", "--plugin-dir", str(ROOT), "--yes"
            )
            assert code == 0, out
            data = out["data"]
            assert (data["status"], data["session_count"]) == ("dispatched", 2)
            assert data["problems"] == []  # each session was seen running in its worktree
            sessions = {s["path"]: s for s in data["sessions"]}
            assert set(sessions) == set(WORK)
            done = wait_done(claude, repo, env, {s["session_id"] for s in sessions.values()})
            assert not model.errors, model.errors
            for plan, s in sessions.items():
                wt = repo / s["worktree"]
                # the session ran in planfleet's worktree and was never moved out of it
                assert Path(done[s["session_id"]]["cwd"]) == wt
                log = git(wt, "log", "--format=%s", "-1", s["branch"]).strip()
                assert log == f"{Path(plan).stem}: done"
                assert git(wt, "status", "--porcelain") == ""
                # its tools ran: written, tested and committed, nothing refused
                results = "\n".join(seen[plan])
                assert "File created successfully" in results
                assert "Ran 3 tests" in results
                assert "OK" in results
                for refusal in ("EnterWorktree", "isolated", "Auto mode", "permission"):
                    assert refusal not in results, results

            code, out = planfleet(repo, env, "agents", "collect", "--phase", "1")
            assert code == 0, out
            collected = {c["plan"]: c for c in out["data"]["sessions"]}
            assert {p: c["result"] for p, c in collected.items()} == dict.fromkeys(WORK, "merged")

    # the repository's tests pass on the integration branch, with both plans' work in it
    check = tmp_path / "check"
    git(repo, "worktree", "add", "-q", "--detach", str(check), f"planfleet/{RUN}/integration")
    ran = subprocess.run(
        [sys.executable, *TESTS.split()[1:]],
        cwd=check,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert ran.returncode == 0, ran.stderr
    assert "Ran 5 tests" in ran.stderr
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
