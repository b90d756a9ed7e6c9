# The network method (issue 5): synthesis shards -> pretraining -> fine-tuning rounds -> answer.
#
#   centre_map      the detected electrons binned around the image centre the fit found (the
#                   network's input is recentred; it does not learn offsets) -> results/nn/count_map.npy
#   synth           one shard: results/nn/{stage}/data/{split}_{k}.h5
#                   stage pretrain: split val, round0; stage finetune: split val, calib and, per
#                   member m, m{m}_round0 .. m{m}_round{R-1} (each member its own shards)
#                   with nn.detector_fraction > 0 its detector-like maps go through the data's
#                   camera (input results/detect/camera.json, `--camera`); at 0 (the default) the
#                   shards do not depend on the survey
#   pretrain        sevi train on the pretraining shards          -> results/nn/pretrain/run/best.pt
#   nn_first_pass   pretrained network on the real count map      -> results/nn/pretrain/answer.h5
#   finetune        member m (of nn.members, training seed nn.train.seed + m), round r starts from
#                   its round r-1 (round 0 from the pretrained network), on that member's fresh
#                   shards of the round drawn around the first-pass estimate (the fit's answer or
#                   the pretrained network's, nn.finetune.centre) -> results/nn/finetune/m{m}/round{r}/best.pt
#   predict         the ensemble on the real count map and the calib shards (sevi nn ensemble):
#                   mean, standard errors and, with nn.combine, the mean shrunk towards the fit
#                   it was centred on -> results/answer/nn.h5, nn.json
#
# Training rules take `resources: gpu=1`; `sevi nn gpu-run` gives each a device of its own via
# per-device lock files (sevi_lib.nn.gpu_slot), so `--resources gpu=4` trains four members at
# once on four GPUs (and a SLURM cluster runs them as separate jobs).
# Every setting goes through params: training settings only into the training rules, so that
# editing one reruns training and prediction, not synthesis (with nn.finetune.centre: fit).
# Settings reach the commands one way: one `--field-name value` flag per field of the command's
# settings dataclass (SynthSettings for `sevi nn synth`, TrainConfig for `sevi train`), rendered
# by settings_flags. Every path is quoted (`:q`, or shlex.quote where a param builds a flag).

import json
import shlex

NN = config["nn"]
NN_COUNT_MAP = "results/nn/count_map.npy"
NN_FIT_ANSWER = "results/answer/fit.h5"
NN_STAGES = ("pretrain", "finetune")


wildcard_constraints:
    stage="pretrain|finetune",
    split=r"val|calib|round\d+|m\d+_round\d+",
    k=r"\d+",
    r=r"\d+",
    m=r"\d+",


rule centre_map:
    input:
        electrons="results/detect/electrons.h5",
        sidecar="results/answer/fit.json",
    output:
        NN_COUNT_MAP,
    log:
        "results/logs/nn/centre_map.log",
    shell:
        "NUMBA_NUM_THREADS=1 sevi nn centre-map {input.electrons:q} --fit-sidecar {input.sidecar:q} --out {output:q} > {log:q} 2>&1"


rule synth:
    input:
        unpack(lambda w: {**_nn_synth_input(w),
                          **({"camera": "results/detect/camera.json"} if float(NN["detector_fraction"]) > 0 else {})}),
    output:
        "results/nn/{stage}/data/{split}_{k}.h5",
    params:
        n=_nn_samples,
        seed=NN["seed"],
        settings=lambda w: settings_flags(_nn_synth_settings(w.stage)),
        first_pass=lambda w, input: _nn_flag("--first-pass", input, "first_pass"),
        first_pass_se=lambda w, input: _nn_flag("--first-pass-se", input, "first_pass_se"),
        count_map=lambda w, input: _nn_flag("--count-map", input, "count_map"),
        camera=lambda w, input: _nn_flag("--camera", input, "camera"),
    threads: NN["synth_threads"]
    log:
        "results/logs/nn/synth_{stage}_{split}_{k}.log",
    benchmark:
        "results/benchmarks/nn/synth_{stage}_{split}_{k}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi nn synth {output:q} --stage {wildcards.stage} --n {params.n} "
        "--seed {params.seed} --key {wildcards.stage}/{wildcards.split}/{wildcards.k} {params.settings} "
        "{params.first_pass} {params.first_pass_se} {params.count_map} {params.camera} --threads {threads} "
        "> {log:q} 2>&1"


rule pretrain:
    input:
        train=nn_shards("pretrain", "round0"),
        val=nn_shards("pretrain", "val"),
    output:
        best="results/nn/pretrain/run/best.pt",
        metrics="results/nn/pretrain/run/metrics.csv",
        loss=report("results/nn/pretrain/run/loss.png", caption="../report/training.rst", category="3. Network",
                    subcategory="pretrain"),
    params:
        run_dir=lambda w, output: os.path.dirname(output.best),
        settings=settings_flags(_nn_train_settings("pretrain")),
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
        "(sevi nn run-dir {params.run_dir:q} --key {params.key:q} --inputs {input:q} && "
        "sevi nn gpu-run --lock-dir {params.locks:q} -- sevi train --train {input.train:q} --val {input.val:q} "
        "--run-dir {params.run_dir:q} {params.settings} --threads {threads} --progress false) > {log:q} 2>&1"


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
        "sevi nn predict {input.checkpoint:q} {input.count_map:q} --out {output:q} --view {params.view:q} "
        "--device {params.device:q} > {log:q} 2>&1"


rule finetune:
    input:
        init=_nn_finetune_init,
        train=lambda w: nn_shards("finetune", f"m{w.m}_round{w.r}"),
        val=nn_shards("finetune", "val"),
    output:
        best="results/nn/finetune/m{m}/round{r}/best.pt",
        metrics="results/nn/finetune/m{m}/round{r}/metrics.csv",
        loss=report("results/nn/finetune/m{m}/round{r}/loss.png", caption="../report/training.rst",
                    category="3. Network", subcategory="member {m}, fine-tuning round {r}"),
    params:
        run_dir=lambda w, output: os.path.dirname(output.best),
        settings=lambda w: settings_flags(_nn_member_settings(w.m)),
        key=lambda w: _nn_json(_nn_member_settings(w.m)),
        locks=NN["gpu_lock_dir"],
    threads: NN["train_threads"]
    resources:
        gpu=1,
    log:
        "results/logs/nn/finetune_m{m}_round{r}.log",
    benchmark:
        "results/benchmarks/nn/finetune_m{m}_round{r}.tsv"
    shell:
        "(sevi nn run-dir {params.run_dir:q} --key {params.key:q} --inputs {input:q} && "
        "sevi nn gpu-run --lock-dir {params.locks:q} -- sevi train --train {input.train:q} --val {input.val:q} "
        "--run-dir {params.run_dir:q} {params.settings} --init-from {input.init:q} --threads {threads} "
        "--progress false) > {log:q} 2>&1"


rule predict:
    input:
        unpack(lambda w: {"checkpoints": nn_member_checkpoints(), "count_map": NN_COUNT_MAP,
                          "calib": nn_shards("finetune", "calib"),
                          **({"radii": NN_FIT_ANSWER} if NN["predict"]["radii"] == "fit" else {}),
                          **({"prior": "results/answer/fit.json"} if nn_combines() else {})}),
    output:
        answer="results/answer/nn.h5",
        sidecar="results/answer/nn.json",
    params:
        view=_nn_json(NN["view"]),
        device=NN["predict"]["device"],
        radii=lambda w, input: _nn_flag("--radii-from", input, "radii"),
        prior=lambda w, input: _nn_flag("--prior-sidecar", input, "prior"),
    log:
        "results/logs/nn/predict.log",
    benchmark:
        "results/benchmarks/nn/predict.tsv"
    shell:
        "sevi nn ensemble {input.checkpoints:q} --count-map {input.count_map:q} --calib {input.calib:q} "
        "--out {output.answer:q} --sidecar {output.sidecar:q} --view {params.view:q} --device {params.device:q} "
        "{params.radii} {params.prior} > {log:q} 2>&1"
