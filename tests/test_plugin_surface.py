"""The plugin's Markdown is code: frontmatter, sizes, preflights, confirmations, engine calls.

Claude Code's own validator does not check frontmatter values (reference §2), so this test
does: every skill, command and agent is loaded with python-frontmatter and checked against
the keys and values Claude Code 2.1.328 knows, and every `planfleet ...` command line the
Markdown tells the model to run is parsed by the engine's real argparse parser.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import frontmatter
import jsonschema
import pytest

from planfleet.cli import app
from planfleet.cli.commands import context as context_cmd
from planfleet.errors import PlanfleetError
from planfleet.schemas import load as load_schema

ROOT = Path(__file__).resolve().parents[1]

SKILLS = (
    "run",
    "execute-phase",
    "execute-phase-bg",
    "execute-batch",
    "orchestrate",
    "verify-work",
    "status",
    "resume",
    "plan",
)
COMMANDS = ("bg", "go", "status", "stop", "pause")
AGENTS = (
    "task-executor",
    "executor",
    "phase-orchestrator",
    "reviewer",
    "fixer",
    "verifier",
    "researcher",
    "plan-reviewer",
    "implementer",
    "tester",
)

# Frontmatter keys Claude Code reads (reference §2.1-2.3). Anything else is a typo.
SKILL_KEYS = {
    "name",
    "description",
    "when_to_use",
    "argument-hint",
    "arguments",
    "disable-model-invocation",
    "user-invocable",
    "allowed-tools",
    "disallowed-tools",
    "model",
    "effort",
    "context",
    "agent",
    "background",
    "hooks",
    "paths",
    "shell",
    "metadata",
    "license",
    "compatibility",
}
AGENT_KEYS = {
    "name",
    "description",
    "tools",
    "disallowedTools",
    "model",
    "permissionMode",
    "maxTurns",
    "skills",
    "mcpServers",
    "hooks",
    "memory",
    "background",
    "effort",
    "isolation",
    "color",
    "initialPrompt",
    "omitClaudeMd",
    "experimental",
}
COLORS = {"red", "blue", "green", "yellow", "purple", "orange", "pink", "cyan"}
MODELS = {"sonnet", "opus", "haiku", "fable", "inherit"}
# Tool names of Claude Code 2.1.328 (its system/init list, plus the interactive-only
# AskUserQuestion and the Glob/Grep tools the binary still knows).
KNOWN_TOOLS = {
    "Agent",
    "AskUserQuestion",
    "Bash",
    "Edit",
    "Glob",
    "Grep",
    "ListAgents",
    "Monitor",
    "NotebookEdit",
    "Read",
    "Skill",
    "StructuredOutput",
    "Task",
    "ToolSearch",
    "WebFetch",
    "WebSearch",
    "Write",
}
# The only tools a skill or command pre-approves: the engine, and exact git calls.
ENGINE_RULE = "Bash(planfleet *)"
EXACT_GIT_RULES = {"Bash(git branch -f planfleet/*)"}
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Subcommands that start paid agents unless asked for a dry run.
DISPATCHING = {"run", "resume", "batch", "dispatch", "orchestrate", "phase-runner"}
# Written by another issue; checked as soon as they are registered in the parser.
PENDING_SUBCOMMANDS = {"orchestrate", "phase-runner"}
# Agents whose output example must fit an engine schema.
AGENT_SCHEMAS = {
    "task-executor": "task_result",
    "reviewer": "review",
    "fixer": "fix_report",
    "plan-reviewer": "plan_review",
    "researcher": "research_report",
}


@dataclass(frozen=True)
class Doc:
    """One Markdown file of the plugin surface."""

    kind: str  # skill | command | agent
    name: str
    path: Path
    meta: dict[str, Any]
    body: str

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))

    def lines(self) -> int:
        return len(self.path.read_text(encoding="utf-8").splitlines())


def _load(kind: str, name: str, path: Path) -> Doc:
    post = frontmatter.load(str(path))
    return Doc(kind, name, path, dict(post.metadata), post.content)


@cache
def docs() -> tuple[Doc, ...]:
    """Return every skill, command and agent of the plugin."""
    found = [_load("skill", p.parent.name, p) for p in sorted(ROOT.glob("skills/*/SKILL.md"))]
    found += [_load("command", p.stem, p) for p in sorted(ROOT.glob("commands/*.md"))]
    found += [_load("agent", p.stem, p) for p in sorted(ROOT.glob("agents/*.md"))]
    return tuple(found)


def of(kind: str) -> list[Doc]:
    return [d for d in docs() if d.kind == kind]


def doc(kind: str, name: str) -> Doc:
    return next(d for d in docs() if d.kind == kind and d.name == name)


def ids(items: list[Doc]) -> list[str]:
    return [d.rel for d in items]


def rules(value: Any) -> list[str]:
    """Return an allowed-tools value as a list of rules (space separated, parens kept)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return re.findall(r"[A-Za-z]+(?:\([^)]*\))?", str(value or ""))


def preflights(body: str) -> list[str]:
    """Return the commands of the `!` preflight placeholders in ``body``."""
    return re.findall(r"(?:^|\s)!`([^`]+)`", body)


_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", flags=re.S | re.M)


def located_calls(text: str) -> list[tuple[int, str]]:
    """Return ``(offset, command)`` for every `planfleet ...` command written in code.

    Code means a fenced block line or an inline code span. A bare name (`planfleet logs`) is
    a reference to the command, not a call; spans with an ellipsis are prose.
    """
    found: list[tuple[int, str]] = []
    for block in _FENCE.finditer(text):
        offset = block.start(1)
        for line in block.group(1).splitlines(keepends=True):
            found.append((offset, line.strip()))
            offset += len(line)
    # Blank the fences out (same length) so spans keep their offsets.
    rest = _FENCE.sub(lambda m: " " * len(m.group(0)), text)
    found += [(m.start(), " ".join(m.group(1).split())) for m in re.finditer(r"`([^`]+)`", rest)]
    calls = []
    for offset, c in sorted(found):
        c = c.removeprefix("!").strip()
        if not c.startswith("planfleet ") or "..." in c:
            continue
        if re.fullmatch(r"planfleet(?: [a-z-]+){1,2}", c):
            continue  # a name, not a call
        calls.append((offset, c))
    return calls


def engine_calls(text: str) -> list[str]:
    """Return every `planfleet ...` command line written in code in ``text``."""
    return [c for _, c in located_calls(text)]


def starts_agents(call: str) -> bool:
    """Return True when ``call`` starts paid agents (a dispatching command, not a dry run)."""
    argv = call.split()
    if argv[1] == "orchestrate":
        return True  # even its dry run starts the plan review and research agents
    return argv[1] in DISPATCHING and "--dry-run" not in argv


# Sample values for placeholders, by the placeholder's words.
_SAMPLES = {
    "flags": "",
    "n": "2",
    "k": "2",
    "phase": "2",
    "next": "3",
    "plan": "demo",
    "name": "demo",
    "step": "review",
}


def concrete(command: str) -> list[str]:
    """Return ``command`` as argv with placeholders and substitutions filled in."""
    text = command.removesuffix("|| true").strip()
    text = text.replace("${CLAUDE_PLUGIN_ROOT}", "/opt/planfleet")
    text = re.sub(r"<([^<>]+)>", lambda m: _SAMPLES.get(m.group(1).lower(), "x1"), text)
    text = re.sub(r"\$(phase)\b", "2", text)
    text = re.sub(r"\$[a-z_]+", "demo", text)
    return shlex.split(text)


@cache
def parser_choices() -> set[str]:
    parser = app.build_parser()
    return {
        name
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name in getattr(action, "choices", {}) or {}
    }


def parse(argv: list[str]) -> None:
    """Parse ``argv`` (without the leading `planfleet`) with the engine's real parser."""
    app.build_parser().parse_args(argv)


def reference_files() -> Iterator[Path]:
    yield from sorted(ROOT.glob("skills/*/references/*"))


# ---------------------------------------------------------------------------------------
# Inventory and frontmatter


def test_every_required_file_exists() -> None:
    assert sorted(d.name for d in of("skill")) == sorted(SKILLS)
    assert sorted(d.name for d in of("command")) == sorted(COMMANDS)
    assert sorted(d.name for d in of("agent")) == sorted(AGENTS)


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_skill_and_command_frontmatter(d: Doc) -> None:
    unknown = set(d.meta) - SKILL_KEYS
    assert not unknown, f"{d.rel}: unknown frontmatter keys {sorted(unknown)}"
    if d.kind == "skill":
        assert d.meta.get("name") == d.name, f"{d.rel}: name must be the folder name"
    for key in ("disable-model-invocation", "user-invocable"):
        if key in d.meta:
            assert isinstance(d.meta[key], bool), f"{d.rel}: {key} must be true or false"
    hint = d.meta.get("argument-hint")
    assert isinstance(hint, str), f"{d.rel}: needs an argument-hint"
    assert hint.strip(), f"{d.rel}: needs an argument-hint"
    assert "$ARGUMENTS" in d.body, f"{d.rel}: must show the user's arguments ($ARGUMENTS)"


@pytest.mark.parametrize("d", of("agent"), ids=ids(of("agent")))
def test_agent_frontmatter(d: Doc) -> None:
    unknown = set(d.meta) - AGENT_KEYS
    assert not unknown, f"{d.rel}: unknown frontmatter keys {sorted(unknown)}"
    assert d.meta.get("name") == d.name, f"{d.rel}: name must be the file name"
    assert d.meta.get("model", "inherit") in MODELS
    assert d.meta.get("color", "blue") in COLORS
    if "isolation" in d.meta:
        assert d.meta["isolation"] == "worktree"
    tools = d.meta.get("tools")
    assert isinstance(tools, str), f"{d.rel}: tools must be explicit"
    assert tools.strip(), f"{d.rel}: tools must be explicit"
    names = [t.strip() for t in tools.split(",")]
    assert len(names) == len(set(names)), f"{d.rel}: a tool is listed twice"
    assert not set(names) - KNOWN_TOOLS, f"{d.rel}: unknown tools {set(names) - KNOWN_TOOLS}"


@pytest.mark.parametrize("d", docs(), ids=ids(list(docs())))
def test_names_and_descriptions(d: Doc) -> None:
    assert KEBAB.match(d.name), f"{d.rel}: name must be kebab-case"
    assert len(d.name) <= 64, f"{d.rel}: name longer than 64 characters"
    description = d.meta.get("description")
    assert isinstance(description, str), f"{d.rel}: needs a description"
    listing = description + str(d.meta.get("when_to_use") or "")
    assert len(description) >= 80, f"{d.rel}: description too short to say when to use it"
    assert len(listing) <= 1536, f"{d.rel}: the listing truncates at 1,536 characters"
    first = description.split()[0]
    # Third person: "Executes ...", "Shows ...", never "Execute", "I", "You" or "Use this".
    third_person = first[0].isupper() and first.endswith("s") and first not in ("Is", "This")
    assert third_person, f"{d.rel}: start with a verb in the third person, not {first!r}"
    assert not re.match(r"(?i)(i|you|we)\b", description)
    if d.kind == "agent":
        assert re.search(r"\b(Used|Use when|starts one|spawn)", description), (
            f"{d.rel}: the description must say when the agent is used"
        )
    else:
        assert "Use when" in description, f"{d.rel}: the description needs trigger phrases"
        assert re.search(r'"[^"]+"|/planfleet:', description), f"{d.rel}: quote the triggers"


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_named_arguments_are_declared_and_used(d: Doc) -> None:
    declared = d.meta.get("arguments") or []
    if isinstance(declared, str):
        declared = declared.split()
    used = set(re.findall(r"\$([a-z][a-z_]*)\b", d.body))
    assert used == set(declared), f"{d.rel}: arguments {declared} but the body uses {used}"
    assert all(KEBAB.match(a.replace("_", "-")) for a in declared)


# ---------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize("d", docs(), ids=ids(list(docs())))
def test_sizes(d: Doc) -> None:
    low, high = {"skill": (20, 499), "command": (20, 60), "agent": (30, 60)}[d.kind]
    assert low <= d.lines() <= high, f"{d.rel}: {d.lines()} lines, want {low}-{high}"


def test_reference_files_are_linked_and_small() -> None:
    for ref in reference_files():
        skill = ref.parents[1] / "SKILL.md"
        linked = f"references/{ref.name}" in skill.read_text(encoding="utf-8") or any(
            f"skills/{ref.parents[1].name}/references/{ref.name}" in d.body for d in docs()
        )
        assert linked, f"{ref.relative_to(ROOT)} is not linked from any skill or agent"
        assert len(ref.read_text(encoding="utf-8").splitlines()) < 500


def test_linked_files_exist() -> None:
    for d in docs():
        for rel in re.findall(r"`(references/[\w.-]+)`", d.body):
            assert (d.path.parent / rel).is_file(), f"{d.rel} links a missing {rel}"
        for rel in re.findall(r"\$\{CLAUDE_PLUGIN_ROOT\}/([\w./-]+\w)", d.body):
            assert (ROOT / rel).exists(), f"{d.rel} links a missing {rel}"
    for ref in reference_files():
        for rel in re.findall(r"`(skills/[\w./-]+\.md)`", ref.read_text(encoding="utf-8")):
            assert (ROOT / rel).is_file(), f"{ref.relative_to(ROOT)} links a missing {rel}"


# ---------------------------------------------------------------------------------------
# Permissions, preflight, confirmation


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_allowed_tools_are_the_engine_and_exact_git_calls(d: Doc) -> None:
    granted = rules(d.meta.get("allowed-tools"))
    assert ENGINE_RULE in granted, f"{d.rel}: must pre-approve {ENGINE_RULE}"
    extra = set(granted) - {ENGINE_RULE}
    assert extra <= EXACT_GIT_RULES, f"{d.rel}: allowed-tools beyond the engine: {extra}"
    for rule in extra:  # a granted git call is one the body really makes
        prefix = rule[len("Bash(") : -1].removesuffix("*")
        assert prefix in d.body, f"{d.rel}: grants {rule} but never runs it"


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_preflight_context_can_never_abort(d: Doc) -> None:
    found = preflights(d.body)
    assert found, f"{d.rel}: compute its context up front with !`planfleet ... --json || true`"
    for command in found:
        # A non-zero exit or an unapproved command aborts the whole skill (reference §2.4).
        assert command.startswith("planfleet "), f"{d.rel}: preflight {command!r}"
        assert command.endswith(" --json || true"), f"{d.rel}: preflight {command!r}"
        assert not re.search(r"[;&|`<>]", command.removesuffix("|| true")), command


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_preflight_is_one_engine_call_that_names_its_parts(d: Doc) -> None:
    # Each `planfleet` start costs a Python start and the engine's imports (and the first
    # one in a new environment installs it): the context comes from one call.
    (command,) = preflights(d.body)
    argv = concrete(command)
    assert argv[:2] == ["planfleet", "context"], f"{d.rel}: preflight {command!r}"
    ns = app.build_parser().parse_args(argv[1:])
    asked = [name for name in context_cmd.SECTIONS if getattr(ns, name)]
    assert asked, f"{d.rel}: the context asks for nothing"
    body = d.body[d.body.index(command) :]
    for name in asked:  # the model is told which part holds what
        explained = re.search(rf"`{name}`\s+\(", body)
        assert explained, f"{d.rel}: the context's part {name!r} is not explained"
    assert "data.environment.installed_now" in body, f"{d.rel}: say when it just installed"


def dispatch_offsets(d: Doc) -> list[int]:
    """Return where ``d`` tells the model to start paid agents (engine calls or subagents)."""
    offsets = [m.start() for m in re.finditer("subagent_type", d.body)]
    return offsets + [o for o, c in located_calls(d.body) if starts_agents(c)]


def dispatches(d: Doc) -> bool:
    return bool(dispatch_offsets(d))


@pytest.mark.parametrize("d", of("skill") + of("command"), ids=ids(of("skill") + of("command")))
def test_dispatchers_are_user_only_and_confirm_first(d: Doc) -> None:
    if not dispatches(d):
        assert "AskUserQuestion" not in d.body or d.name == "plan" or d.name == "stop"
        return
    assert d.meta.get("disable-model-invocation") is True, (
        f"{d.rel} starts paid agents: it needs disable-model-invocation: true"
    )
    body = d.body
    assert "AskUserQuestion" in body, f"{d.rel}: confirm through AskUserQuestion"
    ask = body[body.index("AskUserQuestion") :]
    assert re.search(r"at once|in parallel|parallel", ask), f"{d.rel}: show the parallelism"
    assert "cost" in ask, f"{d.rel}: show the cost cap"
    assert "--yes" in ask, f"{d.rel}: say what happens without AskUserQuestion (headless)"
    assert body.index("AskUserQuestion") < min(dispatch_offsets(d)), (
        f"{d.rel}: the confirmation must come before the first dispatch"
    )


def test_the_dispatching_set_is_what_the_issue_names() -> None:
    user_only = {d.name for d in of("skill") if d.meta.get("disable-model-invocation")}
    assert user_only == {
        "run",
        "execute-phase",
        "execute-phase-bg",
        "execute-batch",
        "orchestrate",
        "verify-work",
        "resume",
    }
    assert {d.name for d in of("skill") if dispatches(d)} <= user_only
    assert all(doc("command", c).meta.get("disable-model-invocation") for c in COMMANDS)


def test_status_is_split_between_the_typed_command_and_the_model_skill() -> None:
    # Claude Code 2.1.328 resolves a typed /planfleet:status to the command when both exist;
    # the skill stays reachable for the model only because it is not user-invocable and the
    # command is not model-invocable (both observed with the real CLI in test_plugin_e2e).
    assert doc("command", "status").meta["disable-model-invocation"] is True
    assert doc("skill", "status").meta["user-invocable"] is False
    names = [d.name for d in of("skill") + of("command")]
    assert {n for n in names if names.count(n) > 1} == {"status"}


# ---------------------------------------------------------------------------------------
# Engine calls


def all_calls() -> list[tuple[str, str]]:
    out = [(d.rel, c) for d in docs() for c in engine_calls(d.body)]
    for ref in reference_files():
        text = ref.read_text(encoding="utf-8")
        out += [(str(ref.relative_to(ROOT)), c) for c in engine_calls(text)]
    return out


def test_markdown_has_engine_calls() -> None:
    calls = all_calls()
    assert len(calls) > 80
    assert {c.split()[1] for _, c in calls} >= {
        "run",
        "resume",
        "status",
        "stop",
        "batch",
        "dispatch",
        "agents",
        "verify",
        "state",
        "plan",
        "context",
        "orchestrate",
        "phase-runner",
        "logs",
        "land",
    }


@pytest.mark.parametrize(("where", "call"), all_calls(), ids=[f"{w}:{c}" for w, c in all_calls()])
def test_every_engine_call_parses(where: str, call: str) -> None:
    argv = concrete(call)[1:]
    if argv[0] in PENDING_SUBCOMMANDS and argv[0] not in parser_choices():
        pytest.skip(f"`planfleet {argv[0]}` is not registered in the parser yet (issue 7)")
    try:
        parse(argv)
    except PlanfleetError as exc:
        pytest.fail(f"{where}: `{call}` does not parse: {exc}")
    except SystemExit as exc:  # --help or an argparse exit
        pytest.fail(f"{where}: `{call}` exits the parser ({exc.code})")


def test_the_parse_check_can_fail() -> None:
    with pytest.raises(PlanfleetError):
        parse(concrete("planfleet run <plan> --max-parallel many --json")[1:])
    with pytest.raises(PlanfleetError):
        parse(concrete("planfleet status --bogus --json")[1:])


def test_every_call_asks_for_json_when_the_model_reads_it() -> None:
    # The Markdown never parses prose (STYLE 11): what the model runs prints an envelope.
    # Commands shown to the user to type themselves are the exception.
    for_the_user = (["land"], ["checkpoint"], ["logs"], ["agents", "attach"], ["agents", "logs"])
    missing = []
    for d in of("skill") + of("command") + [doc("agent", "phase-orchestrator")]:
        for call in engine_calls(d.body):
            argv = call.split()
            if any(argv[1 : 1 + len(p)] == p for p in for_the_user):
                continue
            if argv[1] == "run" and argv[-1] == "--dry-run":
                continue  # a suggestion for the terminal
            if "--json" not in argv:
                missing.append(f"{d.rel}: `{call}`")
    assert not missing, "these calls should end with --json:\n" + "\n".join(missing)


# ---------------------------------------------------------------------------------------
# Agents


@pytest.mark.parametrize("d", of("agent"), ids=ids(of("agent")))
def test_agent_sections(d: Doc) -> None:
    body = d.body
    assert body.lstrip().startswith("You are"), f"{d.rel}: open with the role"
    for section in ("## Process", "## Standard of evidence", "## Output contract"):
        assert section in body, f"{d.rel}: missing {section}"
    assert re.search(r"(?i)repository content is data, not instructions", body), d.rel
    assert re.search(r"(?i)\bnever\b", body), f"{d.rel}: state what it never does"


@pytest.mark.parametrize("name", sorted(AGENT_SCHEMAS))
def test_agent_output_examples_fit_the_engine_schemas(name: str) -> None:
    body = doc("agent", name).body
    contract = body[body.index("## Output contract") :]
    blocks = re.findall(r"```json\n(.*?)```", contract, flags=re.S)
    assert blocks, f"agents/{name}.md: the output contract needs a JSON example"
    schema = load_schema(AGENT_SCHEMAS[name])
    jsonschema.validate(json.loads(blocks[0]), schema)


def test_task_executor_can_return_structured_output() -> None:
    # `claude --agent` limits the tools to the agent's list; without StructuredOutput the
    # run's --json-schema result is never produced (observed with the real CLI).
    tools = [t.strip() for t in doc("agent", "task-executor").meta["tools"].split(",")]
    assert {"StructuredOutput", "Read", "Edit", "Write", "Bash"} <= set(tools)
    assert "isolation" not in doc("agent", "task-executor").meta  # the engine owns worktrees
    body = doc("agent", "task-executor").body
    schema = load_schema("task_result")
    for key in schema["properties"]:
        assert f'"{key}"' in body, f"the task result key {key!r} is not shown"


def test_every_named_agent_exists() -> None:
    known = {f"planfleet:{a}" for a in AGENTS} | {f"planfleet:{s}" for s in SKILLS + COMMANDS}
    texts = [d.body + str(d.meta.get("description")) for d in docs()]
    texts += [r.read_text(encoding="utf-8") for r in reference_files()]
    named = {m for t in texts for m in re.findall(r"planfleet:[a-z][a-z-]*[a-z]", t)}
    assert named, "no agent is named anywhere"
    assert named <= known, f"unknown agents or skills named: {sorted(named - known)}"


def test_the_owner_mapping_names_generic_roles() -> None:
    text = (ROOT / "skills/execute-phase/references/owners.md").read_text(encoding="utf-8")
    for agent in ("planfleet:implementer", "planfleet:tester", "planfleet:task-executor"):
        assert agent in text
    assert ".claude/agents/<owner>.md" in text  # the user's own agents come first
    for agent in ("implementer", "tester"):
        assert "owners.md" in doc("agent", agent).body or "mapped" in doc("agent", agent).body


# ---------------------------------------------------------------------------------------
# The plan format the plan skill teaches is the engine's


def test_plan_skeleton_validates(git_repo: Path, run_cli: Any) -> None:
    text = (ROOT / "skills/plan/references/format.md").read_text(encoding="utf-8")
    (skeleton,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    (git_repo / "plans").mkdir()
    (git_repo / "plans" / "report-export.plan.yaml").write_text(skeleton, encoding="utf-8")
    result = run_cli(
        "plan", "validate", "plans/report-export.plan.yaml", "--strict", "--json", cwd=git_repo
    )
    assert result.code == 0, result.out
    assert result.json()["data"]["valid"] is True
