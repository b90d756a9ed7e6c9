"""``sevi score ANSWER TRUTH``: the grader's per-shell distances."""

import json


def register(sub):
    p = sub.add_parser(
        "score", help="score an Answer file against a truth file",
        description="Per-shell distance d_j = sqrt(sum 2/(4i+1) (betahat - beta)^2), their sum, and "
        "Rhat - R per shell. The truth file holds 'Truth' or 'DistributionParameters'.",
    )
    p.add_argument("answer", help="HDF5 file with an 'Answer' dataset")
    p.add_argument("truth", help="HDF5 file with a 'Truth' or 'DistributionParameters' dataset")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def format_table(result):
    """Plain-text table of a :func:`sevi_lib.core.score.score` result."""
    lines = ["shell  distance   Rhat-R"]
    for j, (d, dr) in enumerate(zip(result["distance"], result["dR"])):
        lines.append(f"{j:5d}  {d:8.5f}  {dr:+.5f}")
    lines.append(f"  sum  {result['total']:8.5f}")
    return "\n".join(lines)


def run(args):
    from sevi_lib.core.io import read_answer, read_truth
    from sevi_lib.core.score import score

    result = score(read_answer(args.answer), read_truth(args.truth), path=args.answer, truth_path=args.truth)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
