# Runtime shared by every mmmoma config: mmpretrain's default runtime plus
# the mmmoma plugin import and what makes training survive faults (README,
# "What survives what").
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # write to <name>.partial, rename, update last_checkpoint, and only then
    # delete old checkpoints: a kill never leaves nothing to resume from
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # a non-finite loss / gradient norm stops training (non-zero exit)
    # before the optimizer step and before any checkpoint is written;
    # max_skipped_steps=N skips up to N bad steps instead, logged
    non_finite_guard=dict(type='NonFiniteGuardHook', max_skipped_steps=0),
    # model.check_train_loader(...) (e.g. MimCo's queue tiling) before the
    # first iteration
    train_loader_check=dict(type='TrainLoaderCheckHook'),
)
# Stores python / numpy / torch RNG states in checkpoints so that --resume
# continues exactly where the interrupted run was.
custom_hooks = [dict(type='RNGStateHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
# different seeds per rank: each GPU draws its own masks / augmentations
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
