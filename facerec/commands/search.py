"""`facerec search --space SPACE.yaml --trials N`: Optuna TPE search with median pruning."""

from __future__ import annotations

from pathlib import Path

from facerec.commands.experiment import add_data_args, resolve_data, results_dir


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="hyperparameter search (Optuna TPE, median pruning on val EER)",
                       description="The space file format is documented in facerec/search.py and the README.")
    p.add_argument("--space", required=True, help="search space YAML (presets, fixed, params)")
    p.add_argument("--trials", type=int, required=True, help="trials to have finished (a re-run continues the study)")
    p.add_argument("--name", default=None, help="study name (default: the space file's stem)")
    p.add_argument("--seed", type=int, default=42, help="training seed of every trial and the sampler's seed")
    p.add_argument("--quick", action="store_true", help="apply the 'quick' preset to every trial")
    add_data_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from facerec.errors import FacerecError
    from facerec.experiments.search import read_space, run_search

    if args.trials < 1:
        raise FacerecError(f"--trials must be >= 1, got {args.trials}")
    space = read_space(args.space)
    data, overrides = resolve_data(args)
    name = args.name or Path(args.space).stem
    out = run_search(space, name=name, trials=args.trials, data=data, results=results_dir(args), quick=args.quick,
                     seed=args.seed, overrides=overrides, data_name=args.data)
    print(f"search {name}: best trial {out['best_trial']} EER {out['best_eer']:.2f}% with {out['best_params']} "
          f"({out['complete']} complete, {out['pruned']} pruned)")
    return 0
