"""The library's commands, ``tgo train`` and ``tgo evaluate``: the ``tgo`` command without
its sweep layer. The ``tgo`` console script (:func:`tune.cli.main`) adds ``tgo sweep ...``,
``tgo pareto``, ``tgo pick``, ``tgo submit`` and ``tgo jobs`` to this parser.

Usage:
    tgo train --dataset digits --margin-weight 0 --noise-scale 0 --out out/plain
    tgo evaluate out/plain/checkpoint.pt --attack pgd --eps 0.1 --steps 20
    tgo evaluate out/tgo/checkpoint.pt --attacks pgd,apgd,transfer --transfer-source \
        out/plain/checkpoint.pt --surrogate atan --noise off

Bad input prints one line, ``error: <field>: expected ..., got ...``, and exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

from tgo.config import Attack, TrainConfig
from tgo.errors import TgoError

__all__ = ["main"]


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field, with its default (the names are spelled once)."""
    group = parser.add_argument_group("training settings (TrainConfig)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default.value if isinstance(f.default, enum.Enum) else f.default
        hint = hints[f.name]
        args = typing.get_args(hint)
        enum_type = next((a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)),
                         hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None)
        if hint is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default)
        elif enum_type is not None:
            group.add_argument(flag, dest=f.name, default=default, metavar=f.name.upper(),
                               help=f"one of {', '.join(m.value for m in enum_type)} "
                                    f"(default: {default})")
        elif hint is int:
            group.add_argument(flag, dest=f.name, type=int, default=default,
                               help=f"(default: {default})")
        elif hint is float:
            group.add_argument(flag, dest=f.name, type=float, default=default,
                               help=f"(default: {default})")
        elif float in args:
            group.add_argument(flag, dest=f.name, type=_optional_float, default=default,
                               help=f"a number or 'none' (default: {default})")
        else:
            group.add_argument(flag, dest=f.name, default=default, help=f"(default: {default})")


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainConfig)})


def _add_eval_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}" if prefix else "--"
    parser.add_argument(f"{p}attack", dest="attack", default="pgd",
                        help=f"one of {', '.join(a.value for a in Attack)} (default: pgd)")
    parser.add_argument(f"{p}eps", dest="eps", type=float, default=0.1,
                        help="L-inf radius on [0, 1] pixels (default: 0.1)")
    parser.add_argument(f"{p}steps", dest="steps", type=int, default=20)
    parser.add_argument(f"{p}step-size", dest="step_size", type=float, default=None)
    parser.add_argument(f"{p}restarts", dest="restarts", type=int, default=1)
    parser.add_argument(f"{p}eot-samples", dest="eot_samples", type=int, default=None,
                        help="noise draws per gradient (default: 8 if the model is noisy, else 1)")
    parser.add_argument(f"{p}max-examples", dest="max_examples", type=int, default=None)


def _eval_settings(ns: argparse.Namespace):
    from tgo.final_eval import EvalSettings

    return EvalSettings(attack=ns.attack, eps=ns.eps, steps=ns.steps, step_size=ns.step_size,
                        restarts=ns.restarts, eot_samples=ns.eot_samples,
                        max_examples=ns.max_examples)


def _cmd_train(ns: argparse.Namespace) -> int:
    from tgo.final_eval import final_evaluation
    from tgo.train import fit

    config = config_from_args(ns)
    settings = _eval_settings(ns)
    out = Path(ns.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out: expected a folder that can be created, got {ns.out!r} "
                         f"({exc.strerror or exc})") from None
    print(f"training {config.model.value} on {config.dataset.value}: T={config.timesteps}, "
          f"lambda={config.margin_weight}, delta={config.margin}, sigma={config.noise_scale}, "
          f"regime={config.regime.value}, {config.epochs} epochs", flush=True)
    start = time.perf_counter()

    def report(metrics: dict[str, float], state) -> None:
        print(f"epoch {metrics['epoch']:>3}/{config.epochs}  loss {metrics['train_loss']:.4f}  "
              f"guard {metrics['guard_loss']:.4f}  lambda {metrics['lambda']:.3f}  "
              f"val clean {metrics['val_clean_acc']:.3f}  val robust {metrics['val_robust_acc']:.3f}"
              f"  near-thr {metrics['val_near_threshold']:.3f}  rate {metrics['val_spike_rate']:.3f}"
              f"  [{time.perf_counter() - start:.0f}s]", flush=True)

    result = fit(config, report, show_progress=not ns.no_progress)
    checkpoint_path = result.state.save(out)
    final = final_evaluation(result.model, config, result.splits, settings)
    payload = {"config": config.to_dict(), "history": result.history, "test": final,
               "checkpoint": str(checkpoint_path)}
    (out / "result.json").write_text(json.dumps(payload, indent=2))
    print(f"test: {final['eval_description']}")
    print(f"wrote {out / 'result.json'} and {checkpoint_path}")
    return 0


#: Names ``--attacks`` takes besides the white-box :class:`~tgo.config.Attack` members.
_TRANSFER = "transfer"


def _attack_names(text: str, transfer_source: str | None) -> list[str]:
    """Validate ``--attacks`` (and ``--transfer-source``) before any model is loaded."""
    valid = [a.value for a in Attack] + [_TRANSFER]
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in valid]
    if not names or bad:
        raise ValueError(f"attacks: expected a comma-separated list of "
                         f"{', '.join(repr(v) for v in valid)}, got {text!r}")
    if _TRANSFER in names and not transfer_source:
        raise ValueError("transfer-source: expected a plain checkpoint for the 'transfer' "
                         "attack (--transfer-source PLAIN_CHECKPOINT), got none")
    return names


def _print_table(results: list) -> None:
    header = ("attack", "eps", "steps", "EOT", "noise", "surrogate", "robust acc")
    rows = [(r.describe().split(", noise ")[0], f"{r.eps:g}", str(r.steps),
             str(r.eot_samples), "on" if r.noise_on else "off",
             r.surrogate.value if r.surrogate is not None else "training's",
             f"{r.robust_acc:.4f}") for r in results]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    from tgo import checkpoint, data
    from tgo.evaluate import robustness

    names = None if ns.attacks is None else _attack_names(ns.attacks, ns.transfer_source)
    model, config = checkpoint.load_model(ns.checkpoint)
    splits = data.load(config.dataset, seed=config.seed, data_dir=ns.data_dir or config.data_dir,
                       download=False, val_fraction=config.val_fraction,
                       test_fraction=config.test_fraction)
    settings = _eval_settings(ns)
    noise = {"auto": None, "on": True, "off": False}[ns.noise]
    test = splits.test
    if settings.max_examples is not None and settings.max_examples < len(test):
        from torch.utils.data import Subset
        test = Subset(test, range(settings.max_examples))
    common = dict(eps=settings.eps, steps=settings.steps, step_size=settings.step_size,
                  restarts=settings.restarts, eot_samples=settings.eot_samples, noise=noise,
                  surrogate=ns.surrogate)
    if names is not None:
        source = None
        if _TRANSFER in names:
            source, _ = checkpoint.load_model(ns.transfer_source)
        results = [robustness(model, test, attack="pgd", source=source,
                              source_label=ns.transfer_source, **common)
                   if name == _TRANSFER else robustness(model, test, attack=name, **common)
                   for name in names]
    else:
        result = robustness(model, test, attack=settings.attack, **common)
    print(f"checkpoint: {ns.checkpoint} ({config.model.value} on {config.dataset.value}, "
          f"T={config.timesteps}, lambda={config.margin_weight}, delta={config.margin}, "
          f"sigma={config.noise_scale})")
    if names is not None:
        print(f"clean accuracy:  {results[0].clean_acc:.4f} on {results[0].n_examples} "
              "examples")
        _print_table(results)
        if ns.json:
            print(json.dumps([{"eval_description": r.describe(), **r.as_metrics()}
                              for r in results]))
        return 0
    print(f"clean accuracy:  {result.clean_acc:.4f}")
    print(f"robust accuracy: {result.robust_acc:.4f}  [{result.describe()}]")
    if ns.json:
        print(json.dumps(result.as_metrics()))
    return 0


def build_parser(extend: Callable[[argparse._SubParsersAction], None] | None = None
                 ) -> argparse.ArgumentParser:
    """The ``tgo`` parser; ``extend(subparsers)`` adds more commands (the sweep layer's)."""
    parser = argparse.ArgumentParser(prog="tgo", description="Train, evaluate and sweep TGO "
                                     "spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one model; writes result.json and a checkpoint",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--out", default="out/train", help="output folder")
    train.add_argument("--no-progress", action="store_true", help="no per-batch progress bar")
    add_config_arguments(train)
    evaluation = train.add_argument_group("final evaluation on the test split")
    _add_eval_arguments(evaluation, prefix="eval-")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint")
    evaluate.add_argument("checkpoint", help="checkpoint.pt (or its folder)")
    evaluate.add_argument("--noise", choices=["auto", "on", "off"], default="auto",
                          help="membrane noise during the evaluation (auto: as trained)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    evaluate.add_argument("--attacks", default=None, metavar="LIST",
                          help="comma-separated attacks, one table row each: "
                               f"{', '.join(a.value for a in Attack)}, {_TRANSFER} "
                               "(overrides --attack)")
    evaluate.add_argument("--surrogate", default=None,
                          help="the attacker's surrogate gradient (sigmoid, atan, triangle, "
                               "erf; default: training's)")
    evaluate.add_argument("--transfer-source", default=None, metavar="PLAIN_CHECKPOINT",
                          help="independently trained model the 'transfer' attack runs on")
    _add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    if extend is not None:
        extend(sub)
    return parser


def main(argv: Sequence[str] | None = None,
         extend: Callable[[argparse._SubParsersAction], None] | None = None) -> int:
    """Run one command; an error prints ``error: <message>`` and exits with its code."""
    parser = build_parser(extend)
    ns = parser.parse_args(argv)
    try:
        return int(ns.func(ns) or 0)
    except TgoError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
