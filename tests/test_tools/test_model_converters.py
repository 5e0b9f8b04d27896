"""tools/model_converters: release / training checkpoints -> backbone files.

Each converter is run as a CLI (subprocess, the test interpreter) on a tiny
checkpoint in the real layout; the output is loaded into mmpretrain's
``VisionTransformer`` and must reproduce the source model's features.
"""
import importlib.util
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.models import VisionTransformer
from timm.models.vision_transformer import VisionTransformer as TimmViT
from torch import nn

from mmmoma.checkpoints import (CheckpointFormatError,
                                load_backbone_state_dict,
                                load_state_dict_strict)

from ..test_checkpoints.test_moby_format import (SWIN_CONFIGS, mmpretrain_swin,
                                                 moby_release, timm_features,
                                                 timm_swin)
from .utils import PROGRESS_BAR

REPO_ROOT = Path(__file__).resolve().parents[2]
CONVERTERS = REPO_ROOT / 'tools' / 'model_converters'
IMG_SIZE = 32


def perturb_(module: nn.Module, std: float = 0.05) -> nn.Module:
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * std)
    return module


def timm_vit(embed_dims: int, num_heads: int) -> TimmViT:
    model = TimmViT(
        img_size=IMG_SIZE,
        patch_size=4,
        embed_dim=embed_dims,
        depth=2,
        num_heads=num_heads,
        num_classes=0)
    return perturb_(model).eval()


def mmpretrain_vit(embed_dims: int, num_heads: int) -> VisionTransformer:
    vit = VisionTransformer(
        arch=dict(
            embed_dims=embed_dims,
            num_layers=2,
            num_heads=num_heads,
            feedforward_channels=4 * embed_dims),
        img_size=IMG_SIZE,
        patch_size=4,
        out_type='raw')
    vit.eval()  # BaseBackbone.train() returns None: no chaining
    return vit


def run_converter(script: str, *args: str) -> str:
    """Run a converter CLI; return its stdout (fails the test on error)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    result = subprocess.run(
        [sys.executable,
         str(CONVERTERS / script), *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def load_converted(path: Path, embed_dims: int,
                   num_heads: int) -> VisionTransformer:
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'state_dict', 'meta'}
    assert checkpoint['meta']['checkpoint_format'] == 'backbone'
    vit = mmpretrain_vit(embed_dims, num_heads)
    num_loaded = load_state_dict_strict(vit, load_backbone_state_dict(path))
    assert num_loaded == len(vit.state_dict())
    return vit


@torch.no_grad()
def assert_same_features(reference, reference_forward, vit) -> None:
    images = torch.randn(2, 3, IMG_SIZE, IMG_SIZE)
    expected = reference_forward(images)
    (actual, ) = vit(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_mae_to_mmpretrain(tmp_path):
    torch.manual_seed(0)
    timm_model = timm_vit(embed_dims=64, num_heads=4)
    src, dst = tmp_path / 'mae_pretrain_vit_tiny.pth', tmp_path / 'out.pth'
    torch.save(
        {
            'model': {
                **timm_model.state_dict(),
                'mask_token': torch.zeros(1, 1, 32),
                'decoder_embed.weight': torch.zeros(32, 64),
            }
        }, src)

    stdout = run_converter('mae_to_mmpretrain.py', src, dst)

    vit = load_converted(dst, embed_dims=64, num_heads=4)
    assert f'Wrote {len(vit.state_dict())} keys to {dst}' in stdout
    assert PROGRESS_BAR.search(stdout), stdout  # over the checkpoint keys
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['source_format'] == 'mae' and meta['source'] == str(src)
    assert_same_features(timm_model, timm_model.forward_features, vit)


def test_mocov3_to_mmpretrain(tmp_path):
    torch.manual_seed(0)
    # MoCo v3 ViT-S layout: 12 heads; the projector lives in `head`.
    encoder = timm_vit(embed_dims=96, num_heads=12)
    encoder.head = nn.Sequential(
        nn.Linear(96, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16),
        nn.BatchNorm1d(16, affine=False))
    momentum_encoder = perturb_(timm_vit(embed_dims=96, num_heads=12))
    state_dict = OrderedDict()
    for key, value in encoder.state_dict().items():
        state_dict['module.base_encoder.' + key] = value
    for key, value in momentum_encoder.state_dict().items():
        state_dict['module.momentum_encoder.' + key] = value
    state_dict['module.predictor.0.weight'] = torch.zeros(32, 16)
    src, dst = tmp_path / 'vit-s-300ep.pth.tar', tmp_path / 'out.pth'
    torch.save({
        'epoch': 300,
        'arch': 'vit_small',
        'state_dict': state_dict
    }, src)

    stdout = run_converter('mocov3_to_mmpretrain.py', src, dst)

    vit = load_converted(dst, embed_dims=96, num_heads=12)
    assert f'Wrote {len(vit.state_dict())} keys' in stdout
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['source_format'] == 'mocov3' and meta['source_arch'] == (
        'vit_small')
    assert_same_features(encoder, encoder.forward_features, vit)


def test_moby_to_mmpretrain(tmp_path):
    """MoBY Swin release -> mmpretrain SwinTransformer (3 stages: two
    PatchMergings reordered)."""
    torch.manual_seed(0)
    cfg = SWIN_CONFIGS['3stages-64px']
    encoder, momentum_encoder = timm_swin(**cfg), timm_swin(**cfg)
    src = tmp_path / 'moby_swin_t_300ep_pretrained.pth'
    dst = tmp_path / 'checkpoints' / 'moby_swin_t_300ep_mmpretrain.pth'
    torch.save(moby_release(encoder, momentum_encoder, epoch=300), src)

    stdout = run_converter('moby_to_mmpretrain.py', src, dst)

    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'state_dict', 'meta'}
    meta = checkpoint['meta']
    assert meta['checkpoint_format'] == 'backbone'
    assert meta['source_format'] == 'moby' and meta['source'] == str(src)
    assert meta['source_epoch'] == 300
    swin = mmpretrain_swin(**cfg)
    num_loaded = load_state_dict_strict(swin, load_backbone_state_dict(dst))
    assert num_loaded == len(swin.state_dict())
    assert f'Wrote {num_loaded} keys to {dst}' in stdout
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        (actual, ) = swin(images)
    torch.testing.assert_close(
        actual, timm_features(encoder, images), atol=1e-5, rtol=0)


def test_extract_backbone_round_trip(tmp_path):
    torch.manual_seed(0)
    trained = perturb_(mmpretrain_vit(embed_dims=64, num_heads=4))
    state_dict = OrderedDict(('backbone.' + key, value)
                             for key, value in trained.state_dict().items())
    state_dict['neck.decoder_embed.weight'] = torch.randn(32, 64)
    state_dict['neck.mask_token'] = torch.randn(1, 1, 32)
    state_dict['head.fc.weight'] = torch.randn(10, 64)
    # What mmengine pickles besides tensors (HistoryBuffer, numpy scalars):
    # readable with weights_only=True once mmmoma is imported.
    message_hub = MessageHub.get_instance('test_extract_backbone')
    message_hub.update_scalar('train/loss', np.float64(0.5))
    message_hub.update_info('iter', 30)
    src, dst = tmp_path / 'epoch_3.pth', tmp_path / 'nested' / 'backbone.pth'
    torch.save(
        {
            'meta': {
                'epoch': 3,
                'iter': 30,
                'experiment_name': 'demo'
            },
            'state_dict': state_dict,
            'message_hub': message_hub.state_dict(),
            'optimizer': {
                'state': {},
                'param_groups': []
            },
        }, src)

    stdout = run_converter('extract_backbone.py', src, dst)

    written = torch.load(dst, weights_only=True)
    assert list(written['state_dict']) == list(trained.state_dict())
    assert written['meta']['source_epoch'] == 3
    assert written['meta']['source_prefix'] == 'backbone.'
    assert f'Wrote {len(trained.state_dict())} keys' in stdout
    vit = load_converted(dst, embed_dims=64, num_heads=4)
    assert_same_features(trained, lambda x: trained(x)[0], vit)


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, CONVERTERS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_refuses_other_formats(tmp_path):
    """In-process (fast): a MAE release given to extract_backbone."""
    src, dst = tmp_path / 'mae.pth', tmp_path / 'out.pth'
    torch.save({'model': timm_vit(embed_dims=64, num_heads=4).state_dict()},
               src)
    extract_backbone = load_script('extract_backbone.py')
    with pytest.raises(CheckpointFormatError) as info:
        extract_backbone.main([str(src), str(dst)])
    assert "'mae'" in str(info.value)
    assert 'mae_to_mmpretrain.py' in str(info.value)
    assert not dst.exists()

    mae_to_mmpretrain = load_script('mae_to_mmpretrain.py')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        mae_to_mmpretrain.main([str(tmp_path / 'missing.pth'), str(dst)])
