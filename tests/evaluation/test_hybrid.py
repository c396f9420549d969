"""Hybrid max-margin models: scaler → PCA → linear SVM on a layer's representations."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.evaluation.hybrid import HybridModel, recovered_share, require_sklearn

pytest.importorskip("sklearn")


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes separated along two of eight input directions."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])
    x = torch.randn(n, 8, generator=g) * 0.5
    x[:, :2] += centres[labels]
    return x, labels


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def test_the_hybrid_learns_from_the_representations_and_pca_keeps_k_dims() -> None:
    x, y = _data(300, 0)
    x_test, y_test = _data(150, 1)
    full = HybridModel.fit(_net(), "1", x, y)
    assert full.accuracy(x_test, y_test) > 0.9  # an untrained net's ReLU features suffice
    small = HybridModel.fit(_net(), "1", x, y, components=2)
    pca = small.pipeline.named_steps["pca"]
    assert pca.n_components_ == 2
    assert small.accuracy(x_test, y_test) > 0.8
    with pytest.raises(ConfigError, match="PCA components must be between 1 and 16"):
        HybridModel.fit(_net(), "1", x, y, components=17)


def test_both_classifiers_fit_and_a_bad_name_is_refused() -> None:
    from sklearn.linear_model import SGDClassifier
    from sklearn.svm import LinearSVC

    x, y = _data(300, 0)
    x_test, y_test = _data(150, 1)
    sgd = HybridModel.fit(_net(), "1", x, y)
    assert isinstance(sgd.pipeline.steps[-1][1], SGDClassifier)
    assert sgd.pipeline.steps[-1][1].loss == "hinge" and sgd.pipeline.steps[-1][1].alpha == 0.01
    svc = HybridModel.fit(_net(), "1", x, y, classifier="svc")
    assert isinstance(svc.pipeline.steps[-1][1], LinearSVC)
    assert svc.accuracy(x_test, y_test) > 0.9
    with pytest.raises(ConfigError, match="classifier must be 'sgd' or 'svc'"):
        HybridModel.fit(_net(), "1", x, y, classifier="tree")


def test_recovered_share_counts_only_inputs_that_fool_the_network() -> None:
    x, y = _data(300, 0)
    net = _net()
    hybrid = HybridModel.fit(net, "1", x, y)
    with torch.no_grad():
        wrong = net(x).argmax(dim=1) != y  # the untrained network is mostly wrong
    share, n = recovered_share(hybrid, x, y)
    assert n == int(wrong.sum()) > 0
    assert share == pytest.approx(hybrid.accuracy(x[wrong], y[wrong]))


def test_a_missing_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_sklearn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ConfigError, match=r"pip install 'robustcompress\[sklearn\]'"):
        require_sklearn()
