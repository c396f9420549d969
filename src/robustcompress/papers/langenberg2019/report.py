"""The report of the Langenberg et al. 2019 reproduction: its figures, tables and claims.

Langenberg, Balda, Behboodi & Mathar, "On the effect of low-rank weights on
adversarial robustness of neural networks" (2019). The reproduction directory's
manifest names the runs with the method ids below; this module says what the
paper shows about them and how its claims are tested:

* **Claim 1** (§5): "Adversarial training leads to low-rank and sparse weights":
  FGSM and PGD adversarial fine-tuning lower the final effective rank (eq. 3) and
  effective sparsity (eq. 2) of W_1 of the FCNN, and of W_1 and W_2 (the two
  convolution kernels, reshaped as in Appendix B) of the CNN, compared with natural
  training continued for the same budget (the ``continued`` control; the natural
  starting model is a secondary comparison).
* **Claim 2** (§5): "Simultaneously low-rank and sparse weights promote robustness":
  every regularized method lowers the final FGSM, PGD and GNM fooling ratios
  compared with natural training (at the settings the runs tracked: the paper's
  ε = 0.05 in the recipe's profiles; the page prints them from the runs' configs).
* **Remark** (§6, Discussion): "we cannot still match the robustness of adversarial
  training": every regularized method keeps higher fooling ratios than PGD
  adversarial training.

Each comparison is paired by seed (:mod:`robustcompress.reporting.claims`). The
paper's clean accuracies (Appendix A, Tables 1–2) come from the recipe
(:data:`robustcompress.papers.langenberg2019.recipe.PAPER_ACCURACY`), keyed by
the same method ids; the joint regularizer is in Figures 2–3 but not in Table 1.
"""

from __future__ import annotations

from robustcompress import catalogue
from robustcompress.papers.langenberg2019.recipe import METHODS, PAPER_ACCURACY
from robustcompress.reporting.claims import ClaimSpec, ComparisonSpec
from robustcompress.reporting.loading import ENSEMBLE_LABEL, ReportSource
from robustcompress.reporting.plans import (
    evaluate_claims,
    masking_required,
    reference_accuracy_table,
    tracked_attacks_text,
)
from robustcompress.reporting.sections import FigureRequest, ReportPlan, final_tables
from robustcompress.reporting.tables import Table

PAPER = (
    "Langenberg, Balda, Behboodi & Mathar (2019), On the effect of low-rank weights on "
    "adversarial robustness of neural networks"
)

MODELS = ("fcnn", "cnn")
"""The paper's order: FCNN on MNIST first, then the CNN on Fashion-MNIST."""

TABLES = {
    "fcnn": ("table-1", "Table 1: test accuracy of the FCNN on MNIST (clean data)"),
    "cnn": ("table-2", "Table 2: test accuracy of the CNN on Fashion-MNIST (clean data)"),
}

ATTACKS = ("fgsm", "pgd", "gnm")
"""Labels of the tracked attacks behind the paper's fooling ratios (§5)."""

CLAIM_MATRICES = {"fcnn": ("W1",), "cnn": ("W1", "W2")}
"""Weight matrices Claim 1 is about: the FCNN's input matrix, the CNN's two kernels."""

STRUCTURE = ("effective_rank", "effective_sparsity")
ADVERSARIAL = ("fgsm", "pgd")


def regularized_methods(source: ReportSource, model: str) -> list[str]:
    """The methods of ``model`` in the ``regularized`` group, in manifest order."""
    return [m for m in source.methods(model) if source.group(model, m) == "regularized"]


CONTROL = "continued"
"""The baseline of Claims 1 and 2: natural training continued for the fine-tuning budget."""


def claim_specs(source: ReportSource) -> list[ClaimSpec]:
    """Claim 1, Claim 2 and the Remark as comparisons over the models in ``source``.

    Claims 1 and 2 compare each treatment with the continued-training control of the
    same model and seed (the same fine-tuning budget without the treatment); the same
    comparisons against the starting natural model follow as secondary rows
    (``claim-1-start``, ``claim-2-start``). A reproduction without the control (made
    before it existed) is compared with the natural model only.
    """
    models = [m for m in ("fcnn", "cnn") if m in source.models()] or source.models()
    attacks_text = "; ".join(
        f"{model.upper()}: {text}"
        for model in models
        if (text := tracked_attacks_text(source, model))
    )

    def claim1(baseline: str) -> tuple[ComparisonSpec, ...]:
        return tuple(
            ComparisonSpec(model, baseline, method, f"{measure}/{matrix}", "lower")
            for model in models
            if baseline in source.methods(model)
            for method in ADVERSARIAL
            for matrix in CLAIM_MATRICES.get(model, ("W1",))
            for measure in STRUCTURE
        )

    def claim2(baseline: str) -> tuple[ComparisonSpec, ...]:
        return tuple(
            ComparisonSpec(model, baseline, method, catalogue.fooling_ratio_key(attack), "lower")
            for model in models
            if baseline in source.methods(model)
            for method in regularized_methods(source, model)
            for attack in ATTACKS
        )

    remark = tuple(
        ComparisonSpec(model, "pgd", method, catalogue.fooling_ratio_key(attack), "higher")
        for model in models
        for method in regularized_methods(source, model)
        for attack in ATTACKS
    )
    controlled = any(CONTROL in source.methods(model) for model in models)
    baseline = CONTROL if controlled else "natural"
    against = (
        "continued natural training for the same fine-tuning budget"
        if controlled
        else "natural training"
    )
    claim2_text = (
        "Every regularized method (ℓ1, nuclear, joint penalties) lowers the final FGSM, PGD "
        "and GNM fooling ratios compared with {against}"
        + (f" ({attacks_text})." if attacks_text else ".")
    )
    specs = [
        ClaimSpec(
            "claim-1",
            "Claim 1: adversarial training leads to low-rank and sparse weights",
            "FGSM and PGD adversarial training lower the final effective rank and effective "
            "sparsity of W1 of the FCNN, and of W1 and W2 (the first two convolution kernels) "
            f"of the CNN, compared with {against}.",
            claim1(baseline),
        ),
        ClaimSpec(
            "claim-2",
            "Claim 2: simultaneously low-rank and sparse weights promote robustness",
            claim2_text.format(against=against),
            claim2(baseline),
        ),
    ]
    if controlled:
        start = "the starting natural model (secondary: fine-tuning itself also changes it)"
        specs += [
            ClaimSpec(
                "claim-1-start",
                "Claim 1, secondary: against the starting natural model",
                f"As Claim 1, compared with {start}.",
                claim1("natural"),
            ),
            ClaimSpec(
                "claim-2-start",
                "Claim 2, secondary: against the starting natural model",
                claim2_text.format(against=start),
                claim2("natural"),
            ),
        ]
    specs.append(
        ClaimSpec(
            "remark",
            "Remark (§6): the regularizers still do not reach adversarial training",
            "Every regularized method keeps higher final fooling ratios than PGD adversarial "
            "training.",
            remark,
        )
    )
    ensemble = catalogue.fooling_ratio_key(ENSEMBLE_LABEL)
    if any(ensemble in r.measured for r in source.finished):
        specs += [
            ClaimSpec(
                "claim-2-autoattack",
                "Claim 2 under the strongest attack: the AutoAttack-style ensemble",
                "Every regularized method lowers the fooling ratio under the ensemble "
                f"(APGD-CE, APGD-T, FAB-T, Square; at the paper's ε) compared with {against}: "
                "does the effect survive an attack that does not rely on one gradient?",
                tuple(
                    ComparisonSpec(model, baseline, method, ensemble, "lower")
                    for model in models
                    if baseline in source.methods(model)
                    for method in regularized_methods(source, model)
                ),
            ),
            ClaimSpec(
                "remark-autoattack",
                "Remark under the ensemble",
                "Every regularized method keeps a higher fooling ratio under the ensemble "
                "than PGD adversarial training.",
                tuple(
                    ComparisonSpec(model, "pgd", method, ensemble, "higher")
                    for model in models
                    for method in regularized_methods(source, model)
                ),
            ),
        ]
    return specs


def plan(source: ReportSource) -> ReportPlan:
    """Figures 1–10, Tables 1–2, final metrics and the three claims of the paper."""
    report = ReportPlan()
    source.reorder(MODELS, {model: [m.id for m in methods] for model, methods in METHODS.items()})
    models = source.models()
    report.intro = [
        f"Reproduction of {PAPER}. Method ids follow the manifest; "
        "the paper's numbers are from its Appendix A (Tables 1–2).",
    ]
    description = source.manifest.get("profile_description")
    if description:
        report.intro.append(f"Profile {source.profile}: {description}.")
    if "fcnn" in models:
        adv = _methods(source, "fcnn", ("natural", "adversarial"))
        reg = _methods(source, "fcnn", ("regularized",))
        report.figures += [
            _weights(
                "figure-1",
                "Figure 1: W1 of the FCNN, natural vs adversarial training",
                "fcnn",
                adv,
                "W1",
                "Each of the 20 rows of W1 ∈ R^{20×784} as a 28×28 tile.",
            ),
            _structure("figure-2", "Figure 2: effective rank and sparsity of the FCNN", "fcnn"),
            FigureRequest(
                "information",
                "figure-2-mi",
                "Figure 2 (continued): mutual information of the FCNN's hidden layers",
                "fcnn",
            ),
            _fooling(source, "figure-3", "Figure 3: fooling ratios of the FCNN (MNIST)", "fcnn"),
            _weights(
                "figure-8",
                "Figure 8: W1 of the FCNN after regularized training",
                "fcnn",
                ("natural", *reg),
                "W1",
                "Each of the 20 rows of W1 as a 28×28 tile; natural training for reference.",
            ),
        ]
    if "cnn" in models:
        adv = _methods(source, "cnn", ("natural", "adversarial"))
        reg = _methods(source, "cnn", ("regularized",))
        report.figures += [
            _fooling(
                source, "figure-4", "Figure 4: fooling ratios of the CNN (Fashion-MNIST)", "cnn"
            ),
            _structure("figure-5", "Figure 5: effective rank and sparsity of the CNN", "cnn"),
            _weights(
                "figure-6",
                "Figure 6: first convolution W1 of the CNN, natural vs adversarial",
                "cnn",
                adv,
                "W1",
                "The 32 filters of W1 ∈ R^{3×3×1×32} as 3×3 tiles.",
            ),
            _weights(
                "figure-7",
                "Figure 7: second convolution W2 of the CNN, natural vs adversarial",
                "cnn",
                adv,
                "W2",
                "W2 ∈ R^{3×3×32×32}: row i, column j is the 3×3 kernel from input channel j "
                "to output channel i.",
            ),
            _weights(
                "figure-9",
                "Figure 9: W1 of the CNN after regularized training",
                "cnn",
                ("natural", *reg),
                "W1",
                "The 32 filters of W1 as 3×3 tiles.",
            ),
            _weights(
                "figure-10",
                "Figure 10: W2 of the CNN after regularized training",
                "cnn",
                ("natural", *reg),
                "W2",
                "Row i, column j: the 3×3 kernel from input channel j to output channel i.",
            ),
        ]
    for model in models:
        report.figures.append(
            FigureRequest(
                "accuracy", f"{model}-accuracy", f"{model.upper()}: clean accuracy", model
            )
        )
    report.accuracy_tables = [_accuracy_table(source, model) for model in models]
    report.tables = [t for model in models for t in final_tables(source, model)]
    if "cnn" in models:
        appendix = appendix_b_table(source)
        if appendix is not None:
            report.tables.append(appendix)
    specs = claim_specs(source)
    report.claims = evaluate_claims(source, specs)
    report.masking_required = masking_required(source, specs)
    return report


def _methods(source: ReportSource, model: str, groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m for m in source.methods(model) if source.group(model, m) in groups)


def _weights(
    key: str, title: str, model: str, methods: tuple[str, ...], matrix: str, caption: str
) -> FigureRequest:
    return FigureRequest("weights", key, title, model, methods, matrix, caption)


def _structure(key: str, title: str, model: str) -> FigureRequest:
    return FigureRequest(
        "structure",
        key,
        title,
        model,
        caption="Effective rank r(W) = ‖W‖_*/‖W‖_F (eq. 3) and effective sparsity "
        "s(W) = ‖W‖_1/‖W‖_F (eq. 2) of each W_i (convolutions reshaped, Appendix B).",
    )


def _fooling(source: ReportSource, key: str, title: str, model: str) -> FigureRequest:
    text = tracked_attacks_text(source, model)
    return FigureRequest(
        "fooling",
        key,
        title,
        model,
        caption=f"Tracked attacks, as stored in the runs' configs: {text}." if text else "",
    )


def _accuracy_table(source: ReportSource, model: str) -> Table:
    key, title = TABLES.get(model, (f"{model}-accuracy", f"{model.upper()}: clean accuracy"))
    return reference_accuracy_table(source, model, PAPER_VALUES, key=key, title=title)


PAPER_VALUES = {model: {catalogue.ACCURACY: values} for model, values in PAPER_ACCURACY.items()}
"""The paper's numbers in the shared form (model → metric → method)."""


def appendix_b_table(source: ReportSource) -> Table | None:
    """What the reshaped kernel W̃ measures, against the convolution it stands for.

    Appendix B writes a convolution as W = W̃ ⊗ I_m over m non-overlapping patches and
    measures W̃. The CNN's 3×3 convolutions have stride 1, so their patches overlap and
    the layer is not W̃ ⊗ I_m. For the first seed of the natural CNN this table gives,
    for W1 and W2, the effective rank and sparsity of W̃, the values W̃ ⊗ I_m would
    have (√m times larger), and those of the exact operator: the circular convolution
    on the layer's input size, whose singular values come from the 2-D FFT (Sedghi et
    al. 2019); its entries are the kernel's repeated n_h·n_w times, so its effective
    sparsity is √(n_h·n_w)·s(W̃).
    """
    import math

    from robustcompress.errors import RobustCompressError
    from robustcompress.models import model_spec, weight_matrices
    from robustcompress.structure import (
        conv_input_sizes,
        conv_operator_singular_values,
        effective_rank,
        effective_sparsity,
    )
    from robustcompress.training.checkpoint import load_model

    runs = source.runs_of("cnn", "natural")
    if not runs:
        return None
    try:
        model = load_model(runs[0].run_dir)
        sizes = conv_input_sizes(model, model_spec("cnn").input_shape)
    except (RobustCompressError, KeyError):
        return None
    rows = []
    for wm in weight_matrices(model):
        kernel = wm.parameter.detach().cpu().double()
        if kernel.ndim != 4 or wm.module_name not in sizes:
            continue
        n_h, n_w = sizes[wm.module_name]
        m = n_h * n_w
        sigma = conv_operator_singular_values(kernel, (n_h, n_w))
        r_operator = effective_sparsity(sigma)  # r of the operator: s of its spectrum
        r_tilde, s_tilde = (
            effective_rank(wm.matrix.detach()),
            effective_sparsity(wm.matrix.detach()),
        )
        rows.append(
            [
                wm.name,
                f"{n_h}×{n_w}",
                f"{r_tilde:.3f}",
                f"{math.sqrt(m) * r_tilde:.1f}",
                f"{r_operator:.1f}",
                f"{s_tilde:.3f}",
                f"{math.sqrt(m) * s_tilde:.1f}",
            ]
        )
    if not rows:
        return None
    return Table(
        "appendix-b",
        "Appendix B check: the reshaped kernel W̃ against the convolution (natural CNN)",
        [
            "matrix",
            "input n_h×n_w",
            "r(W̃)",
            "r(W̃ ⊗ I_m) = √m·r(W̃)",
            "r(conv operator)",
            "s(W̃)",
            "s(conv operator) = √m·s(W̃)",
        ],
        rows,
        caption=(
            f"First seed of the natural CNN ({runs[0].run_dir.name}); m = n_h·n_w output "
            "positions. Claims and figures use W̃, as the paper does: comparisons of one "
            "layer across methods are unaffected by the constant factors, but W̃ is not "
            "the layer's operator (stride-1 patches overlap), and its effective rank is "
            "not the operator's."
        ),
    )
