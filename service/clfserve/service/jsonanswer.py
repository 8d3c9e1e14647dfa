"""The prediction routes' 200 answers: encoded once by msgspec, sent as two ASGI messages.

A handler returning a value goes through Litestar's generic response path: a `Response`, its
type-encoder and media-type resolution, a header container, then the ASGI response built from
it. On a cached ``/predict`` that path took about a fifth of the app's time per request. These
answers skip it and send exactly what it sent (``content-type: application/json`` and
``content-length``). Everything around them is unchanged: middleware sees the same messages
(and adds its headers to them), and errors still go through the exception handlers.
"""

from __future__ import annotations

import msgspec
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

_ENCODER = msgspec.json.Encoder()
_CONTENT_TYPE = (b"content-type", b"application/json")


class JsonAnswer(ASGIResponse):
    """A 200 ``application/json`` answer holding ``value`` (a msgspec struct) as JSON.

    Subclasses `ASGIResponse` so that Litestar sends it as it is and documents no body of its
    own: the route's ``responses`` document the schema.
    """

    __slots__ = ("_body",)

    def __init__(self, value: object) -> None:  # no super().__init__: nothing of it is used
        self._body = _ENCODER.encode(value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = (b"content-length", str(len(self._body)).encode("ascii"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_CONTENT_TYPE, length]})  # fmt: skip
        await send({"type": "http.response.body", "body": self._body, "more_body": False})
