"""The checkpoint bridge (tools/model_converters/pretrain_to_transfer.py):
real mmmoma training checkpoints -> mmpretrain classifier / mmseg segmentor
backbones whose features equal the pre-trained encoder's."""
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

from mmmoma.checkpoints import CheckpointFormatError, CheckpointMismatchError

from .utils import (FINETUNE_DEMO, MMOCO_DEMO, PROGRESS_BAR, REPO_ROOT,
                    SDAE_DEMO, load_tool, python, run)

SCRIPT = os.path.join(REPO_ROOT, 'tools', 'model_converters',
                      'pretrain_to_transfer.py')
SEG_SIZE = 64


def load_script():
    return load_tool(SCRIPT)


def build_pretrainer(config):
    """The demo algorithm of ``config`` with every weight perturbed, so
    student and EMA teacher differ and nothing equals an initialiser."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        for buffer_name, buffer in model.named_buffers():
            if buffer.is_floating_point():
                buffer.add_(0.05 * torch.randn_like(buffer))
    return model.eval()


def save_training_checkpoint(model, path):
    """As a Runner saves it: TeacherEMAHook adds the momentum target."""
    meta = {'epoch': 3, 'iter': 30}
    if hasattr(model, 'momentum_target'):
        meta['momentum_target'] = model.momentum_target.describe()
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return path


@pytest.fixture(scope='module')
def sdae(tmp_path_factory):
    model = build_pretrainer(SDAE_DEMO)
    path = tmp_path_factory.mktemp('sdae') / 'epoch_3.pth'
    return model, save_training_checkpoint(model, path)


def segmentor(checkpoint, num_layers=4, prefix='backbone.'):
    """A tiny UperNet around the demo ViT, as the mmseg configs build it."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = SEG_MODELS.build(dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='mmpretrain.MaskedViT',
                arch=dict(embed_dims=128, num_layers=num_layers, num_heads=4,
                          feedforward_channels=512),
                img_size=SEG_SIZE, patch_size=4, out_type='featmap',
                out_indices=[1, num_layers - 1], final_norm=True,
                layer_scale_init_value=1.0,
                init_cfg=dict(type='StrictPretrained', checkpoint=str(
                    checkpoint), prefix=prefix,
                    allowed_missing=['layers.*.gamma*'])),
            neck=dict(type='Feature2Pyramid', embed_dim=128, rescales=[2, 1],
                      norm_cfg=dict(type='BN')),
            decode_head=dict(
                type='FCNHead', in_channels=128, in_index=1, channels=8,
                num_classes=11, norm_cfg=dict(type='BN'))))
        model.init_weights()
    return model.eval()


def classifier(checkpoint):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(FINETUNE_DEMO)
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoint)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def reference_featmaps(vit, x, out_indices):
    """The pre-trained encoder's own feature maps (its forward, with the
    output type switched to feature maps)."""
    out_type, indices = vit.out_type, vit.out_indices
    vit.out_type, vit.out_indices = 'featmap', out_indices
    try:
        with torch.no_grad():
            return vit(x)
    finally:
        vit.out_type, vit.out_indices = out_type, indices


def test_student_round_trip_to_mmpretrain_and_mmseg(sdae, tmp_path):
    model, checkpoint = sdae
    proc = run([python(), SCRIPT, str(checkpoint), str(tmp_path / 'out'),
                '--seg-img-size', str(SEG_SIZE)])
    assert proc.returncode == 0, proc.stderr
    files = {line.split(': ')[0]: line.split(': ')[1]
             for line in proc.stdout.splitlines() if ': ' in line}
    assert files['mmseg'].endswith(f'mmseg_backbone_{SEG_SIZE}px.pth')
    assert PROGRESS_BAR.search(proc.stdout), proc.stdout

    # mmpretrain: the demo fine-tune classifier, pooled features
    x = torch.randn(2, 3, 32, 32)
    clf = classifier(files['mmpretrain'])
    with torch.no_grad():
        pooled = clf.backbone(x)[0]
    feature_map = reference_featmaps(model.backbone, x, [3])[0]
    expected = F.layer_norm(feature_map.mean(dim=(2, 3)), (128, ), eps=1e-6)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)

    # mmseg: pos_embed resized to the 16 x 16 grid; a 64 px input gives the
    # encoder's own features (it resizes at run time the same way)
    seg_file = torch.load(files['mmseg'], weights_only=True)
    assert seg_file['state_dict']['pos_embed'].shape == (1, 1 + 16 * 16, 128)
    assert seg_file['meta']['img_size'] == SEG_SIZE
    assert seg_file['meta']['source_epoch'] == 3
    seg = segmentor(files['mmseg'])
    x = torch.randn(2, 3, SEG_SIZE, SEG_SIZE)
    with torch.no_grad():
        features = seg.backbone(x)
    expected = reference_featmaps(model.backbone, x, [1, 3])
    assert len(features) == 2
    for got, want in zip(features, expected):
        assert got.shape == (2, 128, 16, 16)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_ema_teachers_and_finetuned_classifiers(sdae, tmp_path):
    script = load_script()
    model, checkpoint = sdae
    script.main([str(checkpoint), str(tmp_path / 'teacher'), '--encoder',
                 'teacher', '--seg-img-size', '32'])
    teacher = torch.load(tmp_path / 'teacher' / 'mmpretrain_backbone.pth',
                         weights_only=True)['state_dict']
    assert teacher.keys() == model.teacher.state_dict().keys()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(teacher[key], value), key
    assert not torch.equal(teacher['layers.0.attn.qkv.weight'],
                           model.backbone.layers[0].attn.qkv.weight)
    # same grid: the mmseg file is the mmpretrain file
    seg = torch.load(tmp_path / 'teacher' / 'mmseg_backbone_32px.pth',
                     weights_only=True)['state_dict']
    assert torch.equal(seg['pos_embed'], teacher['pos_embed'])

    # M-MoCo: the momentum encoder's backbone
    mmoco = build_pretrainer(MMOCO_DEMO)
    mmoco_ckpt = save_training_checkpoint(mmoco, tmp_path / 'mmoco.pth')
    script.main([str(mmoco_ckpt), str(tmp_path / 'momentum'), '--encoder',
                 'teacher'])
    momentum = torch.load(tmp_path / 'momentum' / 'mmpretrain_backbone.pth',
                          weights_only=True)
    assert momentum['meta']['source_prefix'] == 'momentum_encoder.backbone.'
    for key, value in mmoco.momentum_encoder['backbone'].state_dict().items():
        assert torch.equal(momentum['state_dict'][key], value), key

    # MOMA's ADE20K row starts from an ImageNet-fine-tuned classifier: its
    # pooled norm ln2 stays in the mmpretrain file, not in the mmseg one
    clf = classifier(tmp_path / 'teacher' / 'mmpretrain_backbone.pth')
    clf_ckpt = save_training_checkpoint(clf, tmp_path / 'finetuned.pth')
    script.main([str(clf_ckpt), str(tmp_path / 'ft'), '--seg-img-size',
                 str(SEG_SIZE)])
    seg_model = segmentor(tmp_path / 'ft' / f'mmseg_backbone_{SEG_SIZE}px.pth')
    torch.testing.assert_close(
        seg_model.backbone.layers[2].ffn.layers[1].weight,
        clf.backbone.layers[2].ffn.layers[1].weight)
    assert 'ln2.weight' in torch.load(
        tmp_path / 'ft' / 'mmpretrain_backbone.pth',
        weights_only=True)['state_dict']


def test_bad_requests_fail_naming_the_problem(sdae, tmp_path):
    script = load_script()
    model, checkpoint = sdae
    student_only = tmp_path / 'moma_like.pth'
    torch.save({'state_dict': {
        f'backbone.{key}': value
        for key, value in model.backbone.state_dict().items()
    }, 'meta': {}}, student_only)
    with pytest.raises(CheckpointFormatError,
                       match=r"EMA teacher.*teacher\.\*.*\['backbone\.'\]"):
        script.main([str(student_only), str(tmp_path / 'x'), '--encoder',
                     'teacher'])
    with pytest.raises(ValueError, match='--seg-img-size.*multiple'):
        script.main([str(checkpoint), str(tmp_path / 'x'),
                     '--seg-img-size', '30'])
    proc = run([python(), SCRIPT, str(checkpoint), str(tmp_path / 'x'),
                '--encoder', 'ema'])
    assert proc.returncode != 0 and "invalid choice: 'ema'" in proc.stderr


def test_mmseg_load_fails_naming_missing_keys_and_wrong_prefix(sdae,
                                                               tmp_path):
    _, checkpoint = sdae
    script = load_script()
    script.main([str(checkpoint), str(tmp_path), '--seg-img-size',
                 str(SEG_SIZE)])
    seg_file = tmp_path / f'mmseg_backbone_{SEG_SIZE}px.pth'
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing key\(s\): .*layers\.4\.'):
        segmentor(seg_file, num_layers=5)
    # the raw training checkpoint, with a prefix it does not have
    with pytest.raises(CheckpointFormatError,
                       match=r"prefix='student\.'.*'backbone\.'"):
        segmentor(checkpoint, prefix='student.')
