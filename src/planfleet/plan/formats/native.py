"""planfleet's own plan format: YAML (or a ```yaml block in Markdown), JSON-Schema checked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet import schemas
from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.ids import check_id
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import fenced_blocks, lines_of
from planfleet.plan.formats.yamlutil import line_of, load_yaml
from planfleet.plan.model import Plan

_MARKER = re.compile(r"^planfleet\s*:", re.MULTILINE)
_YAML_SUFFIXES = (".yaml", ".yml")
_DISCOVER = ("*.plan.yaml", "*.plan.yml", "planfleet.yaml", "planfleet.yml", "*.plan.md")


def _yaml_block(text: str) -> tuple[str, int] | None:
    """Return ``(yaml, first line)`` of the first ```yaml block that starts with ``planfleet:``."""
    for line, info, code in fenced_blocks(lines_of(text)):
        if info.split()[:1] in (["yaml"], ["yml"]) and _MARKER.search(code):
            return code, line + 1
    return None


class NativeReader:
    name = "planfleet"
    summary = "planfleet YAML: phases and tasks with ids, dependencies, files, verify commands"

    def detect(self, path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError:
            return False
        if path.suffix in _YAML_SUFFIXES:
            return bool(_MARKER.search(head))
        if path.suffix == ".md":
            return _yaml_block(head) is not None
        return False

    def discover(self, repo: Path) -> Iterator[Path]:
        for pattern in _DISCOVER:
            for path in walk(repo, pattern):
                if path.is_file() and self.detect(path):
                    yield path

    def read(self, path: Path, *, repo: Path) -> Plan:
        shown = _shown(path, repo)
        text = read_text(path, display=shown)
        first = 1
        if path.suffix == ".md":
            block = _yaml_block(text)
            if block is None:
                raise InputError(
                    "no ```yaml block starting with 'planfleet:'",
                    file=shown,
                    hint="put the plan in a fenced yaml block",
                )
            text, first = block
        data, lines = load_yaml(text, file=shown, first_line=first)
        if not isinstance(data, dict):
            raise InputError(
                "a planfleet plan is a mapping with 'planfleet: 1', 'name', 'phases'",
                file=shown,
                line=first,
            )
        error = schemas.first_error("plan", data)
        if error is not None:
            where = tuple(error.absolute_path)
            field = ".".join(str(p) for p in where) or None
            raise InputError(
                _schema_message(error),
                file=shown,
                line=line_of(lines, where),
                field=field,
                hint="see the plan format in the README (schema: schemas/plan.schema.json)",
            )
        # The builder makes names derived from file names safe; a name given is kept or refused.
        check_id(data["name"], what="name", file=shown, line=line_of(lines, ("name",)))
        return _build(data, lines, path, repo, shown)


def _shown(path: Path, repo: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo.resolve()))
    except ValueError:
        return str(path)


def _schema_message(error: Any) -> str:
    if error.validator == "additionalProperties":
        return str(error.message).replace("Additional properties are not allowed", "unknown key")
    if error.validator == "pattern" and isinstance(error.instance, str):
        return (
            f"{error.instance!r} is not a valid id (letters, digits, '.', '_', '-'; "
            "starts with a letter or digit; at most 64)"
        )
    return str(error.message)


def _build(data: dict[str, Any], lines: dict[Any, int], path: Path, repo: Path, shown: str) -> Plan:
    defaults = data.get("defaults", {})
    b = PlanBuilder(
        format="planfleet",
        path=path,
        repo=repo,
        name=data["name"],
        title=data.get("title", data["name"]),
        meta={k: data[k] for k in ("branch", "status", "description") if k in data}
        | {
            k: defaults[k]
            for k in (
                "test_command",
                "test_timeout",
                "strict_files",
                "strict_model",
                "strict_tests",
            )
            if k in defaults
        }
        | ({"shared_files": tuple(defaults["shared_files"])} if "shared_files" in defaults else {}),
    )
    for i, ph in enumerate(data["phases"]):
        pline = line_of(lines, ("phases", i))
        pid = b.add_phase(
            ph["id"],
            ph.get("title", ph["id"]),
            line=pline,
            number=i + 1,
            depends_on=tuple(ph.get("depends_on", ())),
            owner=ph.get("owner", defaults.get("owner")),
            kind=ph.get("kind", "implementation"),
            acceptance=tuple(ph.get("acceptance", ())),
            blast_radius=ph.get("blast_radius"),
            gate_commands=tuple(ph.get("gate", ())),
            parallel_group=ph.get("parallel_group"),
            status=b.status(ph.get("status"), line=pline),
            chain_tasks=bool(ph.get("sequential", False)),
            task_fields={
                "text": ph.get("text", ""),
                "removes_tests": tuple(ph.get("removes_tests", ())),
            },
        )
        for j, t in enumerate(ph.get("tasks", ())):
            tline = line_of(lines, ("phases", i, "tasks", j))
            spec = t.get("spec", ())
            for name in (spec,) if isinstance(spec, str) else spec:
                where = line_of(lines, ("phases", i, "tasks", j, "spec")) or tline
                links.check(
                    repo / name, repo, what="spec file", file=shown, line=where, field="spec"
                )
            b.add_task(
                t["id"],
                t.get("title", t["id"]),
                phase=pid,
                line=tline,
                kind=t.get("kind", ph.get("kind", "implementation")),
                owner=t.get("owner", ph.get("owner", defaults.get("owner"))),
                depends_on=dedupe(t.get("depends_on", ())),
                files_create=dedupe(t.get("files", {}).get("create", ())),
                files_modify=dedupe(t.get("files", {}).get("modify", ())),
                add_dependencies=dedupe(t.get("add_dependencies", ())),
                acceptance=tuple(t.get("acceptance", ())),
                verify=tuple(t.get("verify", ())),
                removes_tests=dedupe(t.get("removes_tests", ph.get("removes_tests", ()))),
                commands=tuple(t.get("commands", ())),
                blast_radius=t.get("blast_radius", ph.get("blast_radius")),
                estimate=t.get("estimate"),
                runner=t.get("runner"),
                timeout_s=t.get("timeout", defaults.get("timeout")),
                max_attempts=t.get("max_attempts", defaults.get("max_attempts")),
                spec_files=(spec,) if isinstance(spec, str) else tuple(spec),
                text=t.get("text", ""),
                status=b.status(t.get("status"), line=tline),
            )
    return b.build()


READER = NativeReader()
