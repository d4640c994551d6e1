"""Typed training configuration: a base, YAML presets on top, command-line overrides last.

Unknown keys fail with the nearest valid name. Loss hyperparameters stay namespaced per
loss (`loss_options: {arcface.margin: 0.5, triplet.margin: 0.2}`), never one shared margin.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import yaml

from facerec.config.fields import (  # noqa: F401  (public: config.TrainConfig, config.HELP, ...)
    BUDGET_SCOPES,
    CHOICES,
    DEFAULT_PARAM_BUDGET,
    FIELDS,
    HELP,
    RUN_ONLY_KEYS,
    TrainConfig,
)
from facerec.config.presets import expand, preset_names, read_preset  # noqa: F401  (config.read_preset: public)
from facerec.errors import FacerecError, nearest

TAG_RE = re.compile(r"[A-Za-z0-9._+-]+")


# face_trainer's flag names -> ours (so course habits keep working).
FACE_TRAINER_ALIASES = {
    "nOut": "embedding_dim",
    "batch_size": "batch_classes",
    "nPerClass": "per_class",
    "max_img_per_cls": "max_img_per_cls",
    "trainfunc": "loss",
    "lr_decay": "lr_decay",
    "test_interval": "test_interval",
    "max_epoch": "epochs",
    "initial_model": "initial_model",
    "save_path": "out",
    "train_path": "train",
    "test_path": "val_root",
    "test_list": "test_list",
    "eval": "eval_only",
    "output": "output",
    "mixedprec": "amp",
    "gpu": "device",
    "nClasses": "num_classes",
    "model": "model",
}
# face_trainer's shared loss knobs; here they go to the one loss that has them.
LOSS_ALIASES = {"margin": "margin", "scale": "scale", "hard_rank": "hard_rank", "hard_prob": "hard_prob"}


HINTS = typing.get_type_hints(TrainConfig)  # real types, not annotation strings
WORDS = {"face_crop": ("auto",)}  # the strings a `float | str` key accepts besides numbers
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _hint_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("NoneType", "None")


def _one(kind: type, key: str, value):
    if kind is dict:
        if not isinstance(value, dict):
            raise TypeError
        return dict(value)
    if kind is list:
        return [float(v) for v in value.split(",")] if isinstance(value, str) else list(value)
    if kind is bool:
        if isinstance(value, str):
            if value.lower() not in TRUE + FALSE:
                raise ValueError
            return value.lower() in TRUE
        return bool(value)
    if kind is int:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or (isinstance(number, float) and not number.is_integer()):
            raise ValueError  # 3.5 epochs is a typo, not 3
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if kind is str:
        if key in WORDS and value not in WORDS[key]:
            raise ValueError
        return str(value)
    raise TypeError


def _coerce(key: str, value, where: str):
    """`value` as the type TrainConfig declares for `key` (the first member of a union that takes it)."""
    hint = HINTS[key]
    if value is None:
        return None
    for kind in [k for k in (typing.get_args(hint) or (hint,)) if k is not type(None)]:
        try:
            return _one(typing.get_origin(kind) or kind, key, value)
        except (TypeError, ValueError):
            continue
    raise FacerecError(f"{where}: {key} expects {_hint_name(hint)}, got {value!r}")


def apply(cfg: TrainConfig, values: dict, where: str) -> TrainConfig:
    # A new loss (or model) starts its options afresh: an earlier preset's ArcFace scale means
    # nothing to a triplet loss. Options given beside it in the same layer still apply.
    for name, options in (("loss", "loss_options"), ("model", "model_options")):
        if name in values and values[name] != getattr(cfg, name):
            setattr(cfg, options, {})
            if name == "loss":
                cfg.loss_weights = None
    for key, value in values.items():
        if key == "preset":
            continue
        if key not in FIELDS:
            raise FacerecError(f"{where}: unknown key {key!r}{nearest(key, FIELDS)}")
        value = _coerce(key, value, f"{where}")
        if key in ("model_options", "loss_options"):
            value = {**getattr(cfg, key), **value}
        setattr(cfg, key, value)
    return cfg


def _fingerprint(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


def is_valid(cfg: TrainConfig) -> bool:
    """True when `validate` passed on this config and nothing changed since: a run checks it once."""
    return getattr(cfg, "_valid", None) == _fingerprint(cfg)


def ensure_valid(cfg: TrainConfig) -> None:
    if not is_valid(cfg):
        validate(cfg)


def validate(cfg: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise FacerecError(f"{key} must be one of {', '.join(map(str, allowed))}, got {getattr(cfg, key)!r}")
    positive = ("epochs", "batch_classes", "per_class", "embedding_dim", "input_size", "test_interval", "param_budget",
                "max_classes", "dist_timeout")
    for key in positive:
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise FacerecError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.cache_budget_mb < 0:
        raise FacerecError(f"cache_budget_mb must be >= 0, got {cfg.cache_budget_mb}")
    if cfg.lr <= 0:
        raise FacerecError(f"lr must be > 0, got {cfg.lr}")
    if not 0 <= cfg.ema_decay < 1:
        raise FacerecError(f"ema_decay must be in [0, 1) (0: off), got {cfg.ema_decay}")
    if cfg.mix != "none" and cfg.mix_alpha <= 0:
        raise FacerecError(f"mix_alpha must be > 0, got {cfg.mix_alpha}")
    if cfg.tag and (not TAG_RE.fullmatch(cfg.tag) or ".." in cfg.tag):
        raise FacerecError(f"tag names a run directory: letters, digits, '.', '_', '+', '-' only, got {cfg.tag!r}")
    if cfg.folds == 1 or cfg.folds < 0:
        raise FacerecError(f"folds must be 0 (off) or >= 2, got {cfg.folds}")
    cfg._valid = _fingerprint(cfg)


def load(presets: list[str] = (), overrides: dict | None = None, unset: list[str] = ()) -> TrainConfig:
    """Base config, then each preset (and the presets it names) in order, then `unset` keys back
    to their defaults (`KEY`, or `loss_options.K` / `model_options.K`), then overrides."""
    cfg = TrainConfig()
    for name in presets:
        for data, where in expand(name, seen=()):
            apply(cfg, data, where)
    for key in unset:
        _unset(cfg, key)
    apply(cfg, overrides or {}, "command line")
    validate(cfg)
    return cfg


def _unset(cfg: TrainConfig, key: str) -> None:
    head, _, sub = key.partition(".")
    if head in ("loss_options", "model_options") and sub:
        options = getattr(cfg, head)
        if sub not in options:
            raise FacerecError(f"--unset {key}: no such option (set: {', '.join(options) or 'none'})")
        options.pop(sub)
        return
    if key not in FIELDS:
        raise FacerecError(f"--unset: unknown key {key!r}{nearest(key, FIELDS)}")
    default = TrainConfig()
    setattr(cfg, key, getattr(default, key))


def dump(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# Which images: callers that place the data themselves (cross-validation and View 2 folds) ignore them too.
DATA_KEYS = frozenset({"train", "root", "val", "val_root"})
# What a resumed run may change besides the run-only keys: a longer schedule, another patience, and the
# start weights (ignored: --resume wins, and the log says so). The rest comes from its checkpoint.
RESUME_OVERRIDES = RUN_ONLY_KEYS | {"epochs", "patience", "initial_model", "finetune_from"}


# Left unset, chosen when the run starts from the rest of the recipe (K: the loss's minimum), and
# saved as chosen: unset on one side matches any value on the other.
CHOSEN_AT_START = frozenset({"per_class"})


def recipe_changes(before: dict, now: dict, ignore=frozenset()) -> list[str]:
    """The keys (sorted) whose values differ between two configs, run-only keys and `ignore` left out.
    A key one side lacks (a config saved before the key existed) counts as its default."""
    defaults = TrainConfig().to_dict()

    def differs(k):
        a, b = before.get(k, defaults.get(k)), now.get(k, defaults.get(k))
        return a != b and not (k in CHOSEN_AT_START and (a is None or b is None))

    return sorted(k for k in set(before) | set(now) if k not in RUN_ONLY_KEYS and k not in ignore and differs(k))


def same_recipe(a, b, ignore=frozenset()) -> bool:
    """Whether two configs (TrainConfig or dict) train the same thing."""
    return not recipe_changes(_as_dict(a), _as_dict(b), ignore)


def _as_dict(cfg) -> dict:
    return cfg if isinstance(cfg, dict) else cfg.to_dict()


def describe_changes(before: dict, now: dict, keys: list[str], limit: int = 6) -> str:
    """`key: old -> new` for the first `limit` changed keys."""
    more = f", and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys[:limit]) + more


def check_same_recipe(saved: Path, now: dict, ignore, advice: str) -> None:
    """Refuse to reuse the run whose config.yaml is `saved` when it was started with another recipe."""
    if not saved.is_file():
        return
    before = yaml.safe_load(saved.read_text()) or {}
    keys = recipe_changes(before, now, ignore)
    if keys:
        raise FacerecError(f"{saved}: this run was started with another recipe ({describe_changes(before, now, keys)}); "
                           + advice)


def resume_config(overrides: dict) -> TrainConfig:

    from facerec import checkpoint

    path = Path(overrides["resume"])
    ckpt_path = path / "last.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise FacerecError(f"--resume {path}: no checkpoint there (expected {ckpt_path})")
    stored = checkpoint.load(ckpt_path).get("config")
    if not isinstance(stored, dict):
        raise FacerecError(f"{ckpt_path}: checkpoint has no config; not a facerec training checkpoint")
    changed = recipe_changes(stored, {**stored, **overrides}, ignore=RESUME_OVERRIDES)
    if changed:
        raise FacerecError(f"--resume continues the stored config; these flags would change it: {', '.join(changed)} "
                           f"(allowed: {', '.join(sorted(RESUME_OVERRIDES))})")
    cfg = TrainConfig()
    apply(cfg, {k: v for k, v in stored.items() if k in FIELDS}, f"{ckpt_path} config")
    apply(cfg, {k: v for k, v in overrides.items() if k in RESUME_OVERRIDES}, "command line")
    validate(cfg)
    return cfg
