"""The 30-task plan of the crash-and-resume scenario (shell runner)."""

from __future__ import annotations

import random

PHASES = 3
PER_PHASE = 10
ROOTS = 4  # tasks of a phase that depend on nothing inside it


def crash_plan(rng: random.Random, *, phases: int = PHASES, per_phase: int = PER_PHASE) -> str:
    """Return a native plan: ``phases`` phases in a chain, its first tasks independent, the
    others depending on one or two of those; each task appends its id to ``$T/runs`` (the run
    marker), sleeps a random short time and writes two files whose content is fixed."""
    lines = ["planfleet: 1", "name: p", "title: crash and resume", "phases:"]
    for k in range(phases):
        lines += [f"  - id: ph{k}", f"    title: phase {k}"]
        if k:
            lines.append(f"    depends_on: [ph{k - 1}]")
        lines.append("    tasks:")
        for j in range(per_phase):
            n = k * per_phase + j
            # The first few tasks of a phase are independent; later ones depend on one or
            # two of them: a shallow graph keeps a trial short, yet merges still interleave.
            roots = [k * per_phase + i for i in range(min(j, ROOTS))]
            deps = sorted(rng.sample(roots, rng.randint(1, 2))) if j >= ROOTS else []
            sleep = round(rng.uniform(0.02, 0.2), 2)
            lines += [
                f"      - id: t{n:02d}",
                f"        title: task {n}",
                f"        files: {{create: [out/t{n:02d}.txt, data/p{k}/t{n:02d}.json]}}",
            ]
            if deps:
                lines.append(f"        depends_on: [{', '.join(f't{d:02d}' for d in deps)}]")
            lines += [
                "        commands:",
                '          - "echo $PLANFLEET_TASK >> $T/runs"',
                f'          - "sleep {sleep}"',
                f'          - "mkdir -p out data/p{k} && echo task {n} > out/t{n:02d}.txt"',
                f'          - "echo \'{{\\"n\\": {n}}}\' > data/p{k}/t{n:02d}.json"',
            ]
    return "\n".join(lines) + "\n"
