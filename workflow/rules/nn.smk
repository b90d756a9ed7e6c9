# The network method (issue 5): synthesis shards -> pretraining -> fine-tuning rounds -> answer.
#
#   synth           one shard: results/nn/{stage}/data/{split}_{k}.h5
#                   stage pretrain: split val, round0; stage finetune: split val, round0 .. round{R-1}
#   pretrain        sevi train on the pretraining shards          -> results/nn/pretrain/run/best.pt
#   nn_first_pass   pretrained network on the real count map      -> results/nn/pretrain/answer.h5
#   finetune        round r starts from round r-1 (round 0 from the pretrained network), on that
#                   round's fresh shards drawn around the first-pass estimate (the fit's answer or
#                   the pretrained network's, nn.finetune.centre)  -> results/nn/finetune/round{r}/best.pt
#   predict         final network on the real count map           -> results/answer/nn.h5
#
# Training rules take `resources: gpu=1`; `sevi nn gpu-run` gives each a device of its own via
# per-device lock files (sevi_lib.nn.gpu_slot), so `--resources gpu=4` runs four on four GPUs.
# Every setting goes through params: training settings only into the training rules, so that
# editing one reruns training and prediction, not synthesis (with nn.finetune.centre: fit).

import json
import shlex

NN = config["nn"]
NN_COUNT_MAP = "results/detect/count_map.npy"
NN_FIT_ANSWER = "results/answer/fit.h5"
NN_STAGES = ("pretrain", "finetune")


def _nn_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _nn_rounds(stage):
    return int(NN[stage].get("rounds", 1)) if stage == "finetune" else 1


def nn_shards(stage, split):
    """Shard paths of one stage and split ('val' or 'round<r>')."""
    key = "val_shards" if split == "val" else "shards"
    return [f"results/nn/{stage}/data/{split}_{k}.h5" for k in range(int(NN[stage][key]))]


def nn_final_checkpoint():
    rounds = _nn_rounds("finetune")
    if rounds == 0:
        return "results/nn/pretrain/run/best.pt"
    return f"results/nn/finetune/round{rounds - 1}/best.pt"


def nn_first_pass_answer():
    return NN_FIT_ANSWER if NN["finetune"]["centre"] == "fit" else "results/nn/pretrain/answer.h5"


def _nn_uses_map(stage):
    return NN[stage]["prior"].get("electrons") == "map"


def _nn_synth_input(wildcards):
    out = {}
    if _nn_uses_map(wildcards.stage):
        out["count_map"] = NN_COUNT_MAP
    if wildcards.stage == "finetune":
        out["first_pass"] = nn_first_pass_answer()
    return out


def _nn_train_settings(stage):
    """Training settings of a stage: nn.train overridden by nn.<stage>.train."""
    settings = dict(NN["train"])
    settings.update(NN[stage].get("train") or {})
    return settings


def _nn_train_args(stage):
    return " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(_nn_train_settings(stage).items()))


def _nn_samples(wildcards):
    key = "val_samples_per_shard" if wildcards.split == "val" else "samples_per_shard"
    return int(NN[wildcards.stage][key])


wildcard_constraints:
    stage="pretrain|finetune",
    split=r"val|round\d+",
    k=r"\d+",
    r=r"\d+",


rule synth:
    input:
        unpack(_nn_synth_input),
    output:
        "results/nn/{stage}/data/{split}_{k}.h5",
    params:
        n=_nn_samples,
        prior=lambda w: _nn_json(NN[w.stage]["prior"]),
        view=_nn_json(NN["view"]),
        n_beta=NN["n_beta"],
        seed=NN["seed"],
        detector_fraction=NN["detector_fraction"],
        electrons_per_frame=NN["electrons_per_frame"],
        detector_params=_nn_json(NN.get("detector_params") or {}),
        first_pass=lambda w, input: f"--first-pass {input.first_pass}" if "first_pass" in input.keys() else "",
        count_map=lambda w, input: f"--count-map {input.count_map}" if "count_map" in input.keys() else "",
    threads: NN["synth_threads"]
    log:
        "results/logs/nn/synth_{stage}_{split}_{k}.log",
    benchmark:
        "results/benchmarks/nn/synth_{stage}_{split}_{k}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi nn synth {output} --stage {wildcards.stage} --n {params.n} --seed {params.seed} "
        "--key {wildcards.stage}/{wildcards.split}/{wildcards.k} --prior {params.prior:q} --view {params.view:q} "
        "--n-beta {params.n_beta} {params.first_pass} {params.count_map} "
        "--detector-fraction {params.detector_fraction} --electrons-per-frame {params.electrons_per_frame} "
        "--detector-params {params.detector_params:q} --threads {threads} > {log} 2>&1"


rule pretrain:
    input:
        train=nn_shards("pretrain", "round0"),
        val=nn_shards("pretrain", "val"),
    output:
        best="results/nn/pretrain/run/best.pt",
        metrics="results/nn/pretrain/run/metrics.csv",
    params:
        run_dir="results/nn/pretrain/run",
        settings=_nn_train_args("pretrain"),
        key=_nn_json(_nn_train_settings("pretrain")),
        locks=NN["gpu_lock_dir"],
    threads: NN["train_threads"]
    resources:
        gpu=1,
    log:
        "results/logs/nn/pretrain.log",
    benchmark:
        "results/benchmarks/nn/pretrain.tsv"
    shell:
        "(sevi nn run-dir {params.run_dir} --key {params.key:q} --inputs {input} && "
        "sevi nn gpu-run --lock-dir {params.locks} -- sevi train --train {input.train} --val {input.val} "
        "--run-dir {params.run_dir} {params.settings} --threads {threads} --no-progress) > {log} 2>&1"


rule nn_first_pass:
    input:
        checkpoint="results/nn/pretrain/run/best.pt",
        count_map=NN_COUNT_MAP,
    output:
        "results/nn/pretrain/answer.h5",
    params:
        view=_nn_json(NN["view"]),
        device=NN["predict"]["device"],
    log:
        "results/logs/nn/first_pass.log",
    shell:
        "sevi nn predict {input.checkpoint} {input.count_map} --out {output} --view {params.view:q} "
        "--device {params.device} > {log} 2>&1"


def _nn_finetune_init(wildcards):
    r = int(wildcards.r)
    return "results/nn/pretrain/run/best.pt" if r == 0 else f"results/nn/finetune/round{r - 1}/best.pt"


rule finetune:
    input:
        init=_nn_finetune_init,
        train=lambda w: nn_shards("finetune", f"round{w.r}"),
        val=nn_shards("finetune", "val"),
    output:
        best="results/nn/finetune/round{r}/best.pt",
        metrics="results/nn/finetune/round{r}/metrics.csv",
    params:
        run_dir="results/nn/finetune/round{r}",
        settings=_nn_train_args("finetune"),
        key=_nn_json(_nn_train_settings("finetune")),
        locks=NN["gpu_lock_dir"],
    threads: NN["train_threads"]
    resources:
        gpu=1,
    log:
        "results/logs/nn/finetune_round{r}.log",
    benchmark:
        "results/benchmarks/nn/finetune_round{r}.tsv"
    shell:
        "(sevi nn run-dir {params.run_dir} --key {params.key:q} --inputs {input} && "
        "sevi nn gpu-run --lock-dir {params.locks} -- sevi train --train {input.train} --val {input.val} "
        "--run-dir {params.run_dir} {params.settings} --init-from {input.init} --threads {threads} "
        "--no-progress) > {log} 2>&1"


rule predict:
    input:
        unpack(lambda w: {"checkpoint": nn_final_checkpoint(), "count_map": NN_COUNT_MAP,
                          **({"radii": NN_FIT_ANSWER} if NN["predict"]["radii"] == "fit" else {})}),
    output:
        "results/answer/nn.h5",
    params:
        view=_nn_json(NN["view"]),
        device=NN["predict"]["device"],
        radii=lambda w, input: f"--radii-from {input.radii}" if "radii" in input.keys() else "",
    log:
        "results/logs/nn/predict.log",
    shell:
        "sevi nn predict {input.checkpoint} {input.count_map} --out {output} --view {params.view:q} "
        "--device {params.device} {params.radii} > {log} 2>&1"
