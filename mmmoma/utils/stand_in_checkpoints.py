"""Random stand-ins for the checkpoints a model config loads.

:func:`find_checkpoint_references` lists every checkpoint file that building
or initialising a model reads (``FrozenTeacher`` checkpoints, ``Pretrained``
and ``StrictPretrained`` init checkpoints); :func:`write_stand_in_checkpoints`
writes randomly initialised weights of the right shapes for each of them and
returns the config pointing at those files. For tests, smoke runs and cost
measurements, where the weights do not matter but their shapes do.
"""
import copy
import os.path as osp
import re
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional

import torch

from .config_tools import walk_dicts
from .model_shrinking import registered_class

#: ``init_cfg`` types that load a checkpoint file.
PRETRAINED_INIT_TYPES = ('Pretrained', 'StrictPretrained')


@dataclass
class CheckpointReference:
    """A checkpoint file that building or initialising the model reads.

    Attributes:
        field: Config path of the ``checkpoint`` field, e.g.
            ``model.teachers.mocov3.teacher.checkpoint``.
        holder: The dict holding the ``checkpoint`` key (a ``FrozenTeacher``
            config or an ``init_cfg``), edited in place when rewritten.
        module_cfg: Config of the module the weights are loaded into (the
            teacher ``network``, or the module owning the ``init_cfg``).
        kind: ``'FrozenTeacher'`` or the ``init_cfg`` type.
    """
    field: str
    holder: Dict[str, Any]
    module_cfg: Dict[str, Any]
    kind: str


@dataclass
class StandInCheckpoint:
    """A random stand-in file written for one :class:`CheckpointReference`.

    Attributes:
        field: The ``checkpoint`` field it replaced.
        old: The replaced value.
        path: The file written.
        num_tensors: Tensors in its state dict (all of the module's).
    """
    field: str
    old: Any
    path: str
    num_tensors: int

    @property
    def change(self) -> str:
        """``'field: old -> new'``, as the config tools print changes."""
        return f'{self.field}: {self.old!r} -> {self.path!r}'


class StandIns(NamedTuple):
    """What :func:`write_stand_in_checkpoints` returns.

    Attributes:
        model_cfg: The rewritten model config.
        checkpoints: One record per stand-in file, depth first.
    """
    model_cfg: Dict[str, Any]
    checkpoints: List[StandInCheckpoint]


def _frozen_teacher_class() -> type:
    from mmmoma.models.utils import FrozenTeacher
    return FrozenTeacher


def is_frozen_teacher_cfg(path: str, node: Dict[str, Any],
                          scope: Optional[str] = None) -> bool:
    """Whether ``node`` configures a ``FrozenTeacher``.

    Its ``type`` is one, or it is an untyped ``teacher`` dict with
    ``network`` and ``checkpoint`` (MOMA's ``teachers.<name>.teacher``, built
    as a ``FrozenTeacher`` by the algorithm).
    """
    if 'type' not in node:
        return path.endswith('.teacher') and 'network' in node \
            and 'checkpoint' in node
    cls = registered_class(node.get('type'), scope)
    return cls is not None and issubclass(cls, _frozen_teacher_class())


def find_checkpoint_references(
        model_cfg: Dict[str, Any],
        scope: Optional[str] = None) -> List[CheckpointReference]:
    """Every checkpoint a model config loads, depth first.

    Args:
        model_cfg: The ``model`` dict of a config.
        scope: Registry scope of the config (``cfg.default_scope``).

    Returns:
        The teacher checkpoints (:func:`is_frozen_teacher_cfg`) and the
        ``Pretrained`` / ``StrictPretrained`` init checkpoints (``init_cfg``
        a dict or a list of dicts).
    """
    references = []
    for path, node in walk_dicts(model_cfg, 'model'):
        if is_frozen_teacher_cfg(path, node, scope):
            if not isinstance(node.get('network'), dict):
                raise ValueError(f'{path}.network: a FrozenTeacher needs a '
                                 'network config dict')
            references.append(
                CheckpointReference(f'{path}.checkpoint', node,
                                    node['network'], 'FrozenTeacher'))
        init_cfgs = node.get('init_cfg')
        many = isinstance(init_cfgs, (list, tuple))
        for index, init_cfg in enumerate(init_cfgs if many else [init_cfgs]):
            if isinstance(init_cfg, dict) and \
                    init_cfg.get('type') in PRETRAINED_INIT_TYPES:
                where = f'{path}.init_cfg' + (f'[{index}]' if many else '')
                references.append(
                    CheckpointReference(f'{where}.checkpoint', init_cfg,
                                        node, init_cfg['type']))
    return references


def missing_checkpoints(model_cfg: Dict[str, Any],
                        scope: Optional[str] = None) -> List[str]:
    """``'field=value'`` for every referenced checkpoint
    (:func:`find_checkpoint_references`) that is not an existing file."""
    return [
        f'{reference.field}={reference.holder.get("checkpoint")!r}'
        for reference in find_checkpoint_references(model_cfg, scope)
        if not (isinstance(reference.holder.get('checkpoint'), str)
                and osp.isfile(reference.holder['checkpoint']))
    ]


def _build(module_cfg: Dict[str, Any], scope: Optional[str]) -> Any:
    """Build a module from its config (without ``init_cfg``) and initialise
    it randomly."""
    from mmpretrain.registry import MODELS
    module_cfg = copy.deepcopy(module_cfg)
    module_cfg['init_cfg'] = None
    cls = registered_class(module_cfg.get('type'), scope)
    if cls is None:
        raise ValueError(f'unknown module type {module_cfg.get("type")!r}')
    module_cfg['type'] = cls
    module = MODELS.build(module_cfg)
    if hasattr(module, 'init_weights'):
        module.init_weights()
    return module


def write_stand_in_checkpoints(model_cfg: Dict[str, Any],
                               out_dir: str,
                               seed: int = 0,
                               scope: Optional[str] = None) -> StandIns:
    """Point every checkpoint a model config loads at random weights.

    For each reference of :func:`find_checkpoint_references`, the module it
    loads into is built from its config as it stands (e.g. after
    :func:`~mmmoma.utils.model_shrinking.shrink_model`: the tiny arch),
    without its ``init_cfg``, randomly initialised (``init_weights``; seed
    ``seed + index``, so two teachers get different weights), and saved:
    teachers and ``StrictPretrained`` as a backbone-only file (read whatever
    ``prefix`` says), ``Pretrained`` with its ``prefix`` in front of every
    key, as MMEngine's loader expects.

    Args:
        model_cfg: The ``model`` dict of a config; not modified.
        out_dir: Folder for the stand-in files; it must outlive building
            and initialising the model.
        seed: Seed of the random weights.
        scope: Registry scope of the config (``cfg.default_scope``).

    Returns:
        A rewritten copy of ``model_cfg`` and one record per file.
    """
    from mmmoma.checkpoints import save_backbone_checkpoint
    model_cfg = copy.deepcopy(model_cfg)
    checkpoints = []
    for index, reference in enumerate(
            find_checkpoint_references(model_cfg, scope)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)
            module = _build(reference.module_cfg, scope)
        state_dict = module.state_dict()
        del module
        stem = re.sub(r'[^A-Za-z0-9]+', '_', reference.field).strip('_')
        path = osp.join(out_dir, f'{index}_{stem}.pth')
        meta = dict(stand_in='random', field=reference.field)
        prefix = reference.holder.get('prefix')
        if reference.kind == 'Pretrained' and prefix:
            state_dict = {f'{prefix.rstrip(".")}.{key}': value
                          for key, value in state_dict.items()}
        save_backbone_checkpoint(state_dict, path, meta=meta)
        checkpoints.append(
            StandInCheckpoint(reference.field,
                              reference.holder.get('checkpoint'), path,
                              len(state_dict)))
        reference.holder['checkpoint'] = path
    return StandIns(model_cfg, checkpoints)
