"""face_trainer's `--eval`: score a test list with a checkpoint and write the submission file."""

from __future__ import annotations

from facerec import checkpoint
from facerec.data.lists import read_pairs
from facerec.data.transforms import Preprocess
from facerec.errors import FacerecError
from facerec.trainer.prepare import model_kwargs, preprocess_of
from facerec.util import device as devices


def evaluate_only(cfg) -> int:
    """face_trainer's `--eval`: score `test_list` with `initial_model`, write `output`."""
    from facerec.evaluation.scoring import report_pairs

    if not cfg.initial_model or not cfg.test_list:
        raise FacerecError("--eval needs --initial_model CKPT and --test_list PAIRS.csv (and --output FILE)")
    pairs = read_pairs(cfg.test_list, cfg.val_root, allow_unknown=True)
    ckpt = checkpoint.load(cfg.initial_model)
    # A face_trainer file brings face_trainer's input size and its own embedding size; flags name the rest.
    kw = model_kwargs(cfg) if ckpt.get("format") != "face_trainer" else dict(cfg.model_options)
    model = checkpoint.build_model(ckpt, cfg.initial_model, cfg.model, **kw)
    pre = Preprocess.from_dict(ckpt["preprocess"]) if ckpt.get("preprocess") else preprocess_of(cfg)
    dev = devices.resolve(cfg.device)
    return report_pairs([(model.to(dev), pre)], pairs, output=cfg.output, device=dev, workers=cfg.workers, tta=cfg.tta)
