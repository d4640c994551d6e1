"""`facerec train`: presets + flags (and face_trainer's flag names) -> a TrainConfig -> Trainer."""

from __future__ import annotations

import argparse
import dataclasses

from facerec import config as config_mod
from facerec.commands.common import add_progress, progress_on
from facerec.errors import FacerecError

SUPPRESS = argparse.SUPPRESS


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train an embedding network and report validation EER",
                       description="Train with presets and overrides. face_trainer's flags (--nOut, --batch_size, "
                                   "--nPerClass, --trainfunc, --max_epoch, --save_path, ...) are accepted too.")
    p.add_argument("--preset", action="append", default=[], metavar="NAME|FILE.yaml",
                   help="apply a preset (repeatable; later ones win)")
    p.add_argument("--loss-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="loss hyperparameter, namespaced for combinations: arcface.margin=0.5 (repeatable)")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="backbone keyword (repeatable)")
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="reset a key a preset set back to its default, before the flags apply: KEY, loss_options.K "
                        "or model_options.K (repeatable)")
    add_progress(p)
    defaults = config_mod.TrainConfig()
    for f in dataclasses.fields(config_mod.TrainConfig):
        if f.name in ("model_options", "loss_options", "eval_only"):
            continue
        default = getattr(defaults, f.name)
        text = f.metadata["help"]
        if config_mod.HINTS[f.name] is bool:
            p.add_argument(_flag(f.name), dest=f.name, action="store_const", const=True, default=SUPPRESS,
                           help=f"{text} (default: {'on' if default else 'off'})")
            p.add_argument(_flag("no_" + f.name), dest=f.name, action="store_const", const=False, default=SUPPRESS,
                           help=f"turn {_flag(f.name)} off")
        else:
            choices = f.metadata["choices"]
            choices = None if choices is None else [str(c) for c in choices]  # flags arrive as strings
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            # A help text that states its own default (a rule, not a value) is not given a second one.
            own = "default:" in text
            p.add_argument(_flag(f.name), dest=f.name, default=SUPPRESS, metavar=f.name.upper(), choices=choices,
                           help=text if own else f"{text} (default: {'none' if shown is None else shown})")
    ft = p.add_argument_group("face_trainer names")
    for alias, target in config_mod.FACE_TRAINER_ALIASES.items():
        if _flag(target) == f"--{alias}" or alias in ("eval", "mixedprec"):
            continue
        ft.add_argument(f"--{alias}", dest=target, default=SUPPRESS, help=f"= {_flag(target)}")
    ft.add_argument("--eval", dest="eval_only", action="store_const", const=True, default=SUPPRESS,
                    help="score --test_list with --initial_model and write --output (no training)")
    ft.add_argument("--mixedprec", dest="amp", action="store_const", const="fp16", default=SUPPRESS, help="= --amp fp16")
    for knob in config_mod.LOSS_ALIASES:
        ft.add_argument(f"--{knob}", dest=f"loss_knob_{knob}", default=SUPPRESS,
                        help=f"{knob} of the one loss that has it (use --loss-opt LOSS.{knob}=V for combinations; "
                             "default: that loss's own)")
    p.set_defaults(func=run)


def _pairs(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise FacerecError(f"{what} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = _scalar(v.strip())
    return out


def _scalar(v: str):
    """YAML's reading of a value, except YAML 1.1's on/off/yes/no: `cache=off` means the word (a
    boolean key still takes it, the typed config reads those words as booleans)."""
    import yaml

    if v.strip().lower() in ("on", "off", "yes", "no"):
        return v.strip()
    return yaml.safe_load(v)


def overrides_from(args: argparse.Namespace) -> dict:
    skip = {"func", "command", "preset", "loss_opt", "model_opt", "progress", "unset", "quiet", "verbose"}
    values = {k: v for k, v in vars(args).items() if k not in skip and not k.startswith("loss_knob_")}
    loss_opts = _pairs(args.loss_opt, "--loss-opt")
    for k, v in vars(args).items():
        if k.startswith("loss_knob_"):
            loss_opts[k[len("loss_knob_"):]] = _scalar(v)
    if loss_opts:
        values["loss_options"] = loss_opts
    if args.model_opt:
        values["model_options"] = _pairs(args.model_opt, "--model-opt")
    return values


def build_config(args) -> config_mod.TrainConfig:
    overrides = overrides_from(args)
    if overrides.get("resume"):
        return config_mod.resume_config(overrides)
    return config_mod.load(args.preset, overrides, unset=args.unset)


def run(args) -> int:
    from facerec.trainer.run import run as run_job

    summary = run_job(build_config(args), progress=progress_on(args))
    if "exit_code" in summary:  # --eval or --folds: they print their own results
        return summary["exit_code"]
    if not summary:  # a rank other than 0 of a distributed run: rank 0 reports
        return 0
    best = summary.get("best_metrics")
    if best:
        print(f"done: {summary['epochs']} epochs | best val EER {best['eer']:.2f}% (epoch {summary['best_epoch']}) | "
              f"AUC {best['auc']:.4f} | TAR@FAR=1e-2 {best['tar_far_1e-2']:.1f}% | run {summary['run_dir']}")
    else:
        print(f"done: {summary['epochs']} epochs | run {summary['run_dir']}")
    return 0
