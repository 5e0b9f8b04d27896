"""Let the model reject a training data loader before the first step."""
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .utils import unwrapped_model

__all__ = ['TrainLoaderCheckHook']


@HOOKS.register_module()
class TrainLoaderCheckHook(Hook):
    """Call ``model.check_train_loader`` at ``before_train``.

    Some constraints tie the model to the data loader and cannot be checked
    when the model is built, e.g. MimCo's key queues must be tiled by the
    global batch (``queue_length % (batch_size * world_size) == 0``) and
    must never see a partial last batch. Any model may opt in by defining::

        def check_train_loader(self, batch_size: int, world_size: int,
                               drop_last: bool, dataset_size: int) -> None

    which raises (naming the config fields) on a bad combination. This hook
    passes the built train loader's values, so the error comes before the
    first iteration instead of inside it. Models without the method are
    left alone.
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = unwrapped_model(runner)
        check = getattr(model, 'check_train_loader', None)
        if check is None:
            return
        loader = runner.train_loop.dataloader
        batch_size = loader.batch_size
        drop_last = loader.drop_last
        if batch_size is None:  # a batch_sampler config
            batch_size = getattr(loader.batch_sampler, 'batch_size', None)
            drop_last = getattr(loader.batch_sampler, 'drop_last', drop_last)
        check(
            batch_size=int(batch_size),
            world_size=get_world_size(),
            drop_last=bool(drop_last),
            dataset_size=len(loader.dataset))
