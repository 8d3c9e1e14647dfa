"""Live releases: a server that serves ``models:/NAME@ALIAS`` follows the alias.

Every ``CLFSERVE_RELOAD_INTERVAL`` (and on ``POST /admin/reload``) the `ModelFollower` asks the
registry which version the alias names. A new version (even one with identical files) becomes a
candidate:

1. it is resolved, its files copied under the clfserve home and their checksums verified;
2. it is opened and warmed next to the serving model, through the gateway at background
   priority;
3. it must reproduce the reference answers its export recorded, within its variant's tolerance;
4. then it is swapped in atomically: new calls get it, calls already running finish on the old
   model, which is freed when they end.

A candidate that fails any step never serves: the current model keeps serving, and the rejection
is logged (WARNING), shown in ``GET /model`` (``candidate``), counted in
``clfserve_model_reloads_total{result="rejected"}`` and tagged on the MLflow version
(``clfserve.rejected``). The same version is not retried on every poll, only once the alias
moves (or on ``POST /admin/reload``).

When the registry cannot be reached at start, the newest local copy of the alias's version is
served (``GET /model`` says so and since when the registry is unreachable) and polling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from clfserve.registry import (
    ModelUri,
    RegistryError,
    ResolvedModel,
    VersionRef,
    alias_version,
    is_registry_uri,
    newest_local_copy,
    parse_model_uri,
    tag_version,
)
from clfserve.runtime import ClfserveError
from clfserve.service.gateway import InferenceGateway
from clfserve.service.loading import open_model, resolve
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import Model
from clfserve.service.settings import Settings

log = logging.getLogger(__name__)

Result = Literal["swapped", "rejected", "unchanged", "error"]
SwapHook = Callable[[Model], Awaitable[None]]
"""Called after a swap with the new model (the staleness monitor evaluates it soon)."""


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Candidate:
    """The latest version the follower tried, and what became of it."""

    version: str
    status: Literal["loading", "swapped", "rejected"]
    reason: str | None
    at: str


@dataclass(frozen=True)
class ReloadOutcome:
    """What one check did; the body of ``POST /admin/reload``."""

    result: Result
    detail: str
    serving: str | None
    candidate: Candidate | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ModelFollower:
    """Loads the model at start and, for ``models:/NAME@ALIAS``, follows the alias."""

    def __init__(
        self,
        settings: Settings,
        gateway: InferenceGateway,
        metrics: ServiceMetrics,
        on_swap: list[SwapHook] | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.metrics = metrics
        self.on_swap = on_swap if on_swap is not None else []
        self.uri: ModelUri | None = (
            parse_model_uri(settings.model_uri) if is_registry_uri(settings.model_uri) else None
        )
        self.candidate: Candidate | None = None
        self.served_from: Literal["registry", "local copy", "folder"] = "folder"
        self.registry_unreachable_since: float | None = None
        self._rejected: tuple[str, str] | None = None  # (version, source) not to retry
        self._one_at_a_time = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def follows(self) -> bool:
        """Whether this server follows an alias (``models:/NAME@ALIAS``)."""
        return self.uri is not None and self.uri.alias is not None

    def describe(self) -> dict[str, Any]:
        """The follower's part of ``GET /model``."""
        since = self.registry_unreachable_since
        return {
            "served_from": self.served_from,
            "follows_alias": self.follows,
            "reload_interval_s": self.settings.reload_interval_s if self.follows else None,
            "registry_unreachable_since": None if since is None else _iso(since),
            "candidate": None if self.candidate is None else asdict(self.candidate),
        }

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Poll in the background (after the first load) when following an alias."""
        if self.follows and self.settings.reload_interval_s is not None and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="clfserve-follow-alias")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        interval = self.settings.reload_interval_s
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            await self.check()  # never raises

    # -- the first load -----------------------------------------------------------------------

    async def load_first(self) -> None:
        """Load what the URI names; with the registry down, the newest local copy. Raises
        `ClfserveError` with the reason when there is nothing to serve."""
        if self.uri is None:  # a local folder
            await self._serve(await asyncio.to_thread(resolve, self.settings.model_uri))
            self.served_from = "folder"
            return
        try:
            resolved = await asyncio.to_thread(resolve, self.settings.model_uri)
        except ClfserveError as exc:
            copy = newest_local_copy(self.uri) if _unreachable(exc) else None
            if copy is None:
                if _unreachable(exc):
                    self.registry_unreachable_since = self.registry_unreachable_since or time.time()
                raise
            self.registry_unreachable_since = time.time()
            log.warning(
                "the registry is unreachable (%s); serving the local copy of %s v%s from %s",
                exc, copy.name, copy.version, copy.path,
            )  # fmt: skip
            await self._serve(copy)
            self.served_from = "local copy"
            return
        await self._serve(resolved)
        self.served_from = "registry"

    async def _serve(self, resolved: ResolvedModel) -> None:
        model = await asyncio.to_thread(open_model, self.settings, resolved)
        await self.gateway.serve(model)  # vets it; ModelLoadError when it answers wrongly

    # -- following the alias ------------------------------------------------------------------

    async def check(self, force: bool = False) -> ReloadOutcome:
        """Ask the registry where the alias points and swap if it moved. Never raises."""
        async with self._one_at_a_time:
            try:
                outcome = await self._check(force)
            except Exception as exc:  # a bug or an environment problem: report, keep serving
                log.exception("checking for a new model version failed")
                outcome = self._outcome("error", f"{type(exc).__name__}: {exc}")
            self.metrics.reloads.labels(outcome.result).inc()
            return outcome

    async def _check(self, force: bool) -> ReloadOutcome:
        if self.uri is None or self.uri.alias is None:
            return self._outcome("unchanged", f"{self.settings.model_uri} names no alias to follow")
        try:
            ref = await asyncio.to_thread(alias_version, self.uri.name, self.uri.alias)
        except RegistryError as exc:
            if self.registry_unreachable_since is None:
                self.registry_unreachable_since = time.time()
                log.warning("the registry is unreachable: %s; still serving what we have", exc)
            return self._outcome("error", str(exc))
        if self.registry_unreachable_since is not None:
            log.info("the registry answers again")
            self.registry_unreachable_since = None
        if ref is None:
            return self._outcome("error", f"{self.uri} does not exist in the registry")
        serving = self.gateway.state.info
        if serving is not None and serving.version == ref.version:
            if self.served_from == "local copy":
                self.served_from = "registry"
            return self._outcome("unchanged", f"{self.uri} still names version {ref.version}")
        key = (ref.version, ref.source)
        if key == self._rejected and not force:
            reason = self.candidate.reason if self.candidate else "rejected"
            return self._outcome(
                "unchanged", f"version {ref.version} was rejected and has not changed: {reason}"
            )
        return await self._try(ref)

    async def _try(self, ref: VersionRef) -> ReloadOutcome:
        self.candidate = Candidate(ref.version, "loading", None, _iso(time.time()))
        log.info("%s now names version %s: loading it next to the serving model", self.uri,
                 ref.version)  # fmt: skip
        try:
            resolved = await asyncio.to_thread(resolve, f"models:/{ref.name}/{ref.version}")
            resolved = ResolvedModel(resolved.path, ref.name, ref.version, str(self.uri))
            model = await asyncio.to_thread(open_model, self.settings, resolved)
            problems = await self.gateway.vet(model)
        except ClfserveError as exc:
            return await self._reject(ref, str(exc))
        if problems:
            return await self._reject(
                ref, f"does not reproduce its reference answers: {'; '.join(problems)}"
            )
        previous = self.gateway.swap(model)
        self.metrics.set_model(model.info)
        self.served_from = "registry"
        self._rejected = None
        self.candidate = Candidate(ref.version, "swapped", None, _iso(time.time()))
        old = previous.info.version if previous is not None else "none"
        log.info("swapped model %s: v%s -> v%s", ref.name, old, ref.version)
        del previous  # the old model is freed once calls still running on it end
        for hook in self.on_swap:
            await hook(model)
        return self._outcome("swapped", f"now serving version {ref.version} (was {old})")

    async def _reject(self, ref: VersionRef, reason: str) -> ReloadOutcome:
        self._rejected = (ref.version, ref.source)
        now = time.time()
        self.candidate = Candidate(ref.version, "rejected", reason, _iso(now))
        serving = self.gateway.state.info
        log.warning(
            "rejected %s version %s: %s; still serving %s", ref.name, ref.version, reason,
            f"v{serving.version}" if serving else "nothing",
        )  # fmt: skip
        try:
            await asyncio.to_thread(
                tag_version,
                ref.name,
                ref.version,
                {"clfserve.rejected": reason[:4000], "clfserve.rejected_at": _iso(now)},
            )
        except ClfserveError as exc:
            log.error("could not tag the rejection on MLflow version %s: %s", ref.version, exc)
        return self._outcome("rejected", reason)

    def _outcome(self, result: Result, detail: str) -> ReloadOutcome:
        info = self.gateway.state.info
        return ReloadOutcome(result, detail, info.version if info else None, self.candidate)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the registry could not be reached (rather than "no such model")."""
    text = str(exc)
    return "unreachable" in text or "Connection refused" in text or "timed out" in text
