"""Runware's error objects: schema violations and named conditions → `{code, message, parameter, …}` + status.

Every failed task becomes one element of `errors[]`. The code is built from provider.json (`codes`:
`invalid{Field}`, `missing{Field}`, `unsupportedParameter`, …), the wording from its `messages`
templates, and the extra fields the real service sends (`type`, `min`/`max`, `documentation`) are read
from the same request schema that found the violation.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.validation import SchemaSet, Violation, render_message

# A task gets one error; when its request breaks several rules, the most basic one is reported.
RULE_PRIORITY = {"discriminator": 0, "type": 1, "required": 2, "additionalProperties": 3}
# JSON Schema types as Runware's docs and errors name them ("float min: 0 max: 1").
TYPE_NAMES = {"integer": "integer", "number": "float", "string": "string", "boolean": "boolean",
              "array": "array", "object": "object"}


@dataclass(frozen=True)
class TaskError:
    """One element of `errors[]` and the HTTP status it would give the response on its own."""

    status: int
    item: dict[str, Any]


def first_violation(violations: list[Violation]) -> Violation:
    return min(violations, key=lambda v: RULE_PRIORITY.get(v.rule, len(RULE_PRIORITY)))


def _capitalized(name: str) -> str:
    return name[:1].upper() + name[1:]


def task_fields(task: Any) -> dict[str, Any]:
    """The `taskType` and `taskUUID` an error item echoes, so clients can route it (dossier §3.5)."""
    if not isinstance(task, Mapping):
        return {}
    return {key: task[key] for key in ("taskType", "taskUUID") if isinstance(task.get(key), str)}


def parameter_name(path: tuple[str | int, ...]) -> str:
    """`("inputs", "referenceImages", 2)` → `inputs.referenceImages` (Runware names parameters, not items)."""
    return ".".join(part for part in path if isinstance(part, str))


class ErrorCatalog:
    def __init__(self, data: Mapping[str, Any], schemas: SchemaSet, task_schema: str) -> None:
        self.data = data
        self.schemas = schemas
        self.task_schema = task_schema  # what each task of the array is validated against

    def status(self, kind: str) -> int:
        return int(self.data["status"][kind])

    def _documentation(self, parameter: str | None) -> str:
        base = str(self.data["documentation"])
        return f"{base}#request-{parameter.lower().replace('.', '-')}" if parameter else base

    def from_violation(self, violation: Violation, task: Any) -> TaskError:
        field = violation.field or "task"
        template = self.data["codes"].get(violation.rule) or self.data["codes"]["default"]
        parameter = parameter_name(violation.path) or None
        item: dict[str, Any] = {
            "code": template.format(Field=_capitalized(field)),
            "message": render_message(self.data["messages"], violation),
        }
        if parameter:
            item["parameter"] = parameter
        node = None if violation.rule == "additionalProperties" else self.schema_node(task, violation.path)
        item["type"] = _type_name(node)
        if node is not None:
            for key, name in (("minimum", "min"), ("maximum", "max")):
                if isinstance(node.get(key), (int, float)):
                    item[name] = node[key]
        item["documentation"] = self._documentation(parameter)
        item.update(task_fields(task))
        return TaskError(self.status("validation"), item)

    def _over(self, transport: str, part: str) -> Mapping[str, Any]:
        """provider.json `errorsByTransport[transport][part]`: wording that fits a transport without headers."""
        return self.data.get("errorsByTransport", {}).get(transport, {}).get(part, {})

    def wording(self, name: str, transport: str) -> str:
        """The message template `name` (of `errors`) as said on `transport`."""
        return str(self._over(transport, "errors").get(name, self.data["errors"][name]))

    def fault_message(self, kind: str, transport: str, message: str) -> str:
        """A forced error's table message as said on `transport` (a rule's own message is kept by the caller)."""
        return str(self._over(transport, "faults").get(kind, message))

    def named(
        self, code: str, kind: str, task: Any = None, *, parameter: str | None = None,
        template: str | None = None, transport: str = "http", **values: Any,
    ) -> TaskError:
        """An error that is not a schema violation: auth, credits, blocks, unknown tasks."""
        message = self.wording(template or code, transport).format(**values)
        item: dict[str, Any] = {"code": code, "message": message}
        if parameter:
            item["parameter"] = parameter
        item.update(task_fields(task))
        return TaskError(self.status(kind), item)

    # -- the schema node behind a violation path -----------------------------------------------------

    def _resolve(self, name: str, node: Any) -> tuple[str, Any]:
        while isinstance(node, Mapping) and "$ref" in node:
            file, _, pointer = str(node["$ref"]).partition("#")
            if file:
                name = posixpath.join(posixpath.dirname(name), file.removesuffix(".json"))
            target: Any = self.schemas.document(name)
            for part in filter(None, pointer.split("/")):
                target = target[part]
            node = target
        return name, node

    def schema_node(self, instance: Any, path: tuple[str | int, ...]) -> Mapping[str, Any] | None:
        """Follow `path` through the task schema (refs, discriminators, properties, items)."""
        name, node = self._resolve(self.task_schema, self.schemas.document(self.task_schema))
        for part in (*path, None):
            name, node = self._resolve(name, node)
            # Discriminators nest (taskType, then model): follow them until a concrete schema.
            while isinstance(node, Mapping) and isinstance(instance, Mapping) and "discriminator" in node:
                spec = node["discriminator"]
                value = instance.get(spec["propertyName"])
                target = spec["mapping"].get(value) if isinstance(value, str) else None
                if not isinstance(target, str):
                    break
                name, node = self._resolve(name, {"$ref": target})
            if part is None or not isinstance(node, Mapping):
                break
            if isinstance(part, int):
                node = node.get("items")
                instance = instance[part] if isinstance(instance, list) and part < len(instance) else None
            else:
                node = node.get("properties", {}).get(part)
                instance = instance.get(part) if isinstance(instance, Mapping) else None
        return node if isinstance(node, Mapping) else None


def _type_name(node: Mapping[str, Any] | None) -> str | None:
    if node is None:
        return None
    declared = node.get("type")
    if isinstance(declared, str):
        return TYPE_NAMES.get(declared)
    values = node.get("enum") or ([node["const"]] if "const" in node else [])
    if values and all(isinstance(v, str) for v in values):
        return "string"
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    return None
