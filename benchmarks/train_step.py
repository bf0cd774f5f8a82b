"""Cost of TGO in one training step: noisy neurons + recording + guard loss vs plain LIF.

Usage:
    python benchmarks/train_step.py                    # digits_cnn and vgg11, T = 4, CPU
    python benchmarks/train_step.py --models digits_cnn --steps 50 --device cuda

For each model the two variants (spikingjelly's ``LIFNode`` with cross-entropy only, and
``NoisyLIFNode`` with sigma > 0, H recorded, guard loss added) are timed interleaved in
one run, step by step, so machine noise hits both alike. Prints the median step time of
each and their ratio (target: TGO / plain <= 1.25). On a CPU both variants run under the
allocator settings ``tgo.train.fit`` uses there (:mod:`tgo.allocator`); ``--default-malloc``
leaves glibc's defaults, under which TGO pays page faults for memory it frees each step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import neuron

from tgo.allocator import keep_freed_memory
from tgo.losses import threshold_guard_loss
from tgo.models import INPUT_SHAPES, NeuronSettings, build
from tgo.neurons import recording

BATCH = {"digits_cnn": 64, "mnist_cnn": 64, "vgg11": 16, "wrn16": 16}


def make_step(model_name: str, tgo: bool, timesteps: int, device: torch.device, batch: int,
              noise_scale: float = 0.2, guard: bool = True):
    shape = INPUT_SHAPES[model_name]
    if tgo:
        model = build(model_name, 10, timesteps, [0.5] * shape[0], [0.25] * shape[0],
                      NeuronSettings(noise_scale=noise_scale))
    else:
        model = build(model_name, 10, timesteps, [0.5] * shape[0], [0.25] * shape[0],
                      neuron_factory=lambda: neuron.LIFNode(step_mode="m"))
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if tgo:
            with recording(model) as potentials:
                loss = F.cross_entropy(model(x), y)
            if guard:
                loss = loss + 0.5 * threshold_guard_loss(potentials, 1.0, 0.5)
        else:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits_cnn,vgg11")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time NoisyLIFNode without noise and without the guard loss")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator at its defaults instead of the settings "
                             "tgo.train.fit uses on a CPU (tgo.allocator)")
    args = parser.parse_args()
    device = torch.device(args.device)
    malloc = "default"
    if device.type == "cpu" and not args.default_malloc:
        malloc = "tgo (freed memory kept)" if keep_freed_memory() else \
            "default (tgo.allocator not applied: TGO_MALLOC_TUNING=0 or not glibc)"
    torch.manual_seed(0)
    print(f"device={device} T={args.timesteps} threads={torch.get_num_threads()} "
          f"malloc={malloc}")
    print(f"{'model':<12}{'batch':>6}{'plain ms':>10}{'TGO ms':>10}{'TGO/plain':>11}"
          f"{'plain img/s':>13}{'TGO img/s':>11}")
    for name in args.models.split(","):
        batch = BATCH[name]
        plain = make_step(name, False, args.timesteps, device, batch)
        tgo = make_step(name, True, args.timesteps, device, batch)
        for _ in range(args.warmup):
            plain(), tgo()
        times = {"plain": [], "tgo": []}
        for _ in range(args.steps):
            times["plain"].append(timed(plain, device))
            times["tgo"].append(timed(tgo, device))
        p, t = statistics.median(times["plain"]), statistics.median(times["tgo"])
        print(f"{name:<12}{batch:>6}{p * 1e3:>10.2f}{t * 1e3:>10.2f}{t / p:>11.3f}"
              f"{batch / p:>13.0f}{batch / t:>11.0f}")
        if args.breakdown:
            breakdown(name, plain, args, device, batch)


def breakdown(name: str, plain, args, device: torch.device, batch: int) -> None:
    """Where TGO's extra time goes: our neuron alone, + noise, + guard loss."""
    variants = {
        "plain LIFNode": plain,
        "NoisyLIF sigma=0, recording": make_step(name, True, args.timesteps, device, batch,
                                                 noise_scale=0.0, guard=False),
        "+ noise sigma=0.2": make_step(name, True, args.timesteps, device, batch, guard=False),
        "+ guard loss (= TGO)": make_step(name, True, args.timesteps, device, batch),
    }
    for step in variants.values():
        step()
    times = {k: [] for k in variants}
    for _ in range(args.steps):
        for k, step in variants.items():
            times[k].append(timed(step, device))
    base = statistics.median(times["plain LIFNode"])
    for k, ts in times.items():
        m = statistics.median(ts)
        print(f"    {k:<30}{m * 1e3:>9.2f} ms  x{m / base:.3f}")


if __name__ == "__main__":
    main()
