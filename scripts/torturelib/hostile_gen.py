"""Hostile plan files for scenario 3: case ``i`` of a seed is always the same case.

A case is a set of edits to one format's fixture repository (files written, symlinks made,
files removed) and the plan path to validate. Categories: random mutations, hostile ids and
names, invalid UTF-8, YAML and XML bombs, deep nesting, huge files, symlinks out of the
repository, generated native plans with hostile fields, and special files (a FIFO, a link
to /dev/zero, a link loop) that only a separate process with limits may read.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

# format -> (fixture folder copied as the repository, plan path given to the validator)
FORMATS: dict[str, tuple[str, str]] = {
    "planfleet": ("native", "ledger.plan.yaml"),
    "planfleet-md": ("native", "docs/roadmap.plan.md"),
    "spec": ("spec/shortener", ".spec/plans/url-shortener"),
    "ai": ("ai/todo", ".ai/plans/2025-07-14.todo-export.md"),
    "maxvision": ("maxvision/newsletter", ".maxvision"),
    "plan-dir": ("plan-dir/recipes", "docs/plans/recipe-search"),
    "xml-tasks": ("xml-tasks", "billing"),
    "gsd": ("gsd/tidepool", ".planning"),
    "superpowers": ("superpowers", "docs/plans/2026-03-02-rate-limiter.md"),
}
CATEGORIES: dict[str, float] = {  # category -> weight
    "mutation": 44,
    "hostile-id": 14,
    "hostile-native": 8,
    "invalid-utf8": 8,
    "deep-nesting": 6,
    "yaml-bomb": 5,
    "symlink": 6,
    "xml-bomb": 3,
    "huge": 0.6,  # a few suffice, and each costs seconds
    "special": 4,
}
SPECIAL = "special"  # cases that must run in a separate process (they may block or blow up)
TOKENS = [
    "\n", "\r\n", "\r", "#", "## ", "### Phase 2: ", "### Task 9: ", "#### Task 2.1: ",
    "- [ ] ", "- [x] ", "---\n", ":", ": ", "**", "|", "`", "```", "```yaml\n", "- ", "  ",
    "\t", "{", "}", "[", "]", "&a ", "*a", "!!python/object/apply:os.system ", "<<: ",
    "<task>", "</task>", "<files>", "<![CDATA[", "]]>", "&amp;", "&x;", "<?xml ?>", "<!--",
    "depends_on: [", "wave: ", "status: ", "id: ", "- **Depends on**: Phase 9", "Phase ",
    "\x00", "\x0b", "\u2028", "\ufeff", "\u202e", "../", "~", "$(", "`id`", "🙂", "null",
]  # fmt: skip


def hostile_strings(canary: str) -> list[str]:
    """Return ids/names/paths built for path traversal, option and shell injection."""
    return [
        "../../x", "../../../../etc/passwd", "/etc/passwd", "..", ".", "a/../../b",
        f"$(touch {canary})", f"`touch {canary}`", f";touch {canary}", ";rm -rf ~",
        f"x && touch {canary}", f"| touch {canary}", "x\nrm -rf ~", "-rf", "--help",
        "--upload-pack=touch x", "-C/", "HEAD", "refs/heads/main", "@{-1}", "a..b", "x.lock",
        "a b", "*", "?[", "~", "$HOME", "${IFS}", "x'\"", "%s%n", "\u202etxt.exe", "🙂",
        "con", "x" * 3000, "\t", "-", "a\x00b", "\\\\server\\share", "a:b", "x\r\nid: y",
    ]  # fmt: skip


@dataclass
class Case:
    """Edits to one format repository, and what to validate."""

    index: int
    category: str
    fmt: str
    plan: str  # path given to the validator, relative to the format repository
    writes: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # path -> symlink target
    removes: list[str] = field(default_factory=list)
    note: str = ""
    foreign: bool = False  # the plan itself lives outside the repository (through a link)

    def describe(self) -> str:
        return f"case {self.index} [{self.category}/{self.fmt}] {self.note}".strip()


@dataclass
class Context:
    """What generation needs: the pristine fixture files and the paths of planted bait."""

    files: dict[str, dict[str, bytes]]  # format -> relative path -> pristine content
    words: dict[str, list[str]]  # format -> ids, names and paths the plan uses
    canary: str  # a file that exists only if an injected command ran
    outside: Path  # a folder outside every repository: secrets and foreign plans
    secret: str  # a marker planted in outside files; it must never come back


def generate(ctx: Context, seed: int, index: int) -> Case:
    """Return case ``index`` of ``seed``."""
    rng = random.Random(seed * 1_000_003 + index)
    category = rng.choices(list(CATEGORIES), weights=list(CATEGORIES.values()))[0]
    fmt = rng.choice(list(FORMATS))
    case = Case(index, category, fmt, FORMATS[fmt][1])
    MAKERS[category](ctx, rng, case)
    return case


def _target(ctx: Context, rng: random.Random, case: Case) -> tuple[str, bytes]:
    """Pick a file of the case's format to edit (the plan file itself half the time)."""
    files = ctx.files[case.fmt]
    if case.plan in files and rng.random() < 0.5:
        return case.plan, files[case.plan]
    rel = rng.choice(sorted(files))
    return rel, files[rel]


def _mutation(ctx: Context, rng: random.Random, case: Case) -> None:
    rel, data = _target(ctx, rng, case)
    hostile = hostile_strings(ctx.canary)
    lines = data.splitlines(keepends=True) or [b""]
    for _ in range(rng.randint(1, 8)):
        op = rng.choice(["delete", "dup", "swap", "insert", "insert", "bytes", "hostile"])
        k = rng.randrange(len(lines))
        if op == "delete" and len(lines) > 1:
            del lines[k]
        elif op == "dup":
            lines.insert(k, lines[k])
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[k], lines[j] = lines[j], lines[k]
        elif op == "bytes":
            lines[k] = _splice(rng, lines[k], bytes(rng.randrange(256) for _ in range(3)))
        else:
            piece = rng.choice(TOKENS if op == "insert" else hostile)
            lines[k] = _splice(rng, lines[k], piece.encode())
    out = b"".join(lines)
    if rng.random() < 0.15:  # a file cut off mid-write
        out = out[: rng.randrange(len(out) + 1)]
    case.writes[rel] = out
    case.note = f"{rel} mutated"


def _splice(rng: random.Random, line: bytes, piece: bytes) -> bytes:
    at = rng.randrange(len(line) + 1)
    return line[:at] + piece + line[at:]


def _hostile_id(ctx: Context, rng: random.Random, case: Case) -> None:
    """Replace an id, name or path the plan uses with a hostile one (or rename a file)."""
    files, words = ctx.files[case.fmt], ctx.words[case.fmt]
    bad = rng.choice(hostile_strings(ctx.canary))
    if rng.random() < 0.2:
        rel = rng.choice(sorted(files))
        stem, dot, ext = Path(rel).name.partition(".")
        safe = bad.replace("/", "_").replace("\x00", "")[:150] or "_"
        new = str(Path(rel).with_name(f"{stem.split('-')[0]}-{safe}{dot}{ext}"))
        case.removes.append(rel)
        case.writes[new] = files[rel]
        if rel == case.plan:
            case.plan = new
        case.note = f"file renamed to {new!r}"
        return
    present = [(rel, w) for rel in sorted(files) for w in words if w.encode() in files[rel]]
    if not present:
        _mutation(ctx, rng, case)
        return
    rel, word = rng.choice(present)
    text = files[rel].decode("utf-8", "surrogateescape")
    quoted = json.dumps(bad)[1:-1] if rel.endswith((".yaml", ".json")) else bad
    count = -1 if rng.random() < 0.5 else 1
    case.writes[rel] = text.replace(word, quoted, count).encode("utf-8", "surrogateescape")
    case.note = f"{word!r} -> {bad[:40]!r} in {rel}"


def _hostile_native(ctx: Context, rng: random.Random, case: Case) -> None:
    """A native plan whose fields carry injections and traversals (some of it is valid)."""
    bad = hostile_strings(ctx.canary)

    def pick(benign: str) -> str:
        return json.dumps(rng.choice(bad) if rng.random() < 0.3 else benign)

    secret_path = str(ctx.outside / "secret.md")
    spec = rng.choice([secret_path, "../" * 8 + secret_path.lstrip("/"), "docs/importer.md"])
    cmd = json.dumps(
        rng.choice([f"touch {ctx.canary}", f"echo $(touch {ctx.canary})", "rm -rf ~", "echo ok"])
    )
    text = f"""planfleet: 1
name: {pick("hostile")}
title: {pick("Hostile plan")}
branch: {pick("feature/x")}
defaults: {{test_command: {cmd}}}
phases:
  - id: {pick("one")}
    title: {pick("One")}
    gate: [{cmd}]
    tasks:
      - id: {pick("t1")}
        title: {pick("first")}
        files: {{create: [{pick("out/a.txt")}], modify: [{pick("README.md")}]}}
        commands: [{cmd}, {cmd}]
        verify: [{cmd}]
        spec: {json.dumps(spec) if rng.random() < 0.5 else pick("docs/importer.md")}
      - id: {pick("t2")}
        title: {pick("second")}
        depends_on: [{pick("t1")}]
        files: {{create: [{pick("out/b.txt")}]}}
        commands: [{cmd}]
"""
    case.fmt, case.plan = "planfleet", "plans/hostile.plan.yaml"
    case.writes[case.plan] = text.encode()
    case.writes["docs/importer.md"] = b"# importer\n\nRead the CSV.\n"
    case.note = "generated hostile native plan"


def _invalid_utf8(ctx: Context, rng: random.Random, case: Case) -> None:
    rel, data = _target(ctx, rng, case)
    junk = [
        b"\xff",
        b"\xfe\xff",
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xc0\xaf",
        b"\x80",
        b"\xe2\x82",
        b"\x00",
    ]
    out = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        at = rng.randrange(len(out) + 1)
        out[at:at] = rng.choice(junk)
    if rng.random() < 0.2:  # the whole file in UTF-16 (with a BOM)
        out = bytearray(data.decode("utf-8", "replace").encode("utf-16"))
    case.writes[rel] = bytes(out)
    case.note = f"{rel} with invalid UTF-8"


def _deep(ctx: Context, rng: random.Random, case: Case) -> None:
    n = rng.choice([100, 1_000, 10_000, 100_000])
    kind = rng.choice(["yaml-flow", "yaml-block", "json", "xml", "markdown", "frontmatter"])
    if kind == "yaml-flow":
        body = b"planfleet: 1\nname: deep\nphases: " + b"[" * n + b"]" * n + b"\n"
        case.fmt, case.plan = "planfleet", "plans/deep.plan.yaml"
    elif kind == "yaml-block":
        n = min(n, 2_000)  # indentation grows quadratically
        body = b"planfleet: 1\nname: deep\nphases:\n" + b"".join(
            b"  " * (i + 1) + b"- k:\n" for i in range(n)
        )
        case.fmt, case.plan = "planfleet", "plans/deep.plan.yaml"
    elif kind == "json":
        body = b"[" * n + b"]" * n
        case.fmt, case.plan = "xml-tasks", "billing"
        case.writes["billing/execute-state.json"] = body
        case.note = f"execute-state.json nested {n} deep"
        return
    elif kind == "xml":
        body = (
            b'<?xml version="1.0"?>\n<task id="L1-009">' + b"<a>" * n + b"</a>" * n + b"</task>\n"
        )
        case.fmt, case.plan = "xml-tasks", "billing"
        case.writes["billing/1-foundation/L1-009-deep.xml"] = body
        case.note = f"XML nested {n} deep"
        return
    elif kind == "markdown":
        n = min(n, 20_000)
        body = b"# Deep\n\n### Task 1: deep\n\n" + b"".join(
            b"  " * min(i, 500) + b"- " + b"> " * (i % 200) + b"x\n" for i in range(n)
        )
        case.fmt, case.plan = "superpowers", "docs/plans/2026-03-02-rate-limiter.md"
    else:
        body = b"---\nphase: 1\nplan: 1\nwave: " + b"[" * n + b"]" * n + b"\n---\n# x\n"
        case.fmt, case.plan = "gsd", ".planning"
        case.writes[".planning/phases/01-foundation/01-09-PLAN.md"] = body
        case.note = f"GSD frontmatter nested {n} deep"
        return
    case.writes[case.plan] = body
    case.note = f"{kind} nested {n} deep"


def _yaml_bomb(ctx: Context, rng: random.Random, case: Case) -> None:
    levels = rng.randint(5, 10)
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    bomb = "\n".join(lines) + "\n"
    where = rng.choice(["native", "native-md", "gsd", "maxvision", "merge", "tag"])
    if where == "merge":
        bomb = "base: &b {id: x}\nphases:\n  - <<: *b\n    tasks: []\n"
    elif where == "tag":
        bomb = f"x: !!python/object/apply:os.system ['touch {ctx.canary}']\n"
    if where in ("native", "merge", "tag"):
        case.fmt, case.plan = "planfleet", "plans/bomb.plan.yaml"
        case.writes[case.plan] = f"planfleet: 1\nname: bomb\n{bomb}phases: []\n".encode()
    elif where == "native-md":
        case.fmt, case.plan = "planfleet-md", "docs/bomb.plan.md"
        case.writes[case.plan] = (
            f"# Bomb\n\n```yaml\nplanfleet: 1\nname: bomb\n{bomb}```\n".encode()
        )
    elif where == "gsd":
        case.fmt, case.plan = "gsd", ".planning"
        rel = ".planning/phases/01-foundation/01-01-PLAN.md"
        case.writes[rel] = f"---\nphase: 01\nplan: 01\n{bomb}---\n".encode() + ctx.files["gsd"][rel]
    else:
        case.fmt, case.plan = "maxvision", ".maxvision"
        rel = ".maxvision/phase-1/plans/plan-001-subscriber-table.md"
        case.writes[rel] = (
            f"---\nstatus: pending\n{bomb}---\n".encode() + ctx.files["maxvision"][rel]
        )
    case.note = f"YAML bomb ({where}, {levels} levels)"


def _xml_bomb(ctx: Context, rng: random.Random, case: Case) -> None:
    kind = rng.choice(["laughs", "external", "quadratic", "parameter"])
    secret = (ctx.outside / "secret.md").as_uri()
    dtd = {
        "laughs": '<!ENTITY l0 "lol">'
        + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)),
        "external": f'<!ENTITY x SYSTEM "{secret}">',
        "quadratic": '<!ENTITY q "' + "q" * 50_000 + '">',
        "parameter": f'<!ENTITY % p SYSTEM "{secret}"> %p;',
    }[kind]
    ref = {"laughs": "&l9;", "external": "&x;", "quadratic": "&q;" * 2_000, "parameter": "x"}[kind]
    case.fmt, case.plan = "xml-tasks", "billing"
    case.writes["billing/1-foundation/L1-009-bomb.xml"] = (
        f'<?xml version="1.0"?>\n<!DOCTYPE task [{dtd}]>\n<task id="L1-009"><title>{ref}'
        "</title></task>\n"
    ).encode()
    case.note = f"XML {kind} entity attack"


def _huge(ctx: Context, rng: random.Random, case: Case) -> None:
    size = rng.choice([1, 2, 4, 8]) * 1_000_000
    kind = rng.choice(["repeat", "line", "tasks"])
    if kind == "tasks":
        n = size // 400  # 2,500 to 20,000 tasks (reading costs about 0.4 ms a task)
        body = "planfleet: 1\nname: huge\nphases:\n  - id: one\n    tasks:\n" + "".join(
            f"      - {{id: t{i}, title: task {i}, files: {{create: [f{i}.txt]}}}}\n"
            for i in range(n)
        )
        case.fmt, case.plan = "planfleet", "plans/huge.plan.yaml"
        case.writes[case.plan] = body.encode()
        case.note = f"{n} tasks"
        return
    rel, data = _target(ctx, rng, case)
    if kind == "line":
        case.writes[rel] = data + b"x" * size + b"\n"
    else:
        case.writes[rel] = data * max(1, size // max(len(data), 1))
    case.note = f"{rel} grown to {len(case.writes[rel]) // 1_000_000} MB ({kind})"


def _symlink(ctx: Context, rng: random.Random, case: Case) -> None:
    """Links out of the repository: the plan itself, a file it reads, or a whole folder."""
    rel, _ = _target(ctx, rng, case)
    kind = rng.choice(["file", "file", "plan", "folder", "passwd", "dangling"])
    if kind in ("plan", "folder"):
        # The plan named on the command line is itself a link out: reading what it holds
        # is expected; running its commands is not (see the foreign-plan trial).
        case.foreign = True
        case.fmt, case.plan, target = {
            "plan": ("planfleet", "plans/linked.plan.yaml", "foreign.plan.yaml"),
            "folder": ("spec", ".spec/plans/linked", "spec-plan"),
        }[kind]
        case.links[case.plan] = str(ctx.outside / target)
        rel = case.plan
    elif kind == "passwd":
        case.links[rel] = "/etc/passwd"
    elif kind == "dangling":
        case.links[rel] = str(ctx.outside / "missing" / "nothing.md")
    else:
        case.links[rel] = str(ctx.outside / "secret.md")
    case.note = f"{rel} -> outside ({kind})"


def _special(ctx: Context, rng: random.Random, case: Case) -> None:
    """Files a reader could block on or read forever: run in a limited separate process."""
    rel, _ = _target(ctx, rng, case)
    kind = rng.choice(["fifo", "zero", "urandom", "loop", "dir"])
    target = {"zero": "/dev/zero", "urandom": "/dev/urandom", "loop": rel + ".loop"}
    if kind in target:
        case.links[rel] = target[kind]
        if kind == "loop":
            case.links[rel + ".loop"] = Path(rel).name
    elif kind == "fifo":
        case.links[rel] = "FIFO"
    else:
        case.links[rel] = "DIR"
    case.note = f"{rel} is a {kind}"


MAKERS = {
    "mutation": _mutation,
    "hostile-id": _hostile_id,
    "hostile-native": _hostile_native,
    "invalid-utf8": _invalid_utf8,
    "deep-nesting": _deep,
    "yaml-bomb": _yaml_bomb,
    "xml-bomb": _xml_bomb,
    "huge": _huge,
    "symlink": _symlink,
    "special": _special,
}
