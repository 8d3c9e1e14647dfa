"""`RedisLink`: the one connection to the Redis that replicas share, and whether it answers.

Every shared component (rate limit, prediction cache, staleness schedule) talks to Redis through
`RedisLink.call`, which bounds each operation (``CLFSERVE_REDIS_TIMEOUT`` for connecting, for
the socket and for the whole call) and never raises: a failure returns `UNAVAILABLE`, marks the
link down, logs one WARNING and sets the gauge ``clfserve_redis_up`` to 0. While the link is down
no request waits on Redis: callers see `RedisLink.up` false and use their local state. A probe
(`RedisLink.watch`, run in the app's lifespan) pings every ``CLFSERVE_REDIS_RETRY`` seconds and
brings the link back up by itself, with an INFO line, when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Unavailable:
    """What `RedisLink.call` returns instead of a result when Redis did not answer in time."""

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()
HEALTHY_PING_S = 5.0
"""While Redis is up, the probe still pings this often, so the gauge is right without traffic."""
FAILURES = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)
MAX_CONNECTIONS = 16
"""Connections per process: Redis answers in well under a millisecond, so a few suffice."""


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = f"{user}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisLink:
    """A pool of connections to ``url`` with bounded timeouts and no retries of its own (a
    failed call is not repeated: the caller falls back at once)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_s: float,
        retry_s: float,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.clock = clock
        # A bounded pool: a burst queues for a connection (at most ``timeout_s``) instead of
        # opening one connection per request in flight.
        self.pool: ConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # One immediate retry on a broken connection (e.g. pooled before Redis restarted);
            # a timeout is never retried.
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        )
        self.client: Redis = Redis(connection_pool=self.pool)
        self._up = True  # optimistic: the first call finds out, and only that call waits
        self._down_since: float | None = None
        self.gauge = Gauge(
            "clfserve_redis_up",
            "1 while the shared Redis answers, 0 while this process uses local state",
            registry=registry,
        )
        self.errors = Counter(
            "clfserve_redis_errors",
            "Redis operations that failed or timed out, by the component that asked",
            ["component"],
            registry=registry,
        )
        self.gauge.set(1)

    def key(self, *parts: str) -> str:
        """A key under this service's prefix: ``clfserve:ratelimit:...``."""
        return ":".join((self.prefix, *parts))

    @property
    def up(self) -> bool:
        return self._up

    async def call(
        self, component: str, operation: Callable[[Redis], Awaitable[T]]
    ) -> T | _Unavailable:
        """``operation(client)`` bounded by the timeout; `UNAVAILABLE` (never an exception) when
        the link is down or the call fails."""
        if not self._up:
            return UNAVAILABLE
        try:
            async with asyncio.timeout(self.timeout_s * 2):  # connect + one round trip at most
                return await operation(self.client)
        except FAILURES as exc:
            self.errors.labels(component).inc()
            self.failed(component, exc)
            return UNAVAILABLE

    def failed(self, component: str, exc: BaseException) -> None:
        """Mark the link down (once per outage: one WARNING)."""
        if not self._up:
            return
        self._up = False
        self._down_since = self.clock()
        self.gauge.set(0)
        log.warning(
            "Redis %s unreachable (%s while serving the %s: %s): using this process's local "
            "state until it answers again (checked every %gs)",
            redacted(self.url), type(exc).__name__, component, exc or "timeout", self.retry_s,
        )  # fmt: skip

    async def probe(self) -> bool:
        """One bounded PING; brings the link up (INFO) or down (WARNING). True when it answered."""
        if not self._up:  # connections pooled before the outage are dead: start afresh
            await self._drop_connections()
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                await self.client.ping()
        except FAILURES as exc:
            self.failed("health probe", exc)
            return False
        if not self._up:
            down_s = self.clock() - (self._down_since or self.clock())
            self._up = True
            self._down_since = None
            self.gauge.set(1)
            log.info(
                "Redis %s answers again after %.1fs: sharing state with the other replicas",
                redacted(self.url), down_s,
            )  # fmt: skip
        return True

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[None]:
        """Probe in the background for the life of the app; close the pool at the end."""
        await self.probe()
        if not self._up:
            log.warning("starting without Redis: limits and cache are per process for now")
        task = asyncio.create_task(self._probe_forever(), name="clfserve-redis-probe")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.close()

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s if not self._up else HEALTHY_PING_S)
            await self.probe()

    async def _drop_connections(self) -> None:
        with suppress(*FAILURES):
            await self.pool.disconnect()

    async def close(self) -> None:
        try:
            await self.client.aclose()
            await self.pool.disconnect()
        except FAILURES:  # closing a broken link must not fail a shutdown
            pass

    def describe(self) -> dict[str, Any]:
        return {"url": redacted(self.url), "prefix": self.prefix, "up": self._up}
