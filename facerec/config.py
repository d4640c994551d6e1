"""Typed training configuration: a base, YAML presets on top, command-line overrides last.

Unknown keys fail with the nearest valid name. Loss hyperparameters stay namespaced per
loss (`loss_options: {arcface.margin: 0.5, triplet.margin: 0.2}`), never one shared margin.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config_presets import expand, preset_names, read_preset  # noqa: F401  (config.read_preset: public)
from .errors import FacerecError, nearest

TAG_RE = re.compile(r"[A-Za-z0-9._+-]+")
DEFAULT_PARAM_BUDGET = 11_500_000  # the course rule: trunk parameters, final FC excluded
BUDGET_SCOPES = ("trunk", "trunk+head")


@dataclass
class TrainConfig:
    # what to train
    model: str = "resnet18"
    model_options: dict = field(default_factory=dict)
    loss: str = "softmax"
    loss_options: dict = field(default_factory=dict)
    loss_weights: list | None = None
    embedding_dim: int = 512
    input_size: int = 112
    # data
    train: str | None = None  # identity folder or train list
    val: str | None = None  # pair CSV
    root: str | None = None  # image root of the train list
    val_root: str | None = None
    data_root: str | None = None
    batch_classes: int = 100  # P identities per batch (face_trainer's batch_size)
    per_class: int | None = None  # K images per identity (face_trainer's nPerClass); None: the loss's minimum
    max_img_per_cls: int | None = None
    min_images: str = "pad"
    batch_fill: str = "full"  # full: cap dominant identities so batches keep P identities (face_trainer) | spread
    oversample_to: int | None = None
    face_crop: float | str = "auto"
    resize: int | None = None
    mean: list = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list = field(default_factory=lambda: [0.5, 0.5, 0.5])
    hflip: bool = True
    augment: str = "crop"  # none | crop | conservative | medium | aggressive (facerec/data/augment.py)
    mix: str = "none"  # none | mixup | cutmix (classifier losses)
    mix_alpha: float = 1.0  # Beta(alpha, alpha) for the mixing weight
    max_classes: int | None = None  # train on the N identities with the most images (quick runs)
    workers: int | None = None  # DataLoader worker processes (default: min(8, CPU cores))
    cache: str = "auto"  # auto | ram | disk | off: decoded-image store (facerec/data/cache.py) or streamed files
    cache_budget_mb: float = 2048.0  # auto keeps the decoded store only when it fits this many MB
    check_leakage: bool = True
    # optimisation
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    no_decay_norm_bias: bool = False
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "steplr"
    lr_decay: float = 0.90
    step_size: int | None = None  # steplr epochs between decays; None: test_interval (face_trainer)
    t_max: int | None = None
    eta_min: float = 0.0
    t0: int = 5
    t_mult: int = 1
    warmup_epochs: float = 0.0
    amp: str = "off"
    compile: str = "off"  # off | inductor (torch.compile the training forward/backward) | aot_eager (checks only)
    sync_bn: bool = False  # with several processes: BatchNorm over the global batch
    sharded_classifier: bool = False  # with several processes: each rank keeps C/N class centres
    dist_timeout: int = 600  # seconds a rank waits for the others before the job fails
    log_steps: bool = False  # write steps.csv: the loss and learning rate of every step
    grad_clip: float = 0.0
    # validation, stopping
    test_interval: int = 1
    tta: bool = False
    patience: int = 0  # epochs without val-EER improvement before stopping; 0 = never
    min_delta: float = 0.0
    # runs, checkpoints, fine-tuning
    seed: int = 42
    out: str = "runs"
    tag: str = ""
    hypothesis: str = ""  # what this run is meant to show: experiment presets carry it into every record
    run_dir: str | None = None  # explicit run directory (default: OUT/<time>-<model>-<loss>-<tag>)
    folds: int = 0  # > 1: identity k-fold cross-validation over the train identities
    resume: str | None = None
    initial_model: str | None = None
    finetune_from: str | None = None
    freeze_trunk_epochs: int = 0
    freeze_bn: bool = False
    trunk_lr_scale: float = 1.0
    param_budget: int = DEFAULT_PARAM_BUDGET
    budget_scope: str = "trunk"
    device: str = "auto"
    num_classes: int | None = None  # face_trainer's nClasses: checked against the data
    max_steps: int | None = None  # stop each epoch after this many steps (smoke runs)
    eval_only: bool = False
    test_list: str | None = None
    output: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
CHOICES = {
    "optimizer": ("adam", "adamw", "sgd", "radam"),
    "scheduler": ("steplr", "cosine", "warm_restarts", "onecycle", "none"),
    "amp": ("off", "bf16", "fp16"),
    "budget_scope": BUDGET_SCOPES,
    "min_images": ("pad", "drop"),
    "augment": ("none", "crop", "conservative", "medium", "aggressive"),
    "mix": ("none", "mixup", "cutmix"),
    "compile": ("off", "inductor", "aot_eager"),
    "cache": ("auto", "ram", "disk", "off"),
    "batch_fill": ("full", "spread"),
}

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


def validate(cfg: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise FacerecError(f"{key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    positive = ("epochs", "batch_classes", "per_class", "embedding_dim", "input_size", "test_interval", "param_budget",
                "max_classes", "dist_timeout")
    for key in positive:
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise FacerecError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.cache_budget_mb < 0:
        raise FacerecError(f"cache_budget_mb must be >= 0, got {cfg.cache_budget_mb}")
    if cfg.lr <= 0:
        raise FacerecError(f"lr must be > 0, got {cfg.lr}")
    if cfg.mix != "none" and cfg.mix_alpha <= 0:
        raise FacerecError(f"mix_alpha must be > 0, got {cfg.mix_alpha}")
    if cfg.tag and (not TAG_RE.fullmatch(cfg.tag) or ".." in cfg.tag):
        raise FacerecError(f"tag names a run directory: letters, digits, '.', '_', '+', '-' only, got {cfg.tag!r}")
    if cfg.folds == 1 or cfg.folds < 0:
        raise FacerecError(f"folds must be 0 (off) or >= 2, got {cfg.folds}")


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


# What may change when a run is resumed: the rest comes from its checkpoint, so it continues exactly.
RESUME_OVERRIDES = ("resume", "epochs", "device", "workers", "patience", "cache", "cache_budget_mb",
                    "dist_timeout", "log_steps", "initial_model", "finetune_from")  # the last two: --resume wins, and the log says so


def resume_config(overrides: dict) -> TrainConfig:

    from . import checkpoint

    path = Path(overrides["resume"])
    ckpt_path = path / "last.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise FacerecError(f"--resume {path}: no checkpoint there (expected {ckpt_path})")
    stored = checkpoint.load(ckpt_path).get("config")
    if not isinstance(stored, dict):
        raise FacerecError(f"{ckpt_path}: checkpoint has no config; not a facerec training checkpoint")
    changed = sorted(k for k in overrides if k not in RESUME_OVERRIDES and overrides[k] != stored.get(k))
    if changed:
        raise FacerecError(f"--resume continues the stored config; these flags would change it: {', '.join(changed)} "
                           f"(allowed: {', '.join(RESUME_OVERRIDES)})")
    cfg = TrainConfig()
    apply(cfg, {k: v for k, v in stored.items() if k in FIELDS}, f"{ckpt_path} config")
    apply(cfg, {k: v for k, v in overrides.items() if k in RESUME_OVERRIDES}, "command line")
    validate(cfg)
    return cfg
