"""`facerec experiment run PHASE | list`: run a phase of planned experiments over seeds."""

from __future__ import annotations

from pathlib import Path

from facerec.commands.common import add_progress, progress_on
from facerec.errors import FacerecError

DEFAULT_SEEDS = "42,123,456"
QUICK_SEEDS = "42,123"  # two seeds still give a std and a t-test


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run a phase of experiment presets over seeds, then report",
                       description="Phases and their presets are listed by `facerec experiment list`.")
    sp = p.add_subparsers(dest="action", metavar="ACTION")
    sp.required = True
    r = sp.add_parser("run", help="run (or resume) every experiment of a phase, then write its report")
    r.add_argument("phase")
    r.add_argument("--quick", action="store_true", help="smoke-check scale (preset 'quick': 64 px, 2 short epochs)")
    r.add_argument("--seeds", default=None,
                   help=f"comma-separated seeds (default {DEFAULT_SEEDS}; with --quick {QUICK_SEEDS})")
    add_data_args(r)
    r.add_argument("--only", default=None, help="comma-separated presets of the phase (the baseline always runs)")
    r.add_argument("--dry-run", action="store_true", help="print the planned runs and their state, run nothing")
    r.add_argument("--force", action="store_true", help="redo runs that already finished")
    r.add_argument("--keep-last", action="store_true",
                   help="keep each finished run's last.pt (optimiser state, to train on); default: only best.pt")
    r.add_argument("--no-report", dest="report", action="store_false", help="skip the phase report")
    add_jobs(r)
    add_progress(r)
    r.set_defaults(func=run)
    ls = sp.add_parser("list", help="phases, their presets and hypotheses")
    ls.add_argument("phase", nargs="?")
    ls.set_defaults(func=list_phases)


def add_jobs(p) -> None:
    """--jobs / --devices / --threads-per-job, shared with `facerec benchmark lfw`."""
    p.add_argument("--jobs", default="1", metavar="N|auto",
                   help="runs at once, one process each; auto: as many as fit, from a probe step's GPU memory "
                        "(on the CPU: one 1-thread job per core) (default 1)")
    p.add_argument("--devices", default=None, metavar="LIST",
                   help="devices the jobs are dealt over: cpu, cuda (every GPU) or cuda:0,cuda:1 (default: each "
                        "run's own device with --jobs 1, else every GPU, else the CPU)")
    p.add_argument("--threads-per-job", type=int, default=None, metavar="N",
                   help="CPU threads of each job (default: the CPU cores divided between the jobs)")


def add_data_args(p) -> None:
    """Data and result options shared with `facerec search`."""
    p.add_argument("--data", default="lfw", help="lfw (View 1), orl, or a course folder with train1/ and train2/")
    p.add_argument("--val", default=None, help="val pair CSV (required with a course folder)")
    p.add_argument("--data-root", default=None, help="where lfw/ and orl/ live (default: $FACEREC_DATA, else ./data)")
    p.add_argument("--out", default=None, help="results folder (default experiments/<data>[-quick])")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. --set device=cuda --set epochs=20 (repeatable)")


def resolve_data(args) -> tuple[dict, dict]:
    """(role -> list path, --set overrides), all checked before any run starts."""
    from facerec import config as config_mod
    from facerec.commands.train import _pairs
    from facerec.experiments import plan

    overrides = _pairs(args.set, "--set")
    for k in overrides:
        if k not in config_mod.FIELDS:
            raise FacerecError(f"--set: unknown key {k!r}{config_mod.nearest(k, config_mod.FIELDS)}")
    data = plan.data_sources(args.data, data_root=args.data_root)
    if args.val:
        data["val"] = args.val
    if "val" not in data:
        raise FacerecError(f"--data {args.data}: give the val pair list with --val")
    return data, overrides


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FacerecError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise FacerecError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def results_dir(args) -> Path:
    if args.out:
        return Path(args.out)
    name = args.data if args.data in ("lfw", "orl") else Path(args.data).name
    return Path("experiments") / (name + ("-quick" if args.quick else ""))


def run(args) -> int:
    from facerec.experiments import plan
    from facerec.experiments.index import Index
    from facerec.experiments.runner import changed, run_phase, state
    from facerec.util.locks import lock

    phase = plan.get_phase(args.phase)
    seeds = parse_seeds(args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS))
    data, overrides = resolve_data(args)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    out = results_dir(args)
    runs = plan.plan_phase(phase, seeds=seeds, data=data, out=out, quick=args.quick, overrides=overrides, only=only)
    print(f"phase {phase.name}: {len({r.preset for r in runs})} presets x {len(seeds)} seeds = {len(runs)} runs -> {out}")
    if args.dry_run:
        for r in runs:
            c = r.cfg
            st = "stale" if state(r) != "new" and changed(r) else state(r)
            print(f"  {st:6s} {r.preset:24s} seed {r.seed:<4d} {r.data:6s} {c.model}/{c.loss} "
                  f"{c.input_size}px {c.epochs} ep  {r.run_dir}")
        return 0
    from facerec.experiments.probe import slots_for

    todo = [r for r in runs if state(r) != "done" or args.force]
    slots = slots_for(args.jobs, args.devices, [r.cfg for r in todo] or [runs[0].cfg], len(todo), args.threads_per_job)
    index = Index(out)
    out.mkdir(parents=True, exist_ok=True)
    with lock(out, "results folder"):
        failed = run_phase(runs, index, quick=args.quick, data=args.data, force=args.force, keep_last=args.keep_last,
                           progress=progress_on(args), slots=slots)
    if args.report:
        from facerec.experiments.report import write_phase_report

        try:
            print(f"report: {write_phase_report(index, phase.name, baseline=phase.base)}")
        except FacerecError as exc:
            if not failed:
                raise
            print(f"no report: {exc}")  # the failures are the news; they are reported below
    if failed:
        print(f"{failed} run(s) failed; see the index {index.path} and each run's log.txt")
    return 1 if failed else 0


def list_phases(args) -> int:
    from facerec import config as config_mod
    from facerec.experiments import plan

    phases = [plan.get_phase(args.phase)] if args.phase else list(plan.load_phases().values())
    for ph in phases:
        print(f"{ph.name}: {ph.description}")
        for e in ph.entries:
            data, _ = config_mod.read_preset(e.preset)
            print(f"  {e.preset:24s} [{e.data}] {data.get('hypothesis', '')}")
    return 0
