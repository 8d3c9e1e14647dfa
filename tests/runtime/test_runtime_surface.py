import clfserve.runtime


def test_exported_members() -> None:
    assert sorted(clfserve.runtime.__all__) == [
        "Classifier",
        "ClfserveError",
        "FileEntry",
        "InvalidInput",
        "Manifest",
        "ModelInfo",
        "ModelLoadError",
        "Prediction",
        "ProviderError",
    ]
    for name in clfserve.runtime.__all__:
        assert getattr(clfserve.runtime, name) is not None
