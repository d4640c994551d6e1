"""The plan: which runs a phase holds, on which data, with which full config.

Every run's config is built (and its model checked against the parameter budget) before the
first run starts, so a typo in a preset or an over-budget model fails the phase up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from facerec import config as config_mod
from facerec.errors import FacerecError, nearest

BASELINE = "baseline"
DATA_ROLES = ("train", "train1", "train2")
QUICK_BATCH_SCALE = 0.2
REF = "@"  # `finetune_from: '@ft_pretrain'`: that preset's checkpoint for the same seed


@dataclass
class Entry:
    preset: str
    data: str  # a DATA_ROLES member


@dataclass
class Phase:
    name: str
    description: str
    entries: list[Entry]  # the baseline first

    @property
    def presets(self) -> list[str]:
        return [e.preset for e in self.entries]

    @property
    def base(self) -> str:
        """The phase's baseline preset; every experiment of the phase is applied on top of it."""
        return self.entries[0].preset


def load_phases() -> dict[str, Phase]:
    text = resources.files("facerec").joinpath("experiments", "phases.yaml").read_text()
    raw = yaml.safe_load(text) or {}
    phases = {}
    for name, spec in raw.items():
        where = f"phases.yaml: phase {name}"
        unknown = set(spec) - {"description", "experiments", "data", "baseline"}
        if unknown:
            raise FacerecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        role = spec.get("data", "train")
        entries = [Entry(spec.get("baseline", BASELINE), role)]
        for item in spec["experiments"]:
            item = {"preset": item} if isinstance(item, str) else item
            if item.get("data", role) not in DATA_ROLES:
                raise FacerecError(f"{where}: data must be one of {', '.join(DATA_ROLES)}, got {item['data']!r}")
            entries.append(Entry(item["preset"], item.get("data", role)))
        phases[name] = Phase(name, spec.get("description", ""), entries)
    return phases


def get_phase(name: str) -> Phase:
    phases = load_phases()
    if name not in phases:
        raise FacerecError(f"unknown phase {name!r}{nearest(name, phases)}; phases: {', '.join(phases)}")
    return phases[name]


@dataclass
class Run:
    phase: str
    preset: str
    seed: int
    data: str
    run_dir: Path
    cfg: config_mod.TrainConfig
    needs: str | None = None  # a preset whose checkpoint (same seed) this run starts from
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.preset}/seed{self.seed}"


def count_identities(train_list: str) -> int:
    from facerec.data.lists import load_train

    return load_train(train_list, check_files=False).num_classes


def plan_phase(phase: Phase, *, seeds: list[int], data: dict[str, str], out: Path, quick: bool = False,
               overrides: dict | None = None, only: list[str] | None = None) -> list[Run]:
    """`data` maps each role (train, train1, train2, val) to a list path."""
    from facerec.trainer import budget

    if only:
        missing = [p for p in only if p not in phase.presets]
        if missing:
            raise FacerecError(f"--only: {', '.join(missing)} not in phase {phase.name} "
                               f"({', '.join(phase.presets)})")
    entries = [e for e in phase.entries if not only or e.preset in only or e.preset == phase.entries[0].preset]
    ids: dict[str, int] = {}
    runs = []
    for entry in entries:
        if entry.data not in data:
            raise FacerecError(f"phase {phase.name}: {entry.preset} trains on {entry.data}, which this data "
                               f"source does not provide")
        for seed in seeds:
            run_dir = out / phase.name / entry.preset / f"seed{seed}"
            presets = [phase.base] if entry.preset == phase.base else [phase.base, entry.preset]
            values = {"train": data[entry.data], "val": data["val"], "seed": seed, "run_dir": str(run_dir),
                      "tag": entry.preset}
            cfg = config_mod.load(presets + (["quick"] if quick else []), {**values, **(overrides or {})})
            if quick and "batch_classes" not in (overrides or {}):
                if entry.data not in ids:
                    ids[entry.data] = count_identities(data[entry.data])
                n = min(ids[entry.data], cfg.max_classes or ids[entry.data])
                cfg.batch_classes = max(2, min(n, round(cfg.batch_classes * QUICK_BATCH_SCALE)))
            needs = None
            if cfg.finetune_from and cfg.finetune_from.startswith(REF):
                needs = cfg.finetune_from[len(REF):]
                if needs not in phase.presets or phase.presets.index(needs) > phase.presets.index(entry.preset):
                    raise FacerecError(f"preset {entry.preset}: finetune_from {cfg.finetune_from} must name an "
                                       f"earlier preset of phase {phase.name}")
                cfg.finetune_from = str(out / phase.name / needs / f"seed{seed}" / "best.pt")
            budget.check_budget(cfg.model, embedding_dim=cfg.embedding_dim, input_size=cfg.input_size,
                                budget=cfg.param_budget, scope=cfg.budget_scope, **cfg.model_options)
            runs.append(Run(phase.name, entry.preset, seed, entry.data, run_dir, cfg, needs))
    planned = {r.preset for r in runs}
    for r in runs:
        if r.needs and r.needs not in planned:
            raise FacerecError(f"{r.preset} fine-tunes from {r.needs}: add it to --only")
    return runs


def data_sources(name: str, *, data_root: str | None = None, lists_dir: Path = Path("data_lists")) -> dict[str, str]:
    """Role -> list path for `--data lfw|orl|DIR`. LFW: View 1 (train peopleDevTrain, val
    pairsDevTest; train1/train2 its identity-disjoint halves). ORL: 30 identities to train, 10
    to val pairs; train1/train2 halves of the 30. DIR: the course layout, DIR/train1 and
    DIR/train2 identity folders (train = train1); the val pairs come from --val."""
    from facerec.data import lfw
    from facerec.data import root as dataroot
    from facerec.data.lists import load_train, write_train_list
    from facerec.data.split import split_folder

    if name == "lfw":
        out = lists_dir / "lfw"
        names = ("view1_train.txt", "view1_train_half1.txt", "view1_train_half2.txt", "view1_val_pairs.csv")
        if not all((out / n).is_file() for n in names):
            lfw.write_lists(dataroot.resolve(data_root, dataroot.LFW_DIRS), out)
        return {"train": str(out / names[0]), "train1": str(out / names[1]), "train2": str(out / names[2]),
                "val": str(out / names[3])}
    if name == "orl":
        out = lists_dir / "orl"
        train, val = out / "orl_train.txt", out / "orl_val_pairs.csv"
        if not train.is_file() or not val.is_file():
            root = dataroot.resolve(data_root, "orl")
            split_folder(root / "orl", out, val_fraction=0.25, seed=0, per_image=3, name="orl")
        halves = [out / "orl_train_half1.txt", out / "orl_train_half2.txt"]
        if not all(h.is_file() for h in halves):
            full = load_train(str(train))
            for h, ids in zip(halves, (full.classes[::2], full.classes[1::2])):
                part = full.subset(ids)
                write_train_list(h, full.root, part.paths, part.identities)
        return {"train": str(train), "train1": str(halves[0]), "train2": str(halves[1]), "val": str(val)}
    folder = Path(name)
    if not (folder / "train1").is_dir():
        raise FacerecError(f"--data {name}: expected lfw, orl, or a folder holding train1/ (and train2/) "
                           "identity folders")
    roles = {"train": str(folder / "train1"), "train1": str(folder / "train1")}
    if (folder / "train2").is_dir():
        roles["train2"] = str(folder / "train2")
    return roles
