"""`planfleet plan list|show|validate`: read plans in any format and explain them."""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli.output import Out, table
from planfleet.errors import ExitCode, PlanfleetError
from planfleet.plan import formats
from planfleet.plan.model import Plan


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plan",
        help="list, show and validate plans",
        description="Read plans in any supported format.",
    )
    psub = p.add_subparsers(dest="plan_command", metavar="SUBCOMMAND", required=True)
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument(
        "--format",
        metavar="NAME",
        help="force a plan format (default: detected): "
        + ", ".join(formats.READER_MODULES).replace("_", "-"),
    )

    ls = psub.add_parser(
        "list",
        parents=[parent],
        help="every plan in the repository",
        description="List every plan found in the repository (any format), "
        "most recently updated first, with its progress.",
    )
    ls.add_argument(
        "dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="folder to search (default: the repository)",
    )
    ls.set_defaults(handler=_list, command_name="plan list")

    show = psub.add_parser(
        "show",
        parents=[parent, fmt],
        help="phases, tasks, groups, critical path",
        description="Show a plan: phases, tasks, the first open task, a "
        "complexity estimate, execution groups, the critical path, owners, "
        "blast radius and what will be verified.",
    )
    show.add_argument(
        "plan", metavar="PLAN", help="plan file or folder, or a plan name from `plan list`"
    )
    show.set_defaults(handler=_show, command_name="plan show")

    val = psub.add_parser(
        "validate",
        parents=[parent, fmt],
        help="errors and warnings",
        description="Check a plan. Exit 2 when it has errors (or warnings "
        "with --strict), 0 otherwise.",
    )
    val.add_argument("plan", metavar="PLAN", help="plan file or folder, or a plan name")
    val.add_argument("--strict", action="store_true", help="treat warnings as errors")
    val.set_defaults(handler=_validate, command_name="plan validate")


def _repo(ns: argparse.Namespace) -> Path:
    return git.require_repo(ns.repo)


def _load(ns: argparse.Namespace) -> tuple[Path, Plan]:
    repo = _repo(ns)
    path = formats.resolve(ns.plan, repo=repo, format=ns.format)
    return repo, formats.load_plan(path, repo=repo, format=ns.format)


def _list(ns: argparse.Namespace, out: Out) -> int:
    repo = _repo(ns)
    where = (ns.dir or repo).resolve()
    rows: list[dict[str, Any]] = []
    for ref in formats.discover(where):
        entry: dict[str, Any] = {
            "format": ref.format,
            "path": _rel(ref.path, repo),
            "updated": _updated(ref.path),
        }
        try:
            plan = formats.load_plan(ref.path, repo=repo, format=ref.format)
        except PlanfleetError as exc:
            entry.update(name=ref.path.stem, title="", status="unreadable", error=exc.render())
        else:
            done = sum(1 for t in plan.tasks if t.status in ("done", "skipped"))
            status = (
                "done"
                if plan.tasks and done == len(plan.tasks)
                else (
                    "in progress"
                    if done or any(t.status == "in_progress" for t in plan.tasks)
                    else "not started"
                )
            )
            entry.update(
                name=plan.name,
                title=plan.title,
                status=status,
                tasks=len(plan.tasks),
                done=done,
                phases=len(plan.phases),
            )
        rows.append(entry)
    rows.sort(key=lambda r: r["updated"], reverse=True)

    def human() -> None:
        if not rows:
            out.line(
                "no plans found (looked for every format: "
                + ", ".join(formats.reader_names())
                + ")"
            )
            return
        out.line(
            table(
                [
                    [
                        r["name"],
                        r["format"],
                        r["status"],
                        f"{r.get('done', 0)}/{r.get('tasks', 0)}",
                        _when(r["updated"]),
                        r["path"],
                    ]
                    for r in rows
                ],
                ["PLAN", "FORMAT", "STATUS", "DONE", "UPDATED", "PATH"],
            )
        )
        for r in rows:
            if "error" in r:
                out.warn(r["error"])

    out.result("plan list", {"plans": rows}, human=human)
    return ExitCode.OK


def _show(ns: argparse.Namespace, out: Out) -> int:
    # imported here: the parser is built for every command
    from planfleet.plan import analysis
    from planfleet.verify import testcmd, testrun

    repo, plan = _load(ns)
    a = analysis.analyze(plan)
    data = analysis.plan_json(a)
    tests = testcmd.choose(repo, plan)
    data["tests"] = testcmd.summary(plan, tests, None)

    def human() -> None:
        level, reasons = data["complexity"]["level"], data["complexity"]["reasons"]
        first = plan.first_open_task()
        out.line(f"Plan: {plan.name} - {plan.title}  [{plan.format}]")
        out.line(
            f"- {len(plan.phases)} phases, {len(plan.tasks)} tasks ({data['counts']['done']} done)"
        )
        out.line(f"- Starting from: {first.id} ({first.title})" if first else "- All tasks done")
        out.line(f"- Complexity: {level} ({', '.join(reasons)})")
        for key in ("branch", "worktree", "status"):
            if plan.meta.get(key):
                out.line(f"- {key.capitalize()}: {plan.meta[key]}")
        for line in testcmd.summary_lines(plan, tests, None):
            out.line(f"- {line[0].upper()}{line[1:]}")
        for ph in plan.phases:
            extra = [f"owner {ph.owner}"] if ph.owner else []
            if ph.depends_on:
                extra.append("after " + ", ".join(ph.depends_on))
            if ph.blast_radius is not None:
                every = testrun.all_tests(ph.blast_radius)
                extra.append(f"blast radius {'(all tests)' if every else ph.blast_radius}")
            out.line(f"\nPhase {ph.id}: {ph.title}" + (f"  ({'; '.join(extra)})" if extra else ""))
            for t in plan.tasks_of(ph.id):
                mark = "x" if t.status in ("done", "skipped") else " "
                deps = f"  <- {', '.join(t.depends_on)}" if t.depends_on else ""
                out.line(f"  [{mark}] {t.id}  {t.title}{deps}")
                checks = _checks(t)
                if checks:
                    out.line(f"        verified by: {'; '.join(checks)}")
            for cmd in ph.gate_commands:
                out.line(f"  gate: {cmd}")
        if a.groups:
            out.line("\nExecution groups (tasks that can run together):")
            for i, group in enumerate(a.groups, 1):
                out.line(f"  {i}. {', '.join(group)}")
        if a.critical_path:
            out.line(f"\nCritical path ({a.critical_length:g}): {' -> '.join(a.critical_path)}")
        for d in a.diagnostics:
            out.line(d.render())

    out.result("plan show", data, human=human)
    return ExitCode.OK


def _checks(t: Any) -> list[str]:
    checks = []
    if t.files_create:
        checks.append(f"{len(t.files_create)} file(s) exist")
    checks.extend(f"`{v}`" for v in t.verify)
    if t.add_dependencies:
        checks.append("dependencies " + ", ".join(t.add_dependencies))
    if t.blast_radius is not None:
        from planfleet.verify.testrun import all_tests

        checks.append(f"tests {'(all)' if all_tests(t.blast_radius) else t.blast_radius}")
    return checks


def _validate(ns: argparse.Namespace, out: Out) -> int:
    from planfleet.plan import analysis

    _, plan = _load(ns)
    a = analysis.analyze(plan)
    errors, warnings = a.errors, a.warnings
    failed = bool(errors) or (ns.strict and bool(warnings))
    data = {
        "plan": plan.name,
        "format": plan.format,
        "valid": not failed,
        "errors": [d.to_json() for d in errors],
        "warnings": [d.to_json() for d in warnings],
    }

    def human() -> None:
        for d in [*errors, *warnings]:
            out.line(d.render())
        verdict = "invalid" if failed else "valid"
        out.line(f"{plan.name}: {verdict} ({len(errors)} errors, {len(warnings)} warnings)")

    out.result("plan validate", data, status="invalid" if failed else "ok", human=human)
    return ExitCode.USAGE if failed else ExitCode.OK


def _rel(path: Path, repo: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo.resolve()))
    except ValueError:
        return str(path)


def _updated(path: Path) -> float:
    """Return the newest modification time of the plan file (or of files in a plan folder)."""
    if path.is_file():
        return path.stat().st_mtime
    times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return max(times, default=path.stat().st_mtime)


def _when(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
