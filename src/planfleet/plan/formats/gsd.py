"""GSD-style phase plans: ``.planning/phases/<NN-slug>/<NN>-<MM>-PLAN.md`` with YAML frontmatter.

One PLAN.md is one planfleet task (GSD runs a whole PLAN per executor agent); its id is the
plan id (``02-01``) and its phase is the phase folder. The PLAN path may be one PLAN.md, a
phase folder, or the ``.planning`` root (then phase K depends on phase K-1).

Mapping:

- ``depends_on`` (``["02-01"]``, or ``["01"]`` for a plan of the same phase) is authoritative.
  Without it, a plan of ``wave`` W depends on every plan of a lower wave in its phase.
  Dependencies on plans outside what was read are dropped when that plan has a SUMMARY, and
  are an error otherwise.
- ``files_modified`` and the ``<files>`` of the ``<task>`` blocks become files to modify;
  ``must_haves.artifacts`` paths become files to create (they must exist afterwards, which
  is what the file gate checks) and are not listed twice.
- ``must_haves.truths``, ``<acceptance_criteria>``, ``<done>``, prose ``<verify>`` lines, the
  ``<verification>`` checklist and ``<success_criteria>`` become acceptance criteria;
  ``<automated>`` commands and code spans in ``<verify>``/``<verification>`` become verify
  commands.
- ``autonomous: false`` (or any ``checkpoint:*`` task) sets ``meta["autonomous"] = False``:
  such a plan needs a person and is never run unattended.
- A sibling ``<NN>-<MM>-SUMMARY.md`` means the plan was executed: status done.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.ids import id_problem, slugify
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import code_spans
from planfleet.plan.formats.mdblocks import without_examples
from planfleet.plan.formats.yamlfront import read_frontmatter
from planfleet.plan.formats.yamlutil import line_of
from planfleet.plan.model import Plan

_PLAN_FILE = re.compile(r"^(?P<phase>\d+(?:\.\d+)*)-(?P<plan>\d+)-PLAN\.md$")
_PHASE_DIR = re.compile(r"^(?P<num>\d+(?:\.\d+)*)(?:-(?P<slug>.+))?$")
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


def _number_key(number: str) -> tuple[int, ...]:
    return tuple(int(part) for part in number.split("."))


def _plan_files(folder: Path) -> list[Path]:
    """Return the ``NN-MM-PLAN.md`` files of ``folder`` that start with frontmatter."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if _PLAN_FILE.match(p.name) and p.is_file() and _opens_fm(p)]


def _opens_fm(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline().lstrip("\ufeff").rstrip() == "---"
    except OSError:
        return False


def _phase_dirs(path: Path, repo: Path | None = None) -> list[Path]:
    """Return the phase folders ``path`` stands for, in phase order (links: see links.follow)."""
    if (path / "phases").is_dir():
        path = path / "phases"
    if _plan_files(path):
        return [path]
    try:
        subs = [
            d
            for d in path.iterdir()
            if d.is_dir()
            and (not d.is_symlink() or links.follow(d, repo, what="phase folder", root=path))
        ]
    except OSError:
        return []
    found = [
        (m.group("num"), d) for d in subs if (m := _PHASE_DIR.match(d.name)) and _plan_files(d)
    ]
    return [d for _, d in sorted(found, key=lambda pair: (_number_key(pair[0]), pair[1].name))]


class GsdReader:
    name = "gsd"
    summary = "GSD phase plans: .planning/phases/*/NN-MM-PLAN.md (wave, depends_on, must_haves)"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return bool(_PLAN_FILE.match(path.name)) and _opens_fm(path)
        return path.is_dir() and bool(_phase_dirs(path))

    def discover(self, repo: Path) -> Iterator[Path]:
        seen: set[Path] = set()
        for path in walk(repo, "*-PLAN.md"):
            folder = path.parent
            if folder not in seen:
                seen.add(folder)
                if _plan_files(folder):
                    yield folder

    def read(self, path: Path, *, repo: Path) -> Plan:
        root = path.resolve()
        name = root.parent.name if root.name == ".planning" else root.name
        if path.is_file():
            name = _PLAN_FILE.sub(r"\g<phase>-\g<plan>", path.name).removesuffix(".md")
        b = PlanBuilder(format=self.name, path=path, repo=repo, name=name, title=name)
        if path.is_file():
            if not _PLAN_FILE.match(path.name):
                raise InputError(
                    "not a GSD plan file name",
                    file=b.rel(path),
                    hint="GSD plans are named <phase>-<plan>-PLAN.md, e.g. 02-01-PLAN.md",
                )
            folders, files = [path.parent], {path.parent: [path]}
        else:
            folders = _phase_dirs(path, repo)
            if not folders:
                raise InputError(
                    "no <phase>-<plan>-PLAN.md files with frontmatter found",
                    file=b.rel(path),
                    hint="expected .planning/phases/NN-name/NN-MM-PLAN.md",
                )
            files = {f: _plan_files(f) for f in folders}
            b.title = _project_title(path) or b.title
        previous: str | None = None
        for folder in folders:
            pid = _add_phase(b, folder, previous)
            plans = [_read_plan(b, f) for f in files[folder]]
            _wave_dependencies(plans, folder)
            for plan in plans:
                b.add_task(
                    plan.pop("id"),
                    plan.pop("title"),
                    phase=pid,
                    line=1,
                    file=plan.pop("file"),
                    **{k: v for k, v in plan.items() if not k.startswith("_")},
                )
            previous = pid
        _external_dependencies(b, folders[0].parent)
        return b.build()


def _project_title(path: Path) -> str:
    """Return the first heading of ``.planning/PROJECT.md`` when reading a ``.planning`` root."""
    project = path / "PROJECT.md"
    if not project.is_file():
        return ""
    for line in read_text(project).splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _add_phase(b: PlanBuilder, folder: Path, previous: str | None) -> str:
    m = _PHASE_DIR.match(folder.name)
    number = m.group("num") if m else ""
    pid = folder.name if id_problem(folder.name) is None else slugify(folder.name)
    title = (m.group("slug") or folder.name).replace("-", " ") if m else folder.name
    return b.add_phase(
        pid,
        title,
        line=None,
        file=folder,
        number=int(number) if number.isdigit() else None,
        depends_on=(previous,) if previous else (),
        meta={"gsd_phase": number} if number else {},
    )


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


def _read_plan(b: PlanBuilder, path: Path) -> dict[str, Any]:
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


def _wave_dependencies(plans: list[dict[str, Any]], folder: Path) -> None:
    """Plans without depends_on wait for every plan of a lower wave of their phase folder."""
    waves = {p["id"]: p["_wave"] for p in plans}
    if len(plans) == 1:  # one PLAN.md was read: its siblings' waves still order it
        waves = {**_sibling_waves(folder), **waves}
    for plan in plans:
        if not plan["_deps_given"]:
            plan["depends_on"] = tuple(i for i, w in waves.items() if w < plan["_wave"])


def _sibling_waves(folder: Path) -> dict[str, int]:
    """Return ``plan id -> wave`` for the readable plans of ``folder`` (broken ones are skipped)."""
    out = {}
    for path in _plan_files(folder):
        try:
            data, _, _, _ = read_frontmatter(read_text(path), file=str(path))
        except InputError:
            continue
        wave = data.get("wave", 1)
        if isinstance(wave, int) and not isinstance(wave, bool):
            out[path.name.removesuffix("-PLAN.md")] = wave
    return out


def _external_dependencies(b: PlanBuilder, phases_dir: Path) -> None:
    """Drop dependencies on plans outside the read set; an error unless they have a SUMMARY."""
    for tid, task in b.tasks.items():
        kept = []
        for dep in task.get("depends_on", ()):
            if dep in b.tasks:
                kept.append(dep)
            elif not any(phases_dir.glob(f"*/{_glob_safe(dep)}-SUMMARY.md")):
                b.diag(
                    "error",
                    f"plan {tid!r} depends on plan {dep!r}, which is not part of "
                    "this plan and has no SUMMARY (not executed yet)",
                    file=b.repo / task["source"].file,
                    line=1,
                    field="depends_on",
                    hint="read the whole .planning folder, or execute that plan first",
                )
        task["depends_on"] = tuple(kept)


def _glob_safe(text: str) -> str:
    return re.sub(r"[\[\]*?]", "_", text)


READER = GsdReader()
