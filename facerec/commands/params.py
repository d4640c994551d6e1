"""`facerec params`: what each backbone costs (params, FLOPs, size, CPU latency) and whether it fits.

GFLOPs are 2 x thop's multiply-accumulates at batch 1 (see facerec.trainer.budget); MB is the fp32 size
of parameters and buffers; latency is the median CPU ms per image at batch 1 and batch 64.
"""

from __future__ import annotations

import json
import sys

from facerec.config import BUDGET_SCOPES, DEFAULT_PARAM_BUDGET
from facerec.errors import FacerecError


def add_parser(sub) -> None:
    p = sub.add_parser("params", help="parameters, FLOPs, size and CPU latency per backbone; budget check")
    p.add_argument("names", nargs="*", metavar="NAME", help="models (default: every registered one)")
    p.add_argument("--preset", action="append", default=[], metavar="NAME|FILE.yaml",
                   help="take the model, its options, input size, embedding size and budget from training presets "
                        "(repeatable, as for train); flags below override")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="backbone keyword, e.g. width=0.5 or head_bn=true (repeatable)")
    p.add_argument("--input-size", type=int, default=None, help="input pixels (default: the preset's, else 112)")
    p.add_argument("--embedding-dim", type=int, default=None, help="embedding size (default: the preset's, else 512)")
    p.add_argument("--param-budget", type=int, default=None,
                   help=f"parameter budget (default: the preset's, else {DEFAULT_PARAM_BUDGET:,})")
    p.add_argument("--budget-scope", choices=BUDGET_SCOPES, default=None,
                   help="what the budget counts (default: the preset's, else trunk)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--check", action="store_true", help="exit 1 when any named model does not fit")
    p.add_argument("--no-latency", action="store_true", help="skip the CPU latency measurement")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the latency runs (default: PyTorch's; use 1 on a busy machine, where "
                        "spinning OpenMP threads inflate batch-1 times many fold)")
    p.set_defaults(func=run)


def row(name: str, args) -> dict:
    import torch

    from facerec import models
    from facerec.trainer import budget

    torch.manual_seed(0)
    kw = {"embedding_dim": args.embedding_dim, "input_size": args.input_size, **args.model_options}
    m = models.create(name, **kw)
    c = budget.counts(m)
    used = budget.budgeted(c, args.budget_scope)
    r = {"name": name, **c, "budgeted_params": used, "flops": budget.flops(m, args.input_size),
         "size_mb": budget.size_mb(m), "fits": used <= args.param_budget}
    del r["classifier_params"]
    if not args.no_latency:
        r["latency_ms_b1"] = budget.latency_ms(m, args.input_size, 1)
        r["latency_ms_b64"] = budget.latency_ms(m, args.input_size, 64, repeats=3)
    return r


def table(rows: list[dict], args) -> str:
    head = f"{'model':<22}{'trunk':>12}{'head':>12}{'total':>12}{'GFLOPs':>9}{'MB':>7}"
    if not args.no_latency:
        head += f"{'ms/img b1':>10}{'ms/img b64':>11}"
    import torch

    title = (f"input {args.input_size}px, embedding {args.embedding_dim}, "
             f"budget {args.param_budget:,} ({args.budget_scope})")
    if not args.no_latency:
        title += f", latency on {torch.get_num_threads()} CPU thread(s)"
    lines = [title, head + "  fits"]
    for r in rows:
        line = (f"{r['name']:<22}{r['trunk_params']:>12,}{r['head_params']:>12,}{r['total_params']:>12,}"
                f"{r['flops'] / 1e9:>9.2f}{r['size_mb']:>7.1f}")
        if not args.no_latency:
            line += f"{r['latency_ms_b1']:>10.1f}{r['latency_ms_b64']:>11.2f}"
        lines.append(line + ("  yes" if r["fits"] else "  NO"))
    return "\n".join(lines)


def _resolve(args) -> None:
    """Fill unset flags from the presets (the model they train, with its options), else defaults."""
    from facerec import config as config_mod
    from facerec.commands.train import _pairs

    cfg = config_mod.load(args.preset, {})
    args.preset_model = cfg.model
    args.model_options = {**(cfg.model_options if args.preset else {}), **_pairs(args.model_opt, "--model-opt")}
    for key in ("input_size", "embedding_dim", "param_budget", "budget_scope"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(cfg, key))


def run(args) -> int:
    import torch

    from facerec import models
    from facerec.trainer import budget

    if args.threads is not None:
        if args.threads < 1:
            raise FacerecError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    _resolve(args)
    names = args.names or ([args.preset_model] if args.preset else models.list_models())
    for n in names:
        models.MODELS.canonical(n)  # unknown names fail before any measurement
    rows = [row(models.MODELS.canonical(n), args) for n in names]
    print(json.dumps(rows, indent=1) if args.json else table(rows, args))
    if args.check:
        failed = [r for r in rows if not r["fits"]]
        for r in failed:
            try:
                budget.check_budget(r["name"], budget=args.param_budget, scope=args.budget_scope,
                                    embedding_dim=args.embedding_dim, input_size=args.input_size, **args.model_options)
            except FacerecError as exc:
                print(f"facerec params: {exc}", file=sys.stderr)
        return 1 if failed else 0
    return 0
