"""``sevi report``: one Markdown page on what a workflow run did and found."""


def register(sub):
    p = sub.add_parser(
        "report", help="Markdown report of a run (detection, answers side by side, score, training, timing)",
        description="Gather a workflow run's outputs into one Markdown page. Every input is optional; "
        "sections whose files are not given are left out. Images are linked relative to the report.",
    )
    p.add_argument("--out", required=True, help="report to write (.md)")
    p.add_argument("--frames", help="the test file the run analysed (named in the report)")
    p.add_argument("--detect-summary", help="summary.txt from sevi accumulate")
    p.add_argument("--count-map-png", help="picture of the count map")
    p.add_argument("--camera-png", help="picture of the camera survey's spot model (sevi plot-camera)")
    p.add_argument("--answer", nargs="*", default=[], metavar="NAME=H5", help="Answer files, one per method")
    p.add_argument("--final", help="name of the method whose answer is the final one")
    p.add_argument("--fit-sidecar", help="JSON sidecar of sevi fit (standard errors, diagnostics)")
    p.add_argument("--fit-png", help="PNG report of sevi fit")
    p.add_argument("--calibration", help="JSON sidecar of sevi calibrate (the answer named 'fit' is the calibrated one)")
    p.add_argument("--nn-sidecar", help="JSON of sevi nn ensemble (the network's standard errors, every member)")
    p.add_argument("--truth", help="truth file (adds the truth and distances)")
    p.add_argument("--score", help="score table (TSV) of the run")
    p.add_argument("--run", nargs="*", default=[], metavar="NAME=RUN_DIR",
                   help="training run folders (none: no training section)")
    p.add_argument("--benchmarks", help="folder of Snakemake benchmark files (results/benchmarks)")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.report.markdown import parse_pairs, write_report

    answers = parse_pairs(args.answer, "--answer")
    runs = parse_pairs(args.run, "--run")
    inputs = [args.detect_summary, args.count_map_png, args.camera_png, args.fit_sidecar, args.fit_png,
              args.calibration, args.nn_sidecar, args.truth, args.score, *answers.values()]
    write_report(args.out, inputs, frames=args.frames, detect_summary=args.detect_summary,
                 count_map_png=args.count_map_png, camera_png=args.camera_png, answers=answers, final=args.final,
                 fit_sidecar=args.fit_sidecar, fit_png=args.fit_png, calibration=args.calibration, truth=args.truth, score=args.score, runs=runs, benchmarks=args.benchmarks,
                 nn_sidecar=args.nn_sidecar)
    print(f"sevi report: wrote {args.out}")
    return 0
