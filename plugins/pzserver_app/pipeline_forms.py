"""The Pipelines page's forms: one per pipeline, built from the ``param`` fields its config declares
(``pzlib.crossmatch.config.PZSERVER_REQUEST_FIELDS``) with their params' JSON schemas, so the form offers the
choices and ranges ``POST processes/`` checks, and the defaults the pipeline fills in.

A submitted form is read into the request the API takes (``used_config["param"]``, inputs, release, name);
each value is checked against its field's schema first, and a refusal of the request itself is put next to
the field it names (``release``, ``inputs``, a param); what names no field goes above the form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from pzlib.crossmatch.config import FLAGS_FILE_FIELD, PZSERVER_REQUEST_FIELDS, RequestField
from pzlib.registry.pipelines import Pipeline

FORM_ERROR = ""
"""Key of the errors that name no field."""

REQUEST_FIELDS = ("display_name", "release", "inputs", FLAGS_FILE_FIELD)
"""Fields every form has besides the params (the flag translation file: when the pipeline takes one)."""


@dataclass(frozen=True)
class FormField:
    """One parameter input of a pipeline form."""

    name: str
    """The input's name: the field's dotted path in ``param``."""
    label: str
    help: str
    kind: str
    """``number``, ``integer``, ``choice`` or ``boolean``."""
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    range_text: str = ""
    """The range in words (``> 0 and ≤ 60``), for the help line."""
    param: str = ""


def takes_flags_file(pipeline: Pipeline) -> bool:
    """Whether the pipeline reads a flag translation file sent with the request."""
    return FLAGS_FILE_FIELD in pipeline.parameters


def form_fields(pipeline: Pipeline) -> tuple[FormField, ...]:
    """The parameter inputs of ``pipeline``'s form, with the pipeline's defaults."""
    defaults = pipeline.with_defaults({})
    return tuple(_form_field(field, _get(defaults, field.path)) for field in PZSERVER_REQUEST_FIELDS[pipeline.name])


def read_param(pipeline: Pipeline, form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(``param`` of the request, errors by input name) from a submitted form; each value checked against its
    schema. An unchecked checkbox is ``false``; a blank number or choice (a form of before the field) takes the
    default."""
    param: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, request_field in zip(form_fields(pipeline), PZSERVER_REQUEST_FIELDS[pipeline.name], strict=True):
        raw = form.get(field.name, "")
        try:
            value = _value(field, raw)
        except ValueError as error:
            errors[field.name] = str(error)
            continue
        problem = next(iter(Draft202012Validator(request_field.schema).iter_errors(value)), None)
        if problem is not None:
            errors[field.name] = f"{_shown(value)} is out of range: must be {field.range_text or problem.message}"
            continue
        _set(param, field.name, value)
    return param, errors


def error_field(pipeline: Pipeline, message: str) -> str:
    """The input a refusal of the request names (``FORM_ERROR`` when none)."""
    text = re.sub(rf"^pipeline {re.escape(pipeline.name)}: ", "", message)
    if re.match(r"^(param\.)?flags?[_ ]translation", text):
        return FLAGS_FILE_FIELD if takes_flags_file(pipeline) else FORM_ERROR
    if text.startswith("release"):
        return "release"
    if text.startswith(("input", "inputs")):
        return "inputs"
    for field in form_fields(pipeline):
        if text.startswith((f"param.{field.name}:", f"{field.param}:")):
            return field.name
    return FORM_ERROR


def _form_field(field: RequestField, default: Any) -> FormField:
    schema = field.schema
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    common = {"name": field.path, "label": field.label, "help": field.help, "default": default, "param": field.param}
    if "enum" in schema:
        return FormField(kind="choice", choices=tuple(str(choice) for choice in schema["enum"]), **common)
    if "boolean" in types:
        return FormField(kind="boolean", **common)
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    words = []
    if "exclusiveMinimum" in schema:
        words.append(f"> {_shown(schema['exclusiveMinimum'])}")
    elif "minimum" in schema:
        words.append(f"≥ {_shown(schema['minimum'])}")
    if "exclusiveMaximum" in schema:
        words.append(f"< {_shown(schema['exclusiveMaximum'])}")
    elif "maximum" in schema:
        words.append(f"≤ {_shown(schema['maximum'])}")
    return FormField(kind="integer" if "integer" in types else "number", minimum=low, maximum=high,
                     range_text=" and ".join(words), **common)


def _value(field: FormField, raw: str) -> Any:
    raw = raw.strip()
    if field.kind == "boolean":
        return raw in ("on", "true", "1")
    if field.kind == "choice":
        if raw == "" and field.default is not None:
            return field.default
        if raw not in field.choices:
            raise ValueError(f"choose one of {', '.join(field.choices)}")
        return raw
    if raw == "":
        return field.default
    try:
        number = int(raw) if field.kind == "integer" else float(raw)
    except ValueError:
        raise ValueError(f"{raw[:40]!r} is not {'a whole number' if field.kind == 'integer' else 'a number'}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{raw[:40]!r} is not a finite number")
    return number


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _get(values: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    *sections, name = path.split(".")
    for section in sections:
        values = values.setdefault(section, {})
    values[name] = value
