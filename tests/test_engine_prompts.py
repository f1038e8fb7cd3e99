"""Prompts: each agent gets its own task's slice of the plan, deterministically."""

from __future__ import annotations

from pathlib import Path

from conftest import make_repo
from planfleet.engine import attempt, prompts
from planfleet.plan import model
from planfleet.plan.formats import load_plan
from runners_support import make_plan, make_task

PLAN_YAML = """\
planfleet: 1
name: shop
title: Shop
defaults:
  test_command: pytest -q
phases:
  - id: core
    title: Core models
    tasks:
      - id: cart
        title: Shopping cart
        text: Build the cart with add and remove operations.
        files: {create: [shop/cart.py], modify: [shop/__init__.py]}
        acceptance: ["adding an item twice raises the quantity"]
        add_dependencies: ["attrs>=23"]
        verify: ["pytest -q tests/test_cart.py"]
        spec: docs/cart.md
      - id: checkout
        title: Checkout
        depends_on: [cart]
        text: SECRET-OTHER-TASK-TEXT charge the card.
        files: {create: [shop/checkout.py]}
        acceptance: ["OTHER-ACCEPTANCE totals include tax"]
"""


def shop(tmp_path: Path) -> tuple[Path, model.Plan]:
    repo = make_repo(
        tmp_path / "repo",
        {
            "plan.yaml": PLAN_YAML,
            "docs/cart.md": "# Cart spec\n\nItems have a sku and a quantity.\n",
        },
    )
    return repo, load_plan(repo / "plan.yaml", repo=repo)


def test_prompt_holds_the_task_slice_and_nothing_of_other_tasks(tmp_path: Path) -> None:
    repo, plan = shop(tmp_path)
    text = prompts.build_prompt(
        plan,
        plan.task("cart"),
        repo=repo,
        attempt=1,
        feedback=None,
        checks=attempt.engine_checks(plan, plan.task("cart")),
    )
    for expected in (
        "# Task cart: Shopping cart",
        "Phase: Core models (core)",
        "Build the cart with add and remove operations.",
        "### docs/cart.md",
        "Items have a sku and a quantity.",
        "- adding an item twice raises the quantity",
        "- `shop/cart.py`",
        "- `shop/__init__.py`",
        "- attrs>=23",
        "- command passes: `pytest -q tests/test_cart.py`",
        "- file exists and is not empty: `shop/cart.py`",
        "- a change to a file the task does not list is reported",
        "Commit all your work on\n  this branch",
        "Do not touch other\n  tasks' files.",
    ):
        assert expected in text, expected
    assert "` passes" not in text  # the checks are shown in words, each once
    assert text.count("a commit on your branch with a non-empty diff") == 1
    assert "SECRET-OTHER-TASK-TEXT" not in text
    assert "OTHER-ACCEPTANCE" not in text
    assert "shop/checkout.py" not in text
    assert prompts.FEEDBACK_HEADING not in text
    assert "This is attempt" not in text


def test_prompt_of_a_dependent_names_its_dependencies_only(tmp_path: Path) -> None:
    repo, plan = shop(tmp_path)
    text = prompts.build_prompt(
        plan, plan.task("checkout"), repo=repo, attempt=1, feedback=None, checks=[]
    )
    assert "Builds on (already merged into your branch): cart (Shopping cart)" in text
    assert "Build the cart with add and remove" not in text
    assert "Items have a sku" not in text  # the other task's spec file


def test_prompt_with_feedback_is_deterministic(tmp_path: Path) -> None:
    repo, plan = shop(tmp_path)

    def build() -> str:
        return prompts.build_prompt(
            plan,
            plan.task("cart"),
            repo=repo,
            attempt=3,
            feedback="tests/test_cart.py::test_add FAILED\n```\nassert 1 == 2\n```",
            checks=["pytest -q"],
        )

    text = build()
    assert text == build()
    assert f"## {prompts.FEEDBACK_HEADING}" in text
    assert "Attempt 2 was not accepted" in text
    assert "This is attempt 3." in text
    # The feedback holds a ``` fence: it is quoted inside a longer one.
    assert "````\ntests/test_cart.py::test_add FAILED" in text
    assert text.index("## What the engine will check") < text.index(prompts.FEEDBACK_HEADING)


def test_spec_files_are_capped_and_confined_to_the_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"docs/big.md": "x" * (prompts.SPEC_FILE_CAP + 500)})
    (tmp_path / "outside.md").write_text("OUTSIDE CONTENT")
    task = make_task(
        "t1", spec_files=("docs/big.md", "docs/missing.md", "../outside.md"), kind="design"
    )
    text = prompts.build_prompt(make_plan(task), task, repo=repo, attempt=1, feedback="", checks=[])
    assert f"### docs/big.md (first {prompts.SPEC_FILE_CAP} characters)" in text
    assert "x" * prompts.SPEC_FILE_CAP in text
    assert "x" * (prompts.SPEC_FILE_CAP + 1) not in text
    assert "### docs/missing.md (not found in the repository)" in text
    assert "### ../outside.md (outside the repository: not included)" in text
    assert "OUTSIDE CONTENT" not in text
    assert "Kind: design task" in text
    assert prompts.FEEDBACK_HEADING not in text  # empty feedback adds nothing


def test_long_feedback_keeps_its_end(tmp_path: Path) -> None:
    task = make_task("t1")
    feedback = "start\n" + "y" * prompts.FEEDBACK_CAP + "\nTHE END"
    text = prompts.build_prompt(
        make_plan(task), task, repo=tmp_path, attempt=2, feedback=feedback, checks=[]
    )
    assert "THE END" in text
    assert "start\n" not in text
    assert "[...]" in text
