"""JSON Schemas shipped with the package, loaded once and compiled once."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: most commands never need jsonschema
    import jsonschema


@cache
def load(name: str) -> dict[str, Any]:
    """Return the schema ``<name>.schema.json`` as a dict."""
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """Return a validator for the schema ``name`` with its local ``$ref``s inlined.

    Inlining (our schemas are not recursive) spares a reference lookup per value, which
    is most of jsonschema's time on a plan or state with thousands of entries.
    """
    import jsonschema

    schema = load(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(_inline(schema, schema.get("$defs", {}), ()))


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) <= 2:
            key = ref.removeprefix("#/$defs/")
            if key in seen:  # a recursive schema keeps its reference
                return node
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[key], defs, (*seen, key)), **extra}
        return {k: _inline(v, defs, seen) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs, seen) for v in node]
    return node


@cache
def compiled(name: str) -> Any:
    """Return the fast compiled checker for schema ``name`` (see planfleet.schemas.check)."""
    from planfleet.schemas.check import CompiledSchema

    return CompiledSchema(load(name))


def first_error(name: str, instance: Any) -> jsonschema.ValidationError | None:
    """Return the most relevant validation error of ``instance``, or None if it is valid.

    The compiled checker answers "valid" quickly; jsonschema explains what is invalid.
    """
    if compiled(name).ok(instance):
        return None
    import jsonschema

    errors = list(validator(name).iter_errors(instance))
    return jsonschema.exceptions.best_match(errors) if errors else None
