import clfserve.runtime


def test_exported_members() -> None:
    assert sorted(clfserve.runtime.__all__) == [
        "ClassMetrics",
        "Classifier",
        "ClfserveError",
        "Dataset",
        "DatasetError",
        "EvaluationResult",
        "FileEntry",
        "InvalidInput",
        "Manifest",
        "Metrics",
        "ModelInfo",
        "ModelLoadError",
        "Prediction",
        "ProviderError",
        "Scorer",
        "Splits",
        "compute_scores",
        "evaluate",
        "load_dataset",
        "load_split",
        "split",
    ]
    for name in clfserve.runtime.__all__:
        assert getattr(clfserve.runtime, name) is not None
