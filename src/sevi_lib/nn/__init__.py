"""The network method: synthetic training data, training, and the network's answer.

The only package that imports torch, and only in the modules marked (torch) below, each when it
is imported; ``import sevi_lib.nn`` imports nothing, so commands that merely parse their options
(``sevi train --help``, ``sevi nn synth``, ``sevi nn prior``) never load torch.

Modules
-------
``settings``     (no torch) ``TrainConfig`` (every training setting, with its one default;
                 ``from_dict``, ``coerce``), ``SynthSettings`` (the synthesis settings of
                 ``sevi nn synth``), ``lr_factor`` (the learning-rate schedule), ``RESUME_FREE``,
                 ``config_conflicts``, ``ARCHS``, ``FREEZE_PARTS``
``priors``       ``Prior`` (K shells: two for pretraining, the first pass's K for fine-tuning),
                 ``pretrain_prior``, ``finetune_prior``, ``sample`` -> ``Draw``,
                 ``summarize`` (acceptance rates of ``sevi nn prior``)
``views``        ``View``, ``apply_view``, ``downsample``: what the network sees of a count map
``synth``        synthesis shards: ``synthesize``, ``write_shard`` (``sevi nn synth``),
                 ``simulate_maps``, ``detector_map`` (through the data's camera survey when
                 given), ``camera_attrs``, ``shard_rng``, ``read_shard_attrs``
``inputs``       the user files of the stage, validated where they enter: ``read_first_pass``
                 (K rows), ``read_radii``, ``read_centre`` (the fit sidecar's image centre),
                 ``check_prediction``, ``stage_prior``
``centre``       ``recentred_map``, ``centre_map_file``: the real map recentred on the fitted
                 image centre, the network's input (``sevi nn centre-map``; no offsets learnt)
``data``         (torch) ``ShardDataset`` (shards as a torch Dataset), ``EpochSampler`` (the
                 sample order of an epoch, a function of (seed, epoch)), ``decode_view``
``network``      (torch) ``build_model`` -> ``BetaResNet``, ``freeze_parameters``,
                 ``count_parameters``
``loss``         (torch) ``score_loss``, ``shell_distances``: the grader's distance as the loss
``device``       (torch) ``resolve_device``, ``sync``, ``autocast``
``checkpoint_io`` (torch) ``weights_payload``, ``save_payload``, ``load_payload``,
                 ``load_checkpoint``: the checkpoint files
``inference``    (torch) ``evaluate``, ``predict``, ``run_model``: a network applied to inputs
``trainer``      (torch) ``train`` (one ``_Run``: setup, resume, epochs, validation, checkpoints),
                 ``TrainingInterrupted``
``checkpoints``  (torch) ``list_checkpoints``, ``checkpoint_table``, ``best_checkpoint``,
                 ``compare_checkpoints`` (``sevi checkpoints``)
``predict``      ``radii_from_map``, ``predict_answer`` and ``predict_file`` (``sevi nn predict``;
                 torch only when a network is applied)
``rundir``       ``prepare_run_dir``: keep a run folder for resuming, or empty it when its
                 settings or inputs changed (``sevi nn run-dir``)
``gpu_slot``     ``visible_devices``, ``gpu_slot``, ``run_on_slot``: one GPU per job (``sevi nn gpu-run``)

Nothing is imported here; import the module you need.
"""
