"""OpenAPI request bodies for handlers that decode their own body (see `schemas`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema


def operation_with_body(struct: type[msgspec.Struct], example: dict[str, Any]) -> type[Operation]:
    """An `Operation` class documenting ``struct`` as the JSON request body."""
    _, components = msgspec.json.schema_components([struct])
    schema = cast(Schema, components[struct.__name__])  # a plain dict: Litestar emits it as is
    body = RequestBody(
        required=True,
        content={"application/json": OpenAPIMediaType(schema=schema, example=example)},
    )

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return WithBody
