"""A frozen, pre-trained teacher network (MOMA, MimCo)."""
import pickle
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from torch import nn

from mmmoma.checkpoints import (CheckpointFormatError, CheckpointMismatchError,
                                load_backbone_weights, load_state_dict_strict,
                                with_context)

#: Errors of reading a teacher's checkpoint, re-raised (same type) with the
#: config key of the checkpoint prefixed.
_CHECKPOINT_ERRORS = (CheckpointFormatError, CheckpointMismatchError,
                      FileNotFoundError, pickle.UnpicklingError)

_READ_CHECKPOINTS = [True]


@contextmanager
def teachers_without_weights() -> Iterator[None]:
    """Build ``FrozenTeacher`` s without reading their checkpoints.

    For tools that use only a model's structure and hyper-parameters (the
    masking visualiser): inside the context a teacher keeps its network's
    random initial weights (frozen as usual), its ``checkpoint`` may be
    unset or missing, and the log says that nothing was loaded. Never used
    in training.
    """
    _READ_CHECKPOINTS.append(False)
    try:
        yield
    finally:
        _READ_CHECKPOINTS.pop()


@MODELS.register_module()
class FrozenTeacher(nn.Module):
    """Wrap a pre-trained network so that training can never change it.

    The network is built from ``network`` and loaded from ``checkpoint`` at
    construction (official MAE / MoCo v3 release, an mmpretrain / mmmoma
    training checkpoint, or a converted backbone file; see
    ``mmmoma.checkpoints``). Loading is strict: a missing
    file, or any expected key left unloaded, raises an error naming it.

    The network is deliberately *not* registered as a sub-module, so that:

    * its parameters are not in ``model.parameters()``: never in the
      optimizer, never touched by DDP gradient sync or by EMA hooks;
    * parent ``init_weights`` / ``init_cfg`` initialisers cannot overwrite the
      loaded weights (mmengine recurses into registered children);
    * it is left out of ``state_dict()`` and so out of saved training
      checkpoints (a ViT-L teacher is 1.2 GB); on resume it is rebuilt from
      its own checkpoint. Set ``save_in_checkpoint=True`` to keep it there.

    Device / dtype moves (``model.to``, ``.cuda()``, ``.half()``) still reach
    it, it stays in eval mode whatever ``train()`` is called with, all its
    parameters have ``requires_grad=False``, and :meth:`forward` runs under
    ``torch.no_grad()``.

    Args:
        network (dict): config of the teacher network (e.g. a ``MaskedViT``).
        checkpoint (str): path of the teacher's weights.
        checkpoint_prefix (str): sub-module to take from a training
            checkpoint, e.g. ``'backbone.'``. Defaults to ``'backbone.'``.
        allowed_missing (Sequence[str]): fnmatch patterns of network keys the
            checkpoint may lack (e.g. ``'ln2.*'``). Defaults to none.
        save_in_checkpoint (bool): also write the weights into the state
            dict of the enclosing model. Defaults to False.
        config_key (str): the config key of ``checkpoint``, named in every
            checkpoint error (which keeps its type: ``FileNotFoundError``,
            ``CheckpointFormatError``, ``CheckpointMismatchError``, ...);
            the algorithms set it, e.g.
            ``'model.teachers.<name>.teacher.checkpoint'`` (MOMA).
            Defaults to ``'teacher.checkpoint'``.
        dtype (str, optional): hold the weights in this dtype and run the
            network in it, outside autocast: ``'bfloat16'`` or
            ``'float16'``. Floating-point inputs are cast to it and outputs
            back to the input's dtype. None (default): fp32 weights, and the
            network follows the surrounding autocast (which re-casts every
            weight at every step). Device moves keep the dtype; ``.float()``
            / ``.half()`` on the enclosing model do not change it. On a GPU
            without bf16 support ``'bfloat16'`` becomes ``'float16'`` (with a
            warning).
    """

    DTYPES = (None, 'bfloat16', 'float16')

    def __init__(self,
                 network: dict,
                 checkpoint: str,
                 checkpoint_prefix: str = 'backbone.',
                 allowed_missing: Sequence[str] = (),
                 save_in_checkpoint: bool = False,
                 config_key: str = 'teacher.checkpoint',
                 dtype: Optional[str] = None) -> None:
        super().__init__()
        if dtype not in self.DTYPES:
            dtype_key = config_key.rsplit('.', 1)[0] + '.dtype'
            raise ValueError(f'{dtype_key}={dtype!r}: a frozen teacher\'s '
                             f'dtype must be one of {self.DTYPES}')
        self.dtype = None if dtype is None else getattr(torch, dtype)
        if not checkpoint and _READ_CHECKPOINTS[-1]:
            raise ValueError(
                f'{config_key}={checkpoint!r}: FrozenTeacher needs the path '
                'of the pre-trained teacher weights; allowed: a checkpoint '
                'file (official MAE / MoCo v3 / MoBY release, mmpretrain '
                'training checkpoint or converted backbone file)')
        self.config_key = config_key
        self.checkpoint = checkpoint
        self.checkpoint_prefix = checkpoint_prefix
        self.allowed_missing = tuple(allowed_missing)
        self.save_in_checkpoint = save_in_checkpoint
        # object.__setattr__ bypasses nn.Module's sub-module registration.
        object.__setattr__(self, '_network', MODELS.build(network))
        self._cast_network()
        if _READ_CHECKPOINTS[-1]:
            self.reload()
        else:
            MMLogger.get_current_instance().info(
                f'FrozenTeacher: structure only, checkpoint {checkpoint!r} '
                'not read (teachers_without_weights)')
            self._freeze()

    @property
    def network(self) -> nn.Module:
        """The wrapped network (call it through :meth:`forward`)."""
        return self._network

    def reload(self) -> None:
        """(Re)load the weights from ``checkpoint`` and freeze them.

        Raises:
            FileNotFoundError | CheckpointFormatError |
            CheckpointMismatchError | pickle.UnpicklingError: the loader's
                error, its message prefixed with
                ``'<config_key>=<checkpoint!r>: '``.
        """
        try:
            num_loaded = load_backbone_weights(
                self._network,
                self.checkpoint,
                prefix=self.checkpoint_prefix,
                allowed_missing=self.allowed_missing,
                name=f'teacher ({self.checkpoint})')
        except _CHECKPOINT_ERRORS as err:
            raise with_context(
                err, f'{self.config_key}={str(self.checkpoint)!r}: ') from err
        MMLogger.get_current_instance().info(
            f'FrozenTeacher: loaded {num_loaded} tensors from '
            f'{self.checkpoint}')
        self._freeze()

    def _cast_network(self) -> None:
        if self.dtype is None:
            return
        if (self.dtype == torch.bfloat16
                and _first_device_type(self._network) == 'cuda'
                and not torch.cuda.is_bf16_supported()):
            MMLogger.get_current_instance().warning(
                f'{self.config_key}: this GPU has no bfloat16 support; the '
                'frozen teacher runs in float16 instead')
            self.dtype = torch.float16
        self._network.to(self.dtype)

    def _freeze(self) -> None:
        for param in self._network.parameters():
            param.requires_grad_(False)
        self._network.eval()

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the teacher network without autograd, in eval mode.

        With ``dtype``, floating-point tensor arguments are cast to it, the
        network runs with autocast disabled, and floating-point outputs are
        cast back to the dtype of the first floating-point argument.
        """
        self._network.eval()
        if self.dtype is None:
            return self._network(*args, **kwargs)
        input_dtype = _first_float_dtype((args, kwargs)) or torch.float32
        args, kwargs = _cast_floats((args, kwargs), self.dtype)
        device_type = _first_device_type(self._network)
        with torch.autocast(device_type, enabled=False):
            outputs = self._network(*args, **kwargs)
        return _cast_floats(outputs, input_dtype)

    def train(self, mode: bool = True) -> 'FrozenTeacher':
        """Record the mode, but keep the teacher network in eval mode."""
        self.training = mode
        self._network.eval()
        return self

    def _apply(self, fn, *args, **kwargs):  # device / dtype moves
        super()._apply(fn, *args, **kwargs)
        self._network._apply(fn, *args, **kwargs)
        self._cast_network()
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        if self.save_in_checkpoint:
            for key, value in self._network.state_dict(
                    keep_vars=keep_vars).items():
                destination[prefix + 'network.' + key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Load teacher weights only if the state dict carries them.

        A checkpoint saved with ``save_in_checkpoint=True`` restores them
        (strictly); one without teacher keys leaves the weights loaded from
        ``checkpoint`` in place and reports nothing missing.
        """
        network_prefix = prefix + 'network.'
        teacher_state = {
            key[len(network_prefix):]: value
            for key, value in state_dict.items()
            if key.startswith(network_prefix)
        }
        if teacher_state:
            load_state_dict_strict(
                self._network, teacher_state, name='teacher (state dict)')
            self._freeze()

    def extra_repr(self) -> str:
        return (f'network={type(self._network).__name__}, '
                f'checkpoint={self.checkpoint!r}, frozen=True, '
                f'save_in_checkpoint={self.save_in_checkpoint}, '
                f'dtype={self.dtype}')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.extra_repr()})\n'
                f'  (network): {self._network!r}')


def _first_float_dtype(tree: Any) -> Optional[torch.dtype]:
    """The dtype of the first floating-point tensor in a nested structure."""
    if isinstance(tree, torch.Tensor):
        return tree.dtype if tree.is_floating_point() else None
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, (list, tuple)):
        for item in tree:
            dtype = _first_float_dtype(item)
            if dtype is not None:
                return dtype
    return None


def _cast_floats(tree: Any, dtype: torch.dtype) -> Any:
    """Cast every floating-point tensor of a nested tuple / list / dict."""
    if isinstance(tree, torch.Tensor):
        return tree.to(dtype) if tree.is_floating_point() else tree
    if isinstance(tree, dict):
        return type(tree)((key, _cast_floats(value, dtype))
                          for key, value in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cast_floats(item, dtype) for item in tree)
    return tree


def _first_device_type(network: nn.Module) -> str:
    for param in network.parameters():
        return param.device.type
    return 'cpu'
