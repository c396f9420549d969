"""Max pooling on the CPU: the default layout vs the models' channels-last fast path.

Times, side by side in one process and taking turns (``--repeat`` rounds, best of
each), a CNN forward pass without autograd with the models' ``MaxPool2d`` (channels
last for no-grad CPU passes) and with plain ``torch.nn.MaxPool2d`` in its place, the
same weights; then Square (``--queries`` queries) on ``--images`` Fashion-MNIST test
images with each. It checks the outputs agree bit for bit and prints the times and
ratios. The CNN is the attack benchmark's trained one (``benchmarks/attacks.py``,
cached in ``benchmarks/.cache``, trained on first use), so Square meets robust inputs;
LeNet-5 is untrained. Fashion-MNIST must be available (``ROBUSTCOMPRESS_DATA``).
Usage::

    .venv/bin/python benchmarks/maxpool.py
    .venv/bin/python benchmarks/maxpool.py --threads 2 --repeat 5

Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from robustcompress import attacks
from robustcompress.models import create_model
from robustcompress.models.layers import MaxPool2d


def default_pooling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every fast-path ``MaxPool2d`` replaced by torch's own."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, MaxPool2d):
            parent = out.get_submodule(name.rpartition(".")[0]) if "." in name else out
            plain = nn.MaxPool2d(module.kernel_size, module.stride, module.padding)
            setattr(parent, name.rpartition(".")[2], plain)
    return out


def best_of(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for label, run in runs.items():
            clock = time.perf_counter()
            run()
            best[label] = min(best[label], time.perf_counter() - clock)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "lenet5"])
    parser.add_argument("--batch", type=int, default=100, help="images per forward pass")
    parser.add_argument("--images", type=int, default=50, help="images for the Square row")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "cnn":
        from attacks import trained_model  # benchmarks/attacks.py, beside this file

        fast = trained_model("cnn").eval()
    else:
        fast = create_model(args.model).eval()
    plain = default_pooling(fast)
    x = torch.rand(args.batch, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(fast(x), plain(x)), "the fast path changed the outputs"
        times = best_of({"fast": lambda: fast(x), "default": lambda: plain(x)}, args.repeat * 10)
    print(
        f"{args.model} forward, {args.batch} images, no autograd, {args.threads} thread(s): "
        f"default {1e3 * times['default']:.1f} ms, channels-last pooling "
        f"{1e3 * times['fast']:.1f} ms ({times['default'] / times['fast']:.2f}×)"
    )
    from robustcompress.data import load_dataset

    test = load_dataset("fashion-mnist", "test", limit=args.images, seed=0)
    square = attacks.get("square", eps=0.05, queries=args.queries, seed=0)
    outputs: dict[str, torch.Tensor] = {}

    def attack(label: str, model: nn.Module) -> Callable[[], object]:
        def run() -> None:
            outputs[label] = square(model, test.images, test.labels)

        return run

    times = best_of(
        {"fast": attack("fast", fast), "default": attack("default", plain)}, args.repeat
    )
    same = torch.equal(outputs["fast"], outputs["default"])
    print(
        f"square, {args.images} images, {args.queries} queries: default {times['default']:.2f} s, "
        f"channels-last pooling {times['fast']:.2f} s ({times['default'] / times['fast']:.2f}×); "
        f"adversarial examples identical: {same}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
