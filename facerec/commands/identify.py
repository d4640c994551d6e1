"""`facerec identify`: 1:N search of probe images against a gallery of identity folders."""

from __future__ import annotations

import json
import sys

from facerec.commands.common import add_device, add_progress, cosine_threshold, progress_on
from facerec.commands.embed import add_model_source, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("identify", help="1:N search: top-k gallery identities per probe; rank-1/5 and CMC",
                       description="Gallery: identity folders (DIR/<identity>/<image>). Probes: identity folders "
                                   "too (labelled: rank-1/rank-5 accuracy and a CMC curve) or a flat folder of "
                                   "images (matches only).")
    p.add_argument("--gallery", required=True, help="folder of identity folders")
    p.add_argument("--probe", required=True, help="folder of identity folders (labelled) or of images")
    add_model_source(p)
    p.add_argument("--template", choices=("mean", "image"), default="mean",
                   help="mean: one averaged template per identity; image: every gallery image, best match counts "
                        "(default mean)")
    p.add_argument("--top-k", type=int, default=5, help="matches listed per probe (default 5)")
    p.add_argument("--threshold", type=cosine_threshold, default=None,
                   help="a cosine in [-1, 1]: a probe whose best score is below it is marked unknown (default: the "
                        "model's validation EER threshold; none for a model with a back-end, whose thresholds are "
                        "not cosines)")
    p.add_argument("--output", default=None, help="CSV: probe,truth,rank,identity,score,decision per match "
                                                  "(decision: match, or unknown below the threshold) (default: none)")
    p.add_argument("--plot", default=None, help="CMC curve PNG, for labelled probes (default: cmc.png beside "
                                                "--output, else none)")
    p.add_argument("--json", action="store_true", help="print one JSON object (matches included)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    add_device(p)
    add_progress(p)
    p.set_defaults(func=run)


def _write_csv(path, result) -> None:
    import csv
    import io

    from facerec.util.fileio import write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["probe", "truth", "rank", "identity", "score", "decision"])
    thr = result["threshold"]
    for m in result["matches"]:
        for r, (ident, score) in enumerate(m["top"], 1):
            decision = "" if thr is None else "unknown" if score < thr else "match"
            w.writerow([m["probe"], m.get("truth", ""), r, ident, f"{score:.6f}", decision])
    write_text(path, buf.getvalue())


def run(args) -> int:
    from pathlib import Path

    from facerec.inference.identify import identify, plot_cmc

    model = load_model(args)
    result = identify(model, args.gallery, args.probe, template=args.template, top_k=args.top_k,
                      batch_size=args.batch_size, progress=progress_on(args), threshold=args.threshold)
    if args.output:
        _write_csv(args.output, result)
    plot = args.plot or (str(Path(args.output).with_name("cmc.png")) if args.output else None)
    if plot and "cmc" in result:
        import numpy as np

        plot_cmc(np.array(result["cmc"]), plot)
        result["plot"] = plot
    if args.json:
        print(json.dumps(result))
        return 0
    out = sys.stdout
    print(f"{result['probe_images']} probes vs {result['identities']} identities "
          f"({result['gallery_images']} gallery images, {args.template} templates)", file=out)
    if "rank1" in result:
        print(f"rank-1 {result['rank1']:.2f}%  rank-5 {result['rank5']:.2f}% (closed-set: unknown ones counted by "
              "their best match)", file=out)
    if result["threshold"] is not None:
        print(f"unknown: {result['unknown']} of {result['probe_images']} probes score below {result['threshold']:.4f} "
              f"({result['threshold_from']}) with their best match", file=out)
    if args.output:
        print(f"matches: {args.output}" + (f" | CMC: {plot}" if "plot" in result else ""), file=out)
    else:
        for m in result["matches"][:10]:
            best = m["top"][0]
            flag = f"  unknown (below {result['threshold']:.4f})" if m["unknown"] else ""
            print(f"{m['probe']}: {best[0]} ({best[1]:.4f}){flag}" + (f"  truth {m['truth']}" if "truth" in m else ""))
        if len(result["matches"]) > 10:
            print(f"... {len(result['matches']) - 10} more (--output writes them all)")
    return 0
