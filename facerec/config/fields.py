"""The training configuration's keys: each with its default, its help, its choices and whether it
changes what a run learns. CLI flags, --help, YAML validation and the run-identity check
(config.same_recipe) are all generated from these declarations."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

DEFAULT_PARAM_BUDGET = 11_500_000  # the course rule: trunk parameters, final FC excluded
BUDGET_SCOPES = ("trunk", "trunk+head")


def knob(default, help: str, *, choices: tuple | None = None, run_only: bool = False):
    """A TrainConfig key. `run_only`: how, where or under which name a run executes, never what it
    learns (resume may change it; recipes are compared without it)."""
    meta = {"help": help, "choices": choices, "run_only": run_only}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # what to train
    model: str = knob("resnet18", "backbone name from the registry (`facerec params` lists them)")
    model_options: dict = knob({}, "backbone keywords (--model-opt KEY=VALUE)")
    loss: str = knob("softmax", "loss name, or a weighted combination such as arcface+triplet")
    loss_options: dict = knob({}, "loss hyperparameters (--loss-opt KEY=VALUE; LOSS.KEY for combinations)")
    loss_weights: list | None = knob(None, "weights of a combined loss's parts, comma-separated")
    embedding_dim: int = knob(512, "embedding size (face_trainer's nOut)")
    input_size: int = knob(112, "network input in pixels (square)")
    # data
    train: str | None = knob(None,
        "training data: an identity folder or a train list `identity relpath` (default: LFW View 1)")
    val: str | None = knob(None, "validation pair CSV label,path1,path2 scored every --test-interval epochs")
    root: str | None = knob(None, "image root of the train list (default: its '# root:' line, else its folder)")
    val_root: str | None = knob(None, "image root of the validation/test pairs (face_trainer's test_path)")
    data_root: str | None = knob(None,
        "folder holding lfw/ and orl/ (default: $FACEREC_DATA, else ./data)", run_only=True)
    batch_classes: int = knob(100, "P: identities per batch (face_trainer's batch_size)")
    per_class: int | None = knob(None,
        "K: images per identity in a batch (face_trainer's nPerClass; default: what the loss needs)")
    max_img_per_cls: int | None = knob(None, "use at most this many images of an identity per epoch (default: all)")
    min_images: str = knob("pad",
        "identities with fewer than K images: pad (repeat images) or drop", choices=("pad", "drop"))
    batch_fill: str = knob("full",
        "full: cap dominant identities so every batch keeps P identities (face_trainer); spread: use "
        "every image in smaller batches", choices=("full", "spread"))
    oversample_to: int | None = knob(None, "lift identities with fewer images to this many per epoch (class imbalance)")
    face_crop: float | str = knob("auto",
        "centred face crop, a fraction of the shorter side, before resizing; auto: 0.6 for 250x250 LFW "
        "images, else 1.0")
    resize: int | None = knob(None, "resize before the random/centre crop (default: input x 256/224)")
    mean: list = knob([0.5, 0.5, 0.5], "normalisation mean, comma-separated RGB")
    std: list = knob([0.5, 0.5, 0.5], "normalisation std, comma-separated RGB")
    hflip: bool = knob(True, "random horizontal flips while training")
    augment: str = knob("crop",
        "augmentation level: none, crop, conservative, medium, aggressive (each adds to the one before), or "
        "adaface (AdaFace's crop, low resolution and colour jitter, each at p=0.2)",
        choices=("none", "crop", "conservative", "medium", "aggressive", "adaface"))
    mix: str = knob("none", "mixup or cutmix for classifier losses", choices=("none", "mixup", "cutmix"))
    mix_alpha: float = knob(1.0, "Beta(alpha, alpha) of the mixing weight")
    max_classes: int | None = knob(None, "train on the N identities with the most images (quick runs)")
    workers: int | None = knob(None, "DataLoader worker processes (default: min(8, CPU cores))", run_only=True)
    cache: str = knob("auto",
        "decoded-image store: auto (ram when it fits --cache-budget-mb), ram, disk (memory-mapped), off "
        "(stream from files)", choices=("auto", "ram", "disk", "off"), run_only=True)
    cache_budget_mb: float = knob(2048.0, "largest decoded set --cache auto keeps in RAM, in MB", run_only=True)
    check_leakage: bool = knob(True, "refuse train/val sets sharing an identity or identical image")
    # optimisation
    epochs: int = knob(10, "training epochs (face_trainer's max_epoch)")
    optimizer: str = knob("adam", "optimiser", choices=("adam", "adamw", "sgd", "radam"))
    lr: float = knob(1e-3, "learning rate")
    weight_decay: float = knob(0.0, "weight decay")
    no_decay_norm_bias: bool = knob(False, "no weight decay on norm layers and biases")
    momentum: float = knob(0.9, "SGD momentum")
    nesterov: bool = knob(False, "Nesterov momentum for SGD")
    scheduler: str = knob("steplr",
        "learning-rate schedule", choices=("steplr", "cosine", "warm_restarts", "onecycle", "none"))
    lr_decay: float = knob(0.90, "steplr: factor applied every --step-size epochs")
    step_size: int | None = knob(None,
        "steplr: epochs between decays (default: --test-interval, as face_trainer decays after each test)")
    t_max: int | None = knob(None, "cosine: epochs of the decay (default: --epochs)")
    eta_min: float = knob(0.0, "cosine: final learning rate")
    t0: int = knob(5, "warm_restarts: epochs of the first cycle")
    t_mult: int = knob(1, "warm_restarts: growth of each cycle")
    warmup_epochs: float = knob(0.0, "linear warm-up, in epochs (fractions allowed)")
    amp: str = knob("off", "mixed precision: off, bf16 or fp16 (the loss stays fp32); on a CPU, bf16 is faster only "
                    "with AVX512-BF16 or AMX, and a note says when it is emulated", choices=("off", "bf16", "fp16"))
    compile: str = knob("off",
        "torch.compile the training step: off, inductor, aot_eager", choices=("off", "inductor", "aot_eager"))
    sync_bn: bool = knob(False,
        "with several processes (torchrun): BatchNorm statistics over the global batch, not per rank")
    sharded_classifier: bool = knob(False,
        "with several processes: split the margin classifier's class centres across ranks (Partial FC's "
        "idea; arcface, cosface, subcenter arcface)")
    dist_timeout: int = knob(600,
        "seconds a process waits for the others before the whole job fails (no hang)", run_only=True)
    log_steps: bool = knob(False,
        "write steps.csv beside metrics.csv: every step's loss and learning rate", run_only=True)
    grad_clip: float = knob(0.0, "clip the gradient norm to this (0: off)")
    ema_decay: float = knob(0.0,
        "validate and save an exponential moving average of the weights with this decay, e.g. 0.999 "
        "(ramped up from 0 over the first steps; 0: off)")
    # validation, stopping
    test_interval: int = knob(1, "validate every N epochs (and at the last)")
    tta: bool = knob(False, "validation embeddings add each image's mirror")
    test_crops: int = knob(1,
        "evaluation crops of each face, their embeddings summed: 1, the centre; 5, the centre and the four "
        "corners (the extremes of training's random crop)", choices=(1, 5))
    patience: int = knob(0, "stop after this many epochs without val-EER improvement (0: never)")
    min_delta: float = knob(0.0, "smallest EER drop (points) that counts as an improvement")
    # runs, checkpoints, fine-tuning
    seed: int = knob(42, "seed of weights, sampling and augmentation")
    out: str = knob("runs", "folder of run directories (face_trainer's save_path)", run_only=True)
    tag: str = knob("", "suffix of the run directory name (letters, digits, . _ + -)", run_only=True)
    hypothesis: str = knob("", "what the run is meant to show (kept in the experiment records)", run_only=True)
    run_dir: str | None = knob(None, "explicit run directory (default: OUT/<time>-<model>-<loss>-<tag>)", run_only=True)
    folds: int = knob(0, "identity k-fold cross-validation over the train identities (0: off)")
    resume: str | None = knob(None, "continue the run in this directory (or its last.pt) exactly", run_only=True)
    initial_model: str | None = knob(None,
        "start from these weights (face_trainer's initial_model; the classifier too when it fits)")
    finetune_from: str | None = knob(None,
        "start from these trunk weights with a new classifier for the new identities")
    freeze_trunk_epochs: int = knob(0, "fine-tuning: train only the head/classifier for this many epochs")
    freeze_bn: bool = knob(False, "fine-tuning: keep BatchNorm statistics fixed")
    trunk_lr_scale: float = knob(1.0, "fine-tuning: trunk learning rate = lr x this")
    param_budget: int = knob(DEFAULT_PARAM_BUDGET, "refuse models with more budgeted parameters than this")
    budget_scope: str = knob("trunk",
        "what the budget counts: trunk (the course rule: final FC excluded) or trunk+head", choices=BUDGET_SCOPES)
    device: str = knob("auto", "auto, cpu, cuda, cuda:N or mps", run_only=True)
    num_classes: int | None = knob(None,
        "expected number of identities, checked against the data (face_trainer's nClasses)")
    max_steps: int | None = knob(None, "stop each epoch after this many steps (smoke runs)")
    eval_only: bool = knob(False, "score --test_list with --initial_model and write --output (face_trainer's --eval)")
    test_list: str | None = knob(None,
        "face_trainer's test list: the validation pairs while training; with --eval, the pairs to score", run_only=True)
    output: str | None = knob(None, "with --eval: the scores file to write", run_only=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
HELP = {name: f.metadata["help"] for name, f in FIELDS.items()}
CHOICES = {name: f.metadata["choices"] for name, f in FIELDS.items() if f.metadata["choices"]}
RUN_ONLY_KEYS = frozenset(name for name, f in FIELDS.items() if f.metadata["run_only"])
