# Shared helpers: where the frames and the truth come from, which answers exist, final targets,
# the start-of-run checks of the input files, and the one way a config section reaches a command.
#
# test_images empty -> the embedded default: `simulate` synthesises results/simulate/frames.h5
# and its truth results/simulate/truth.h5 from the config's `simulation:` section, and every
# answer is scored against that truth. test_images set -> those frames; scored only if `truth`
# is set too.

import json
import shlex
import sys

from sevi_lib._workflow import check_input_file, file_identity
from sevi_lib.core.errors import InputError

SIM_FRAMES = "results/simulate/frames.h5"
SIM_TRUTH = "results/simulate/truth.h5"


def _refuse(message):
    """One line `sevi: error: ...` and exit status 2, before any job runs."""
    print(f"sevi: error: {message}", file=sys.stderr)
    sys.exit(2)


#: method name -> its Answer file (the methods of config["answer"]["methods"] only)
ANSWERS = {
    method: path
    for method, path in {"fit": "results/answer/fit.h5", "nn": "results/answer/nn.h5"}.items()
    if method in config["answer"]["methods"]
}
if config["answer"]["method"] not in ANSWERS:
    _refuse(f"config answer.method: {config['answer']['method']!r} is not among answer.methods {list(ANSWERS)}")

# the user's files are checked once, here, so that a missing or wrong file stops the run at once
for _key, _datasets in (("test_images", ["FinalImage"]), ("truth", ["Truth", "DistributionParameters"])):
    if config.get(_key):
        try:
            check_input_file(_key, config[_key], _datasets)
        except InputError as exc:
            _refuse(exc)


def test_images():
    """The test file: config["test_images"], or the synthesised default."""
    return config.get("test_images") or SIM_FRAMES


def truth_file():
    """The truth to score against: config["truth"], the default's own truth, or None."""
    if config.get("truth"):
        return config["truth"]
    return None if config.get("test_images") else SIM_TRUTH


def frames_identity():
    """Identity of a user's frames file (size + hash of its ends; '' for the simulated default).

    A detection param: another file at the same path, or new contents, reruns detection and
    everything after it. The simulated default needs none (it is an output of `simulate`).
    """
    return file_identity(config["test_images"]) if config.get("test_images") else ""


def settings_flags(mapping, skip=()):
    """A config section as `sevi` flags: `--field-name value` per key (the one way in).

    Scalars as written (booleans true/false), lists and mappings as JSON; every value quoted
    for the shell. The command builds its settings dataclass from exactly these flags
    (sevi_lib.cli._settings), so a key the dataclass does not know is refused there too.
    """
    flags = []
    for key, value in sorted(mapping.items()):
        if key in skip or value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple, dict)):
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            text = str(value)
        flags.append(f"--{key.replace('_', '-')} {shlex.quote(text)}")
    return " ".join(flags)


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
