"""Stage 4 of orchestrate: a cheat sheet per technology, written by a researcher or reused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from planfleet import fsutil, paths
from planfleet.orchestrate import knowledge, skillmatch, stepprompts, steps
from planfleet.orchestrate.record import Doc, PlanDir
from planfleet.orchestrate.steps import GateFailed, StepSpec
from planfleet.plan import model

RESEARCH_TOOLS = ("Write", *steps.READ_TOOLS, "WebFetch", "WebSearch")


def run_stage(
    pdir: PlanDir, plan: model.Plan, artifacts: Path, agent: Callable[[StepSpec, str], Doc]
) -> Doc:
    """Research every technology of ``plan`` not in the knowledge store; return the stage's data.

    ``agent`` runs a step and returns its checked artifact; the sheet it reports must be the
    one asked for and pass the store's check, else GateFailed.
    """
    repo = pdir.repo
    registry = skillmatch.load_registry(repo)
    text = fsutil.read_text(Path(plan.path))
    done: Doc = {}
    for tech in knowledge.technologies(plan, text, registry):
        sheet = knowledge.sheet_path(repo, tech.slug)
        if knowledge.known(repo, tech.slug):
            done[tech.slug] = {"status": "reused", "sheet": pdir.rel(sheet)}
            continue
        artifact = artifacts / f"{tech.slug}.json"
        paths.writable(repo, sheet)  # the researcher writes it: a real folder of ours
        used = [f"task {t}: {plan.task(t).title}" for t in tech.tasks] or ["(named in the plan)"]
        spec = StepSpec(
            key=f"research-{tech.slug}"[:64],
            kind="research",
            title=f"research of {tech.name}",
            prompt=stepprompts.research(tech.name, plan, used, sheet, artifact),
            cwd=repo,
            artifact=artifact,
            schema="research_report",
            tools=RESEARCH_TOOLS,
            agent="researcher",
        )
        art = agent(spec, "research")
        if Path(art["cheat_sheet"]).resolve() != sheet.resolve():
            raise GateFailed(spec.key, f"the cheat sheet must be written to {sheet}")
        problem = knowledge.sheet_problem(sheet, tech.name)
        if problem:
            raise GateFailed(spec.key, problem)
        knowledge.record(repo, tech, plan=plan.name, report=art)
        done[tech.slug] = {"status": "researched", "sheet": pdir.rel(sheet)}
    reused = sum(1 for v in done.values() if v["status"] == "reused")
    return {
        "technologies": done,
        "message": f"{len(done) - reused} researched, {reused} reused from the knowledge store",
    }
