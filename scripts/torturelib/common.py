"""What every scenario shares: the result record, the isolated environment, repositories,
the engine command line, and the end-of-trial checks (state, locks, worktrees)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from planfleet.engine import runinfo
from planfleet.state.store import StateStore

IDENTITY = {
    "GIT_AUTHOR_NAME": "Torture Test",
    "GIT_AUTHOR_EMAIL": "torture@example.com",
    "GIT_COMMITTER_NAME": "Torture Test",
    "GIT_COMMITTER_EMAIL": "torture@example.com",
}
FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "tests" / "fake_claude" / "claude"
# Variables that would point git or planfleet somewhere else than the trial's repository.
DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "PLANFLEET_DETACHED", "CLAUDE_PLUGIN_DATA")


@dataclass
class Trial:
    """One trial of a scenario: passed or not, why, and the figure it is ranked by."""

    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    metric: float = 0.0  # the figure "worst case" is chosen by (seconds, kills, ...)
    detail: str = ""


@dataclass
class ScenarioResult:
    """A scenario's counts and its worst trial, as printed in the table and the JSON."""

    scenario: str
    metric_name: str
    trials: list[Trial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for t in self.trials if t.ok)

    @property
    def failed(self) -> int:
        return len(self.trials) - self.passed

    def worst(self) -> Trial | None:
        """Return the first failed trial, or (all passed) the one with the highest metric."""
        failed = [t for t in self.trials if not t.ok]
        if failed:
            return failed[0]
        return max(self.trials, key=lambda t: t.metric, default=None)

    def worst_text(self) -> str:
        w = self.worst()
        if w is None:
            return "-"
        if not w.ok:
            return f"FAIL {w.name}: {'; '.join(w.problems)[:300]}"
        return f"{w.name}: {self.metric_name} {w.metric:g}" + (f" ({w.detail})" if w.detail else "")

    def to_json(self) -> dict[str, Any]:
        w = self.worst()
        return {
            "scenario": self.scenario,
            "trials": len(self.trials),
            "passed": self.passed,
            "failed": self.failed,
            "worst_case": self.worst_text(),
            "worst_metric": {"name": self.metric_name, "value": w.metric if w else None},
            "failures": [
                {"trial": t.name, "problems": t.problems, "detail": t.detail}
                for t in self.trials
                if not t.ok
            ],
            "notes": self.notes,
        }


def isolated_env(home: Path) -> dict[str, str]:
    """Return os.environ with HOME and git config isolated and a fixed git identity."""
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        **IDENTITY,
    )
    return env


def git(repo: Path, *args: str, check: bool = True, stdin: str | None = None) -> str:
    """Run git in ``repo`` (the harness's own setup and inspection); return stdout."""
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update(GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", **IDENTITY)
    res = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        input=stdin,
    )
    if check and res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {res.stderr.strip()}")
    return res.stdout


def make_repo(path: Path, files: dict[str, str | bytes]) -> Path:
    """Create a git repository at ``path`` holding ``files`` in one commit on main."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(textwrap.dedent(content) if rel.endswith(".yaml") else content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def copy_repo(template: Path, dest: Path) -> Path:
    """Return a full copy of the repository ``template`` (objects and all) at ``dest``."""
    subprocess.run(["cp", "-a", str(template), str(dest)], check=True)
    return dest


def planfleet(repo: Path, *args: str) -> list[str]:
    """Return the argv of ``planfleet -C repo ARGS`` with this Python."""
    return [sys.executable, "-m", "planfleet", "-C", str(repo), *args]


def shell_run(repo: Path, *, resume: bool, parallel: int, attempts: int = 5) -> list[str]:
    """Return the argv of a shell-runner ``run plans/p.plan.yaml`` (or ``resume p``)."""
    verb = ["resume", "p"] if resume else ["run", "plans/p.plan.yaml"]
    return planfleet(
        repo,
        *verb,
        "--runner",
        "shell",
        "--json",
        "--max-parallel",
        str(parallel),
        "--max-attempts",
        str(attempts),
    )


def integration_tree(repo: Path, plan: str = "p") -> str | None:
    out = git(
        repo, "rev-parse", "-q", "--verify", f"planfleet/{plan}/integration^{{tree}}", check=False
    )
    return out.strip() or None


def integration_commit(repo: Path, plan: str = "p") -> str | None:
    out = git(
        repo, "rev-parse", "-q", "--verify", f"refs/heads/planfleet/{plan}/integration", check=False
    )
    return out.strip() or None


def is_ancestor(repo: Path, commit: str, ref: str) -> bool:
    res = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, ref],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    return res.returncode == 0


def load_state(repo: Path, plan: str = "p") -> tuple[dict[str, Any] | None, str | None]:
    """Return (state, None) after a full schema-checked load, (None, None) if there is no
    state file yet, or (None, problem) when it does not load."""
    store = StateStore.for_plan(repo, plan)
    if not store.exists():
        return None, None
    try:
        return dict(store.load()), None
    except Exception as exc:  # any failure to load is the finding, whatever its type
        return None, f"state does not load: {type(exc).__name__}: {exc}"


def held_locks(repo: Path, plan: str = "p") -> list[str]:
    """Return the planfleet locks someone still holds and git lock files left in .git."""
    held = []
    if runinfo.is_running(repo, plan):
        held.append("engine lock")
    pf = repo / ".planfleet"
    for lock in [*pf.glob("state/*.lock"), *pf.glob("locks/**/*.lock")]:
        fl = filelock.FileLock(str(lock), timeout=0)
        try:
            fl.acquire(timeout=0)
        except filelock.Timeout:
            held.append(str(lock.relative_to(repo)))
        else:
            fl.release()
    gitdir = repo / ".git"
    held += [str(p.relative_to(repo)) for p in gitdir.rglob("*.lock")]
    return held


def stale_worktrees(repo: Path, plan: str = "p") -> list[str]:
    """Return task worktrees git still lists, and worktree folders left on disk (a parked
    spare - present, detached, clean - is kept on purpose and not counted)."""
    found, registered = [], set()
    listing = git(repo, "worktree", "list", "--porcelain")
    for block in listing.strip().split("\n\n"):
        fields = dict((ln + " ").split(" ", 1) for ln in block.splitlines())
        path = Path(fields.get("worktree", "").strip())
        registered.add(path.resolve())
        if path.resolve() == repo.resolve() or _clean_spare(path, fields):
            continue
        found.append(str(path))
    root = repo / ".planfleet" / "worktrees" / plan
    if root.is_dir():
        found += [
            f"unregistered folder {p}" for p in root.iterdir() if p.resolve() not in registered
        ]
    return found


def _clean_spare(path: Path, fields: dict[str, str]) -> bool:
    """Return True for a parked spare worktree (kept on purpose): present, detached, clean."""
    if not path.name.startswith("_spare-") or "detached" not in fields or not path.is_dir():
        return False
    return git(path, "status", "--porcelain", check=False).strip() == ""


def envelope(stdout: str) -> dict[str, Any] | None:
    """Return the JSON envelope printed on stdout (its last JSON line), or None."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "command" in data:
            return data
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text
