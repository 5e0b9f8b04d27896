"""Weighted kNN top-1 (k=20, cosine, T=0.07, as in DINO) of a model's features.

Examples::

    CFG=configs/demo/mae_vit-tiny-p4_1xb128-100e_digit-scenes.py
    # backbone of a pre-training checkpoint
    python tools/knn_eval.py $CFG work_dirs/mae/epoch_40.pth
    # the same model as init_weights() leaves it (random initialisation)
    python tools/knn_eval.py $CFG
    # flattened pixels, normalised by the config's data_preprocessor
    python tools/knn_eval.py $CFG --raw-pixels

The config must define ``knn_train_dataloader`` (memory bank) and
``knn_val_dataloader`` (queries), e.g. by inheriting
``configs/_base_/datasets/digit_scenes_knn.py``. Prints ``kNN top-1: XX.XX``
and, with ``--out``, writes the result as JSON. Runs in one process.
"""
import argparse
import copy
import json
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed
from torch import nn

import mmmoma  # noqa: F401  (registers components, applies compat fixes)
from mmmoma.checkpoints import load_backbone_weights
from mmmoma.evaluation import (extract_features, extract_raw_pixel_features,
                               weighted_knn_top1)
from mmmoma.evaluation.knn import FEATURE_CHOICES


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Weighted kNN top-1 of a model\'s backbone features')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='checkpoint: a training checkpoint (its backbone.* keys), a '
        'backbone-only file, or an official MAE / MoCo v3 release; '
        'omitted: random initialisation')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='sub-module of a training checkpoint to load into the backbone')
    parser.add_argument(
        '--allow-missing',
        nargs='+',
        default=[],
        metavar='PATTERN',
        help='fnmatch patterns of backbone keys the checkpoint may lack '
        '(e.g. "ln2.*" when a fine-tuning config adds fc_norm)')
    parser.add_argument(
        '--raw-pixels',
        action='store_true',
        help='use flattened, normalised pixels instead of a model')
    parser.add_argument('--k', type=int, default=20, help='neighbours')
    parser.add_argument(
        '--temperature', type=float, default=0.07, help='vote temperature')
    parser.add_argument(
        '--feature',
        choices=FEATURE_CHOICES,
        default='auto',
        help='pooling of (B, L, C) token outputs (auto: CLS token if the '
        'backbone has one, else the patch-token average)')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed (random initialisation)')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device to run the model on')
    parser.add_argument('--out', help='write the result to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (as in tools/train.py)')
    return parser.parse_args()


def load_backbone_checkpoint(model: nn.Module,
                             filename: str,
                             prefix: str = 'backbone.',
                             allowed_missing: Sequence[str] = ()) -> int:
    """Load the backbone weights of ``filename`` into ``model.backbone``.

    Used instead of ``init_weights`` (whose ``init_cfg`` might load other
    weights).

    Any format of :func:`mmmoma.checkpoints.load_backbone_state_dict` is
    read (mmpretrain / mmmoma training checkpoint, whose ``prefix`` keys are
    taken; backbone-only converter output; official MAE / MoCo v3 release).
    The load is strict: every backbone key must be provided (beyond the
    fnmatch patterns of ``allowed_missing``) and no unexpected or
    wrongly-shaped key is accepted. Other parts of the model (neck, head,
    momentum encoder) are not used for kNN and keep their initial weights.

    Returns:
        int: number of backbone tensors loaded.

    Raises:
        CheckpointFormatError: unrecognised file, or no key with ``prefix``.
        CheckpointMismatchError: missing / unexpected / mis-shaped keys, all
            named in the message.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise TypeError(f'{type(model).__name__} has no `backbone`; kNN '
                        'evaluation loads and uses the backbone only')
    return load_backbone_weights(
        backbone,
        filename,
        prefix=prefix,
        allowed_missing=allowed_missing,
        name=f'backbone from {filename}')


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` as mmengine's Runner does.

    A top-level ``data_preprocessor`` (the mmpretrain config convention) is
    merged into the model config unless the model sets its own, so that
    the inputs are normalised exactly as in training.
    """
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return MODELS.build(model_cfg)


def frozen_features(cfg: Config,
                    checkpoint: Optional[str] = None,
                    raw_pixels: bool = False,
                    feature: str = 'auto',
                    seed: int = 0,
                    device: str = 'cpu',
                    prefix: str = 'backbone.',
                    allowed_missing: Sequence[str] = (),
                    show_progress: bool = True) -> tuple:
    """The frozen features of ``cfg``'s kNN train and val sets.

    Builds the model (seeded by ``seed``), then initialises it
    (``checkpoint`` None), loads ``checkpoint`` strictly, or uses raw pixels;
    extracts the features of ``knn_train_dataloader`` and
    ``knn_val_dataloader``. Shared by this tool and tools/frozen_eval.py.

    Returns:
        tuple: ``((train_feats, train_labels), (val_feats, val_labels),
        source)``: (N, D) / (N,) and (M, D) / (M,) tensors, and a string
        naming where the features come from.
    """
    logger = MMLogger.get_current_instance()
    for field in ('knn_train_dataloader', 'knn_val_dataloader'):
        if field not in cfg:
            raise KeyError(
                f'the config defines no `{field}`; inherit '
                'configs/_base_/datasets/digit_scenes_knn.py or define it')
    if raw_pixels and checkpoint is not None:
        raise ValueError('--raw-pixels uses no model weights; do not pass a '
                         'checkpoint with it')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    set_random_seed(seed)
    model = build_model(cfg)
    if raw_pixels:
        source = 'raw pixels'
    elif checkpoint is None:
        model.init_weights()
        source = 'init_weights (no checkpoint)'
        logger.info(
            'no checkpoint given: evaluating the model as its init_weights() '
            f'leaves it (seed {seed}): random initialisation, unless the '
            "config's init_cfg itself loads pre-trained weights")
    else:
        load_backbone_checkpoint(model, checkpoint, prefix, allowed_missing)
        source = checkpoint
    model.to(device)

    train_loader = Runner.build_dataloader(cfg.knn_train_dataloader, seed=seed)
    val_loader = Runner.build_dataloader(cfg.knn_val_dataloader, seed=seed)
    if raw_pixels:
        train = extract_raw_pixel_features(train_loader,
                                           model.data_preprocessor)
        val = extract_raw_pixel_features(val_loader, model.data_preprocessor)
    else:
        train = extract_features(model, train_loader, feature, show_progress)
        val = extract_features(model, val_loader, feature, show_progress)
    return train, val, source


def run_knn_eval(cfg: Config,
                 checkpoint: Optional[str] = None,
                 raw_pixels: bool = False,
                 k: int = 20,
                 temperature: float = 0.07,
                 feature: str = 'auto',
                 seed: int = 0,
                 device: str = 'cpu',
                 prefix: str = 'backbone.',
                 allowed_missing: Sequence[str] = ()) -> Dict[str, object]:
    """Build the model and kNN dataloaders of ``cfg`` and score them.

    Args:
        cfg (Config): Config with ``model``, ``knn_train_dataloader`` and
            ``knn_val_dataloader``.
        checkpoint (str, optional): Backbone weights (see
            :func:`load_backbone_checkpoint`), loaded into the model as
            constructed (``init_weights`` is not run, so keys allowed to be
            missing keep their constructor values, e.g. LayerNorm = identity).
            None: the model after ``init_weights()`` (random initialisation
            unless the config's ``init_cfg`` loads weights).
        raw_pixels (bool): Score flattened pixels, normalised by the model's
            ``data_preprocessor``, instead of features.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        feature (str): Token pooling, see ``pool_features``.
        seed (int): Seed of the random initialisation and the loaders.
        device (str): Device of the model.
        prefix (str): Sub-module of a training checkpoint.
        allowed_missing (Sequence[str]): Backbone keys the checkpoint may lack.

    Returns:
        dict: ``top1`` (percent) and the settings that produced it.
    """
    train, val, source = frozen_features(cfg, checkpoint, raw_pixels,
                                         feature, seed, device, prefix,
                                         allowed_missing)
    top1 = weighted_knn_top1(*train, *val, k=k, temperature=temperature)
    return dict(
        top1=top1,
        features=source,
        k=k,
        temperature=temperature,
        feature='pixels' if raw_pixels else feature,
        num_train=len(train[1]),
        num_val=len(val[1]))


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    MMLogger.get_instance('mmmoma_knn_eval', log_level='INFO')
    result = run_knn_eval(cfg, args.checkpoint, args.raw_pixels, args.k,
                          args.temperature, args.feature, args.seed,
                          args.device, args.prefix, args.allow_missing)
    result['config'] = args.config
    print(f"kNN top-1: {result['top1']:.2f}")
    print('kNN result: ' + json.dumps(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
