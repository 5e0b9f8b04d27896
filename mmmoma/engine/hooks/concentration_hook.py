"""Monitor training by the von Mises–Fisher concentration κ of the chunk
representations of each image (M-MoCo §3.4, Fig. 6)."""
import logging
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS
from torch import Tensor

from mmmoma.models.utils.von_mises_fisher import vmf_concentration

from .utils import algorithm_with


@HOOKS.register_module()
class ConcentrationMonitorHook(Hook):
    """Log the concentration κ of each image's chunk representations.

    A masked algorithm (``MaskedMoCoV3``, ``MaskedBYOL``) splits each image
    into n chunks and encodes every chunk, so each image yields n
    representations. M-MoCo §3.4 normalises them to unit vectors, treats
    them as samples of a von Mises–Fisher distribution and estimates its
    concentration by Banerjee et al. (2005), with R̄ the length of the mean
    unit vector in d dimensions::

        κ ≈ R̄ (d − R̄²) / (1 − R̄²)

    (:func:`~mmmoma.models.utils.von_mises_fisher.vmf_concentration`).
    Large κ: the n chunks of an image are mapped to nearly the same
    direction; κ → 0: they spread over the sphere. The hook averages κ over
    the images of the batch (and over processes in distributed training) and
    logs it as ``train/kappa_<key>`` for each representation the model
    records:

    * ``'rep'``: the average-pooled output of the last transformer block
      (CLS excluded);
    * ``'projector'``: the projection head's output;
    * ``'predictor'``: the prediction head's output.

    The paper's use (Fig. 6): with BatchNorm in the heads, κ of ``'rep'``
    is unstable across steps (and grows 5-10x with larger batches), while
    κ after the projector and the predictor stays smooth, as does the loss.
    So the instability of a BN run shows at ``'rep'``, where neither the
    loss nor the later κ reveal it; LayerNorm heads keep it stable.

    κ is a relative signal: watch how it moves during training. With few
    chunks the estimate is biased upwards (R̄ of n samples overshoots), and
    even chunks in uniformly random directions give R̄ ≈ 1/√n, i.e.
    κ ≈ d/√n (≈ 100 for n = 8 chunks of 256-d projections).

    Every ``interval``-th training iteration the hook sets
    ``model.record_chunk_features = True`` before the iteration; the model
    then stores detached ``(B', n, d)`` features (B' = images x views) in
    ``model.chunk_features``, a dict keyed by the names above, which the
    hook reads, logs and resets to ``None`` after the iteration. Other
    iterations record nothing and cost nothing. The monitored iterations
    follow mmengine's ``every_n_train_iters``: the 0-based global iterations
    ``interval - 1``, ``2 * interval - 1``, ...

    The hook runs before ``LoggerHook`` (priority ``NORMAL`` vs
    ``BELOW_NORMAL``), so κ appears in the log line of the iteration it was
    measured in. ``LoggerHook`` prints the latest value of each scalar, so
    choose ``interval`` as a multiple of the logger's interval: then every κ
    reaches the log (and the visualiser), and lines in between repeat the
    last κ. (In an epoch-based loop the logger counts the iterations within
    each epoch, this hook the global ones.)

    With one online chunk per image (``model.num_chunks == 1``: MoCo v3 /
    BYOL, the n = 1 rows of Tables 1-2) κ is undefined; the hook then logs
    one line at ``before_train`` saying so and stays idle for the whole run
    (nothing recorded, nothing logged), so a config family that loads the
    hook can run its n = 1 ablations unchanged. A model without the
    chunk-recording interface (not M-MoCo-like at all) is still an error.

    Add it to a config with::

        custom_hooks = [..., dict(type='ConcentrationMonitorHook',
                                  interval=50)]

    Args:
        interval (int): monitor every ``interval`` training iterations, a
            positive int. Defaults to 50.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 50) -> None:
        if (not isinstance(interval, int) or isinstance(interval, bool)
                or interval < 1):
            raise ValueError(
                'ConcentrationMonitorHook.interval must be a positive int '
                f'(iterations between measurements), got {interval!r}')
        self.interval = interval
        #: False after ``before_train`` found one chunk per image
        self.active = True

    @staticmethod
    def _algorithm(runner) -> torch.nn.Module:
        """The (unwrapped) model, checked for the chunk-recording
        interface."""
        return algorithm_with(
            runner, 'ConcentrationMonitorHook',
            'that records its chunk features',
            ('num_chunks', 'record_chunk_features', 'chunk_features'),
            'MaskedMoCoV3 or MaskedBYOL')

    def before_train(self, runner) -> None:
        model = self._algorithm(runner)
        self.active = model.num_chunks >= 2
        if not self.active:
            print_log(
                'ConcentrationMonitorHook is skipped in this run: '
                f'model.num_chunks = {model.num_chunks} gives one '
                'representation per image, whose vMF concentration κ is '
                'undefined (it needs n >= 2 chunks); no train/kappa_* '
                'scalars are logged',
                logger='current',
                level=logging.INFO)
        model.record_chunk_features = False
        model.chunk_features = None

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if not self.active:
            return
        model = self._algorithm(runner)
        monitored = self.every_n_train_iters(runner, self.interval)
        model.record_chunk_features = monitored
        if monitored:  # features found afterwards come from this iteration
            model.chunk_features = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.active or not self.every_n_train_iters(
                runner, self.interval):
            return
        model = self._algorithm(runner)
        chunk_features: Optional[Dict[str, Tensor]] = model.chunk_features
        if not chunk_features:
            raise RuntimeError(
                f'{type(model).__name__} did not record its chunk features: '
                'ConcentrationMonitorHook set record_chunk_features=True '
                f'before iteration {runner.iter}, but model.chunk_features '
                f'is {chunk_features!r} after it; the forward pass must '
                'store the detached (B\', n, d) features when the flag is '
                'set')
        for name, kappa in self.concentrations(chunk_features).items():
            runner.message_hub.update_scalar(f'train/kappa_{name}', kappa)
        model.chunk_features = None
        model.record_chunk_features = False

    @staticmethod
    @torch.no_grad()
    def concentrations(chunk_features: Dict[str, Tensor]) -> Dict[str, float]:
        """κ per image, averaged over the images and then the processes.

        Args:
            chunk_features (dict[str, Tensor]): name -> (B', n, d) features,
                the n chunk representations of B' images.

        Returns:
            dict[str, float]: name -> mean κ, the same on every process.
        """
        names = sorted(chunk_features)  # the same reduction order everywhere
        mean_kappas = torch.stack([
            vmf_concentration(chunk_features[name].detach()).mean()
            for name in names
        ])  # (num_names, )
        all_reduce(mean_kappas, op='mean')  # no-op in a single process
        return dict(zip(names, mean_kappas.tolist()))
