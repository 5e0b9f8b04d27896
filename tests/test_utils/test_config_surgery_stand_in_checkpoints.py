"""mmmoma.utils.stand_in_checkpoints: random weights of the right shapes for
every checkpoint a config loads."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmmoma.checkpoints import load_backbone_state_dict, load_state_dict_strict
from mmmoma.utils.model_shrinking import shrink_model
from mmmoma.utils.stand_in_checkpoints import (find_checkpoint_references,
                                               missing_checkpoints,
                                               write_stand_in_checkpoints)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)


def moma(name: str) -> Config:
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'moma', name))
    shrink_model(cfg.model, TINY, 32, 4)
    return cfg


def test_two_teachers_get_two_files_that_load_strictly(tmp_path):
    cfg = moma('moma-multi-teacher_vit-base-p16_8xb512-amp-coslr-100e_'
               'in1k.py')
    fields = [reference.field
              for reference in find_checkpoint_references(cfg.model)]
    assert fields == ['model.teachers.mae.teacher.checkpoint',
                      'model.teachers.moco.teacher.checkpoint']
    assert len(missing_checkpoints(cfg.model)) == 2
    original = cfg.model.teachers.mae.teacher.checkpoint
    model_cfg, stand_ins = write_stand_in_checkpoints(cfg.model,
                                                      str(tmp_path))
    assert cfg.model.teachers.mae.teacher.checkpoint == original  # a copy
    assert [s.field for s in stand_ins] == fields
    paths = [s.path for s in stand_ins]
    assert len(set(paths)) == 2 and all(osp.isfile(p) for p in paths)
    assert missing_checkpoints(model_cfg) == []
    assert stand_ins[0].change == f'{fields[0]}: {original!r} -> ' \
        f'{paths[0]!r}'
    weights = []
    for spec, stand_in in zip(model_cfg.teachers.values(), stand_ins):
        assert spec.teacher.checkpoint == stand_in.path
        network = MODELS.build(spec.teacher.network)
        state = load_backbone_state_dict(stand_in.path)
        assert load_state_dict_strict(network, state) == len(
            network.state_dict()) == stand_in.num_tensors
        weights.append(state['layers.0.attn.qkv.weight'])
    # independent random draws, not one file twice
    assert not torch.equal(*weights)
    # the whole model builds and loads its teachers from the stand-ins
    MODELS.build(model_cfg).init_weights()


def test_strict_pretrained_student_and_teacher(tmp_path):
    cfg = moma('moma-mae-to-mocov3_vit-base-p16_8xb512-amp-coslr-100e_'
               'in1k.py')
    model_cfg, stand_ins = write_stand_in_checkpoints(cfg.model,
                                                      str(tmp_path), seed=3)
    assert [s.field for s in stand_ins] == [
        'model.backbone.init_cfg.checkpoint',
        'model.teachers.mae.teacher.checkpoint']
    model = MODELS.build(model_cfg)
    model.init_weights()  # StrictPretrained reads the student's file
    student = load_backbone_state_dict(stand_ins[0].path)
    assert torch.equal(model.backbone.pos_embed, student['pos_embed'])


def test_pretrained_init_with_prefix_and_init_lists(tmp_path):
    network = dict(type='MaskedViT', arch=TINY, img_size=32, patch_size=4)
    model_cfg = dict(
        type='ImageClassifier',
        backbone=dict(network, init_cfg=[
            dict(type='Pretrained', checkpoint='missing.pth',
                 prefix='backbone.'),
            dict(type='Constant', layer='LayerNorm', val=1.0)]),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=64))
    model_cfg, (stand_in, ) = write_stand_in_checkpoints(model_cfg,
                                                         str(tmp_path))
    assert stand_in.field == 'model.backbone.init_cfg[0].checkpoint'
    keys = torch.load(stand_in.path, map_location='cpu')['state_dict']
    assert all(key.startswith('backbone.') for key in keys)
    model = MODELS.build(model_cfg)
    model.init_weights()
    assert torch.equal(model.backbone.cls_token,
                       keys['backbone.cls_token'])


def test_a_teacher_without_network_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='needs a network'):
        find_checkpoint_references(
            dict(type='X', teacher=dict(type='FrozenTeacher', network=None,
                                        checkpoint='a.pth')))
