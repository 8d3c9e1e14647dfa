"""The design clfserve replaces: Flask + Flask-Limiter + PyTorch eager, one forward pass per text.

``POST /predict`` with ``{"text": ...}`` answers ``{"label": ..., "score": ...}`` from the
fine-tuned checkpoint: the Hugging Face fast tokenizer (truncated at ``REFERENCE_MAX_LENGTH``),
`AutoModelForSequenceClassification` under `torch.inference_mode`, softmax. Flask-Limiter keeps a
per-client-address limit in memory (``REFERENCE_RATE_LIMIT``, e.g. ``100000000/minute``, or
``off``). ``GET /health`` answers once the model is loaded (it is loaded at import).

Standalone on purpose: it imports nothing from clfserve and runs in its own environment
(``requirements.txt``), served by gunicorn::

    REFERENCE_CHECKPOINT=DIR gunicorn --chdir benchmarks/http/reference -b 127.0.0.1:8000 app:app
"""

from __future__ import annotations

import os
from typing import Any

import torch
from flask import Flask, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from transformers import AutoModelForSequenceClassification, AutoTokenizer

CHECKPOINT = os.environ["REFERENCE_CHECKPOINT"]
MAX_LENGTH = int(os.environ.get("REFERENCE_MAX_LENGTH", "64"))
RATE_LIMIT = os.environ.get("REFERENCE_RATE_LIMIT", "600/minute")

torch.set_num_threads(int(os.environ.get("REFERENCE_THREADS") or os.cpu_count() or 1))
tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
model = AutoModelForSequenceClassification.from_pretrained(CHECKPOINT).eval()
labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

app = Flask(__name__)
limiter = Limiter(
    get_remote_address,
    app=app,
    default_limits=[] if RATE_LIMIT == "off" else [RATE_LIMIT],
    storage_uri="memory://",
)


@app.post("/predict")
def predict() -> Any:
    text = request.get_json(force=True)["text"]
    with torch.inference_mode():
        encoded = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        probabilities = torch.softmax(model(**encoded).logits, dim=-1)[0]
    best = int(probabilities.argmax())
    return jsonify(label=labels[best], score=float(probabilities[best]))


@app.get("/health")
@limiter.exempt
def health() -> Any:
    return jsonify(status="ok")
