"""Weighted kNN top-1 of the backbone features, logged during training."""
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mmmoma.evaluation.knn import (FEATURE_CHOICES, extract_features,
                                   weighted_knn_top1)
from mmmoma.models.utils.validation import one_of
from mmmoma.utils.rng import preserve_rng_state


@HOOKS.register_module()
class KNNEvalHook(Hook):
    """Log ``knn/top1``, the weighted kNN top-1 (%) of the backbone features.

    Every ``interval`` epochs (or iterations with ``by_epoch=False``) the
    runner's model (DDP wrapper removed) embeds the images of
    ``train_dataloader`` (the kNN memory bank) and of ``val_dataloader``
    (the queries) with :func:`~mmmoma.evaluation.extract_features`, and
    :func:`~mmmoma.evaluation.weighted_knn_top1` scores them. The value goes
    to ``runner.message_hub`` (scalar ``knn/top1``), to the visualizer
    backends (``scalars.json``, TensorBoard, ... with the epoch or iteration
    as step) and to the log as one line.

    Extraction runs in eval mode under ``torch.no_grad()``; the model's
    train/eval flags and the python / numpy / torch RNG states are restored,
    also around building the dataloaders, so the hook does not change the
    training run it observes (exact ``--resume`` keeps working).

    Multi-GPU: every rank extracts the features of its ``DefaultSampler``
    shard; the shards are all-gathered (padding removed) and every rank
    computes the same kNN score, so no rank waits on a rank-0-only step.

    Args:
        train_dataloader (dict): Dataloader config of the labelled memory
            bank, e.g. ``knn_train_dataloader`` of
            ``configs/_base_/datasets/digit_scenes_knn.py``.
        val_dataloader (dict): Dataloader config of the labelled queries.
        interval (int): Evaluate every ``interval`` epochs / iterations.
            Defaults to 1.
        by_epoch (bool): Count ``interval`` in epochs (True) or iterations.
            Defaults to True.
        k (int): Number of neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        feature (str): Pooling of token outputs, ``'auto'``, ``'cls'`` or
            ``'avg'`` (see :func:`~mmmoma.evaluation.pool_features`).
            Defaults to ``'auto'``.
        show_progress (bool): Progress bars while extracting.
            Defaults to False (they would clutter training logs).
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) writes the epoch

    def __init__(self,
                 train_dataloader: dict,
                 val_dataloader: dict,
                 interval: int = 1,
                 by_epoch: bool = True,
                 k: int = 20,
                 temperature: float = 0.07,
                 feature: str = 'auto',
                 show_progress: bool = False) -> None:
        for name, cfg in (('train_dataloader', train_dataloader),
                          ('val_dataloader', val_dataloader)):
            if not isinstance(cfg, dict):
                raise TypeError(f'KNNEvalHook.{name} must be a dataloader '
                                f'config dict, got {type(cfg).__name__}')
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'KNNEvalHook.interval must be an int >= 1, got '
                             f'{interval!r}')
        if k < 1:
            raise ValueError(f'KNNEvalHook.k must be >= 1, got {k}')
        if temperature <= 0:
            raise ValueError('KNNEvalHook.temperature must be > 0, got '
                             f'{temperature}')
        one_of(feature, FEATURE_CHOICES, 'KNNEvalHook.feature')
        self.train_dataloader_cfg = train_dataloader
        self.val_dataloader_cfg = val_dataloader
        self.interval = interval
        self.by_epoch = by_epoch
        self.k = k
        self.temperature = temperature
        self.feature = feature
        self.show_progress = show_progress
        self._dataloaders: Optional[tuple] = None

    def _build_dataloaders(self, runner) -> tuple:
        if self._dataloaders is None:
            seed = runner.seed if hasattr(runner, 'seed') else None
            with preserve_rng_state():
                self._dataloaders = (
                    runner.build_dataloader(
                        self.train_dataloader_cfg, seed=seed),
                    runner.build_dataloader(
                        self.val_dataloader_cfg, seed=seed))
        return self._dataloaders

    def evaluate(self, runner) -> float:
        """Extract features, score them and log ``knn/top1``.

        Returns:
            float: kNN top-1 accuracy in percent.
        """
        train_loader, val_loader = self._build_dataloaders(runner)
        train_feats, train_labels = extract_features(
            runner.model, train_loader, self.feature, self.show_progress)
        val_feats, val_labels = extract_features(runner.model, val_loader,
                                                 self.feature,
                                                 self.show_progress)
        top1 = weighted_knn_top1(train_feats, train_labels, val_feats,
                                 val_labels, self.k, self.temperature)
        step = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        runner.message_hub.update_scalar('knn/top1', top1)
        runner.visualizer.add_scalars({'knn/top1': top1}, step=step)
        unit = 'Epoch' if self.by_epoch else 'Iter'
        runner.logger.info(
            f'{unit}(knn) [{step}] knn/top1: {top1:.2f} (k={self.k}, '
            f'T={self.temperature}, {len(train_labels)} train / '
            f'{len(val_labels)} val images)')
        return top1

    def before_train(self, runner) -> None:
        from mmengine.runner import IterBasedTrainLoop
        if self.by_epoch and isinstance(runner.train_loop, IterBasedTrainLoop):
            raise ValueError(
                'KNNEvalHook(by_epoch=True) never fires under an iteration-'
                'based train loop; set by_epoch=False and interval in iters')

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self.evaluate(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self.evaluate(runner)
