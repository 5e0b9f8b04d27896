"""MoBY Swin releases -> mmpretrain ``SwinTransformer`` (mmmoma.checkpoints).

No downloads: tiny timm Swins stand in for the official Swin. timm
re-implements it exactly (same block maths, same ``PatchMerging`` feature
order) but keeps each ``PatchMerging`` at the start of the next stage and
does not save the ``relative_position_index`` / ``attn_mask`` buffers; their
state dicts are renamed to the official layout (the inverse of timm's
``checkpoint_filter_fn``), buffers included, and wrapped as MoBY releases
(``{'model': {'encoder.*', 'encoder_k.*', 'projector*', 'predictor.*',
'queue*'}}``). After conversion, mmpretrain's ``SwinTransformer`` must
reproduce timm's features.
"""
import re
from collections import OrderedDict
from typing import Dict, List

import pytest
import torch
from mmcv.cnn.bricks.transformer import PatchMerging
from mmpretrain.models import SimMIMSwinTransformer, SwinTransformer
from mmpretrain.models.utils import ShiftWindowMSA
from timm.models.swin_transformer import SwinTransformer as TimmSwin
from torch import Tensor, nn

import mmmoma.checkpoints.keys
import mmmoma.checkpoints.moby
from mmmoma.checkpoints import (CheckpointFormatError,
                                convert_to_backbone_checkpoint,
                                detect_checkpoint_format,
                                load_backbone_state_dict,
                                load_state_dict_strict,
                                swin_merge_to_unfold_order,
                                swin_relative_position_index,
                                swin_to_mmpretrain)
from mmmoma.models.utils.frozen_teacher import FrozenTeacher

# 2 stages: the 8x8 map shifts its windows, the 4x4 one (= window) does not.
# 3 stages: two PatchMergings, a one-block stage.
SWIN_CONFIGS = {
    '2stages-32px':
    dict(
        img_size=32,
        window_size=4,
        embed_dims=32,
        depths=(2, 2),
        num_heads=(2, 4)),
    '3stages-64px':
    dict(
        img_size=64,
        window_size=4,
        embed_dims=16,
        depths=(2, 1, 2),
        num_heads=(1, 2, 4)),
}
TINY = SWIN_CONFIGS['2stages-32px']


def perturb_(module: nn.Module, std: float = 0.05) -> nn.Module:
    """Add noise to every parameter so no weight keeps its init value (the
    merge norms then weigh each neighbour position differently)."""
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * std)
    return module


def timm_swin(img_size: int, window_size: int, embed_dims: int,
              depths: tuple, num_heads: tuple) -> TimmSwin:
    """A timm Swin set up as the official MoBY encoder (qkv bias, LN, no
    absolute position embedding, no head), without dropout / drop path."""
    model = TimmSwin(
        img_size=img_size,
        patch_size=4,
        in_chans=3,
        num_classes=0,
        embed_dim=embed_dims,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        mlp_ratio=4.,
        qkv_bias=True,
        drop_rate=0.,
        proj_drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.)
    return perturb_(model).eval()


def mmpretrain_swin(img_size: int,
                    window_size: int,
                    embed_dims: int,
                    depths: tuple,
                    num_heads: tuple,
                    simmim: bool = False,
                    **kwargs) -> SwinTransformer:
    arch = dict(
        embed_dims=embed_dims, depths=list(depths), num_heads=list(num_heads))
    common = dict(
        arch=arch,
        img_size=img_size,
        drop_rate=0.,
        drop_path_rate=0.,
        out_indices=(len(depths) - 1, ),
        **kwargs)
    if simmim:  # no window_size argument: set it per stage
        swin = SimMIMSwinTransformer(
            stage_cfgs=dict(window_size=window_size), **common)
    else:
        swin = SwinTransformer(window_size=window_size, **common)
    swin.eval()  # BaseBackbone.train() returns None: no chaining
    return swin


def official_swin_state_dict(model: TimmSwin) -> 'OrderedDict[str, Tensor]':
    """timm Swin -> the official Swin state dict (MoBY's ``encoder.*``).

    Official Swin closes stage ``i`` with ``layers.i.downsample`` (timm opens
    stage ``i + 1`` with it) and saves ``relative_position_index`` of every
    block and ``attn_mask`` of shifted blocks as persistent buffers.
    """
    official: 'OrderedDict[str, Tensor]' = OrderedDict()
    buffers = dict(model.named_buffers())
    for key, value in model.state_dict().items():
        downsample = re.fullmatch(r'layers\.(\d+)\.downsample\.(.+)', key)
        if downsample is not None:
            stage = int(downsample.group(1)) - 1
            key = f'layers.{stage}.downsample.{downsample.group(2)}'
        official[key] = value.clone()
        table = re.fullmatch(r'(.+\.attn\.)relative_position_bias_table', key)
        if table is not None:
            official[table.group(1) + 'relative_position_index'] = (
                buffers[table.group(1) + 'relative_position_index'].clone())
    for key, value in buffers.items():
        if key.endswith('attn_mask'):
            official[key] = value.clone()
    return official


def moby_mlp_state(prefix: str, in_dims: int) -> Dict[str, Tensor]:
    """Keys of a 2-layer MoBYMLP (Linear, BatchNorm1d, ReLU, Linear)."""
    return {
        f'{prefix}.linear_hidden.1.weight': torch.randn(24, in_dims),
        f'{prefix}.linear_hidden.1.bias': torch.randn(24),
        f'{prefix}.linear_hidden.2.weight': torch.randn(24),
        f'{prefix}.linear_hidden.2.bias': torch.randn(24),
        f'{prefix}.linear_hidden.2.running_mean': torch.randn(24),
        f'{prefix}.linear_hidden.2.running_var': torch.rand(24),
        f'{prefix}.linear_hidden.2.num_batches_tracked': torch.tensor(7),
        f'{prefix}.linear_out.weight': torch.randn(8, 24),
        f'{prefix}.linear_out.bias': torch.randn(8),
    }


def moby_release(encoder: TimmSwin, momentum_encoder: TimmSwin,
                 **top_level) -> dict:
    """The MoBY release layout (Transformer-SSL ``MoBY.state_dict()``)."""
    model: 'OrderedDict[str, Tensor]' = OrderedDict()
    for prefix, swin in (('encoder.', encoder), ('encoder_k.',
                                                 momentum_encoder)):
        for key, value in official_swin_state_dict(swin).items():
            model[prefix + key] = value
    num_features = encoder.num_features
    model.update(moby_mlp_state('projector', num_features))
    model.update(moby_mlp_state('projector_k', num_features))
    model.update(moby_mlp_state('predictor', 8))
    model['queue1'] = nn.functional.normalize(torch.randn(8, 16), dim=0)
    model['queue2'] = nn.functional.normalize(torch.randn(8, 16), dim=0)
    model['queue_ptr'] = torch.zeros(1, dtype=torch.long)
    return dict(model=model, **top_level)


def window_msas(swin: SwinTransformer) -> List[ShiftWindowMSA]:
    return [block.attn for stage in swin.stages for block in stage.blocks]


def assert_same_architecture(timm_model: TimmSwin, swin: SwinTransformer,
                             img_size: int) -> None:
    """The two models compute the same function up to the weights."""
    assert not timm_model.training and not swin.training
    assert not swin.use_abs_pos_embed
    assert not any('absolute_pos_embed' in key
                   for key in timm_model.state_dict())
    timm_blocks = [
        block for stage in timm_model.layers for block in stage.blocks
    ]
    msas = window_msas(swin)
    assert len(timm_blocks) == len(msas) == sum(swin.depths)
    side = img_size // 4
    stage_sides = [side // 2**i for i in range(len(swin.depths))]
    block_sides = [
        stage_sides[i] for i, depth in enumerate(swin.depths)
        for _ in range(depth)
    ]
    shifts = []
    for timm_block, msa, map_side in zip(timm_blocks, msas, block_sides):
        # Same windows and shifts (mmpretrain drops the shift at run time
        # when the map is one window, as the official Swin and timm do).
        assert tuple(timm_block.window_size) == msa.w_msa.window_size
        assert map_side >= msa.window_size  # no window shrinking
        mm_shift = msa.shift_size if map_side > msa.window_size else 0
        assert tuple(timm_block.shift_size) == (mm_shift, mm_shift)
        shifts.append(mm_shift)
        assert timm_block.attn.qkv.bias is not None
        assert msa.w_msa.qkv.bias is not None
        assert timm_block.attn.scale == msa.w_msa.scale
        assert isinstance(timm_block.drop_path1, nn.Identity)
        assert msa.drop.drop_prob == 0
    for module in list(timm_model.modules()) + list(swin.modules()):
        if isinstance(module, nn.LayerNorm):
            assert module.eps == 1e-5
    assert 0 in shifts and any(shifts)  # W-MSA and SW-MSA blocks


@torch.no_grad()
def features(swin: nn.Module, images: Tensor) -> Tensor:
    """Last-stage feature map (B, C, H, W) of an mmpretrain Swin."""
    (out, ) = swin(images)
    return out


@torch.no_grad()
def timm_features(timm_model: TimmSwin, images: Tensor) -> Tensor:
    """timm's normed last-stage map, (B, H, W, C) -> (B, C, H, W)."""
    return timm_model.forward_features(images).permute(0, 3, 1, 2)


@pytest.mark.parametrize('cfg_name', list(SWIN_CONFIGS))
def test_moby_release_features_match_timm(cfg_name):
    cfg = SWIN_CONFIGS[cfg_name]
    torch.manual_seed(0)
    encoder, momentum_encoder = timm_swin(**cfg), timm_swin(**cfg)
    release = moby_release(encoder, momentum_encoder)
    swin = mmpretrain_swin(**cfg)
    assert_same_architecture(encoder, swin, cfg['img_size'])

    assert detect_checkpoint_format(release) == 'moby'
    state_dict = load_backbone_state_dict(release)
    num_loaded = load_state_dict_strict(swin, state_dict, name='moby')

    assert set(state_dict) == set(swin.state_dict())
    assert num_loaded == len(swin.state_dict())
    last = len(cfg['depths']) - 1
    assert f'norm{last}.weight' in state_dict
    torch.testing.assert_close(state_dict[f'norm{last}.weight'],
                               encoder.norm.weight.detach())
    images = torch.randn(2, 3, cfg['img_size'], cfg['img_size'])
    expected = timm_features(encoder, images)
    actual = features(swin, images)
    side = cfg['img_size'] // 4 // 2**last
    assert actual.shape == (2, encoder.num_features, side, side)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    # The momentum encoder (encoder_k.*) was not read.
    assert not torch.allclose(
        actual, timm_features(momentum_encoder, images), atol=1e-2)


def test_patch_merging_order_matches_mmcv_unfold():
    """Official / timm merge order, reordered, is mmcv's Unfold order."""
    torch.manual_seed(0)
    batch, side, channels = 2, 4, 3
    x = torch.randn(batch, side, side, channels)
    official = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1)  # (B, H/2, W/2, 4C)
    merge = PatchMerging(channels, 2 * channels, norm_cfg=None)
    unfolded = merge.sampler(x.permute(0, 3, 1, 2)).transpose(1, 2)
    official = official.reshape(batch, -1, 4 * channels)
    assert not torch.equal(official, unfolded)  # the orders differ
    torch.testing.assert_close(
        swin_merge_to_unfold_order(official), unfolded, atol=0, rtol=0)
    # Reordering the reduction's input columns the same way keeps its output.
    weight = torch.randn(2 * channels, 4 * channels)
    torch.testing.assert_close(
        unfolded @ swin_merge_to_unfold_order(weight).T,
        official @ weight.T,
        atol=1e-6,
        rtol=0)


def test_features_differ_without_merge_permutation():
    """The end-to-end check would catch a wrong PatchMerging order."""
    torch.manual_seed(0)
    encoder = timm_swin(**TINY)
    official = official_swin_state_dict(encoder)
    state_dict = swin_to_mmpretrain(official)
    for name in ('reduction.weight', 'norm.weight', 'norm.bias'):
        state_dict[f'stages.0.downsample.{name}'] = official[
            f'layers.0.downsample.{name}']
    swin = mmpretrain_swin(**TINY)
    load_state_dict_strict(swin, state_dict)  # same shapes: loads

    images = torch.randn(2, 3, 32, 32)
    error = (features(swin, images) - timm_features(encoder, images)).abs()
    assert error.max() > 1e-2


def test_relative_position_index_is_rebuilt_and_checked():
    torch.manual_seed(0)
    encoder = timm_swin(**TINY)
    official = official_swin_state_dict(encoder)
    key = 'layers.0.blocks.1.attn.relative_position_index'
    new_key = 'stages.0.blocks.1.attn.w_msa.relative_position_index'
    # Official, mmpretrain's (built by the architecture) and ours agree.
    built = mmpretrain_swin(**TINY).state_dict()[new_key]
    assert torch.equal(official[key], built)
    assert torch.equal(swin_relative_position_index(4), built)
    assert built.dtype == torch.long and built.shape == (16, 16)

    # Without stored indices (timm does not save them) they are rebuilt.
    without_index = OrderedDict(
        (k, v) for k, v in official.items()
        if not k.endswith('relative_position_index'))
    state_dict = swin_to_mmpretrain(without_index)
    assert torch.equal(state_dict[new_key], built)
    load_state_dict_strict(mmpretrain_swin(**TINY), state_dict)

    # A stored index of another convention is refused, by name.
    official[key] = official[key].flip(1)
    with pytest.raises(CheckpointFormatError, match=re.escape(repr(key))):
        swin_to_mmpretrain(official)


def test_dropped_keys_are_reported_by_name(monkeypatch):
    torch.manual_seed(0)
    release = moby_release(timm_swin(**TINY), timm_swin(**TINY))
    messages: List[str] = []
    # the modules the MoBY path logs from
    for module in (mmmoma.checkpoints.keys, mmmoma.checkpoints.moby):
        monkeypatch.setattr(module, 'print_log',
                            lambda message, **kwargs: messages.append(message))

    state_dict = load_backbone_state_dict(release)

    log = '\n'.join(messages)
    for pattern in ('encoder_k.*', 'projector.*', 'projector_k.*',
                    'predictor.*', 'queue*', 'layers.*.blocks.*.attn_mask'):
        assert f'matching {pattern!r}' in log
    for key in ("'queue1'", "'queue2'", "'queue_ptr'",
                "'predictor.linear_out.weight'",
                "'layers.0.blocks.1.attn_mask'"):
        assert key in log
    assert not any('attn_mask' in key or 'queue' in key for key in state_dict)


@pytest.mark.parametrize('extra_key, named', [
    ('encoder.layers.0.blocks.0.attn.q_norm.weight',
     'layers.0.blocks.0.attn.q_norm.weight'),
    ('encoder.layers.1.blocks.0.gamma_1', 'layers.1.blocks.0.gamma_1'),
    ('momentum_queue', 'momentum_queue'),
])
def test_unmappable_keys_raise_naming_them(extra_key, named):
    torch.manual_seed(0)
    release = moby_release(timm_swin(**TINY), timm_swin(**TINY))
    release['model'][extra_key] = torch.zeros(4)
    with pytest.raises(CheckpointFormatError, match=re.escape(repr(named))):
        load_backbone_state_dict(release)


def test_bn_variant_without_norm2_is_refused():
    """MoBY-Swin-T-BN has no norm2 parameters: say so, not 'missing'."""
    torch.manual_seed(0)
    release = moby_release(timm_swin(**TINY), timm_swin(**TINY))
    for key in list(release['model']):
        if re.fullmatch(r'encoder\.layers\.\d+\.blocks\.\d+\.norm2\..+', key):
            del release['model'][key]
    with pytest.raises(CheckpointFormatError, match='NORM_BEFORE_MLP'):
        load_backbone_state_dict(release)


def test_detect_checkpoint_format_moby_and_neighbours():
    torch.manual_seed(0)
    encoder = timm_swin(**TINY)
    release = moby_release(encoder, timm_swin(**TINY))
    assert detect_checkpoint_format(release) == 'moby'
    # Extra top-level entries of a training checkpoint do not matter.
    assert detect_checkpoint_format({**release, 'epoch': 299}) == 'moby'
    # A plain (un-prefixed) Swin or a MoBY DeiT is not a MoBY Swin.
    official = official_swin_state_dict(encoder)
    assert detect_checkpoint_format({'model': official}) != 'moby'
    deit_like = {
        'model': {
            'encoder.cls_token': torch.zeros(1, 1, 8),
            'encoder.patch_embed.proj.weight': torch.zeros(8, 3, 4, 4),
            'encoder.blocks.0.norm1.weight': torch.zeros(8),
        }
    }
    with pytest.raises(CheckpointFormatError, match='Unrecognised'):
        detect_checkpoint_format(deit_like)


def test_absolute_pos_embed_is_mapped():
    torch.manual_seed(0)
    official = official_swin_state_dict(timm_swin(**TINY))
    official['absolute_pos_embed'] = torch.randn(1, 64, 32)
    swin = mmpretrain_swin(**TINY, use_abs_pos_embed=True)
    load_state_dict_strict(swin, swin_to_mmpretrain(official))
    torch.testing.assert_close(swin.absolute_pos_embed.data,
                               official['absolute_pos_embed'])


def test_frozen_teacher_loads_release_and_converted_file(tmp_path):
    """MimCo's Swin teacher: a FrozenTeacher over a SwinTransformer."""
    torch.manual_seed(0)
    encoder = timm_swin(**TINY)
    release_path = tmp_path / 'moby_swin_t_300ep_pretrained.pth'
    torch.save(moby_release(encoder, timm_swin(**TINY)), release_path)
    converted_path = tmp_path / 'moby_swin_t_300ep_mmpretrain.pth'
    num_keys = convert_to_backbone_checkpoint(
        release_path,
        converted_path,
        expected_format='moby',
        show_progress=False)
    network = dict(
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[2, 2], num_heads=[2, 4]),
        img_size=32,
        window_size=4,
        out_indices=(1, ))
    images = torch.randn(2, 3, 32, 32)
    expected = timm_features(encoder, images)

    for path in (release_path, converted_path):
        teacher = FrozenTeacher(network=network, checkpoint=str(path))
        teacher.train()
        assert not teacher.network.training
        assert all(not p.requires_grad
                   for p in teacher.network.parameters())
        assert len(teacher.network.state_dict()) == num_keys
        (actual, ) = teacher(images)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)

    # A key that cannot be mapped stops the teacher from being built.
    release = torch.load(release_path, weights_only=True)
    release['model']['encoder.layers.0.blocks.0.attn.q_norm.weight'] = (
        torch.ones(16))
    bad_path = tmp_path / 'bad_moby.pth'
    torch.save(release, bad_path)
    with pytest.raises(CheckpointFormatError,
                       match="'layers.0.blocks.0.attn.q_norm.weight'"):
        FrozenTeacher(network=network, checkpoint=str(bad_path))


def test_simmim_swin_loads_with_mask_token_allowed_missing():
    torch.manual_seed(0)
    encoder = timm_swin(**TINY)
    state_dict = load_backbone_state_dict(
        moby_release(encoder, timm_swin(**TINY)))
    swin = mmpretrain_swin(**TINY, simmim=True)
    assert window_msas(swin)[0].window_size == 4
    load_state_dict_strict(swin, state_dict, allowed_missing=('mask_token', ))

    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        (actual, ) = swin(images, None)
    torch.testing.assert_close(
        actual, timm_features(encoder, images), atol=1e-5, rtol=0)
