"""The compiled schema agrees with jsonschema; the codec's shortcuts never change a result."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planfleet import schemas
from planfleet.errors import InputError, RefusedError
from planfleet.schemas.check import CompiledSchema, json_equal
from planfleet.state import codec as statecodec
from planfleet.state import ops
from planfleet.state import records as sm
from planfleet.state.codec import Codec
from state_support import flat_state, reference_validator

SCHEMA = CompiledSchema(schemas.load("state"))

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    2.5,
    float(10**20),
    "",
    "x",
    "pending",
    "a:gate",
    "bad id",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.123Z",
    "2026-01-01",
    [],
    ["a"],
    [1],
    {},
    {"type": "t", "step": "s", "message": "m"},
    {"type": "t"},
]


def _base() -> dict[str, Any]:
    state = flat_state("demo", ["a", "b", "c"])
    ops.claim(state, "a", owner="me")
    ops.claim(state, "b")
    ops.fail(state, "b", error_type="crash", step="agent", message="x", feedback="f")
    ops.claim(state, "c")
    ops.complete(state, "c", commit="abc1234")
    sm.enqueue(state, "c", 1)
    return state


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _edited(doc: Any, edits: list[tuple[Any, str, Any]]) -> Any:
    """Return ``doc`` after the edits that still apply (earlier ones may remove a path)."""
    for path, action, value in edits:
        try:
            doc = _mutate(doc, path, action, value)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
    return doc


BASE = _base()
PATHS = [p for p in _paths(BASE) if p]


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "set":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):  # add an unknown sibling key
        parent[f"extra_{last}"] = value
    else:
        parent.append(value)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(PATHS),
            st.sampled_from(["set", "delete", "add"]),
            st.sampled_from(VALUES),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_compiled_schema_agrees_with_jsonschema(edits: list[tuple[Any, str, Any]]) -> None:
    doc = _edited(BASE, edits)
    assert SCHEMA.ok(doc) == reference_validator().is_valid(doc)


def test_compiled_schema_accepts_what_the_model_produces() -> None:
    assert SCHEMA.ok(BASE)
    assert SCHEMA.error(BASE) is None
    assert SCHEMA.ok_def("task", BASE["tasks"]["a"])
    assert not SCHEMA.ok_def("task", {**BASE["tasks"]["a"], "attempts": True})
    assert SCHEMA.def_error("task", BASE["tasks"]["a"]) is None
    assert "not of type 'integer'" in (
        SCHEMA.def_error("task", {**BASE["tasks"]["a"], "attempts": True}) or ""
    )


def test_compiled_schema_refuses_keywords_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="does not support"):
        CompiledSchema({"type": "object", "patternProperties": {"^x": {"type": "string"}}})
    with pytest.raises(ValueError, match="local"):
        CompiledSchema({"$ref": "https://example.com/other.json"})


def test_json_equal_distinguishes_booleans_from_numbers() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal([True], [1])
    assert json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal({"a": 1}, {"b": 1})


# -- the codec --------------------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "claim",
                "fail",
                "complete",
                "reset",
                "note",
                "event",
                "add",
                "drop",
                "order",
                "status",
                "noop",
            ]
        ),
        st.integers(min_value=0, max_value=7),
        st.sampled_from(["x", "é ü", 'q"uote', "back\\slash", "line\nbreak", ""]),
    ),
    min_size=1,
    max_size=25,
)


def _apply(state: dict[str, Any], op: str, i: int, text: str) -> None:
    ids = sm.ordered_ids(state)
    tid = ids[i % len(ids)] if ids else None
    try:
        if op == "claim" and tid:
            ops.claim(state, tid, owner=text or None)
        elif op == "fail" and tid:
            ops.fail(state, tid, error_type="crash", step="s", message=text, feedback=text)
        elif op == "complete" and tid:
            ops.complete(state, tid, commit="abc1234", verification=text)
        elif op == "reset" and tid:
            ops.reset(state, tid, hard=i % 2 == 0)
        elif op == "note" and tid:
            state["tasks"][tid]["note"] = text
        elif op == "event":
            sm.add_event(state, text or "e", tid, text)
        elif op == "trim":  # what the cap does: the oldest go
            del state["events"][: i % 4]
        elif op == "edit_event" and state["events"]:
            state["events"][i % len(state["events"])]["detail"] = text
        elif op == "add":
            new = f"n{i}"
            state["tasks"].setdefault(new, sm.new_task(title=text, phase="p"))
            if new not in state["order"]:
                state["order"].append(new)
        elif op == "drop" and tid and len(ids) > 1:
            del state["tasks"][tid]
            state["order"].remove(tid)
        elif op == "order":
            state["order"].reverse()
        elif op == "status":
            state["status"] = ["running", "paused"][i % 2]
    except (RefusedError, InputError):  # a refused operation changes nothing
        pass


def _expected(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(text)
    doc["tasks"] = {t: sm.with_defaults(r) for t, r in doc["tasks"].items()}
    return doc


@settings(max_examples=80, deadline=None)
@given(OPS)
def test_two_codecs_taking_turns_always_agree_with_plain_json(
    steps: list[tuple[str, int, str]],
) -> None:
    writers = [Codec(), Codec()]
    text = writers[0].encode(flat_state("demo", ["a", "b", "c"]), file="f")
    for n, (op, i, arg) in enumerate(steps):
        codec = writers[n % 2]
        state, _ = codec.decode(text, file="f")
        assert state == _expected(text)
        _apply(state, op, i, arg)
        blocks = codec.blocks(state, file="f")
        new_text = codec.assemble(state, blocks)
        disk = {**state, "tasks": {t: sm.without_defaults(r) for t, r in state["tasks"].items()}}
        assert new_text == json.dumps(disk, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if blocks.changed is False:
            assert new_text == text
        text = new_text
        reference_validator().validate(json.loads(text))
    for codec in (*writers, Codec()):
        assert codec.decode(text, file="f")[0] == _expected(text)


def test_decoded_records_are_private_copies() -> None:
    codec = Codec()
    text = codec.encode(_base(), file="f")
    first, _ = codec.decode(text, file="f")
    first["tasks"]["b"]["error"]["message"] = "changed"
    first["tasks"]["a"]["depends_on"].append("zzz")
    first["events"][0]["detail"] = "changed"
    first["order"].append("zzz")
    second, _ = codec.decode(text, file="f")
    assert second == _expected(text)


def test_a_known_file_is_rebuilt_without_parsing_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, reader = Codec(), Codec()
    state = _base()
    for n in range(30):
        sm.add_event(state, "tick", None, str(n))
    text = writer.encode(state, file="f")
    reader.blocks(reader.decode(text, file="f")[0], file="f")  # the reader now knows the parts
    state["tasks"]["b"]["note"] = "changed by the writer"
    state["tasks"]["new"] = sm.new_task(title="added", phase="p1")
    del state["events"][:5]  # the cap dropped the oldest...
    sm.add_event(state, "x", "b", None)  # ...and one more came
    text = writer.encode(state, file="f")

    def no_full_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed the whole file")

    monkeypatch.setattr(statecodec, "parse", no_full_parse)
    decoded, _ = reader.decode(text, file="f")
    assert decoded == _expected(text)
    blocks = reader.blocks(decoded, file="f")
    assert blocks.changed is False  # what it read is what it now remembers
    decoded["events"][3]["detail"] = "edited"
    assert reader.blocks(decoded, file="f").changed is True
    with pytest.raises(AssertionError, match="whole file"):
        Codec().decode(text, file="f")  # a fresh codec knows nothing: it must parse


def test_the_model_and_the_schema_name_the_same_statuses_and_fields() -> None:
    schema = schemas.load("state")
    task = schema["$defs"]["task"]
    assert task["properties"]["status"]["enum"] == list(sm.TASK_STATUSES)
    assert schema["properties"]["status"]["enum"] == list(sm.RUN_STATUSES)
    assert set(task["properties"]) == set(sm.new_task(title="t", phase="p"))
    assert set(task["properties"]) - set(task["required"]) == set(sm.OPTIONAL_FIELDS)


PLAN = {
    "planfleet": 1,
    "name": "demo",
    "defaults": {"timeout": 60, "max_attempts": 2},
    "phases": [
        {
            "id": "one",
            "gate": ["true"],
            "tasks": [
                {"id": "a", "files": {"create": ["a.py"]}, "estimate": 2, "spec": "s.md"},
                {"id": "b", "depends_on": ["a"], "spec": ["x.md"], "max_attempts": 3},
            ],
        },
        {"id": "two", "depends_on": ["one"], "kind": "design"},
    ],
}
PLAN_PATHS = [p for p in _paths(PLAN) if p]
PLAN_VALUES = [*VALUES, 0.5, 51, "design", "two", {"create": ["x"]}, ["x.md", 3]]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(PLAN_PATHS),
            st.sampled_from(["set", "delete", "add"]),
            st.sampled_from(PLAN_VALUES),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_compiled_plan_schema_agrees_with_jsonschema(edits: list[tuple[Any, str, Any]]) -> None:
    doc = _edited(PLAN, edits)
    assert schemas.compiled("plan").ok(doc) == schemas.validator("plan").is_valid(doc)
    assert (schemas.first_error("plan", doc) is None) == schemas.validator("plan").is_valid(doc)
