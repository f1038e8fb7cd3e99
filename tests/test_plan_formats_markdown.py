"""Markdown block structure: fences of any length, comments, `C#`, indented headings.

Each case is one a line-by-line reader got wrong; the readers now take the block structure
from markdown-it-py, and so do the projections that tick checkboxes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import make_repo
from formats_support import write
from planfleet.plan.formats import load_plan
from planfleet.plan.formats.markdown import checkboxes, fenced_blocks, lines_of, sections
from planfleet.state import create, ops
from planfleet.views import render

FOUR_BACKTICKS = """\
# Changelog tooling

### Task 1: Document the release script

**Files:**
- Create: `docs/release.md`

- [ ] **Step 1: Write the page**

The page shows a shell session, so its fence is four backticks long:

````markdown
## Releasing
```bash
# tag first
git tag v1.2.0
```
````

- [ ] **Step 2: Check the page renders**

Run: `python -m pytest tests/test_docs.py -q`
Expected: PASS

### Task 2: Link it from the README

**Files:**
- Modify: `README.md`
"""


def test_a_four_backtick_fence_keeps_the_tasks_verify_command(tmp_path: Path) -> None:
    path = write(tmp_path, "docs/plans/2026-02-01-release-docs.md", FOUR_BACKTICKS)

    plan = load_plan(path, repo=tmp_path)

    assert [t.id for t in plan.tasks] == ["task-1", "task-2"]
    first = plan.task("task-1")
    assert first.verify == ("python -m pytest tests/test_docs.py -q",)
    assert first.meta["steps"] == ["Write the page", "Check the page renders"]
    # the "# tag first" comment inside the fence is not a heading of the plan
    assert [s.title for s in sections(FOUR_BACKTICKS)[1]] == [
        "Changelog tooling",
        "Task 1: Document the release script",
        "Task 2: Link it from the README",
    ]
    ((_, info, code),) = fenced_blocks(lines_of(FOUR_BACKTICKS))
    assert info == "markdown"
    assert code.splitlines()[-1] == "```"


def test_a_heading_ending_in_a_hash_keeps_it(tmp_path: Path) -> None:
    text = "# Interop\n\n### Task 3: Port the parser to C#\n\nRun: `dotnet test`\n"
    path = write(tmp_path, "docs/plans/interop.md", text)

    (task,) = load_plan(path, repo=tmp_path).tasks

    assert task.title == "Port the parser to C#"
    assert sections("## Done ##\n")[1][0].title == "Done"


def test_a_task_inside_an_html_comment_is_not_a_task(tmp_path: Path) -> None:
    text = (
        "# Search\n\n## Task 1: Index the titles\n\nRun: `pytest -q`\n\n"
        "<!--\n## Task 2: Fuzzy matching (later)\n- [ ] **Step 1: Pick a library**\n-->\n"
    )
    path = write(tmp_path, "docs/plans/search.md", text)

    plan = load_plan(path, repo=tmp_path)

    assert [t.title for t in plan.tasks] == ["Index the titles"]
    assert plan.task("task-1").meta["steps"] == []


def test_a_fence_line_with_an_info_string_does_not_close_a_fence(tmp_path: Path) -> None:
    # Inside a ``` fence, a line ```python opens nothing and closes nothing.
    text = (
        "# Plan: Exporter\n\n### Phase 1: Writer\n\n- [ ] Write the CSV writer\n\n"
        "Notes on the snippet format:\n\n```\n```python\n### Phase 9: Not a phase\n"
        "- [ ] not a task\n```\n\n- [ ] Add the `--csv` flag\n"
    )
    folder = tmp_path / ".spec/plans/exporter"
    write(folder, "plan.md", text)
    write(folder, "implementation/phase-1.md", "# Phase 1\n\n" + "Write it carefully. " * 10)

    plan = load_plan(folder, repo=tmp_path)

    assert [p.id for p in plan.phases] == ["1"]
    assert [t.title for t in plan.tasks] == ["Write the CSV writer", "Add the `--csv` flag"]


def test_a_heading_indented_three_spaces_is_a_heading(tmp_path: Path) -> None:
    text = "# Cache\n\n   ### Task 1: Add the LRU\n\nRun: `pytest tests/test_lru.py`\n"
    path = write(tmp_path, "docs/plans/cache.md", text)

    (task,) = load_plan(path, repo=tmp_path).tasks

    assert (task.title, task.verify) == ("Add the LRU", ("pytest tests/test_lru.py",))
    # four spaces make it code, not a heading
    assert [s.title for s in sections("# A\n\n    ## B\n")[1]] == ["A"]


def test_checkboxes_in_code_and_comments_are_not_items() -> None:
    text = (
        "Intro.\n\n    - [ ] indented code\n\n- [ ] real\n\n<!-- - [ ] commented -->\n\n"
        "~~~~\n- [ ] fenced\n~~~\n- [ ] still fenced\n~~~~\n- [x] real too\n"
    )

    assert [(c.text, c.checked) for c in checkboxes(lines_of(text))] == [
        ("real", False),
        ("real too", True),
    ]


def test_projections_tick_nothing_inside_a_fence_or_a_comment(tmp_path: Path) -> None:
    text = (
        "# Notes app\n\n### Task 1: Save notes\n\n"
        "- [ ] **Step 1: Write the store**\n\n"
        "Example of a finished task, as the docs show it:\n\n"
        "````markdown\n```\n- [ ] **Step 9: An example step**\n```\n````\n\n"
        "<!-- - [ ] **Step 8: A step someone commented out** -->\n\n"
        "- [ ] **Step 2: Run the tests**\n\nRun: `pytest -q`\nExpected: PASS\n"
    )
    path = write(tmp_path, "docs/plans/notes.md", text)
    plan = load_plan(path, repo=tmp_path)
    state = create.init_from_plan(plan, now="2026-01-01T00:00:00.000Z")
    ops.claim(state, "task-1", owner="agent", now="2026-01-01T00:01:00.000Z")
    ops.complete(state, "task-1", commit="abc1234", now="2026-01-01T00:02:00.000Z")

    render.render_all(tmp_path, plan, state)

    after = path.read_text("utf-8")
    assert "- [x] **Step 1: Write the store**" in after
    assert "- [x] **Step 2: Run the tests**" in after
    assert "- [ ] **Step 9: An example step**" in after
    assert "<!-- - [ ] **Step 8: A step someone commented out** -->" in after
    assert load_plan(path, repo=tmp_path).task("task-1").status == "done"


def test_markdown_it_is_imported_only_when_a_markdown_plan_is_read(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "plans/p.plan.yaml": "planfleet: 1\nname: p\nphases: [{id: a}]\n",
            "docs/plans/cache.md": "# Cache\n\n### Task 1: Add the LRU\n",
        },
    )
    probe = (
        "import sys\nfrom planfleet.cli import app\n"
        "code = app.main(['-C', sys.argv[1], 'plan', 'show', sys.argv[2], '--json'])\n"
        "assert code == 0, code\n"
        "print('markdown_it' in sys.modules, file=sys.stderr)\n"
    )

    def imported(plan: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(repo), plan],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stderr.strip().splitlines()[-1]

    assert imported("plans/p.plan.yaml") == "False"
    assert imported("docs/plans/cache.md") == "True"
