"""Issue 2's acceptance check: does TGO beat plain BPTT on digits under EOT-PGD?

Usage:
    .venv/bin/python benchmarks/digits_acceptance.py                    # 5 seeds, 2 jobs
    .venv/bin/python benchmarks/digits_acceptance.py --jobs 16 --seeds 0,1,2,3,4,5
    .venv/bin/python benchmarks/digits_acceptance.py --seeds 0 --epochs 1 --eps 0.1 --out -

For every seed it trains ``digits_cnn`` on scikit-learn's digits with the defaults of
``tgo train --dataset digits`` (:class:`tgo.config.TrainConfig`: 20 epochs of Adam, T = 4),
once plain (margin_weight 0, noise_scale 0) and once per TGO setting (``--tgo``, default
the project defaults lambda 0.5, delta 0.5, sigma 0.2 and three stronger ones), and
evaluates every model on its whole test split with :func:`tgo.evaluate.robustness`:
clean accuracy and PGD accuracy at each ``--eps`` (20 steps unless ``--steps``, EOT over
8 noise draws on noisy models, noise on as deployed); with ``--strong`` also APGD and the
per-example worst case of the two (the sweep's default robust objective).

The check, per TGO setting: at an eps where plain training keeps 10-50% under PGD, TGO's
PGD accuracy is higher while its clean accuracy is at most 5 points lower. The report
gives means over seeds, the paired differences (same seed: same split and
initialisation) and in how many seeds TGO was higher, and states the verdict; the rows
are saved as JSON beside it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from tgo.config import TrainConfig  # noqa: E402
from tgo.evaluate import robustness  # noqa: E402
from tgo.train import fit  # noqa: E402
from tgo.worst_case import worst_case  # noqa: E402

PLAIN = "plain"
#: name -> TrainConfig overrides; "plain" is always run.
DEFAULT_SETTINGS = ("default=0.5/0.2", "lambda2=2/0.2", "sigma0.4=0.5/0.4",
                    "lambda2_sigma0.4=2/0.4")
#: Robust columns: PGD (the check's), and with --strong APGD and the per-example worst case.
METRICS = ("pgd", "apgd", "worst")
LABELS = {"pgd": "PGD", "apgd": "APGD", "worst": "worst case"}
BAND = (0.10, 0.50)        # plain's PGD accuracy band where the check applies
CLEAN_BUDGET = 0.05        # TGO may lose at most this much clean accuracy


def parse_settings(items: Sequence[str]) -> dict[str, dict[str, float]]:
    """``name=LAMBDA/SIGMA`` items -> {name: overrides}, plain first."""
    out: dict[str, dict[str, float]] = {PLAIN: {"margin_weight": 0.0, "noise_scale": 0.0}}
    for item in items:
        try:
            name, values = item.split("=")
            lam, sigma = (float(v) for v in values.split("/"))
        except ValueError:
            raise ValueError(f"--tgo: expected NAME=LAMBDA/SIGMA like default=0.5/0.2, "
                             f"got {item!r}") from None
        if name == PLAIN or not lam >= 0 or not sigma >= 0:
            raise ValueError(f"--tgo: expected a name other than {PLAIN!r} and "
                             f"LAMBDA, SIGMA >= 0, got {item!r}")
        out[name] = {"margin_weight": lam, "noise_scale": sigma}
    return out


def run_one(name: str, overrides: dict[str, float], seed: int, eps: Sequence[float],
            epochs: int | None, device: str, examples: int | None = None,
            strong: bool = False, steps: int = 20, restarts: int = 1) -> dict[str, Any]:
    """Train one model with tgo train's defaults and measure clean and PGD accuracy."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    config = TrainConfig(dataset="digits", seed=seed, device=device, **overrides,
                         **({} if epochs is None else {"epochs": epochs}))
    trained = fit(config)
    test = trained.splits.test
    n = len(test) if examples is None else min(examples, len(test))
    row: dict[str, Any] = {"setting": name, "seed": seed, **overrides,
                           "epochs": config.epochs, "n": n, "pgd": {}}
    for i, e in enumerate(eps):
        rng = torch.Generator().manual_seed(1000 * seed + i)
        if strong:   # PGD and APGD on the same clean pass, and their per-example worst case
            both = worst_case(trained.model, test, ("pgd", "apgd"), eps=e, steps=steps,
                              restarts=restarts, max_examples=n, generator=rng)
            result = both.attacks[0]
            row.setdefault("apgd", {})[f"{e:g}"] = both.attacks[1].robust_acc
            row.setdefault("worst", {})[f"{e:g}"] = both.robust_acc
            row["attack_apgd"] = both.attacks[1].describe().split(":")[0]
        else:
            result = robustness(trained.model, test, attack="pgd", eps=e, steps=steps,
                                restarts=restarts, max_examples=n, generator=rng)
        row["clean"] = result.clean_acc   # one stochastic forward per example if noisy
        row["pgd"][f"{e:g}"] = result.robust_acc
        row["attack"] = result.describe().split(":")[0]   # the attack, not its numbers
    row["seconds"] = time.perf_counter() - start
    return row


def run_all(settings: dict[str, dict[str, float]], seeds: Sequence[int], eps: Sequence[float],
            jobs: int, epochs: int | None, device: str,
            stream: Path | None = None, examples: int | None = None,
            strong: bool = False, steps: int = 20, restarts: int = 1
            ) -> list[dict[str, Any]]:
    """Every (setting, seed) row; each finished row is also appended to ``stream`` (JSON
    lines), so a run cut short keeps what it measured."""
    tasks = [(n, o, s) for s in seeds for n, o in settings.items()]
    print(f"{len(tasks)} models ({len(settings)} settings x {len(seeds)} seeds), "
          f"{jobs} at a time", flush=True)
    rows = []
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_one, n, o, s, eps, epochs, device, examples, strong,
                               steps, restarts) for n, o, s in tasks]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            rows.append(r)
            if stream is not None:
                with stream.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            print(f"{r['setting']:<18} seed {r['seed']}  clean {100 * r['clean']:5.1f}  "
                  + "  ".join(f"{m}@{k} {100 * v:5.1f}" for m in METRICS if m in r
                              for k, v in r[m].items())
                  + f"  [{r['seconds']:.0f}s]", flush=True)
    return sorted(rows, key=lambda r: (list(settings).index(r["setting"]), r["seed"]))


def verdicts(rows: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """The markdown table and one sentence per (TGO setting, eps in plain's band)."""
    by = {(r["setting"], r["seed"]): r for r in rows}
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    eps = list(rows[0]["pgd"])
    columns = [(m, e) for m in METRICS if m in rows[0] for e in eps]

    def mean(name: str, get) -> float:
        return statistics.fmean(get(by[(name, s)]) for s in seeds if (name, s) in by)

    head = "| setting | lambda | sigma | clean | " + " | ".join(
        f"{LABELS[m]} eps {e}" for m, e in columns)
    lines = [head + " |", "|---|---:|---:|---:|" + "---:|" * len(columns)]
    for name in settings:
        r0 = next(r for r in rows if r["setting"] == name)
        cells = [f"{100 * mean(name, lambda r: r['clean']):.1f}"]
        for m, e in columns:
            cell = f"{100 * mean(name, lambda r, m=m, e=e: r[m][e]):.1f}"
            if name != PLAIN:
                diffs = [by[(name, s)][m][e] - by[(PLAIN, s)][m][e] for s in seeds
                         if (name, s) in by and (PLAIN, s) in by]
                cell += (f" ({100 * statistics.fmean(diffs):+.1f}, "
                         f"{sum(d > 0 for d in diffs)}/{len(diffs)} up)")
            cells.append(cell)
        lines.append(f"| {name} | {r0['margin_weight']:g} | {r0['noise_scale']:g} | "
                     + " | ".join(cells) + " |")
    sentences = []
    plain_clean = mean(PLAIN, lambda r: r["clean"])
    for e in eps:
        plain_pgd = mean(PLAIN, lambda r, e=e: r["pgd"][e])
        if not BAND[0] <= plain_pgd <= BAND[1]:
            sentences.append(f"- eps {e}: plain keeps {100 * plain_pgd:.1f}%, outside the "
                             f"{100 * BAND[0]:.0f}-{100 * BAND[1]:.0f}% band: no verdict.")
            continue
        for name in settings[1:]:
            pgd = mean(name, lambda r, e=e: r["pgd"][e])
            clean = mean(name, lambda r: r["clean"])
            ok = pgd > plain_pgd and clean >= plain_clean - CLEAN_BUDGET
            extra = ""
            if "worst" in rows[0]:
                worst = mean(name, lambda r, e=e: r["worst"][e])
                plain_worst = mean(PLAIN, lambda r, e=e: r["worst"][e])
                higher = "higher" if worst > plain_worst else "not higher"
                extra = (f" (worst case of PGD and APGD: {100 * worst:.1f}% vs plain "
                         f"{100 * plain_worst:.1f}%, {higher})")
            sentences.append(
                f"- eps {e}, {name}: PGD {100 * pgd:.1f}% vs plain {100 * plain_pgd:.1f}%, "
                f"clean {100 * clean:.1f}% vs {100 * plain_clean:.1f}%: "
                f"{'MET' if ok else 'not met'}{extra}.")
    return "\n".join(lines), sentences


def header(command: str, wall_s: float) -> str:
    """Title, machine and command of a report written by this run."""
    return f"""# Issue 2's acceptance check on digits

Produced by `benchmarks/digits_acceptance.py` on {datetime.date.today().isoformat()}
({platform.machine()}, torch {torch.__version__}, one CPU thread per model,
{wall_s / 60:.1f} min in all). Command:

```
{command}
```
"""


def report(rows: Sequence[dict[str, Any]], head: str) -> str:
    """The markdown report under ``head`` (:func:`header`, or a saved report's own)."""
    table, sentences = verdicts(rows)
    seeds = sorted({r["seed"] for r in rows})
    metrics = [m for m in METRICS if m in rows[0]]
    per_seed = "\n".join(
        f"| {r['setting']} | {r['seed']} | {100 * r['clean']:.1f} | "
        + " | ".join(f"{100 * v:.1f}" for m in metrics for v in r[m].values())
        + f" | {r['seconds']:.0f} |" for r in rows)
    eps = list(rows[0]["pgd"])
    heads = [f"{LABELS[m]} eps {e}" for m in metrics for e in eps]

    def attack_of(noisy: bool, key: str = "attack") -> str:
        row = next((r for r in rows if (r["noise_scale"] > 0) == noisy), None)
        return "-" if row is None else row[key]

    attacks = (f"on plain models {attack_of(False)}, on noisy ones {attack_of(True)} "
               f"(shown at the last eps; the step is 2.5 eps / steps at every eps)")
    if "apgd" in metrics:
        attacks += (f"; APGD: on plain models {attack_of(False, 'attack_apgd')}, on noisy ones "
                    f"{attack_of(True, 'attack_apgd')}; worst case: an example counts only if "
                    "it survives both")
    return head + f"""
Every model: `tgo train --dataset digits` defaults (digits_cnn, T = 4, Adam at lr 0.002,
guard delta 0.5, erf surrogate when sigma > 0), {rows[0]['epochs']} epochs, with the lambda and
sigma below,
seeds {seeds}, evaluated on the first {rows[0]['n']} examples of its test split. Attack:
{attacks}. Clean: one forward per example, noise on (as deployed) for noisy
models. Means over seeds, in %; in brackets TGO minus plain for the same seed, and in how
many seeds TGO was higher.

{table}

## Verdict

The check: at an eps where plain keeps {100 * BAND[0]:.0f}-{100 * BAND[1]:.0f}% under PGD,
TGO's PGD accuracy is higher at a clean accuracy at most {100 * CLEAN_BUDGET:.0f} points
lower.

{chr(10).join(sentences)}

## Per seed

| setting | seed | clean | {" | ".join(heads)} | seconds |
|---|---:|---:|{"---:|" * len(heads)}---:|
{per_seed}
"""


def saved_header(report_md: Path) -> str | None:
    """The title, machine and command of a written report, up to its command block."""
    text = report_md.read_text() if report_md.exists() else ""
    if text.count("```") < 2:
        return None
    first = text.index("```")
    return text[:text.index("```", first + 3) + 3] + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--tgo", default=",".join(DEFAULT_SETTINGS),
                        help="comma-separated NAME=LAMBDA/SIGMA TGO settings")
    parser.add_argument("--eps", default="0.1,0.15,0.2")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override tgo train's default (for a quick look only)")
    parser.add_argument("--examples", type=int, default=None,
                        help="evaluate the first N test examples only (default: all)")
    parser.add_argument("--steps", type=int, default=20, help="attack iterations")
    parser.add_argument("--restarts", type=int, default=1, help="attack random restarts")
    parser.add_argument("--strong", action="store_true",
                        help="also APGD (EOT on noisy models) and the per-example worst case "
                             "of PGD and APGD, the sweep's default robust objective")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--render", default=None, metavar="ROWS_JSON",
                        help="write the report from saved rows, no training")
    parser.add_argument("--out", default=str(REPO / "docs" / "acceptance.md"),
                        help="markdown report ('-' prints it); rows go beside it as .json")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings([s for s in args.tgo.split(",") if s])
        seeds = [int(s) for s in args.seeds.split(",")]
        eps = [float(e) for e in args.eps.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    for flag in ("jobs", "steps", "restarts"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: expected >= 1, got {getattr(args, flag)}")
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        head = saved_header(Path(args.out))
        if head is None:
            parser.error(f"--render: {args.out} holds no report whose header to keep")
        text = report(saved, head)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
        return 0
    start = time.perf_counter()
    stream = None if args.out == "-" else Path(args.out).with_suffix(".rows.jsonl")
    if stream is not None:
        stream.parent.mkdir(parents=True, exist_ok=True)
        stream.unlink(missing_ok=True)
    rows = run_all(settings, seeds, eps, args.jobs, args.epochs, args.device, stream,
                   args.examples, args.strong, args.steps, args.restarts)
    command = "python benchmarks/digits_acceptance.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    text = report(rows, header(command.strip(), time.perf_counter() - start))
    if args.out == "-":
        print(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        print(text.split("## Verdict")[1].split("## Per seed")[0].strip())
        print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
