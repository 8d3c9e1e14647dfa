"""`Classifier`: an artefact folder loaded into ONNX Runtime, ready to predict."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from clfserve.runtime.errors import InvalidInput, ModelLoadError
from clfserve.runtime.inputs import Chunk, Encoded, Rows, TextEncoder, pad_chunk, plan_chunks
from clfserve.runtime.manifest import Manifest, verify_file
from clfserve.runtime.prediction import Prediction, probabilities, to_predictions
from clfserve.runtime.references import reference_mismatches, reference_texts
from clfserve.runtime.resources import usable_cpus
from clfserve.runtime.session import (
    CPU,
    CUDA,
    Device,
    SessionInputs,
    check_device,
    create_session,
    cuda_listed,
    requested_providers,
    session_inputs,
)

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 8
"""Rows per `session.run` on CPU by default: throughput stops growing past ~8, padding grows."""
CUDA_BATCH_SIZE = 64
"""Rows per `session.run` on CUDA by default: an H200 ran the default model's fp16 graph on 64
texts in 2.5-2.9 ms (22,400-25,600 texts/s) and on 128 in 5.1-5.5 ms (no more texts/s)."""
CPU_RUN_COST = 8.0
"""What one `session.run` costs on CPU, in padded tokens, when texts are cut into chunks.

Measured with the default int8 model on one intra-op thread (16 shapes, 1-8 rows x 12-48
tokens, 5 alternated rounds): ~0.47 ms a run plus ~0.07 ms a token, so a run costs about as
much as 7 tokens. Cut this way, the validation reviews in arrival-order groups of 32 pad 4 %
instead of 20 % in fixed chunks of 8, in about twice the runs. On CUDA a run's fixed cost is
large against a token's (an H100 ran 1 text in 1.6 ms and 64 in 5.4 ms), and no cost was fitted
there, so CUDA keeps fixed chunks of the batch size.
"""
CUDA_IO_BINDING = False
"""Whether CUDA runs go through an IO binding by default (see `Classifier.io_binding`).

Off: on an NVIDIA H200 with onnxruntime-gpu 1.31.1 and the default model's fp16 graph (two runs
of 5 alternated rounds, medians) it was faster in one run and slower in the other: batch 64 took
2.50 ms without and 3.06 with, then 2.85 and 2.50; batch 1 0.90 and 1.03 ms, then 0.79 and 0.83.
The inputs are small token ids and the output is a few logits per text, so there is little
copying for a binding to save."""
RunCost = float | Literal["auto"] | None


@dataclass(frozen=True)
class ModelInfo:
    """Identity and placement of a loaded model."""

    name: str
    version: str
    checksum: str
    variant: str
    providers: tuple[str, ...]
    labels: tuple[str, ...]
    max_length: int
    threads: int
    load_seconds: float
    path: str

    @property
    def device(self) -> str:
        return "cuda" if self.providers and self.providers[0] == CUDA else "cpu"


@dataclass(eq=False)
class Classifier:
    """Predicts labels for texts with an ONNX model; safe to call from several threads."""

    manifest: Manifest = field(repr=False)
    session: ort.InferenceSession = field(repr=False)
    encoder: TextEncoder = field(repr=False)
    info: ModelInfo
    batch_size: int
    token_budget: int | None = None
    run_cost: float | None = None
    io_binding: bool = False
    """Run through an ONNX Runtime IO binding (inputs bound from host memory, logits bound on
    the session's device and copied back) instead of `InferenceSession.run`."""
    _inputs: SessionInputs = field(init=False, repr=False)
    _output: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._inputs = session_inputs(self.session)
        self._output = self.manifest.output

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: Device = "auto",
        variant: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        warmup: bool = True,
        cuda_tf32: bool = False,
        token_budget: int | None = None,
        run_cost: RunCost = "auto",
        spinning: bool = True,
        io_binding: bool | None = None,
    ) -> Classifier:
        """Load an artefact folder.

        ``device="auto"`` asks for CUDA then CPU and reports what it got; ``"cuda"`` raises
        `ProviderError` unless CUDA is obtained. With no ``variant`` the int8 graph runs on CPU
        and the fp16 graph on CUDA (`variant_for_cpu`, `variant_for_cuda`). ``threads`` defaults
        to the CPUs this process may use.
        ``batch_size`` caps the rows of one `session.run`; None means `CPU_BATCH_SIZE` or
        `CUDA_BATCH_SIZE` for the provider obtained. The int8 graph quantizes activations per
        call, so its answers (and measured quality) shift slightly with this number.
        ``token_budget`` (None: rows only) also caps ``rows x padded length`` of one run, so
        short texts go in chunks of up to ``batch_size`` rows and long ones in fewer.
        ``run_cost`` (padded tokens one `session.run` is worth) cuts the length-sorted texts
        where the padding saved outweighs one more run; ``"auto"`` means `CPU_RUN_COST` on CPU
        and None on CUDA; None cuts every ``batch_size`` rows.
        ``spinning=False`` lets idle ONNX Runtime threads sleep instead of busy-waiting.
        ``cuda_tf32`` trades exact fp32 on CUDA for faster TF32 matmuls.
        ``io_binding`` (None: `CUDA_IO_BINDING` on CUDA, off on CPU) runs each chunk through an
        IO binding.
        """
        started = time.perf_counter()
        folder = Path(path)
        if not folder.is_dir():
            raise ModelLoadError(f"{folder}: not a directory (expected an artefact folder)")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if token_budget is not None and token_budget < 1:
            raise ValueError("token_budget must be >= 1")
        if run_cost != "auto" and run_cost is not None and not 0 <= run_cost < math.inf:
            raise ValueError("run_cost must be 'auto', None or a number >= 0")
        manifest = Manifest.read(folder)
        threads = threads or usable_cpus()
        encoder = TextEncoder(verify_file(folder, manifest.tokenizer), manifest.max_length)
        for extra in manifest.extras:  # travel with the model: tampering shows here
            verify_file(folder, extra)

        session, chosen = cls._open(
            folder, manifest, device, variant, threads, cuda_tf32=cuda_tf32, spinning=spinning
        )
        got = tuple(session.get_providers())
        info = ModelInfo(
            name=manifest.name,
            version=manifest.version,
            checksum=manifest.checksum,
            variant=chosen,
            providers=got,
            labels=manifest.labels,
            max_length=manifest.max_length,
            threads=threads,
            load_seconds=0.0,
            path=str(folder),
        )
        if batch_size is None:
            batch_size = CUDA_BATCH_SIZE if info.device == "cuda" else CPU_BATCH_SIZE
        if run_cost == "auto":
            run_cost = None if info.device == "cuda" else CPU_RUN_COST
        if io_binding is None:
            io_binding = CUDA_IO_BINDING if info.device == "cuda" else False
        classifier = cls(
            manifest, session, encoder, info, batch_size, token_budget, run_cost, io_binding
        )
        if warmup:
            classifier.predict(["warm-up"] * min(batch_size, 2))
        info = dataclasses.replace(info, load_seconds=time.perf_counter() - started)
        classifier.info = info
        log.info(
            "loaded %s v%s: variant=%s provider=%s threads=%d batch_size=%d token_budget=%s "
            "run_cost=%s io_binding=%s (%.2fs)", info.name, info.version, info.variant, got[0],
            threads, batch_size, token_budget, run_cost, io_binding, info.load_seconds,
        )  # fmt: skip
        return classifier

    @staticmethod
    def _open(
        folder: Path,
        manifest: Manifest,
        device: Device,
        variant: str | None,
        threads: int,
        *,
        cuda_tf32: bool,
        spinning: bool,
    ) -> tuple[ort.InferenceSession, str]:
        if variant is not None and variant not in manifest.variants:
            raise ModelLoadError(
                f"{folder}: no variant {variant!r}; the manifest has {sorted(manifest.variants)}"
            )
        providers = requested_providers(device)
        if device == "cuda" and not cuda_listed():
            check_device(device, [CPU])  # raises: this build has no CUDA provider at all
        if CUDA in providers:
            name = variant or variant_for_cuda(manifest)
            path = verify_file(folder, manifest.variants[name])
            session = create_session(
                path, providers, threads, cuda_tf32=cuda_tf32, spinning=spinning
            )
            got = session.get_providers()
            check_device(device, got)
            if CUDA in got or variant is not None:
                return session, name
            log.warning("CUDA was requested but not obtained (got %s); using the CPU", got)
        name = variant or variant_for_cpu(manifest)
        path = verify_file(folder, manifest.variants[name])
        return create_session(path, [CPU], threads, spinning=spinning), name

    # -- prediction -----------------------------------------------------------------------

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict every text; results come back in the caller's order."""
        encoded = self.encode(texts)
        answers: dict[int, Prediction] = {}
        for rows in self.plan(encoded):
            answers.update(zip(rows.tolist(), self.predict_rows(encoded, rows), strict=True))
        return [answers[i] for i in range(len(texts))]

    def check_references(self) -> list[str]:
        """Predict the manifest's reference texts and say what differs from the answers export
        recorded (empty: this model, as loaded here, answers as it was validated)."""
        texts = reference_texts(self.manifest)
        if not texts:
            return []
        return reference_mismatches(self.manifest, self.info.variant, self.predict(texts))

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Tokenize ``texts`` (truncated at the manifest's ``max_length``), unpadded."""
        if isinstance(texts, str):
            raise InvalidInput("predict() takes a sequence of texts, not a single string")
        return self.encoder.encode(texts)

    def plan(self, encoded: Encoded) -> list[Rows]:
        """Caller positions in length-sorted chunks of at most ``batch_size`` rows (and
        ``token_budget`` padded tokens, if set), cut where ``run_cost`` says: one `session.run`
        each, padded only to its own longest text."""
        return list(plan_chunks(encoded.lengths, self.batch_size, self.token_budget, self.run_cost))

    def chunks(self, encoded: Encoded) -> list[Chunk]:
        """Every chunk of `plan`, padded: what `predict` runs (benchmarks time the steps apart)."""
        return [self._pad(encoded, rows) for rows in self.plan(encoded)]

    def predict_rows(self, encoded: Encoded, rows: Rows) -> list[Prediction]:
        """One `session.run` on the texts at positions ``rows``, answers in ``rows`` order."""
        chunk = self._pad(encoded, rows)
        probs = probabilities(self.run(chunk), self.manifest.problem_type)
        return to_predictions(
            probs,
            self.manifest.labels,
            [encoded.truncated[i] for i in rows],
            [encoded.lengths[i] for i in rows],
        )

    def _pad(self, encoded: Encoded, rows: Rows) -> Chunk:
        return pad_chunk(rows, encoded.ids, encoded.type_ids, self.manifest.pad_token_id)

    def run(self, chunk: Chunk) -> npt.NDArray[np.float32]:
        """One `session.run` on a padded chunk: the raw logits."""
        available = {
            "input_ids": chunk.input_ids,
            "attention_mask": chunk.attention_mask,
            "token_type_ids": chunk.token_type_ids,
        }
        feeds = {}
        for name, dtype in zip(self._inputs.names, self._inputs.dtypes, strict=True):
            if name not in available:
                raise ModelLoadError(f"the model wants an input {name!r} the runtime cannot make")
            array = available[name]
            feeds[name] = array if dtype == "int64" else array.astype(dtype)
        if self.io_binding:
            return self._run_bound(feeds)
        (logits,) = self.session.run([self._output], feeds)
        return np.asarray(logits, dtype=np.float32)

    def _run_bound(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        binding = self.session.io_binding()  # one per call: bindings are not shared by threads
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        binding.bind_output(self._output, "cuda" if self.info.device == "cuda" else "cpu")
        self.session.run_with_iobinding(binding)
        (logits,) = binding.copy_outputs_to_cpu()
        return np.asarray(logits, dtype=np.float32)


def variant_for_cpu(manifest: Manifest) -> str:
    """int8 where exported (fastest on CPU), else fp32, else whatever there is."""
    return _first_of(manifest, ("int8", "fp32"))


def variant_for_cuda(manifest: Manifest) -> str:
    """fp16 where exported (fastest on CUDA, which runs no dynamic int8), else fp32, else
    whatever there is."""
    return _first_of(manifest, ("fp16", "fp32"))


def _first_of(manifest: Manifest, preferred: Sequence[str]) -> str:
    for name in preferred:
        if name in manifest.variants:
            return name
    return next(iter(manifest.variants))
