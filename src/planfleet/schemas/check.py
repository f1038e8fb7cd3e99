"""A fast checker compiled from a JSON Schema (the subset our schemas use).

jsonschema needs ~0.4 ms per state task record, far too slow to validate a state file on
every load and write. This compiles a schema once into plain closures that answer
"valid or not" quickly; when a document is invalid, jsonschema (the reference
implementation) produces the error message. Any keyword outside the supported subset is a
compile error, so a schema change can never be silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that only describe; they never change what is valid.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "$defs"})
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minItems",
        "pattern",
        "anyOf",
        "oneOf",
        "$ref",
    }
)


def _is_integer(v: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; Python's bool is not a JSON number.
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def json_equal(a: Any, b: Any) -> bool:
    """Return True if ``a`` and ``b`` are equal as JSON values (``true`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Types that a plain isinstance() decides (bool is a subclass of int, so numbers are not).
_PLAIN: dict[str, type] = {"object": dict, "array": list, "string": str, "null": type(None)}


def _type_check(names: list[str]) -> Check:
    plain = tuple(_PLAIN[n] for n in names if n in _PLAIN)
    others = [_TYPES[n] for n in names if n not in _PLAIN]
    if not others:
        return lambda v: isinstance(v, plain)
    return _any_of([lambda v: isinstance(v, plain), *others] if plain else others)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda v: a(v) and b(v)
    return lambda v: all(c(v) for c in checks)


def _any_of(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda v: a(v) or b(v)
    return lambda v: any(c(v) for c in checks)


class CompiledSchema:
    """A schema compiled to closures: ``ok(doc)``, ``ok_def(name, value)``, ``error(doc)``."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        # jsonschema is imported only to explain an invalid document: most commands read valid
        # state and never pay for it. That the schemas themselves are valid is a test's job.
        self.schema = schema
        self._defs: dict[str, Check] = {}
        self._raw_defs: Mapping[str, Any] = schema.get("$defs", {})
        for name in self._raw_defs:
            self._def(name)
        self._root = self._compile(schema)

    def ok(self, doc: Any) -> bool:
        """Return True if ``doc`` is valid against the whole schema."""
        return self._root(doc)

    def ok_def(self, name: str, value: Any) -> bool:
        """Return True if ``value`` is valid against ``#/$defs/<name>``."""
        return self._defs[name](value)

    def error(self, doc: Any) -> str | None:
        """Return the reference validator's best error message for ``doc``, or None."""
        import jsonschema

        reference = jsonschema.validators.validator_for(self.schema)(self.schema)
        best = jsonschema.exceptions.best_match(reference.iter_errors(doc))
        if best is None:
            return None
        where = "/".join(str(p) for p in best.absolute_path)
        return f"{where or '(top level)'}: {best.message}"

    def def_error(self, name: str, value: Any) -> str | None:
        """Return the best error message for ``value`` against ``#/$defs/<name>``, or None."""
        import jsonschema

        wrapper = {k: v for k, v in self.schema.items() if k in ("$schema", "$defs")}
        wrapper["$ref"] = f"#/$defs/{name}"
        validator = jsonschema.validators.validator_for(self.schema)(wrapper)
        best = jsonschema.exceptions.best_match(validator.iter_errors(value))
        return None if best is None else best.message

    def _def(self, name: str) -> Check:
        if name not in self._defs:
            # Placeholder first, so a recursive $ref resolves to the finished check later.
            self._defs[name] = lambda v: self._defs[name](v)
            self._defs[name] = self._compile(self._raw_defs[name])
        return self._defs[name]

    def _compile(self, node: Mapping[str, Any]) -> Check:
        unknown = set(node) - _SUPPORTED - _ANNOTATIONS
        if unknown:
            raise ValueError(f"schemas.check does not support schema keywords {sorted(unknown)}")
        checks = [self._keyword(key, node[key], node) for key in node if key in _SUPPORTED]
        return _all_of([c for c in checks if c is not None])

    def _keyword(self, key: str, arg: Any, node: Mapping[str, Any]) -> Check | None:
        if key == "$ref":
            prefix = "#/$defs/"
            if not (isinstance(arg, str) and arg.startswith(prefix)):
                raise ValueError(f"schemas.check only resolves local $defs references, not {arg!r}")
            return self._def(arg[len(prefix) :])
        if key == "type":
            return _type_check([arg] if isinstance(arg, str) else list(arg))
        if key == "enum":
            return lambda v: any(json_equal(v, e) for e in arg)
        if key == "const":
            return lambda v: json_equal(v, arg)
        if key == "minimum":
            return lambda v: not _TYPES["number"](v) or v >= arg
        if key == "maximum":
            return lambda v: not _TYPES["number"](v) or v <= arg
        if key == "exclusiveMinimum":
            return lambda v: not _TYPES["number"](v) or v > arg
        if key == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= arg
        if key == "oneOf":
            options = [self._compile(s) for s in arg]
            return lambda v: sum(1 for c in options if c(v)) == 1
        if key == "pattern":
            search = re.compile(arg).search
            return lambda v: not isinstance(v, str) or search(v) is not None
        if key == "anyOf":
            return _any_of([self._compile(s) for s in arg])
        if key == "items":
            item = self._compile(arg)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key == "propertyNames":
            name_ok = self._compile(arg)
            return lambda v: not isinstance(v, dict) or all(name_ok(k) for k in v)
        if key == "required":
            needed = tuple(arg)
            return lambda v: not isinstance(v, dict) or all(k in v for k in needed)
        if key == "properties":
            props = {k: self._compile(s) for k, s in arg.items()}
            get = props.get

            def check_properties(v: Any) -> bool:
                if isinstance(v, dict):
                    for k, x in v.items():
                        sub = get(k)
                        if sub is not None and not sub(x):
                            return False
                return True

            return check_properties
        if key == "additionalProperties":
            return self._additional(arg, node)
        raise AssertionError(key)  # pragma: no cover - _SUPPORTED and this list agree

    def _additional(self, arg: Any, node: Mapping[str, Any]) -> Check | None:
        known = frozenset(node.get("properties", {}))
        if arg is True:
            return None
        if arg is False:
            return lambda v: not isinstance(v, dict) or known.issuperset(v)
        extra = self._compile(arg)
        return lambda v: (
            not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
        )
