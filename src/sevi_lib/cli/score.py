"""``sevi score ANSWER [ANSWER ...] TRUTH``: the grader's per-shell distances."""

import json


def register(sub):
    p = sub.add_parser(
        "score", help="score Answer files against a truth file",
        description="Per-shell distance d_j = sqrt(sum 2/(4i+1) (betahat - beta)^2), their sum, and "
        "Rhat - R per shell. The truth file holds 'Truth' or 'DistributionParameters'. With several "
        "answers (or --tsv) one row per answer: the workflow's results/score.tsv.",
    )
    p.add_argument("answers", nargs="+", metavar="ANSWER", help="HDF5 file(s) with an 'Answer' dataset")
    p.add_argument("truth", metavar="TRUTH", help="HDF5 file with a 'Truth' or 'DistributionParameters' dataset")
    p.add_argument("--names", nargs="+", metavar="NAME", help="row names of the answers (default: their paths)")
    p.add_argument("--tsv", metavar="OUT", help="write the table as TSV (method, d_j..., sum, dR_j...) to OUT")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def format_table(result):
    """Plain-text table of a :func:`sevi_lib.core.score.score` result."""
    lines = ["shell  distance   Rhat-R"]
    for j, (d, dr) in enumerate(zip(result["distance"], result["dR"])):
        lines.append(f"{j:5d}  {d:8.5f}  {dr:+.5f}")
    lines.append(f"  sum  {result['total']:8.5f}")
    return "\n".join(lines)


def format_tsv(names, results):
    """TSV with one row per answer: method, d_0 .. d_{K-1}, sum, dR_0 .. dR_{K-1}."""
    k = len(results[0]["distance"])
    rows = ["\t".join(["method", *(f"d_{j}" for j in range(k)), "sum", *(f"dR_{j}" for j in range(k))])]
    for name, res in zip(names, results):
        rows.append("\t".join([name, *(f"{v:.6f}" for v in [*res["distance"], res["total"], *res["dR"]])]))
    return "\n".join(rows) + "\n"


def run(args):
    from sevi_lib.core.errors import InputError
    from sevi_lib.core.io import check_outputs, read_answer, read_truth, write_text
    from sevi_lib.core.score import score

    names = args.names or args.answers
    if len(names) != len(args.answers):
        raise InputError(f"--names: {len(names)} names for {len(args.answers)} answers")
    if args.tsv:
        check_outputs([args.tsv], [*args.answers, args.truth])
    truth = read_truth(args.truth)
    results = [score(read_answer(a), truth, path=a, truth_path=args.truth) for a in args.answers]
    if args.tsv:
        write_text(args.tsv, format_tsv(names, results))
    for name, res in zip(names, results):
        if args.json:
            print(json.dumps(res if len(results) == 1 else {"method": name, **res}, indent=2))
        else:
            print(format_table(res) if len(results) == 1 else f"{name}\n{format_table(res)}")
    return 0
