"""kNN and linear probe of frozen features, over evaluation seeds.

Examples::

    CFG=configs/demo/mae_vit-tiny-p4_1xb128-100e_digit-scenes.py
    # backbone of a pre-training checkpoint, seeds 0 1 2
    python tools/frozen_eval.py $CFG work_dirs/mae/epoch_40.pth
    # a randomly initialised network: one network per seed
    python tools/frozen_eval.py $CFG --seeds 0 1 2
    # flattened, normalised pixels
    python tools/frozen_eval.py $CFG --raw-pixels

Both protocols share one feature extraction (tools/knn_eval.py's
``frozen_features``: model building, strict checkpoint loading, pooling):
the labelled set is ``knn_train_dataloader``, the held-out set
``knn_val_dataloader``.
For every evaluation seed, ``--labels-per-class`` labelled samples of every
class are drawn (:func:`mmmoma.evaluation.linear_probe.labelled_subset`);
the weighted kNN (k=20, cosine, T=0.07) and the logistic-regression probe
on standardised features are scored on the whole held-out set. Without a
checkpoint the seed also draws the network's initialisation. Prints one line
per seed and the mean ± std; ``--out`` writes every score as JSON.
"""
import argparse
import importlib.util
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

import mmmoma  # noqa: F401  (registers components, applies compat fixes)
from mmmoma.evaluation import weighted_knn_top1
from mmmoma.evaluation.knn import FEATURE_CHOICES
from mmmoma.evaluation.linear_probe import (labelled_subset, linear_probe_top1,
                                            summarize)


def _knn_tool():
    """tools/knn_eval.py as a module (its model building and loading)."""
    spec = importlib.util.spec_from_file_location(
        'mmmoma_knn_eval_tool', osp.join(osp.dirname(__file__),
                                         'knn_eval.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='checkpoint (any format tools/knn_eval.py reads); omitted: a '
        'random initialisation per seed')
    parser.add_argument('--prefix', default='backbone.')
    parser.add_argument('--allow-missing', nargs='+', default=[])
    parser.add_argument('--raw-pixels', action='store_true')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0, 1, 2],
        help='evaluation seeds (default 0 1 2)')
    parser.add_argument(
        '--labels-per-class', type=int, default=100,
        help='labelled samples per class drawn by each seed (default 100)')
    parser.add_argument('--k', type=int, default=20)
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument('--feature', choices=FEATURE_CHOICES, default='auto')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the scores to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def run_frozen_eval(cfg: Config,
                    checkpoint: Optional[str] = None,
                    raw_pixels: bool = False,
                    seeds: Sequence[int] = (0, 1, 2),
                    labels_per_class: int = 100,
                    k: int = 20,
                    temperature: float = 0.07,
                    feature: str = 'auto',
                    device: str = 'cpu',
                    prefix: str = 'backbone.',
                    allowed_missing: Sequence[str] = ()) -> Dict[str, object]:
    """Score ``cfg``'s backbone (or raw pixels) for every seed.

    Returns:
        dict: ``knn`` and ``linear``: per-seed top-1 (%) lists in ``seeds``
        order, their ``*_mean`` / ``*_std``, and the settings.
    """
    if not seeds:
        raise ValueError('--seeds needs at least one seed')
    tool = _knn_tool()

    def features(seed: int):
        train, val, _ = tool.frozen_features(cfg, checkpoint, raw_pixels,
                                             feature, seed, device, prefix,
                                             allowed_missing, False)
        return train, val

    # a checkpoint or pixels give the same features for every seed
    fixed = None if checkpoint is None and not raw_pixels else features(
        seeds[0])
    knn: List[float] = []
    linear: List[float] = []
    for seed in seeds:
        (train_x, train_y), (val_x, val_y) = fixed or features(seed)
        keep = labelled_subset(train_y, labels_per_class, seed)
        knn.append(weighted_knn_top1(train_x[keep], train_y[keep], val_x,
                                     val_y, k=k, temperature=temperature))
        linear.append(linear_probe_top1(train_x[keep], train_y[keep], val_x,
                                        val_y))
    result = dict(knn=knn, linear=linear, seeds=list(seeds))
    for name, scores in (('knn', knn), ('linear', linear)):
        stats = summarize(scores)
        result[f'{name}_mean'] = stats['mean']
        result[f'{name}_std'] = stats['std']
    result.update(
        features='raw pixels' if raw_pixels else (checkpoint or 'random init'),
        labels_per_class=labels_per_class, k=k, temperature=temperature,
        feature='pixels' if raw_pixels else feature,
        num_val=int(len(val_y)))
    return result


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    MMLogger.get_instance('mmmoma_frozen_eval', log_level='INFO')
    torch.set_grad_enabled(False)
    result = run_frozen_eval(cfg, args.checkpoint, args.raw_pixels,
                             args.seeds, args.labels_per_class, args.k,
                             args.temperature, args.feature, args.device,
                             args.prefix, args.allow_missing)
    for i, seed in enumerate(result['seeds']):
        print(f'seed {seed}: kNN top-1 {result["knn"][i]:.2f}  linear '
              f'top-1 {result["linear"][i]:.2f}')
    print(f'kNN top-1 {result["knn_mean"]:.2f} ± {result["knn_std"]:.2f}  '
          f'linear top-1 {result["linear_mean"]:.2f} ± '
          f'{result["linear_std"]:.2f}')
    result['config'] = args.config
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
