"""Cost of the LR virtual layer per training step, relative to plain training.

A ResNet-18 adapted to 28×28 grey images (``--width``, default 16) trains on random
Fashion-MNIST-shaped batches: forward, loss, backward, SGD step, exactly as the trainer
does, with and without the ``lr_layer`` extra at the two positions of the paper's 2-LR
model (before the classifier and before the last residual stage). The projection runs
every 10 steps (the paper's K), so the per-step time amortises it; the layer is timed
with the exact projection (``svd``) and with ensembled Nyström (5 runs of 2r columns).
Variants take turns within each round, so a change of machine load hits all alike; the
median step time over the rounds is reported, with each variant's ratio to plain.

    .venv/bin/python benchmarks/lr_layer.py            # writes benchmarks/results/lr_layer.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch.nn import functional as F

from robustcompress.models import create_model
from robustcompress.training.extras import build_extra
from robustcompress.training.lr_layer import LowRankLayer

RESULTS = Path(__file__).parent / "results" / "lr_layer.json"


def variant(name: str, width: int, ranks: tuple[int, int]) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model("resnet18", width=width, in_channels=1, mean=None, std=None)
    layer: LowRankLayer | None = None
    if name != "plain":
        extra = build_extra(
            "lr_layer",
            layers=["layers.5", "pool"],  # before the last stage, before the classifier
            rank=list(ranks),
            every=10,
            projection=name,
            input_shape=[1, 28, 28],
        )
        assert isinstance(extra, LowRankLayer)
        layer = extra
        layer.setup(model)
    params = list(model.parameters()) + (list(layer.parameters()) if layer else [])
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    trainer = SimpleNamespace(position=SimpleNamespace(epoch=1))
    return {"model": model, "layer": layer, "optimizer": optimizer, "trainer": trainer}


def step(v: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> None:
    model, layer, optimizer = v["model"], v["layer"], v["optimizer"]
    model.train()
    loss = F.cross_entropy(model(x), y)
    if layer is not None:
        term = layer.loss_term(v["trainer"])
        if term is not None:
            loss = loss + term
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if layer is not None:
        with torch.no_grad():
            layer.after_optimizer_step(v["trainer"], 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per round (2 projections)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--ranks", default="100,10", help="r before the last stage, before the classifier"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ranks = tuple(int(r) for r in args.ranks.split(","))
    assert len(ranks) == 2
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch_size,), generator=g)
    names = ("plain", "svd", "nystrom")
    variants = {n: variant(n, args.width, ranks) for n in names}
    sizes = {}
    layer = variants["svd"]["layer"]
    assert layer is not None
    sizes = {k: int(v.shape[0]) for k, v in layer.w_s.items()}
    for v in variants.values():  # warm-up: one projection each
        for _ in range(10):
            step(v, x, y)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            start = time.perf_counter()
            for _ in range(args.steps):
                step(variants[n], x, y)
            times[n].append((time.perf_counter() - start) / args.steps)
    median = {n: statistics.median(t) for n, t in times.items()}
    rows = [
        {"variant": n, "step_ms": 1000 * median[n], "ratio_to_plain": median[n] / median["plain"]}
        for n in names
    ]
    print(
        f"ResNet-18 width {args.width}, batch {args.batch_size}, {args.threads} threads; "
        f"LR layers {sizes} at ranks {ranks}, projection every 10 steps"
    )
    for r in rows:
        print(f"  {r['variant']:8s} {r['step_ms']:8.1f} ms/step  {r['ratio_to_plain']:.2f}× plain")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "layer_sizes": sizes,
                "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
                "rows": rows,
                "rounds_s_per_step": times,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
