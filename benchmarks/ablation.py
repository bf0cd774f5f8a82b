"""The paper's TGO ablation at small scale: which part buys robustness on digits?

Usage:
    .venv/bin/python benchmarks/ablation.py                      # 3 seeds -> docs/results.md
    .venv/bin/python benchmarks/ablation.py --jobs 2             # two trainings at a time
    .venv/bin/python benchmarks/ablation.py --seeds 0 --epochs 1 --examples 40 --out /tmp/r.md
    .venv/bin/python benchmarks/ablation.py --render --notes NOTES.md   # re-render, no training

Trains ``digits_cnn`` on scikit-learn's 8x8 digits (CPU, one thread per job) for every
TGO variant

- ``none``: plain LIF neurons, no guard loss (margin_weight 0, noise_scale 0);
- ``constraint only``: the threshold-guard loss (margin_weight > 0, noise_scale 0);
- ``noise only``: noisy LIF neurons (noise_scale > 0, margin_weight 0);
- ``both``: TGO as the paper proposes it;

under standard training and under adversarial training (PGD at ``eps_train``), for each
seed, and evaluates every model on the same test examples: clean, FGSM, PGD, EOT-PGD and
APGD-EOT accuracy (every attack at the same eps, noise on as deployed), their per-example
worst case (the sweep's robust objective, :mod:`tgo.worst_case`), the near-threshold
fraction and the state-flip rate (:mod:`tgo.diagnostics`). It prints one line per model
while it runs and writes mean +- std over the seeds, each column's attack, the per-seed
numbers, the exact command and a comparison with the paper to ``--out``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from tgo.attacks import make_attack  # noqa: E402
from tgo.config import TrainConfig  # noqa: E402
from tgo.diagnostics import near_threshold_fraction, state_flip_rate  # noqa: E402
from tgo.neurons import recording  # noqa: E402
from tgo.train import fit  # noqa: E402
from tgo.worst_case import worst_case  # noqa: E402

REGIMES = ("standard", "adversarial")
#: Where the rows are saved beside the report (``--out``'s folder), to re-render it.
ROWS_NAME = "ablation-rows.json"
#: variant -> which parts of TGO are on (guard loss, membrane noise).
VARIANTS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "constraint only": (True, False),
    "noise only": (False, True),
    "both": (True, True),
}
#: Result columns, in table order.
ACCURACIES = ("clean", "fgsm", "pgd", "eot_pgd", "apgd_eot", "worst")
DIAGNOSTICS = ("near_threshold", "flip_rate")


@dataclasses.dataclass(frozen=True)
class AblationSettings:
    """Everything the ablation fixes. Pixels are in [0, 1]; potentials in units of V_th.

    Attributes:
        epochs, timesteps, batch_size, lr: training of every model (Adam, cosine decay).
        margin_weight, margin: lambda_max and delta of the guard loss when it is on
            (delta also bounds the near-threshold band of every variant).
        noise_scale: sigma of the membrane noise when it is on.
        eps_train, pgd_steps_train: adversarial training's PGD.
        eps, steps: every evaluation attack's L-inf radius and iterations.
        eot_samples: EOT draws of EOT-PGD and APGD-EOT on a noisy model (1 on a plain one).
        examples: test examples evaluated (the first ones of the test split).
        flip_examples: test examples whose EOT-PGD examples give the state-flip rate.
    """

    epochs: int = 6
    timesteps: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    margin_weight: float = 0.5
    margin: float = 0.5
    noise_scale: float = 0.2
    eps_train: float = 0.1
    pgd_steps_train: int = 2
    eps: float = 0.15
    steps: int = 10
    eot_samples: int = 8
    examples: int = 200
    flip_examples: int = 64

    def train_config(self, regime: str, variant: str, seed: int) -> TrainConfig:
        """The TrainConfig of one model (validation is a cheap FGSM on 32 examples)."""
        if regime not in REGIMES:
            raise ValueError(f"regime: expected one of {REGIMES}, got {regime!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {tuple(VARIANTS)}, got {variant!r}")
        guard, noisy = VARIANTS[variant]
        return TrainConfig(dataset="digits", model="digits_cnn", epochs=self.epochs,
                           timesteps=self.timesteps, batch_size=self.batch_size, lr=self.lr,
                           regime=regime, attack_train="pgd", eps_train=self.eps_train,
                           pgd_steps_train=self.pgd_steps_train,
                           margin_weight=self.margin_weight if guard else 0.0,
                           margin=self.margin, noise_scale=self.noise_scale if noisy else 0.0,
                           seed=seed, val_attack="fgsm", val_eps=self.eps, val_subset=32,
                           val_eot_samples=1, device="cpu")

    def attacks(self, noisy: bool) -> dict[str, Any]:
        """Column -> AttackSpec for a noisy (stochastic) or plain model."""
        draws = self.eot_samples if noisy else 1
        return {"fgsm": make_attack("fgsm", eps=self.eps),
                "pgd": make_attack("pgd", eps=self.eps, steps=self.steps),
                "eot_pgd": make_attack("pgd", eps=self.eps, steps=self.steps,
                                       eot_samples=draws),
                "apgd_eot": make_attack("apgd", eps=self.eps, steps=self.steps,
                                        eot_samples=draws)}

    def column_notes(self) -> dict[str, str]:
        """What produced each column (attack, eps, steps, EOT samples, noise state)."""
        on = "noise on (as deployed) for noisy models"
        plain, noisy = self.attacks(False), self.attacks(True)
        eot = (f"EOT-{self.eot_samples} on noisy models, EOT-1 (the same attack as PGD) on "
               "plain ones")
        return {
            "clean": f"one forward per example, {on}",
            "fgsm": f"{plain['fgsm'].describe()}, no EOT, {on}",
            "pgd": f"{plain['pgd'].describe()}, no EOT (one noise draw per gradient), {on}",
            "eot_pgd": f"{noisy['eot_pgd'].describe()}; {eot}; {on}",
            "apgd_eot": f"{noisy['apgd_eot'].describe()}; {eot}; {on}",
            "worst": "per-example worst case of EOT-PGD and APGD-EOT (the sweep's default "
                     "robust objective)",
            "near_threshold": f"share of neuron-steps with |H - V_th| < {self.margin:g} on "
                              f"the clean test examples, {on}",
            "flip_rate": f"share of neuron-steps whose spike differs between the first "
                         f"{self.flip_examples} test examples and their EOT-PGD examples, "
                         "noise off in both passes",
        }


def measure(model: torch.nn.Module, config: TrainConfig, x: torch.Tensor, y: torch.Tensor,
            settings: AblationSettings, seed: int) -> dict[str, float]:
    """Every column of one trained model on the test examples ``(x, y)``."""
    noisy = config.noise_scale > 0 and config.noise_at_eval
    specs = settings.attacks(noisy)
    # On a plain model EOT-PGD is PGD: run it once and report it in both columns.
    names = ["fgsm", "pgd", "eot_pgd", "apgd_eot"] if noisy else ["fgsm", "pgd", "apgd_eot"]
    result = worst_case(model, (x, y), [specs[n] for n in names],
                        generator=torch.Generator().manual_seed(seed))
    acc = {n: r.robust_acc for n, r in zip(names, result.attacks)}
    acc.setdefault("eot_pgd", acc["pgd"])
    strong = [names.index("eot_pgd" if noisy else "pgd"), names.index("apgd_eot")]
    worst = result.survived[strong].all(dim=0) & result.correct
    model.eval()
    with torch.no_grad(), recording(model) as potentials:
        model(x)
    near = near_threshold_fraction(potentials, config.v_threshold, settings.margin)
    xf, yf = x[:settings.flip_examples], y[:settings.flip_examples]
    x_adv = specs["eot_pgd"].run(model, xf, yf, generator=torch.Generator().manual_seed(seed))
    return {"clean": result.clean_acc, **acc, "worst": int(worst.sum()) / result.n_examples,
            "near_threshold": near, "flip_rate": state_flip_rate(model, xf, x_adv, seed=seed)}


def run_one(regime: str, variant: str, seed: int, settings: AblationSettings) -> dict[str, Any]:
    """Train one model and measure it; returns a row of plain numbers."""
    torch.set_num_threads(1)   # one thread per job (--jobs runs several)
    start = time.perf_counter()
    config = settings.train_config(regime, variant, seed)
    trained = fit(config)
    test = trained.splits.test
    n = min(settings.examples, len(test))
    x = torch.stack([test[i][0] for i in range(n)])
    y = torch.tensor([int(test[i][1]) for i in range(n)])
    numbers = measure(trained.model, config, x, y, settings, seed)
    return {"regime": regime, "variant": variant, "seed": seed, "n": n, **numbers,
            "seconds": time.perf_counter() - start}


def _progress(row: dict[str, Any]) -> str:
    return (f"{row['regime']:<11} {row['variant']:<15} seed {row['seed']}  "
            + "  ".join(f"{k} {100 * row[k]:5.1f}" for k in (*ACCURACIES, *DIAGNOSTICS))
            + f"  [{row['seconds']:.0f}s]")


def run_ablation(settings: AblationSettings, seeds: Sequence[int],
                 regimes: Sequence[str] = REGIMES, variants: Sequence[str] = tuple(VARIANTS),
                 jobs: int = 1, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every (regime, variant, seed) row, in table order; ``log`` gets one line per model.

    Example:
        >>> tiny = AblationSettings(epochs=1, examples=20)
        >>> rows = run_ablation(tiny, seeds=[0])  # doctest: +SKIP
        >>> len(rows)  # doctest: +SKIP
        8
    """
    if jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}")
    tasks = [(r, v, s) for r in regimes for v in variants for s in seeds]
    for regime, variant, _ in tasks:
        settings.train_config(regime, variant, 0)   # unknown names fail before any training
    log(f"{len(tasks)} models ({len(regimes)} regimes x {len(variants)} variants "
        f"x {len(seeds)} seeds), {jobs} at a time")
    rows = []
    if jobs == 1:
        for task in tasks:
            rows.append(run_one(*task, settings))
            log(_progress(rows[-1]))
    else:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(run_one, *task, settings) for task in tasks]
            for future in concurrent.futures.as_completed(futures):
                rows.append(future.result())
                log(_progress(rows[-1]))
    order = {task: i for i, task in enumerate(tasks)}
    return sorted(rows, key=lambda r: order[(r["regime"], r["variant"], r["seed"])])


# ----------------------------------------------------------------------------- reporting

def summarize(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, tuple]]:
    """(regime, variant) -> column -> (mean, std, n) over the seeds (std 0 for one seed)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["regime"], row["variant"]), []).append(row)
    out = {}
    for key, group in groups.items():
        out[key] = {}
        for column in (*ACCURACIES, *DIAGNOSTICS):
            values = [r[column] for r in group]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[key][column] = (statistics.fmean(values), std, len(values))
    return out


_HEADERS = {"clean": "clean", "fgsm": "FGSM", "pgd": "PGD", "eot_pgd": "EOT-PGD",
            "apgd_eot": "APGD-EOT", "worst": "worst case", "near_threshold": "near-threshold",
            "flip_rate": "state-flip rate"}


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Mean +- std (in %) per regime and variant, one column per measurement."""
    summary = summarize(rows)
    columns = (*ACCURACIES, *DIAGNOSTICS)
    lines = ["| regime | variant | " + " | ".join(_HEADERS[c] for c in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for (regime, variant), stats in summary.items():
        cells = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s, _ in (stats[c] for c in columns)]
        lines.append(f"| {regime} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = (*ACCURACIES, *DIAGNOSTICS)
    lines = ["| regime | variant | seed | " + " | ".join(_HEADERS[c] for c in columns)
             + " | seconds |", "|---|---|---:|" + "---:|" * (len(columns) + 1)]
    for r in rows:
        lines.append(f"| {r['regime']} | {r['variant']} | {r['seed']} | "
                     + " | ".join(f"{100 * r[c]:.1f}" for c in columns)
                     + f" | {r['seconds']:.0f} |")
    return "\n".join(lines)


def paired_table(rows: Sequence[dict[str, Any]]) -> str:
    """Each variant minus ``none`` of the same regime and seed (same split, same
    initialisation), in points: the mean over seeds and how many seeds gained."""
    by_key = {(r["regime"], r["variant"], r["seed"]): r for r in rows}
    columns = (*ACCURACIES, "near_threshold")
    lines = ["| regime | variant | " + " | ".join(_HEADERS[c] for c in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for (regime, variant) in summarize(rows):
        if variant == "none":
            continue
        seeds = [s for (g, v, s) in by_key if (g, v) == (regime, variant)
                 and (regime, "none", s) in by_key]
        if not seeds:
            continue
        cells = []
        for c in columns:
            diffs = [by_key[(regime, variant, s)][c] - by_key[(regime, "none", s)][c]
                     for s in seeds]
            up = sum(d > 0 for d in diffs)
            cells.append(f"{100 * statistics.fmean(diffs):+.1f} ({up}/{len(diffs)} up)")
        lines.append(f"| {regime} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pm(stats: dict[str, tuple], column: str) -> str:
    mean, std, _ = stats[column]
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


def comparison(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Plain sentences: does ``both`` beat either part alone, and by how much does TGO cut
    the near-threshold fraction? (The paper: yes, and by about 40%.)"""
    summary = summarize(rows)
    lines = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        get = {v: summary.get((regime, v)) for v in VARIANTS}
        if any(s is None for s in get.values()):
            continue
        for column in ("fgsm", "eot_pgd", "apgd_eot", "worst"):
            both = get["both"][column][0]
            others = ("none", "constraint only", "noise only")
            rival = max(others, key=lambda v: get[v][column][0])
            verdict = ("both beats each part alone and none" if both > get[rival][column][0]
                       else f"both does NOT beat {rival}")
            if abs(both - get[rival][column][0]) <= max(get["both"][column][1],
                                                         get[rival][column][1]):
                verdict += f" (the gap to {rival} is within one standard deviation)"
            lines.append(f"- {regime}, {_HEADERS[column]}: both {_pm(get['both'], column)}, "
                         f"constraint only {_pm(get['constraint only'], column)}, noise only "
                         f"{_pm(get['noise only'], column)}, none {_pm(get['none'], column)}: "
                         f"{verdict}.")
        none, both = get["none"]["near_threshold"][0], get["both"]["near_threshold"][0]
        change = (both - none) / none if none > 0 else float("nan")
        lines.append(f"- {regime}, near-threshold fraction: none "
                     f"{_pm(get['none'], 'near_threshold')}, both "
                     f"{_pm(get['both'], 'near_threshold')}: "
                     f"{abs(100 * change):.0f}% {'fewer' if change < 0 else 'more'} near-threshold "
                     f"neuron-steps with TGO (the paper: about 40% fewer).")
        lines.append(f"- {regime}, clean accuracy: none {_pm(get['none'], 'clean')}, both "
                     f"{_pm(get['both'], 'clean')} (the paper: TGO costs clean accuracy).")
    return lines


def report(rows: Sequence[dict[str, Any]], settings: AblationSettings, command: str,
           wall_s: float, notes: str = "", date: str | None = None) -> str:
    """The whole markdown document written to ``--out``."""
    s = settings
    column_notes = "\n".join(f"- **{_HEADERS[c]}**: {t}" for c, t in s.column_notes().items())
    seeds = sorted({r["seed"] for r in rows})
    today = date or datetime.date.today().isoformat()
    return f"""# TGO ablation on digits (small scale)

Produced by `benchmarks/ablation.py` on {today} ({platform.machine()}, torch
{torch.__version__}, one CPU thread per job, {wall_s / 60:.1f} min in all; the per-seed
numbers are also in `{ROWS_NAME}`). Command:

```
{command}
```

## Setup

- Data and model: scikit-learn's 8x8 digits (train / val / test split by the seed; the first
  {rows[0]['n']} test examples are evaluated), `digits_cnn`, T = {s.timesteps}, {s.epochs}
  epochs of Adam (lr {s.lr:g}, cosine decay, batch {s.batch_size}), seeds {seeds}.
- Variants: **none** (margin_weight 0, noise_scale 0), **constraint only** (margin_weight
  {s.margin_weight:g}, margin delta {s.margin:g}, noise_scale 0), **noise only** (noise_scale
  {s.noise_scale:g}, margin_weight 0), **both** (margin_weight {s.margin_weight:g}, delta
  {s.margin:g}, noise_scale {s.noise_scale:g}). Surrogate gradient: the project default
  (`erf`, a Gaussian of std sqrt(noise_scale^2 + 1/(2 pi)), when noise_scale > 0;
  spikingjelly's `sigmoid` when 0).
  Noise stays on at evaluation for the noisy variants.
- Regimes: **standard** (clean inputs) and **adversarial** (every batch replaced by PGD-
  {s.pgd_steps_train} examples at eps_train {s.eps_train:g}, one noise draw per gradient).
- Every attack: L-inf eps {s.eps:g} on [0, 1] pixels, {s.steps} iterations, cross-entropy.

Columns (all in %, mean ± sample standard deviation over the seeds):

{column_notes}

## Results

{markdown_table(rows)}

Paired with `none` (variant minus none for the same regime and seed, in points; "2/3 up"
says in how many seeds the variant was higher). The seed changes the split and the
initialisation, which moves every variant together, so these differences are steadier than
the standard deviations above suggest:

{paired_table(rows)}

## Against the paper

The paper (CIFAR-100, VGG-11, BPTT: none 71.4 / 5.9, constraint only 64.3 / 17.1, noise
only 70.6 / 8.1, both 66.9 / 21.5 clean / FGSM) reports that both parts together beat
either alone, and about 40% fewer near-threshold neurons. What we measured:

{chr(10).join(comparison(rows))}
{notes}
## Per seed

{per_seed_table(rows)}
"""


def main(argv: Sequence[str] | None = None) -> int:
    defaults = AblationSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--jobs", type=int, default=1, help="models trained at a time")
    parser.add_argument("--out", default=str(REPO / "docs" / "results.md"))
    parser.add_argument("--notes", default=None,
                        help="markdown file appended to the comparison with the paper")
    parser.add_argument("--render", action="store_true",
                        help=f"train nothing: rewrite --out from the saved {ROWS_NAME} "
                             "(with --notes)")
    for field in dataclasses.fields(AblationSettings):
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name,
                            type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name),
                            help=f"(default {getattr(defaults, field.name)})")
    ns = parser.parse_args(argv)
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
    regimes = [r.strip() for r in ns.regimes.split(",") if r.strip()]
    settings = AblationSettings(**{f.name: getattr(ns, f.name)
                                   for f in dataclasses.fields(AblationSettings)})
    out = Path(ns.out)
    saved = out.parent / ROWS_NAME
    notes = Path(ns.notes).read_text() if ns.notes else ""
    if ns.render:
        run = json.loads(saved.read_text())
        settings = AblationSettings(**run["settings"])
        out.write_text(report(run["rows"], settings, run["command"], run["wall_s"], notes,
                              run["date"]))
        print(f"wrote {out} from {saved}")
        return 0
    command = " ".join([".venv/bin/python", "benchmarks/ablation.py",
                        *(argv if argv is not None else sys.argv[1:])])
    print(f"ablation: {settings}", flush=True)
    start = time.perf_counter()
    rows = run_ablation(settings, seeds, regimes, jobs=ns.jobs,
                        log=lambda line: print(line, flush=True))
    wall = time.perf_counter() - start
    date = datetime.date.today().isoformat()
    out.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"command": command, "date": date, "wall_s": wall,
                                 "settings": dataclasses.asdict(settings), "rows": rows},
                                indent=1))
    out.write_text(report(rows, settings, command, wall, notes, date))
    print(markdown_table(rows))
    print(f"wrote {out} and {saved} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
