"""`planfleet run --dry-run`: what a run would start, shown and not started.

Per task the prompt size, the agent's commands and the engine's checks; then the
parallelism, the cost cap, the test command and the files a run would update in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planfleet import paths
from planfleet.cli.output import Out, table
from planfleet.engine import attempt, prompts, runcheck
from planfleet.engine.options import RunOptions
from planfleet.errors import ExitCode
from planfleet.plan import gcpause, graph, model
from planfleet.repo import worktrees
from planfleet.runners import AgentRequest, cloudgit, get_runner
from planfleet.verify import testcmd


def dry_run(out: Out, repo: Path, plan: model.Plan, opts: RunOptions) -> int:
    """Print, per task, the prompt size and commands; plus parallelism and the cost cap."""
    with gcpause.paused():  # a few objects per task, none of them garbage
        return _dry_run(out, repo, plan, opts)


def _dry_run(out: Out, repo: Path, plan: model.Plan, opts: RunOptions) -> int:
    loaded = plan
    tests = testcmd.choose(repo, plan, flag=opts.test_command, flag_timeout=opts.test_timeout_s)
    plan = testcmd.apply(plan, tests)
    g = graph.build(plan)
    runner = get_runner(opts.runner, opts.runner_options)
    cloud = get_runner("cloud", opts.cloud_options) if opts.cloud_parallel else runner
    worktree_of = worktrees.task_worktrees(repo, plan.name, [t.id for t in plan.tasks])
    rows: list[dict[str, Any]] = []
    for t in plan.tasks:
        if (opts.tasks or opts.phases) and t.id not in opts.tasks and t.phase not in opts.phases:
            continue
        checks = attempt.engine_checks(
            plan, t, strict=opts.strict_files, strict_tests=opts.strict_tests
        )
        prompt = prompts.build_prompt(plan, t, repo=repo, attempt=1, feedback=None, checks=checks)
        where = _where(t, opts)
        request = _dry_request(repo, plan, t, prompt, opts, worktree_of[t.id])
        rows.append(
            {
                "task": t.id,
                "phase": t.phase,
                "depends_on": list(g.deps.get(t.id, ())),
                "prompt_chars": len(prompt),
                "runs_on": where,
                "agent_commands": (cloud if where == "cloud" else runner).describe(request),
                "engine_checks": checks,
                "verify": list(t.verify),
                "timeout_s": t.timeout_s or opts.timeout_s,
            }
        )
        if where != "local":
            names = cloudgit.names(plan.name, t.id)
            rows[-1]["remote_branches"] = {"base": names.base, "task": names.task}
    widest = max((len(level) for level in graph.levels(g)), default=0)
    no_commands = runcheck.without_commands(repo, plan, opts)
    updates = runcheck.in_place_files(repo, loaded, opts)
    unseen = runcheck.unseen_changes(repo, plan)
    cap = None
    if opts.task_budget_usd:
        cap = opts.task_budget_usd * min(opts.max_parallel, widest)
    data = {
        "plan": plan.name,
        "runner": opts.runner,
        "max_parallel": opts.max_parallel,
        "projected_parallelism": min(opts.max_parallel, widest),
        "widest_level": widest,
        "cost_cap_running_usd": cap,
        "budget_usd": opts.budget_usd,
        "tests": testcmd.summary(plan, tests, opts.timeout_s),
        "tasks": rows,
        "tasks_without_commands": no_commands,
        "updates_in_place": updates,
        "unseen_changes": unseen,
    }

    def human() -> None:
        out.line(f"dry run of {plan.name} with the {opts.runner} runner (nothing is started)")
        for line in testcmd.summary_lines(plan, tests, opts.timeout_s):
            out.line(line)
        out.line(
            table(
                [
                    [
                        r["task"],
                        r["phase"],
                        ",".join(r["depends_on"]) or "-",
                        str(r["prompt_chars"]),
                    ]
                    for r in rows
                ],
                ["task", "phase", "after", "prompt chars"],
            )
        )
        for r in rows:
            out.line(f"\n{r['task']} (runs {r['runs_on']}):")
            if "remote_branches" in r:
                b = r["remote_branches"]
                out.line(f"  remote: engine pushes {b['base']}, the session pushes {b['task']}")
            for c in r["agent_commands"]:
                out.line(f"  agent $ {c}")
            for c in r["engine_checks"]:
                out.line(f"  check: {c}")
        out.line(
            f"\nparallelism: up to {data['projected_parallelism']} at once "
            f"(--max-parallel {opts.max_parallel}, widest level {widest})"
        )
        out.line(
            "cost cap of running agents: "
            + (f"${cap:.2f}" if cap is not None else "none (set --task-budget-usd)")
            + (f"; run budget ${opts.budget_usd:g}" if opts.budget_usd else "")
        )
        if updates:
            out.line("updates these files in place: " + ", ".join(updates))
        else:
            off = " (--no-projections)" if not opts.projections else ""
            out.line(f"updates no file in your checkout{off}")
        if no_commands:
            out.line(
                "the shell runner would refuse to start: no commands in " + ", ".join(no_commands)
            )
        warning = runcheck.unseen_warning(unseen)
        if warning:
            out.line(f"warning: {warning}")

    out.result("run", {"dry_run": True, **data}, human=human)
    return ExitCode.OK


def _where(t: model.Task, opts: RunOptions) -> str:
    """Return where ``t`` would run: local, cloud, or "local or cloud" (a free slot decides)."""
    if opts.runner == "cloud" or t.runner == "cloud":
        return "cloud"
    if t.runner == "local" or not opts.cloud_parallel:
        return "local"
    return "local or cloud"


def _dry_request(
    repo: Path, plan: model.Plan, t: model.Task, prompt: str, opts: RunOptions, worktree: Path
) -> AgentRequest:
    """Return the request the first attempt of ``t`` would get (for --dry-run's commands)."""
    return AgentRequest(
        repo=repo,
        plan=plan,
        task=t,
        worktree=worktree,
        branch=worktrees.task_branch(plan.name, t.id),
        base_commit="<integration>",
        attempt=1,
        max_attempts=t.max_attempts or opts.max_attempts,
        prompt=prompt,
        log_path=paths.attempt_log(repo, plan.name, t.id, 1),
        timeout_s=t.timeout_s or opts.timeout_s,
        stall_s=opts.stall_s,
        model=opts.model,
        budget_usd=opts.task_budget_usd,
        options=opts.runner_options,
    )
