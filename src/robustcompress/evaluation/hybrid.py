"""Hybrid max-margin models (Sanyal et al., §3.3, Tables 5-6): a network's representations
at one layer, optionally projected by PCA to k dimensions, classified by a linear SVM.

The pipeline is scikit-learn's: ``StandardScaler`` (the paper's "standard pre-processing
of scaling the input") → ``PCA(k)`` when k is given → a linear max-margin classifier:
``classifier="sgd"`` (default) is the paper's (App. C): hinge loss with an ℓ2 penalty of
0.01 trained by SGD with the rate η_t = η₀/(1 + α·t) set by scikit-learn's heuristic
(``SGDClassifier(loss="hinge", alpha=0.01, learning_rate="optimal")``, one-vs-rest);
``classifier="svc"`` solves the SVM exactly (``LinearSVC``, squared hinge), which on a
few thousand non-separable 1,568-dimensional representations took over eight minutes
where SGD takes seconds. It is fitted on the
training set's representations (:func:`robustcompress.evaluation.representations.
representations`) and then replaces the network's tail: an input goes through the
network up to the layer, then through the pipeline. scikit-learn is an optional extra:
``pip install 'robustcompress[sklearn]'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcompress.attacks.ops import predict
from robustcompress.errors import ConfigError
from robustcompress.evaluation.representations import BATCH, representations


def require_sklearn() -> Any:
    """The ``sklearn`` module, or a one-line error naming the extra to install."""
    try:
        import sklearn
    except ImportError:
        raise ConfigError(
            "hybrid max-margin models need scikit-learn: pip install 'robustcompress[sklearn]'"
        ) from None
    return sklearn


@dataclass
class HybridModel:
    """A network cut at ``module`` followed by a fitted scaler → (PCA) → linear SVM."""

    model: nn.Module
    module: str
    pipeline: Any
    components: int | None

    @classmethod
    def fit(
        cls,
        model: nn.Module,
        module: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        components: int | None = None,
        *,
        c: float = 1.0,
        max_iter: int = 5000,
        classifier: str = "sgd",
        alpha: float = 0.01,
        seed: int = 0,
        batch_size: int = BATCH,
        features: torch.Tensor | None = None,
    ) -> HybridModel:
        """Fit the pipeline on ``model``'s representations of ``images`` at ``module``
        (``components``: the PCA dimension k, ``None`` for no PCA; ``classifier``:
        ``sgd`` with ℓ2 strength ``alpha`` or ``svc`` with C = ``c``; ``max_iter``: the
        classifier's iterations, epochs for ``sgd``; ``features``: the representations
        of ``images`` when already computed, to fit several pipelines on one pass)."""
        require_sklearn()
        from sklearn.decomposition import PCA
        from sklearn.linear_model import SGDClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        if classifier not in ("sgd", "svc"):
            raise ConfigError(f"classifier must be 'sgd' or 'svc' (got {classifier!r})")

        if features is None:
            features = representations(model, module, images, batch_size)
        reps = features.double().numpy()
        if components is not None and not 1 <= components <= min(reps.shape):
            raise ConfigError(
                f"PCA components must be between 1 and {min(reps.shape)} (got {components})"
            )
        steps: list[Any] = [StandardScaler()]
        if components is not None:
            steps.append(PCA(n_components=components, random_state=seed))
        if classifier == "svc":
            steps.append(LinearSVC(C=c, max_iter=max_iter, random_state=seed))
        else:
            steps.append(
                SGDClassifier(
                    loss="hinge",
                    alpha=alpha,
                    learning_rate="optimal",
                    max_iter=min(max_iter, 1000),
                    tol=1e-4,
                    random_state=seed,
                )
            )
        pipeline = make_pipeline(*steps)
        pipeline.fit(reps, labels.cpu().numpy())
        return cls(model, module, pipeline, components)

    def predict(self, images: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
        reps = representations(self.model, self.module, images, batch_size).double().numpy()
        return torch.as_tensor(np.asarray(self.pipeline.predict(reps)), dtype=torch.long)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.predict(images) == labels.cpu()).float().mean())


def recovered_share(
    hybrid: HybridModel, x_adv: torch.Tensor, labels: torch.Tensor, batch_size: int = BATCH
) -> tuple[float, int]:
    """Among the adversarial inputs ``x_adv`` that fool the network (its prediction is not
    the label), the share the hybrid model classifies correctly (Table 6), and how many
    fooled it (share NaN when none did)."""
    model = hybrid.model
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    try:
        preds = torch.cat(
            [
                predict(model, x_adv[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(x_adv), batch_size)
            ]
        )
    finally:
        model.train(training)
    fooled = preds != labels.cpu()
    n = int(fooled.sum())
    if n == 0:
        return float("nan"), 0
    return hybrid.accuracy(x_adv[fooled], labels.cpu()[fooled]), n


__all__ = ["HybridModel", "recovered_share", "require_sklearn"]
