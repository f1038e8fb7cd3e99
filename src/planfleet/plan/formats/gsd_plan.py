"""One GSD PLAN.md read into a task's fields: its frontmatter, ``<task>`` blocks and checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.plan import links
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import code_spans
from planfleet.plan.formats.mdblocks import without_examples
from planfleet.plan.formats.yamlfront import read_frontmatter
from planfleet.plan.formats.yamlutil import line_of

_DEP = re.compile(r"^(?:(?P<phase>\d+(?:\.\d+)*)-)?(?P<plan>\d+)(?:-PLAN(?:\.md)?)?$")
_OPEN_TASK = re.compile(r"<task[\s>]")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")


def _block(text: str, tag: str, first_line: int) -> list[tuple[int, str, str]]:
    """Return ``(line, attributes, inner text)`` of every ``<tag ...>...</tag>`` in ``text``."""
    pattern = re.compile(rf"<{tag}(\s[^>]*)?>(.*?)</{tag}\s*>", re.S)
    found = []
    line, counted = first_line, 0  # newlines are counted once, from one match to the next
    for m in pattern.finditer(text):
        line += text.count("\n", counted, m.start())
        counted = m.start()
        found.append((line, m.group(1) or "", m.group(2)))
    return found


def _inner(text: str, tag: str) -> str:
    found = _block(text, tag, 1)
    return found[0][2] if found else ""


def _items(text: str) -> list[str]:
    """Return the non-empty lines of ``text`` without bullet or checkbox markers."""
    return [_ITEM.sub("", ln).strip() for ln in text.splitlines() if ln.strip()]


def _paths(text: str) -> list[str]:
    """Return the paths of a ``<files>`` block: comma- or line-separated, bullets allowed."""
    return [p for part in re.split(r"[,\n]", text) if (p := _ITEM.sub("", part).strip(" `"))]


def _want(
    data: dict[str, Any],
    key: str,
    types: tuple[type, ...],
    what: str,
    lines: dict[Any, int],
    shown: str,
) -> Any:
    """Return ``data[key]`` if it has one of ``types`` (None when absent); InputError if not."""
    value = data.get(key)
    if value is None:
        return None
    # YAML true/false are ints to isinstance(); only a field that wants a bool takes one.
    if isinstance(value, bool) == (bool in types) and isinstance(value, types):
        return value
    raise InputError(f"{key} must be {what}", file=shown, line=line_of(lines, (key,)), field=key)


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value or () if v is not None and str(v).strip()]


def read_plan(b: PlanBuilder, path: Path) -> dict[str, Any]:
    """Return the task fields of one PLAN.md (with ``_wave`` and ``_deps_given`` for ordering)."""
    shown = b.rel(path)
    root = b.path if b.path.is_dir() else b.path.parent
    links.check(path, b.repo, what="plan file", root=root)
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    data, lines, body, body_line = read_frontmatter(text, file=shown)
    phase, plan = path.name.removesuffix("-PLAN.md").rsplit("-", 1)
    tid = f"{phase}-{plan}"
    wave = _want(data, "wave", (int,), "a whole number (1, 2, ...)", lines, shown) or 1
    deps = _want(data, "depends_on", (list, str, int), "a list of plan ids", lines, shown)
    modified = _want(data, "files_modified", (list, str), "a list of paths", lines, shown)
    autonomous = _want(data, "autonomous", (bool,), "true or false", lines, shown)
    what = "a mapping (truths, artifacts, key_links)"
    must = _want(data, "must_haves", (dict,), what, lines, shown) or {}
    _check_plan_number(b, data, plan, lines, path)
    truths, artifacts = must.get("truths"), must.get("artifacts")
    created = dedupe(
        a["path"] if isinstance(a, dict) else a
        for a in (artifacts if isinstance(artifacts, list) else ())
        if isinstance(a, str) or (isinstance(a, dict) and isinstance(a.get("path"), str))
    )
    listed = _str_list(truths if isinstance(truths, list) else ())
    # tags are read from the body with fenced examples and HTML comments blanked out
    work = _body(without_examples(body), body_line, listed)
    _check_unclosed(b, work, path, body_line)
    checkpoints = [t for t in work["types"] if t.startswith("checkpoint")]
    if autonomous is True and checkpoints:
        b.diag(
            "warning",
            "plan has checkpoint tasks but says autonomous: true; treated as not autonomous",
            file=path,
            line=line_of(lines, ("autonomous",)),
            field="autonomous",
        )
    meta = {
        "wave": wave,
        "autonomous": autonomous is not False and not checkpoints,
        "plan_type": data.get("type"),
        "steps": [s for s in work["steps"] if s],
        "checkpoints": checkpoints,
        "requirements": data.get("requirements") or [],
        "must_haves": must,
    }
    modify = _str_list(modified) + work["files"]
    return {
        "id": tid,
        "title": work["objective"][0] if work["objective"] else f"Plan {tid}",
        "file": path,
        "depends_on": _resolve_deps(deps, phase, plan),
        "files_create": created,
        "files_modify": tuple(f for f in dedupe(modify) if f not in created),
        "acceptance": dedupe(work["accept"]),
        "verify": dedupe(work["verify"]),
        "text": body.strip("\n"),
        "spec_files": (shown,),
        "status": "done" if path.with_name(f"{tid}-SUMMARY.md").is_file() else "pending",
        "meta": meta,
        "_wave": wave,
        "_deps_given": bool(deps),
    }


def _body(body: str, first_line: int, truths: list[str]) -> dict[str, Any]:
    """Return what the body's ``<task>`` blocks and sections say: files, acceptance, verify."""
    accept, verify, files = list(truths), list[str](), list[str]()
    types, steps = list[str](), list[str]()
    tasks_text = _inner(body, "tasks") or body
    for _, attrs, inner in _block(tasks_text, "task", first_line):
        kind = re.search(r'type\s*=\s*"([^"]*)"', attrs)
        types.append(kind.group(1) if kind else "auto")
        steps.append(" ".join(_inner(inner, "name").split()))
        files += _paths(_inner(inner, "files"))
        accept += _items(_inner(inner, "acceptance_criteria")) + _items(_inner(inner, "done"))
        _split_verify(_inner(inner, "verify"), verify, accept)
    _split_verify(_inner(body, "verification"), verify, accept)
    accept += _items(_inner(body, "success_criteria"))
    objective = _items(_inner(body, "objective"))
    return {
        "accept": accept,
        "verify": verify,
        "files": files,
        "types": types,
        "steps": steps,
        "objective": objective,
        "tasks_text": tasks_text,
    }


def _split_verify(text: str, verify: list[str], accept: list[str]) -> None:
    """Add ``<automated>`` commands and code spans to ``verify``; other lines to ``accept``."""
    automated = [" ".join(a.split()) for _, _, a in _block(text, "automated", 1)]
    verify += [a for a in automated if a]
    rest = re.sub(r"<automated(\s[^>]*)?>.*?</automated\s*>", "", text, flags=re.S)
    for line in _items(rest):
        spans = code_spans(line)
        if spans:
            verify += spans
        elif not re.fullmatch(r"</?\w+>", line):
            accept.append(line)


def _check_plan_number(
    b: PlanBuilder, data: dict[str, Any], plan: str, lines: dict[Any, int], path: Path
) -> None:
    said = data.get("plan")
    if said is not None and str(said).strip().lstrip("0") != plan.lstrip("0"):
        b.diag(
            "warning",
            f"frontmatter says plan {said!r} but the file name says {plan!r}; the file name wins",
            file=path,
            line=line_of(lines, ("plan",)),
            field="plan",
        )


def _check_unclosed(b: PlanBuilder, work: dict[str, Any], path: Path, first: int) -> None:
    text, closed = work["tasks_text"], len(work["types"])
    opened = list(_OPEN_TASK.finditer(text))
    if len(opened) > closed:
        at = opened[closed].start()
        b.diag(
            "warning",
            "a <task> block is never closed with </task>; it was ignored",
            file=path,
            line=first + text.count("\n", 0, at),
            field="tasks",
        )


def _resolve_deps(deps: Any, phase: str, plan: str) -> tuple[str, ...]:
    """Return plan ids for ``depends_on`` entries: ``"01"`` and ``1`` mean a plan of ``phase``."""
    out = []
    for entry in _str_list([deps] if isinstance(deps, (str, int)) else deps):
        m = _DEP.match(entry)
        if m is None:
            out.append(entry)
        else:
            out.append(f"{m.group('phase') or phase}-{m.group('plan').zfill(len(plan))}")
    return dedupe(out)
