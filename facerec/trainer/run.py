"""One entry for a configured job, shared by `facerec train` and `facerec.train(cfg)`."""

from __future__ import annotations

from facerec import config as config_mod


def run(cfg: config_mod.TrainConfig, *, progress: bool = False, callbacks=()) -> dict:
    """Train (or cross-validate, or only evaluate, as the config says) after the CLI's checks:
    every key's type and range (the budget, data and leakage checks run before the first step).
    `callbacks` (trainer.Callback) join a training run's own."""
    if not isinstance(cfg, config_mod.TrainConfig):
        raise TypeError(f"expected a facerec.TrainConfig, got {type(cfg).__name__}")
    if not config_mod.is_valid(cfg):  # built or changed by hand: the CLI's coercion and checks
        cfg = config_mod.load([], cfg.to_dict())
    if callbacks and (cfg.eval_only or cfg.folds):
        raise TypeError("callbacks apply to one training run, not to --eval-only or --folds")
    if cfg.eval_only:
        from facerec.trainer.eval_only import evaluate_only

        return {"exit_code": evaluate_only(cfg)}
    if cfg.folds:
        from facerec.experiments.cv import cross_validate

        return {"exit_code": cross_validate(cfg, progress=progress)}
    from facerec.trainer.loop import Trainer

    return Trainer(cfg, progress=progress, callbacks=callbacks).fit()
