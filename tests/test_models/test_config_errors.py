"""Errors that name the culprit (issue 18): the file, the config key and the
allowed values, raised when the model is built (MimCo's loader check:
before training)."""
import argparse
import math
import pickle
import re

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import nn

from mmmoma.checkpoints import (CheckpointFormatError, CheckpointMismatchError,
                                load_backbone_state_dict,
                                load_backbone_weights, load_checkpoint_file)
from mmmoma.models.backbones import MaskedViT
from mmmoma.models.utils.key_queue import KeyQueue
from mmmoma.models.utils.validation import positive_float

from ..helpers import tiny_mimco_cfg, tiny_sdae_cfg

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
NARROW = dict(embed_dims=48, num_layers=2, num_heads=4,
              feedforward_channels=96)
MOMA_KEY = 'model.teachers.mae.teacher.checkpoint'
ALLOWED_POSITIVE = 'allowed: a finite number > 0'
BAD_POSITIVE = [-1, 0, -0.5, 'abc', None, True, math.nan, math.inf]


def vit(arch: dict, **kwargs) -> dict:
    return dict(type='MaskedViT', arch=arch, img_size=32, patch_size=4,
                **kwargs)


def save_backbone(arch: dict, path, **kwargs) -> str:
    torch.manual_seed(3)
    net = MaskedViT(arch=arch, img_size=32, patch_size=4, **kwargs)
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in net.state_dict().items()}}, path)
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict:
    """A valid teacher file and broken ones, by kind."""
    root = tmp_path_factory.mktemp('issue18')
    good = save_backbone(NARROW, root / 'teacher.pth')
    data = open(good, 'rb').read()
    paths = dict(good=good, missing=str(root / 'missing.pth'))
    contents = dict(truncated=data[:len(data) // 2],
                    text=b'hello, not a checkpoint\n', empty=b'')
    for kind, content in contents.items():
        paths[kind] = str(root / f'{kind}.pth')
        with open(paths[kind], 'wb') as file:
            file.write(content)
    paths['unrecognised'] = str(root / 'unrecognised.pth')
    torch.save({'foo': torch.zeros(1)}, paths['unrecognised'])
    paths['unsafe'] = str(root / 'unsafe.pth')
    torch.save({'model': {}, 'args': argparse.Namespace()}, paths['unsafe'])
    # a teacher of another width: every tensor is the wrong size
    paths['mismatch'] = save_backbone(ARCH, root / 'wide.pth')
    return paths


# ----------------------------------------------------------------------
# reading a checkpoint file
# ----------------------------------------------------------------------
@pytest.mark.parametrize('kind,likely,cause', [
    ('truncated', 'likely truncated', RuntimeError),
    ('text', 'likely not a PyTorch checkpoint', KeyError),
    ('empty', 'empty (0 bytes)', EOFError),
])
def test_unreadable_files_raise_format_errors_naming_the_path(
        files, kind, likely, cause):
    with pytest.raises(CheckpointFormatError) as info:
        load_checkpoint_file(files[kind])
    message = str(info.value)
    assert repr(files[kind]) in message
    assert likely in message
    assert isinstance(info.value.__cause__, cause)  # chained
    assert f'Original error: {cause.__name__}' in message


def test_unsafe_pickles_keep_the_safe_loading_message(files):
    with pytest.raises(pickle.UnpicklingError) as info:
        load_checkpoint_file(files['unsafe'])
    assert not isinstance(info.value, CheckpointFormatError)
    message = str(info.value)
    assert repr(files['unsafe']) in message
    assert 'outside the allowed set' in message
    assert 'argparse.Namespace' in message  # torch's own explanation


def test_unrecognised_content_names_the_path(files):
    with pytest.raises(CheckpointFormatError,
                       match=re.escape(repr(files['unrecognised']))) as info:
        load_backbone_state_dict(files['unrecognised'])
    assert 'Unrecognised checkpoint format' in str(info.value)


def test_mismatch_names_the_path_whatever_the_name(files):
    module = MaskedViT(arch=NARROW, img_size=32, patch_size=4)
    with pytest.raises(CheckpointMismatchError) as info:
        load_backbone_weights(module, files['mismatch'], name='backbone')
    assert files['mismatch'] in str(info.value)


# ----------------------------------------------------------------------
# FrozenTeacher and the algorithms' teacher keys
# ----------------------------------------------------------------------
def test_frozen_teacher_default_key(files):
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(type='FrozenTeacher', network=vit(NARROW),
                          checkpoint=''))
    assert str(info.value).startswith("teacher.checkpoint='': ")
    with pytest.raises(CheckpointFormatError) as info:
        MODELS.build(dict(type='FrozenTeacher', network=vit(NARROW),
                          checkpoint=files['text']))
    assert str(info.value).startswith(
        f'teacher.checkpoint={files["text"]!r}: ')


def moma_cfg(good: str, mae_checkpoint: str, **kwargs) -> dict:
    """Two teachers; only ``mae`` reads ``mae_checkpoint``."""
    def teacher(checkpoint):
        return dict(network=vit(NARROW, out_type='raw'),
                    checkpoint=checkpoint)

    cfg = dict(
        type='MOMA',
        backbone=vit(ARCH, out_type='raw'),
        teachers=dict(
            moco=dict(teacher=teacher(good), loss_weight=0.25,
                      student_view=1),
            mae=dict(teacher=teacher(mae_checkpoint), loss_weight=2.0)),
        mask_ratio=0.75)
    cfg.update(kwargs)
    return cfg


@pytest.mark.parametrize('kind,error', [
    ('missing', FileNotFoundError),
    ('truncated', CheckpointFormatError),
    ('text', CheckpointFormatError),
    ('unrecognised', CheckpointFormatError),
    ('unsafe', pickle.UnpicklingError),
    ('mismatch', CheckpointMismatchError),
])
def test_moma_checkpoint_errors_name_the_teacher_key_and_file(
        files, kind, error):
    with pytest.raises(error) as info:
        MODELS.build(moma_cfg(files['good'], files[kind]))
    message = str(info.value)
    assert message.startswith(f'{MOMA_KEY}={files[kind]!r}: ')
    assert 'model.teachers.moco' not in message
    assert isinstance(info.value.__cause__, error)  # the loader's error
    if kind == 'mismatch':  # the key lists survive the re-raise
        assert info.value.missing_keys == info.value.__cause__.missing_keys
        assert info.value.unexpected_keys == \
            info.value.__cause__.unexpected_keys


@pytest.mark.parametrize('checkpoint', ['', None])
def test_moma_missing_checkpoint_names_the_teacher_key(files, checkpoint):
    with pytest.raises(ValueError) as info:
        MODELS.build(moma_cfg(files['good'], checkpoint))
    assert str(info.value).startswith(f'{MOMA_KEY}={checkpoint!r}: ')
    assert 'FrozenTeacher needs' in str(info.value)


def mimco_cfg(checkpoint, **overrides) -> dict:
    return tiny_mimco_cfg(NARROW, checkpoint, **overrides)


@pytest.mark.parametrize('kind,error', [
    ('missing', FileNotFoundError),
    ('text', CheckpointFormatError),
    ('mismatch', CheckpointMismatchError),
])
def test_mimco_checkpoint_errors_name_the_teacher_key_and_file(
        files, kind, error):
    with pytest.raises(error) as info:
        MODELS.build(mimco_cfg(files[kind]))
    assert str(info.value).startswith(
        f'model.teacher.checkpoint={files[kind]!r}: ')


def test_mimco_missing_checkpoint_names_the_teacher_key():
    with pytest.raises(ValueError,
                       match=r"^model\.teacher\.checkpoint='': "):
        MODELS.build(mimco_cfg(''))


# ----------------------------------------------------------------------
# numeric fields
# ----------------------------------------------------------------------
@pytest.mark.parametrize('value', BAD_POSITIVE)
def test_positive_float_names_field_value_and_allowed(value):
    with pytest.raises(ValueError) as info:
        positive_float(value, 'model.x')
    assert str(info.value).startswith(f'model.x={value!r} ')
    assert ALLOWED_POSITIVE in str(info.value)


@pytest.mark.parametrize('value', [1, 0.5, 1e-9, 3.0])
def test_positive_float_accepts_finite_positive_numbers(value):
    assert positive_float(value, 'model.x') == float(value)
    assert isinstance(positive_float(value, 'model.x'), float)


@pytest.mark.parametrize('value', BAD_POSITIVE)
def test_moma_loss_weight_is_checked_at_build(files, value):
    cfg = moma_cfg(files['good'], files['good'])
    cfg['teachers']['mae']['loss_weight'] = value
    with pytest.raises(ValueError) as info:
        MODELS.build(cfg)
    message = str(info.value)
    assert message.startswith(f'model.teachers.mae.loss_weight={value!r} ')
    assert ALLOWED_POSITIVE in message


def test_moma_loss_weight_is_checked_before_the_teacher_is_loaded(files):
    cfg = moma_cfg(files['good'], files['missing'])
    cfg['teachers']['mae']['loss_weight'] = -1
    with pytest.raises(ValueError, match='model.teachers.mae.loss_weight'):
        MODELS.build(cfg)


def test_moma_int_loss_weight_is_kept_as_float(files):
    cfg = moma_cfg(files['good'], files['good'])
    cfg['teachers']['mae']['loss_weight'] = 2
    model = MODELS.build(cfg)
    assert model.loss_weights == dict(moco=0.25, mae=2.0)
    assert isinstance(model.loss_weights['mae'], float)


@pytest.mark.parametrize('value', ['abc', math.nan, math.inf, 0, True])
def test_moma_smooth_l1_beta_is_checked_at_build(files, value):
    with pytest.raises(ValueError) as info:
        MODELS.build(moma_cfg(files['good'], files['good'],
                              smooth_l1_beta=value))
    assert str(info.value).startswith(f'model.smooth_l1_beta={value!r} ')
    assert ALLOWED_POSITIVE in str(info.value)


@pytest.mark.parametrize('value', BAD_POSITIVE)
def test_sdae_target_eps_is_checked_at_build(value):
    with pytest.raises(ValueError) as info:
        MODELS.build(tiny_sdae_cfg(ARCH, target_eps=value))
    assert str(info.value).startswith(f'model.target_eps={value!r} ')
    assert ALLOWED_POSITIVE in str(info.value)


def test_sdae_valid_target_eps_is_kept():
    model = MODELS.build(tiny_sdae_cfg(ARCH, target_eps=1e-5))
    assert model.target_eps == 1e-5


# ----------------------------------------------------------------------
# MimCo: the train loader against the queues, before training
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def mimco(files) -> nn.Module:
    """Patch queue 64, image queue 48."""
    return MODELS.build(mimco_cfg(files['good'], image_queue_length=48))


@pytest.mark.parametrize('batch_size,world_size,drop_last,dataset_size', [
    (8, 2, True, 1000),  # global 16 tiles 64 and 48
    (16, 1, True, 17),
    (4, 2, False, 16),  # no partial batch
    (4, 2, False, 15),  # 8 per rank after the sampler's padding
    (1, 1, False, 5),
])
def test_mimco_train_loader_check_passes(mimco, batch_size, world_size,
                                         drop_last, dataset_size):
    mimco.check_train_loader(batch_size, world_size, drop_last,
                             dataset_size)


def test_mimco_queue_length_not_tiled_by_the_global_batch(mimco):
    with pytest.raises(ValueError) as info:
        mimco.check_train_loader(12, 1, True, 1000)
    message = str(info.value)
    assert message.startswith('model.patch_queue_length=64 is not a '
                              'multiple of the global batch')
    assert 'train_dataloader.batch_size=12' in message
    assert 'allowed: model.patch_queue_length a multiple of 12 ' \
        '(nearest: 60 or 72)' in message
    assert 'train_dataloader.batch_size such that batch_size x 1 divides ' \
        '64 (nearest: 8 or 16)' in message


def test_mimco_image_queue_is_checked_too(mimco):
    # 32 tiles the patch queue (64), not the image queue (48)
    with pytest.raises(ValueError) as info:
        mimco.check_train_loader(16, 2, True, 1000)
    message = str(info.value)
    assert message.startswith('model.image_queue_length=48 ')
    assert 'world_size=2 = 32' in message
    assert '(nearest: 32 or 64)' in message
    assert 'batch_size x 2 divides 48 (nearest: 12 or 24)' in message


def test_mimco_partial_last_batch_names_drop_last(mimco):
    # 100 samples on 2 ranks: 50 each, 6 batches of 8 and one of 2
    with pytest.raises(ValueError) as info:
        mimco.check_train_loader(8, 2, False, 100)
    message = str(info.value)
    assert message.startswith('train_dataloader.drop_last=False ')
    assert 'partial batch of 2 per process (4 keys instead of 16)' in message
    assert 'model.patch_queue_length and model.image_queue_length' in message
    assert 'allowed: train_dataloader.drop_last=True, or a dataset size ' \
        'that is a multiple of the global batch 16' in message
    mimco.check_train_loader(8, 2, True, 100)  # the fix


@pytest.mark.parametrize('args,field', [
    ((0, 1, True, 10), 'train_dataloader.batch_size=0'),
    ((True, 1, True, 10), 'train_dataloader.batch_size=True'),
    ((8, 0, True, 10), 'world_size=0'),
    ((8, 1, True, -1), 'dataset_size=-1'),
])
def test_mimco_train_loader_arguments_are_checked(mimco, args, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        mimco.check_train_loader(*args)


def test_mimco_without_queues_accepts_any_loader(files):
    model = MODELS.build(mimco_cfg(files['good'], patch_loss='l1',
                                   image_loss_weight=0.0))
    assert not hasattr(model.patch_head, 'queue')
    assert not hasattr(model, 'image_head')
    model.check_train_loader(7, 3, False, 100)


def test_key_queue_step_check_does_not_call_it_the_global_batch():
    queue = KeyQueue(10, 4, 'MimCo.queue_length')
    with pytest.raises(ValueError) as info:
        queue.check_batch(4)
    message = str(info.value)
    assert 'MimCo.queue_length=10' in message
    assert 'keys enqueued this step over all processes (4)' in message
    assert 'train_dataloader.drop_last=True' in message
    assert 'global batch size' not in message
