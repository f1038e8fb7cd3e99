"""Scenario 3's machinery: fixture repositories, applying and undoing a case, running the
validator in-process, and judging what it did."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torturelib import common
from torturelib.hostile_gen import FIXTURES, FORMATS, Case, Context

FOREIGN_PLAN = """planfleet: 1
name: foreign
phases:
  - id: one
    tasks:
      - id: t1
        title: a plan from outside the repository
        files: {{create: [x.txt]}}
        commands: ["touch {canary}"]
"""


def repo_name(fixture: str) -> str:
    return fixture.replace("/", "_")


def make_repos(root: Path) -> dict[str, Path]:
    """Create one git repository per fixture folder under ``root``; return format -> repo."""
    made: dict[str, Path] = {}
    for fixture in sorted({f for f, _ in FORMATS.values()}):
        repo = root / repo_name(fixture)
        if not repo.exists():
            shutil.copytree(FIXTURES / fixture, repo)
            common.make_repo(repo, {})
        made[fixture] = repo
    return {fmt: made[fixture] for fmt, (fixture, _) in FORMATS.items()}


def make_outside(outside: Path, *, canary: str, marker: str) -> None:
    """Plant the bait outside every repository: a secret, a foreign plan, a plan folder."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.md").write_text(f"# not yours\n\n{marker}\n" * 20)
    (outside / "foreign.plan.yaml").write_text(FOREIGN_PLAN.format(canary=canary))
    spec = outside / "spec-plan"
    if not spec.exists():
        shutil.copytree(FIXTURES / "spec/shortener/.spec/plans/url-shortener", spec)
        for f in spec.rglob("*.md"):
            f.write_text(f.read_text() + f"\n{marker}\n")


def make_context(repos: dict[str, Path], *, outside: Path, canary: str, marker: str) -> Context:
    """Return the generation context: pristine files and the words each plan uses."""
    from planfleet.plan import formats

    files: dict[str, dict[str, bytes]] = {}
    words: dict[str, list[str]] = {}
    for fmt, repo in repos.items():
        files[fmt] = {
            str(p.relative_to(repo)): p.read_bytes()
            for p in sorted(repo.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(repo).parts
        }
        plan = formats.load_plan(repo / FORMATS[fmt][1], repo=repo)
        found = {plan.name, *(p.id for p in plan.phases)}
        for t in plan.tasks:
            found |= {t.id, *t.depends_on, *t.files_create, *t.files_modify}
        words[fmt] = sorted(w for w in found if len(w) >= 3)
    return Context(files, words, canary, outside, marker)


@dataclass
class Applied:
    """What a case changed in a repository, so that it can be put back exactly."""

    repo: Path
    saved: dict[Path, tuple[str, bytes | str | None]] = field(default_factory=dict)
    dirs: list[Path] = field(default_factory=list)

    def _save(self, path: Path) -> None:
        if path in self.saved:
            return
        if path.is_symlink():
            self.saved[path] = ("link", os.readlink(path))
        elif path.is_file():
            self.saved[path] = ("file", path.read_bytes())
        else:
            self.saved[path] = ("none", None)
        _remove(path)

    def _parents(self, path: Path) -> None:
        missing = []
        for parent in path.parents:
            if parent.exists() or parent == self.repo:
                break
            missing.append(parent)
        for folder in reversed(missing):
            folder.mkdir()
            self.dirs.append(folder)

    def restore(self) -> None:
        for path, (kind, data) in self.saved.items():
            _remove(path)
            if kind == "link":
                os.symlink(str(data), path)
            elif kind == "file":
                assert isinstance(data, bytes)
                path.write_bytes(data)
        for folder in reversed(self.dirs):
            shutil.rmtree(folder, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        with contextlib.suppress(PermissionError):
            path.chmod(stat.S_IRWXU)
        shutil.rmtree(path)


def apply(repo: Path, case: Case) -> Applied:
    """Make the case's edits in ``repo``; return what is needed to undo them."""
    done = Applied(repo)
    for rel in case.removes:
        done._save(repo / rel)
    for rel, data in case.writes.items():
        path = repo / rel
        done._parents(path)
        done._save(path)
        path.write_bytes(data)
    for rel, target in case.links.items():
        path = repo / rel
        done._parents(path)
        done._save(path)
        if target == "FIFO":
            os.mkfifo(path)
        elif target == "DIR":
            path.mkdir()
        else:
            os.symlink(target, path)
    return done


def validate_in_process(repo: Path, plan: str) -> tuple[int | None, str, str, str | None]:
    """Run ``planfleet plan validate PLAN --json`` in this process; return (code, stdout,
    stderr, traceback of an exception that escaped main, if any)."""
    from planfleet.cli import app

    out, err = io.StringIO(), io.StringIO()
    escaped = None
    code: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = app.main(["-C", str(repo), "plan", "validate", str(repo / plan), "--json"])
        except BaseException:  # the finding is that anything escaped at all
            escaped = traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), escaped


def judge(
    case: Case, ctx: Context, code: int | None, out: str, err: str, escaped: str | None = None
) -> list[str]:
    """Return what is wrong with how the command treated the case (empty: fine)."""
    problems = []
    if escaped:
        problems.append(f"exception escaped main: {escaped.strip().splitlines()[-1]}")
    if code is None and not escaped:
        problems.append("no exit (hung or killed)")
    elif code not in (0, 2, None):
        problems.append(f"exit {code}: {(err or out).strip()[-200:]}")
    if common.has_traceback(out + err):
        problems.append("a traceback was printed")
    if (ctx.secret in out or ctx.secret in err) and not case.foreign:
        problems.append("the content of a file outside the repository was printed")
    if code == 2:
        problems += _rejection_problems(case, out)
    return problems


def _rejection_problems(case: Case, out: str) -> list[str]:
    env = common.envelope(out)
    if env is None:
        return ["exit 2 without a JSON envelope on stdout"]
    errors: list[dict[str, Any]] = list(env.get("errors") or [])
    data = env.get("data")
    if isinstance(data, dict):
        errors += [e for e in data.get("errors") or [] if isinstance(e, dict)]
    if not errors:
        return ["exit 2 without an error message"]
    plan_name = Path(case.plan).name
    named = any(e.get("file") or plan_name in str(e.get("message", "")) for e in errors)
    if not all(str(e.get("message", "")).strip() for e in errors):
        return ["an error with an empty message"]
    if not named:
        return [f"exit 2 but no error names a file: {errors[0].get('message')!r}"]
    return []


def accepted_problems(repo: Path, case: Case, ctx: Context) -> list[str]:
    """For a plan the validator accepted: every id is safe, nothing came from outside."""
    from planfleet.errors import PlanfleetError
    from planfleet.ids import id_problem
    from planfleet.plan import formats

    try:
        plan = formats.load_plan(formats.resolve(str(repo / case.plan), repo=repo), repo=repo)
    except PlanfleetError as exc:
        return [f"validate accepted the plan but loading it fails: {exc.message}"]
    problems = []
    for kind, value in [
        ("plan name", plan.name),
        *(("phase id", p.id) for p in plan.phases),
        *(("task id", t.id) for t in plan.tasks),
    ]:
        problem = id_problem(value)
        if problem:
            problems.append(f"accepted unsafe {kind} {value!r}: {problem}")
    if ctx.secret in repr(plan) and not case.foreign:
        problems.append("the plan model carries the content of a file outside the repository")
    return problems
