"""tools/analysis/benchmark.py on tiny ViTs (embed 64, depth 2, 32 px,
patch 4), CPU."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models import VisionTransformer

from mmmoma.utils.flops import count_flops

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'tools' / 'analysis' / 'benchmark.py'
TINY_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=256)
TINY_ARGS = [
    '--arch', repr(TINY_ARCH), '--img-size', '32', '--patch-size', '4',
    '--batch-size', '2', '--steps', '1', '--warmup', '0', '--device', 'cpu'
]


@pytest.fixture(scope='module')
def benchmark():
    spec = importlib.util.spec_from_file_location('benchmark_tool', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init_default_scope('mmpretrain')
    return module


# The published MAE decoder (512-d, 8 blocks) would dwarf a 64-d, 2-block
# encoder; shrink it as the demo config does so that the encoders dominate.
TINY_MAE_DECODER = [
    '--mae-cfg-options', 'model.neck.decoder_embed_dim=64',
    'model.neck.decoder_depth=2', 'model.neck.decoder_num_heads=4'
]


@pytest.fixture(scope='module')
def tiny_result(benchmark):
    return benchmark.main(TINY_ARGS + TINY_MAE_DECODER)


def test_main_reports_both_baselines(tiny_result):
    rows = {row.name: row for row in tiny_result.rows}
    assert list(rows) == ['mmpretrain MAE', 'mmpretrain MoCo v3']
    for row in rows.values():
        assert row.train_gflops_per_image > 0
        assert row.step_time_s > 0
        assert row.images_per_s == pytest.approx(2 / row.step_time_s)
        assert row.peak_memory_mib is None  # CPU
        assert row.flops_ratio == pytest.approx(
            row.train_gflops_per_image / tiny_result.reference_forward_gflops)
    # MoCo v3: two crops through student and momentum encoder + projectors;
    # MAE: a quarter of the tokens through the encoder + a small decoder.
    assert rows['mmpretrain MoCo v3'].flops_ratio > \
        rows['mmpretrain MAE'].flops_ratio


def test_reference_is_plain_vit_forward(tiny_result):
    vit = VisionTransformer(arch=TINY_ARCH, img_size=32, patch_size=4)
    vit.eval()  # mmpretrain's ViT.train() returns None: no chaining
    with torch.no_grad():
        flops = count_flops(vit, torch.zeros(1, 3, 32, 32))
    assert tiny_result.reference_forward_gflops == flops / 1e9


def test_model_overrides(benchmark):
    mae = benchmark.load_config(benchmark.BASELINE_CONFIGS[0][2])
    changes = benchmark.override_model_size(mae.model, TINY_ARCH, 32, 4)
    assert mae.model.backbone.arch == TINY_ARCH
    assert (mae.model.backbone.img_size, mae.model.backbone.patch_size) == \
        (32, 4)
    assert mae.model.neck.num_patches == 64
    assert mae.model.neck.embed_dim == 64
    assert mae.model.neck.decoder_embed_dim == 512  # decoder keeps its size
    assert mae.model.neck.patch_size == mae.model.head.patch_size == 4
    assert any('model.neck.num_patches' in change for change in changes)
    pipeline = benchmark.find_train_pipeline(mae)
    benchmark.override_pipeline_size(pipeline, 32)
    assert pipeline[1].scale == 32

    mocov3 = benchmark.load_config(benchmark.BASELINE_CONFIGS[1][2])
    benchmark.override_model_size(mocov3.model, TINY_ARCH, 32, 4)
    assert mocov3.model.backbone.arch == TINY_ARCH
    assert mocov3.model.neck.in_channels == 64
    assert mocov3.model.neck.hid_channels == 4096
    assert mocov3.model.head.predictor.in_channels == 256
    pipeline = benchmark.find_train_pipeline(mocov3)
    benchmark.override_pipeline_size(pipeline, 32)
    assert [view[0].scale for view in pipeline[1].transforms] == [32, 32]


def test_arch_names_and_errors(benchmark):
    assert benchmark.resolve_vit_arch('b')['embed_dims'] == 768
    assert benchmark.resolve_vit_arch('mocov3-small')['num_heads'] == 12
    with pytest.raises(ValueError, match='allowed names'):
        benchmark.resolve_vit_arch('gigantic')
    with pytest.raises(ValueError, match='exactly the keys'):
        benchmark.resolve_vit_arch(dict(embed_dims=64))
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--amp', '--device', 'cpu'])
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--img-size', '30', '--patch-size', '4'])


def test_cli_prints_table_for_config_and_baselines(tmp_path):
    config = tmp_path / 'mae_shallow_decoder.py'
    config.write_text("_base_ = ['mmpretrain::mae/"
                      "mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']\n")
    out = tmp_path / 'results.json'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(config), *TINY_ARGS,
         '--cfg-options', 'model.neck.decoder_depth=1', '--out', str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ('mmpretrain MAE', 'mmpretrain MoCo v3',
                 'mae_shallow_decoder', 'train GFLOPs/img', 'x F'):
        assert name in proc.stdout
    rows = {row['name']: row for row in json.loads(out.read_text())['rows']}
    # same encoder, 1 decoder block instead of 8: fewer FLOPs than MAE
    assert 0 < rows['mae_shallow_decoder']['train_gflops_per_image'] < \
        rows['mmpretrain MAE']['train_gflops_per_image']


# A MOMA config as the recipes write it (ViT-B, checkpoints the user fills
# in): one teacher paired with the strong view, a StrictPretrained student.
MOMA_CONFIG = """
model = dict(
    type='MOMA',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], to_rgb=True),
    backbone=dict(
        type='MaskedViT', arch='b', img_size=224, patch_size=16,
        out_type='raw',
        init_cfg=dict(type='StrictPretrained',
                      checkpoint='does/not/exist/student.pth')),
    teachers=dict(
        mocov3=dict(
            teacher=dict(
                network=dict(type='MaskedViT', arch='b', img_size=224,
                             patch_size=16, out_type='raw'),
                checkpoint='does/not/exist/teacher.pth'),
            student_view=1)),
    mask_ratio=0.9)
train_dataloader = dict(
    collate_fn=dict(type='default_collate'),
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=224),
        dict(type='MultiView', num_views=[1, 1],
             transforms=[[], [dict(type='Solarize', thr=128, prob=1.0)]]),
        dict(type='PackInputs'),
    ]))
optim_wrapper = dict(type='AmpOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4))
"""
MOMA_FIELDS = ['model.backbone.init_cfg.checkpoint',
               'model.teachers.mocov3.teacher.checkpoint']


@pytest.fixture
def moma_config(tmp_path):
    config = tmp_path / 'moma_tiny.py'
    config.write_text(MOMA_CONFIG)
    return str(config)


def test_moma_flops_match_teacher_forward_plus_masked_student_step(
        benchmark, tiny_result, moma_config, capsys):
    result = benchmark.main(
        [moma_config, '--no-baselines', '--random-teachers', *TINY_ARGS])
    printed = capsys.readouterr().out
    (row, ) = result.rows
    assert row.stand_in_checkpoints == MOMA_FIELDS
    for field in MOMA_FIELDS:
        assert f'--random-teachers: {field}:' in printed
    assert '† moma_tiny with random stand-in weights for: ' + \
        ', '.join(MOMA_FIELDS) in printed

    # Analytic count (matmuls + attention, 2 FLOPs per multiply-add):
    # teacher forward = F; student: patch embedding of all 64 patches
    # (forward + weight gradient), the 2 encoder layers on the
    # round(64 * 0.1) = 6 visible tokens + CLS (forward + backward = 3x),
    # and the linear projector on those 7 tokens (3x).
    dims, mlp, layers = 64, 256, 2
    reference = result.reference_forward_gflops * 1e9
    patch_embed = 2 * 64 * (3 * 4 * 4) * dims
    tokens = round(64 * (1 - 0.9)) + 1

    def encoder(length):
        return layers * (2 * length * (4 * dims * dims + 2 * dims * mlp) +
                         4 * length * length * dims)

    assert reference == patch_embed + encoder(65)  # F
    student = 2 * patch_embed + 3 * encoder(tokens) + 3 * 2 * tokens * dims**2
    assert row.train_gflops_per_image * 1e9 == pytest.approx(
        reference + student, rel=1e-9)
    # the teacher runs without autograd, yet its forward is counted
    assert 1 < row.flops_ratio < 1.5
    mocov3 = {r.name: r for r in tiny_result.rows}['mmpretrain MoCo v3']
    assert row.flops_ratio < mocov3.flops_ratio


def test_missing_checkpoints_need_random_teachers(benchmark, moma_config):
    with pytest.raises(FileNotFoundError,
                       match='--random-teachers') as error:
        benchmark.main([moma_config, '--no-baselines', *TINY_ARGS])
    for field in MOMA_FIELDS:
        assert field in str(error.value)


def test_random_stand_ins_fit_the_overridden_arch(benchmark, moma_config,
                                                  tmp_path):
    from mmpretrain.registry import MODELS

    from mmmoma.models.utils.checkpoint_formats import (
        load_backbone_state_dict, load_state_dict_strict)
    cfg = benchmark.load_config(moma_config)
    benchmark.override_model_size(cfg.model, TINY_ARCH, 32, 4)
    teacher_cfg = cfg.model.teachers.mocov3.teacher
    assert teacher_cfg.network.arch == TINY_ARCH  # teachers resized too
    changes = benchmark.write_random_stand_in_checkpoints(
        cfg.model, str(tmp_path / 'stand_ins'))
    assert [change.split(':')[0] for change in changes] == MOMA_FIELDS
    paths = [cfg.model.backbone.init_cfg.checkpoint, teacher_cfg.checkpoint]
    assert all(path.startswith(str(tmp_path / 'stand_ins')) for path in paths)
    student_weights, teacher_weights = (
        load_backbone_state_dict(path) for path in paths)
    network = MODELS.build(teacher_cfg.network)
    assert load_state_dict_strict(network, teacher_weights) == len(
        network.state_dict())
    # independent random draws, not one file twice
    assert not torch.equal(student_weights['layers.0.attn.qkv.weight'],
                           teacher_weights['layers.0.attn.qkv.weight'])


SDAE_VARIANTS = {
    name: str(REPO_ROOT / 'configs' / 'sdae' /
              f'{name}_vit-base-p16_8xb96-amp-coslr-100e_in1k.py')
    for name in ('sdae-multi-fold', 'sdae-masked-only', 'sdae-teacher-crop',
                 'sdae-full-image')
}


def test_sdae_variants_differ_by_their_teacher_forward_only(benchmark,
                                                            capsys):
    """The four teacher inputs share the student; their FLOPs differ by the
    teacher's forward exactly: 3 folds of 16 (+ CLS each), 48 masked tokens
    in one sequence, a crop of round(48 / 3) = 16, or all 64 tokens."""
    result = benchmark.main([*SDAE_VARIANTS.values(), *TINY_ARGS,
                             *TINY_MAE_DECODER, '--cfg-options',
                             'model.neck.decoder_depth=1'])
    printed = capsys.readouterr().out
    rows = {row.name.split('_')[0]: row for row in result.rows}
    flops = {name: rows[name].train_gflops_per_image * 1e9 * 2  # per batch
             for name in SDAE_VARIANTS}
    dims, mlp, layers, batch = 64, 256, 2, 2

    def teacher_forward(length, sequences=1):
        """Encoder blocks on ``sequences`` sequences of ``length`` tokens
        (projections + MLP + attention; 2 FLOPs per multiply-add)."""
        return sequences * batch * layers * (
            2 * length * (4 * dims * dims + 2 * dims * mlp) +
            4 * length * length * dims)

    multi_fold = teacher_forward(16 + 1, sequences=3)
    assert flops['sdae-masked-only'] - flops['sdae-multi-fold'] == \
        pytest.approx(teacher_forward(48 + 1) - multi_fold, rel=1e-9)
    assert flops['sdae-full-image'] - flops['sdae-multi-fold'] == \
        pytest.approx(teacher_forward(64 + 1) - multi_fold, rel=1e-9)
    assert flops['sdae-multi-fold'] - flops['sdae-teacher-crop'] == \
        pytest.approx(multi_fold - teacher_forward(16 + 1), rel=1e-9)
    # the table compares every row with MAE
    mae = rows['mmpretrain MAE']
    assert 'FLOPs vs MAE' in printed and 'time vs MAE' in printed
    expected = 100 * (rows['sdae-full-image'].train_gflops_per_image /
                      mae.train_gflops_per_image - 1)
    assert f'{expected:+.1f}%' in printed


MIMCO_VIT_B = str(REPO_ROOT / 'configs' / 'mimco' /
                  'mimco_vit-base-p16_8xb256-amp-coslr-100e_in1k.py')


def test_mimco_flops_are_teacher_forward_plus_full_student_step(benchmark):
    """MimCo's student encodes every token (masked ones as the mask token),
    so its step is the teacher's forward F plus a full forward + backward of
    the student plus the heads, counted here by hand."""
    hidden, out, queue = 32, 16, 8
    heads = [f'model.{name}.{key}={value}'
             for name in ('patch_projector', 'patch_predictor',
                          'image_projector', 'image_predictor')
             for key, value in (
                 ('hid_channels' if name.startswith('image') else
                  'hidden_channels', hidden), ('out_channels', out))]
    result = benchmark.main([
        MIMCO_VIT_B, '--no-baselines', '--random-teachers', *TINY_ARGS,
        '--cfg-options', 'model.mask_patch_size=8',
        f'model.patch_queue_length={queue}',
        f'model.image_queue_length={queue}', *heads
    ])
    (row, ) = result.rows
    assert row.stand_in_checkpoints == ['model.teacher.checkpoint']
    dims, mlp, layers, cells = 64, 256, 2, 64
    patch_embed = 2 * cells * (3 * 4 * 4) * dims
    encoder = layers * (2 * 65 * (4 * dims * dims + 2 * dims * mlp) +
                        4 * 65 * 65 * dims)
    reference = result.reference_forward_gflops * 1e9
    assert reference == patch_embed + encoder  # F
    # 16 mask patches of 8 px, 16 - round(16 * 0.4) = 10 masked, each 2 x 2
    # cells of the 8 x 8 feature map
    masked_cells = 10 * 4
    projector = 2 * (dims * hidden + hidden * out)  # per row, forward
    predictor = 2 * (out * hidden + hidden * out)
    patch_head = cells * (3 * projector + 3 * predictor + projector)
    image_head = 3 * projector + 3 * predictor + projector
    # query @ queue^T, forward + the gradient w.r.t. the queries
    info_nce = 2 * 2 * (masked_cells + 1) * queue * out
    student = 2 * patch_embed + 3 * encoder
    per_image = reference + student + patch_head + image_head + info_nce
    assert row.train_gflops_per_image * 1e9 == pytest.approx(per_image,
                                                             rel=1e-9)
