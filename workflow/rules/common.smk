# Shared helpers: where the frames and the truth come from, which answers exist, final targets.
#
# test_images empty -> the embedded default: `simulate` synthesises results/simulate/frames.h5
# and its truth results/simulate/truth.h5 from the config's `simulation:` section, and every
# answer is scored against that truth. test_images set -> those frames; scored only if `truth`
# is set too.

SIM_FRAMES = "results/simulate/frames.h5"
SIM_TRUTH = "results/simulate/truth.h5"

#: method name -> its Answer file (the methods of config["answer"]["methods"] only)
ANSWERS = {
    method: path
    for method, path in {"fit": "results/answer/fit.h5", "nn": "results/answer/nn.h5"}.items()
    if method in config["answer"]["methods"]
}
if config["answer"]["method"] not in ANSWERS:
    raise ValueError(
        f"config: answer.method {config['answer']['method']!r} is not among answer.methods {list(ANSWERS)}"
    )


def test_images():
    """The test file: config["test_images"], or the synthesised default."""
    return config["test_images"] or SIM_FRAMES


def truth_file():
    """The truth to score against: config["truth"], the default's own truth, or None."""
    if config["truth"]:
        return config["truth"]
    return None if config["test_images"] else SIM_TRUTH


def final_targets():
    """Everything `rule all` asks for."""
    targets = [
        "results/final.h5",
        "results/detect/count_map.png",
        "results/detect/summary.txt",
        *ANSWERS.values(),
        "results/report.md",
    ]
    if "fit" in ANSWERS:
        targets.append("results/answer/fit.png")
    if truth_file():
        targets.append("results/score.tsv")
    return targets
