"""The OpenAPI document: request bodies with the limits in force, every answer from `contract`.

Handlers decode their own bodies (see `schemas`), so `documented` supplies what Litestar cannot
infer: the request body (with the limits of this app's `Settings`), every failure status with its
body, and the headers of each answer. `openapi_config` adds the shared header and security
declarations and the offline docs page (`docs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from clfserve.service import contract
from clfserve.service.contract import Failure
from clfserve.service.docs import OfflineSwaggerUI
from clfserve.service.schemas import Health

HTTP_200_OK = 200
FULFILLED = "Request fulfilled, document follows"
"""Litestar's description of a 200 answer, kept for the answers it cannot describe itself."""

BEARER = "bearer"
"""Security scheme of the admin routes."""
DOCS_PATH = "/schema"


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer: the status again, and what to do about it."""

    status_code: int
    detail: str
    extra: Any | None = None


_STRING = {"type": "string"}
_INTEGER = {"type": "integer", "minimum": 0}


def _header_schema(name: str) -> dict[str, Any]:
    return _STRING if name in (contract.MODEL_VERSION, "RateLimit-Policy",
                               contract.WWW_AUTHENTICATE) else _INTEGER  # fmt: skip


def _header_ref(name: str) -> Reference:
    return Reference(ref=f"#/components/headers/{name}")


def _describe(failures: Sequence[Failure]) -> str:
    return "; ".join(failure.when for failure in failures)


def documented(
    failures: Sequence[Failure],
    *,
    body: tuple[dict[str, Any], dict[str, Any]] | None = None,
    admin: bool = False,
    throttled: bool = True,
    answer: type | None = None,
) -> dict[str, Any]:
    """Route decorator arguments documenting ``failures`` (from `contract`), the request
    ``body`` (JSON Schema, example), bearer auth for ``admin`` routes, and the headers: the
    model version on every answer, the RateLimit headers on routes that are ``throttled``.

    ``answer`` documents the 200 body of a route that returns a `JsonAnswer` (Litestar cannot
    see its schema in the return annotation).
    """
    by_status: dict[int, list[Failure]] = {}
    for failure in failures:
        by_status.setdefault(failure.status, []).append(failure)
    responses = {
        status: ResponseSpec(
            data_container=Health if group[0].health_body else ErrorBody,
            description=_describe(group),
            generate_examples=False,
        )
        for status, group in by_status.items()
    }
    if answer is not None:
        responses[HTTP_200_OK] = ResponseSpec(
            data_container=answer, description=FULFILLED, generate_examples=False
        )
    required = {str(status): {h for f in group for h in f.headers}
                for status, group in by_status.items()}  # fmt: skip
    request_body = None
    if body is not None:
        schema, example = body
        request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(
                    schema=cast(Schema, schema),  # a plain dict: Litestar emits it as is
                    example=example,
                )
            },
        )

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            if request_body is not None:
                self.request_body = request_body
            for status, response in (self.responses or {}).items():
                assert isinstance(response, OpenAPIResponse)
                names = [contract.MODEL_VERSION, *sorted(required.get(status, ()))]
                if throttled:
                    names += [h for h in contract.RATE_LIMIT_HEADERS if h not in names]
                response.headers = {name: _header_ref(name) for name in names}

    kwargs: dict[str, Any] = {"responses": responses, "operation_class": Documented}
    if admin:
        kwargs["security"] = [{BEARER: []}]
    return kwargs


def components() -> Components:
    """Header and security declarations the operations refer to."""
    headers: dict[str, OpenAPIHeader | Reference] = {
        name: OpenAPIHeader(
            schema=cast(Schema, _header_schema(name)),
            description=text,
            required=not name.startswith("RateLimit-"),  # only while a limit is on
        )
        for name, text in contract.HEADERS.items()
    }
    return Components(
        headers=headers,
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                description="`Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>`",
            )
        },
    )


def openapi_config() -> OpenAPIConfig:
    """The document's metadata, shared declarations and the offline docs page at ``/schema``."""
    return OpenAPIConfig(
        title="clfserve",
        version="1",
        description="Text classification with an ONNX model. Every error answer is JSON "
        '`{"status_code": N, "detail": "..."}` with a detail a person can act on.',
        path=DOCS_PATH,
        components=components(),
        render_plugins=[OfflineSwaggerUI(DOCS_PATH)],
    )
