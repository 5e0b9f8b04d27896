"""tools/analysis/benchmark.py on tiny ViTs (embed 64, depth 2, 32 px,
patch 4), CPU."""
import argparse
import inspect
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

from .utils import load_tool

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
    module = load_tool(SCRIPT)
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


def test_arch_names_and_errors(benchmark, capsys):
    """(The arch zoo itself: tests/test_utils/
    test_config_surgery_model_shrinking.py.)"""
    assert benchmark.parse_args(['--arch', 'b']).arch_dict['embed_dims'] == \
        768
    assert benchmark.parse_args(['--arch', repr(TINY_ARCH)]).arch_dict == \
        TINY_ARCH
    for arch, message in (('gigantic', 'allowed names'),
                          ("{'embed_dims': 64}", 'exactly the keys')):
        with pytest.raises(SystemExit):
            benchmark.parse_args(['--arch', arch])
        error = capsys.readouterr().err
        assert '--arch: ' in error and message in error
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
    in one sequence, a crop of round(48 * 36 / 147) = 12, or all 64 tokens."""
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
        pytest.approx(multi_fold - teacher_forward(12 + 1), rel=1e-9)
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


def test_baseline_attention_flops_and_versus_mocov3(benchmark, tiny_result):
    """The attention kernels' part of each baseline step, counted by hand
    (Q·Kᵀ and P·V: 4·S²·C per layer and sequence, backward twice that),
    and the table's columns relative to MoCo v3."""
    rows = {row.name: row for row in tiny_result.rows}
    dims, layers = 64, 2

    def attention(length):
        return layers * 4 * length * length * dims

    # MoCo v3: two views through the trained encoder (forward + backward)
    # and the momentum encoder (forward), 65 tokens each
    mocov3 = rows['mmpretrain MoCo v3']
    assert mocov3.attention_gflops_per_image * 1e9 == pytest.approx(
        2 * (3 * attention(65) + attention(65)), rel=1e-12)
    assert mocov3.attention_backward_gflops_per_image * 1e9 == \
        pytest.approx(2 * 2 * attention(65), rel=1e-12)
    # MAE: 16 visible tokens + CLS through the encoder, 65 through the
    # 2-block decoder of the fixture, both trained
    mae = rows['mmpretrain MAE']
    assert mae.attention_gflops_per_image * 1e9 == pytest.approx(
        3 * (attention(17) + attention(65)), rel=1e-12)
    assert tiny_result.reference_attention_gflops * 1e9 == attention(65)

    # the FLOPs table; the cost table after it is tested below
    table = benchmark.format_table(tiny_result).split('\nCost\n')[0]
    for column in ('attn GFLOPs/img', 'FLOPs vs MoCo v3', 'attn vs MoCo v3',
                   'FLOPs vs MAE', 'time vs MAE'):
        assert column in table
    assert 'peak GPU MiB' not in table  # it is in the cost table
    (mae_line, ) = [line for line in table.splitlines()
                    if line.startswith('mmpretrain MAE')]
    flops_vs_mocov3 = 100 * (mae.train_gflops_per_image /
                             mocov3.train_gflops_per_image - 1)
    attention_vs_mocov3 = 100 * (mae.attention_gflops_per_image /
                                 mocov3.attention_gflops_per_image - 1)
    assert f'{flops_vs_mocov3:+.1f}%' in mae_line.split()
    assert f'{attention_vs_mocov3:+.1f}%' in mae_line.split()
    (mocov3_line, ) = [line for line in table.splitlines()
                       if line.startswith('mmpretrain MoCo v3')]
    assert mocov3_line.split().count('+0.0%') == 2  # itself, FLOPs + attn


MMOCO_VIT_B = str(REPO_ROOT / 'configs' / 'mmoco' /
                  'mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
MMOCO_NAME = 'mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k'
# small heads (the published 4096-wide ones would dwarf the tiny encoder);
# m = 1 and a trained patch embedding pinned, as the hand count assumes
MMOCO_HEADS = [
    'model.neck.hid_channels=32', 'model.neck.out_channels=16',
    'model.predictor.hid_channels=32', 'model.num_target_chunks=1',
    'model.backbone.stop_grad_conv1=False'
]


def mmoco_flops(num_chunks):
    """Hand count of one M-MoCo step per image (tiny ViT, batch 2): total
    and attention FLOPs (2 FLOPs per multiply-add).

    Per view: the online encoder embeds the 64 patches (forward + weight
    gradient) and encodes n sequences of 1 + 64 / n tokens (a CLS token
    each) forward + backward (3x), then the n CLS outputs go through the
    projector (64 -> 32 -> 32 -> 16) and the predictor (16 -> 32 -> 16),
    3x; the momentum encoder embeds and encodes the full view (65 tokens)
    and projects its CLS output, forward only (m = 1). The loss of each of
    the two (query view, key view) pairs multiplies the B·n queries with the
    B keys (forward + gradient w.r.t. the queries).
    """
    dims, mlp, layers, patches, batch, hidden, out = 64, 256, 2, 64, 2, 32, 16
    patch_embed = 2 * patches * (3 * 4 * 4) * dims

    def attention(length, sequences=1):
        return sequences * layers * 4 * length * length * dims

    def encoder(length, sequences=1):
        return sequences * layers * 2 * length * (
            4 * dims * dims + 2 * dims * mlp) + attention(length, sequences)

    projector = 2 * (dims * hidden + hidden * hidden + hidden * out)
    predictor = 2 * (out * hidden + hidden * out)
    length = 1 + patches // num_chunks
    online = 2 * patch_embed + 3 * encoder(length, num_chunks) + \
        3 * num_chunks * (projector + predictor)
    target = patch_embed + encoder(1 + patches) + projector
    loss = 2 * 2 * 2 * num_chunks * batch * out  # per image, both pairs
    total = 2 * (online + target) + loss
    attention_flops = 2 * (3 * attention(length, num_chunks) +
                           attention(1 + patches))
    return total, attention_flops


def test_mmoco_sweep_flops_match_hand_count(benchmark, capsys):
    result = benchmark.main([
        MMOCO_VIT_B, '--no-baselines', *TINY_ARGS, '--cfg-options',
        *MMOCO_HEADS, '--sweep', 'model.num_chunks=1,4'
    ])
    printed = capsys.readouterr().out
    rows = {row.num_chunks: row for row in result.rows}
    assert [row.name for row in result.rows] == [
        f'{MMOCO_NAME} [num_chunks=1]', f'{MMOCO_NAME} [num_chunks=4]'
    ]
    for num_chunks, row in rows.items():
        assert row.model_type == 'MaskedMoCoV3'
        assert row.sweep == {'model.num_chunks': num_chunks}
        assert row.num_target_chunks == 1
        # ContrastiveViews' crop follows --img-size
        assert 'pipeline[1].crop_size: 224 -> 32' in row.overrides
        total, attention = mmoco_flops(num_chunks)
        assert row.attention_gflops_per_image * 1e9 == pytest.approx(
            attention, rel=1e-12)
        assert row.train_gflops_per_image * 1e9 == pytest.approx(
            total, rel=1e-12)
    # 4 chunks of 17 tokens instead of one of 65 in the online encoder: the
    # attention drops, 3 more CLS tokens and 4 queries per view cost less
    assert rows[4].attention_gflops_per_image < \
        rows[1].attention_gflops_per_image
    assert rows[4].train_gflops_per_image < rows[1].train_gflops_per_image

    # the summary: changes relative to n = 1, and the explanation's shares
    assert 'around 20% FLOPs' in printed
    summary = printed.split('Chunking savings')[1]
    (line, ) = [line for line in summary.splitlines()
                if line.strip().startswith(f'{MMOCO_NAME} [num_chunks=4]')]
    assert line.split()[-6:-4] == ['4', '1']  # n, m
    step_change = rows[4].train_gflops_per_image / \
        rows[1].train_gflops_per_image - 1
    attention_change = rows[4].attention_gflops_per_image / \
        rows[1].attention_gflops_per_image - 1
    assert line.split()[-4:-2] == [
        f'{100 * step_change:+.1f}%', f'{100 * attention_change:+.1f}%'
    ]
    assert line.split()[-2:] == ['-', '-']  # no MoCo v3 row
    explanation = ' '.join(summary.split('Why the gap:')[1].split())
    step = rows[1].train_gflops_per_image
    online = 1.5 * rows[1].attention_backward_gflops_per_image
    assert online * 1e9 == pytest.approx(2 * 3 * 2 * 4 * 65 * 65 * 64)
    assert f"online encoder's {100 * online / step:.1f}% of the step" in \
        explanation
    target = rows[1].attention_gflops_per_image - online
    assert f"momentum encoder's {100 * target / step:.1f}% stays" in \
        explanation
    assert f'Net {100 * step_change:+.1f}%' in explanation
    assert 'left over' not in explanation  # 4 chunks of 16 patches


def test_sweep_option_parsing_and_errors(benchmark):
    assert benchmark.parse_sweep('model.num_chunks=1,2,4,8') == (
        'model.num_chunks', [1, 2, 4, 8])
    assert benchmark.parse_sweep('model.num_chunks=4') == (
        'model.num_chunks', [4])
    assert benchmark.parse_sweep('a.b=None,abc,0.5,[[1,2],[3]]') == (
        'a.b', [None, 'abc', 0.5, [[1, 2], [3]]])
    assert benchmark.parse_sweep('a.b=[[1,2],[3]]') == ('a.b', [[1, 2],
                                                                [3]])
    assert benchmark.sweep_row_name('cfg', 'model.num_chunks', 4) == \
        'cfg [num_chunks=4]'
    for bad in ('model.num_chunks', 'model.num_chunks=', '=1,2',
                'model.num_chunks=1,1'):
        with pytest.raises(argparse.ArgumentTypeError):
            benchmark.parse_sweep(bad)
        with pytest.raises(SystemExit):
            benchmark.parse_args([MMOCO_VIT_B, '--sweep', bad])
    with pytest.raises(SystemExit):  # the baselines are not swept
        benchmark.parse_args(['--sweep', 'model.num_chunks=1,2'])


def test_sweep_key_must_be_a_config_field(benchmark):
    cfg = benchmark.load_config(MMOCO_VIT_B)
    benchmark.check_config_key(cfg, 'model.num_chunks', 'mmoco')
    # not set by the config, but an argument of MaskedMoCoV3 (its default)
    benchmark.check_config_key(cfg, 'model.temperature', 'mmoco')
    benchmark.check_config_key(cfg, 'train_dataloader.dataset.pipeline.1.mode',
                               'mmoco')
    with pytest.raises(ValueError, match=r"no 'num_chunk'.*MaskedMoCoV3"):
        benchmark.check_config_key(cfg, 'model.num_chunk', 'mmoco')
    with pytest.raises(ValueError, match=r"no 'modle' in the config"):
        benchmark.check_config_key(cfg, 'modle.num_chunks', 'mmoco')
    with pytest.raises(ValueError, match=r"no '7' in .*pipeline"):
        benchmark.check_config_key(
            cfg, 'train_dataloader.dataset.pipeline.7.mode', 'mmoco')
    # main checks every config before benchmarking anything
    with pytest.raises(ValueError, match="has no field 'model.num_chunk'"):
        benchmark.main([
            MMOCO_VIT_B, '--no-baselines', *TINY_ARGS, '--sweep',
            'model.num_chunk=1,2'
        ])


def test_chunking_summary_arithmetic(benchmark, tiny_result):
    """The summary's numbers on made-up rows: n = 1 step 100, attention 10
    (backward 4, so 6 online, 4 momentum encoder); n = 6 step 97,
    attention 5 (-5 % of the n = 1 step), everything else +2 %, net -3 %."""

    def row(name, num_chunks, step, attention, backward):
        return benchmark.BenchmarkRow(
            name=name, config='mmoco.py', train_gflops_per_image=step,
            flops_ratio=1.0, attention_gflops_per_image=attention,
            attention_backward_gflops_per_image=backward, step_time_s=1.0,
            images_per_s=2.0, peak_memory_mib=None, model_type='MaskedBYOL',
            num_chunks=num_chunks, num_target_chunks=1)

    mocov3 = row('mmpretrain MoCo v3', None, 200.0, 20.0, 8.0)
    mocov3.model_type = 'MoCoV3'
    result = benchmark.BenchmarkResult(
        settings=tiny_result.settings,
        reference_forward_gflops=50.0,
        reference_attention_gflops=4.0,
        rows=[mocov3,
              row('m [n=1]', 1, 100.0, 10.0, 4.0),
              row('m [n=6]', 6, 97.0, 5.0, 2.0)])
    summary = benchmark.format_chunking_summary(result)
    lines = summary.splitlines()
    (single, ) = [line for line in lines if line.startswith('  m [n=1]')]
    (chunked, ) = [line for line in lines if line.startswith('  m [n=6]')]
    assert single.split()[2:] == ['1', '1', '+0.0%', '+0.0%', '-50.0%',
                                  '-50.0%']
    assert chunked.split()[2:] == ['6', '1', '-3.0%', '-50.0%', '-51.5%',
                                   '-75.0%']
    explanation = ' '.join(summary.split('Why the gap:')[1].split())
    for text in ('vs 12·S·C² for the projections and MLP',
                 '8.0% of a plain ViT forward at S=65 tokens',
                 '10.0% of the n=1 step',
                 "online encoder's 6.0% of the step",
                 "momentum encoder's 4.0% stays: it sees the full view, m=1",
                 'n=6 changes the attention FLOPs by -5.0% of the n=1 step '
                 'and everything else by +2.0%',
                 '6 CLS tokens per view (one per chunk, 5 more than n=1)',
                 # 64 patches in 6 chunks of 10
                 'the 4 patches per view left over by 64 = 6 × 10 + 4 are '
                 'not encoded', 'Net -3.0%.'):
        assert text in explanation, text
    # no n = 1 row: the changes cannot be computed, the summary says why
    result.rows = result.rows[:1] + result.rows[2:]
    summary = benchmark.format_chunking_summary(result)
    assert 'no n = 1 row' in summary and 'Why the gap' not in summary
    # no M-MoCo / M-BYOL row, no summary
    assert benchmark.format_chunking_summary(tiny_result) == ''


# ----------------------------------------------------------------------------
# What a GPU owner pays for: precision, MFU, memory, data pipeline
# ----------------------------------------------------------------------------
def cost_lines(printed: str, name: str):
    """The cells of ``name``'s line in the cost table (split on 2+ spaces)."""
    import re
    cost = printed.split('\nCost\n')[-1]  # the last run's
    (line, ) = [line for line in cost.splitlines() if line.startswith(name)]
    return re.split(r'\s{2,}', line.strip())


COST_HEADER = ['model', 'precision', 'speed settings', 'step ms', 'img/s',
               'TFLOP/s', 'MFU', 'peak GPU MiB', 'data img/s/core',
               'cores/CPU step', 'CPU cores/GPU']


@pytest.fixture(scope='module')
def stand_in_root(tmp_path_factory):
    tool = load_tool(REPO_ROOT / 'tools' / 'dataset_converters' /
                     'make_stand_in_imagenet.py')
    root = tmp_path_factory.mktemp('stand_in') / 'imagenet'
    tool.make_stand_in_imagenet(str(root), images_per_class=2)
    return str(root)


def test_cost_table_on_cpu_mfu_against_the_cpu_peak(benchmark, tiny_result):
    peak = tiny_result.matmul_peak
    assert peak['dtype'] == 'float32'  # the dtype of the fp32 step
    assert peak['flops_per_s'] == pytest.approx(
        2 * peak['size']**3 / peak['seconds'])
    table = benchmark.format_table(tiny_result)
    assert 'matmul peak (MFU = step FLOP/s / this): ' in table
    assert f'float32 {peak["size"]}x{peak["size"]} matmul' in table
    assert cost_lines(table, 'model') == COST_HEADER
    for row in tiny_result.rows:
        assert row.precision == 'fp32' and row.speed_settings == []
        step_flops = row.train_gflops_per_image * 1e9 * 2  # batch 2
        assert row.tflops_per_s * 1e12 == pytest.approx(
            step_flops / row.step_time_s)
        assert row.mfu == pytest.approx(row.tflops_per_s * 1e12 /
                                        peak['flops_per_s'])
        assert 0 < row.mfu < 1
        assert row.data_images_per_core_s is None and row.compile_s is None
        cells = cost_lines(table, row.name)
        assert cells[1:3] == ['fp32', '-']
        assert cells[6] == f'{100 * row.mfu:.3g}%'
        # GPU figures are not estimated on the CPU; data not asked for
        assert cells[7] == cells[10] == 'not measured'
        assert cells[8] == cells[9] == '—'


def test_bf16_on_cpu_same_flops_and_data_columns(benchmark, tiny_result,
                                                 stand_in_root, capsys):
    result = benchmark.main(TINY_ARGS + TINY_MAE_DECODER + [
        '--precision', 'bf16', '--data-root', stand_in_root,
        '--data-images', '4'
    ])
    printed = capsys.readouterr().out
    assert result.matmul_peak['dtype'] == 'bfloat16'
    assert 'bfloat16' in printed.split('matmul peak')[1].splitlines()[0]
    fp32 = {row.name: row for row in tiny_result.rows}
    for row in result.rows:
        # autocast changes the dtype, not the FLOPs
        assert row.train_gflops_per_image == \
            fp32[row.name].train_gflops_per_image
        assert row.attention_gflops_per_image == \
            fp32[row.name].attention_gflops_per_image
        assert row.precision == 'bf16'
        assert row.data_images_per_core_s > 0
        assert row.cores_per_step == pytest.approx(
            row.images_per_s / row.data_images_per_core_s)
        cells = cost_lines(printed, row.name)
        assert cells[1] == 'bf16'
        assert cells[8:10] == [f'{row.data_images_per_core_s:.1f}',
                               f'{row.cores_per_step:.2f}']
        assert cells[7] == cells[10] == 'not measured'
    assert 'ViT custom' in printed and ', cpu, bf16' in printed


def test_precision_options(benchmark, capsys):
    assert benchmark.parse_args([]).precision == 'fp32'
    assert benchmark.parse_args(['--precision', 'bf16']).precision == 'bf16'
    for argv in (['--precision', 'fp16', '--device', 'cpu'],
                 ['--amp', '--precision', 'bf16']):
        with pytest.raises(SystemExit):
            benchmark.parse_args(argv)
    assert 'on the CPU use bf16' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--data-root', '/does/not/exist'])
    assert '--data-root: ' in capsys.readouterr().err


def test_switch_row_names_and_speed_settings(benchmark):
    from mmengine.config import Config
    assert benchmark.switch_row_name('cfg', {}) == 'cfg'
    assert benchmark.switch_row_name('cfg [num_chunks=4]', {
        'optim_wrapper.optimizer.fused': True,
        'model.teachers.mae.teacher.dtype': 'bfloat16',
        'model.teacher.dtype': 'bfloat16',
        'compile': True,
        'data_path': 'gpu',
        'model.neck.decoder_depth': 1,
    }) == 'cfg [num_chunks=4] (fused, teacher bf16, compile, gpu data)'
    # switches turned off are not named
    assert benchmark.switch_row_name('cfg', {
        'optim_wrapper.optimizer.fused': False, 'compile': False,
        'model.teacher.dtype': None, 'data_path': 'cpu'}) == 'cfg'
    assert benchmark.switch_row_name('cfg', {'compile.backend': 'eager'}) \
        == 'cfg (compile)'
    cfg = Config(dict(
        optim_wrapper=dict(optimizer=dict(type='AdamW', fused=True)),
        model=dict(teachers=dict(a=dict(teacher=dict(
            network=dict(type='MaskedViT'), checkpoint='a.pth',
            dtype='bfloat16')))),
        data_path='gpu'))
    assert benchmark.speed_settings(cfg) == ['fused', 'teacher bf16',
                                             'gpu data']
    assert benchmark.speed_settings(Config(dict(compile=True))) == \
        ['compile']
    assert benchmark.speed_settings(Config(dict()), compile_flag=True) == \
        ['compile']


def test_switches_and_compile_in_one_moma_row(benchmark, moma_config,
                                              capsys):
    """bf16 autocast, fused AdamW, a bf16 teacher and a compiled step (the
    eager backend: Dynamo's tracing without code generation) on the CPU;
    the FLOPs are counted before compiling and do not change."""
    args = [moma_config, '--no-baselines', '--random-teachers', *TINY_ARGS]
    (plain, ) = benchmark.main(args).rows
    (fast, ) = benchmark.main(args + [
        '--precision', 'bf16', '--cfg-options',
        'optim_wrapper.optimizer.fused=True',
        'model.teachers.mocov3.teacher.dtype=bfloat16',
        'compile.backend=eager'
    ]).rows
    printed = capsys.readouterr().out
    assert fast.name == 'moma_tiny (fused, teacher bf16, compile)'
    assert fast.speed_settings == ['fused', 'teacher bf16', 'compile']
    assert fast.precision == 'bf16'
    assert fast.train_gflops_per_image == plain.train_gflops_per_image
    assert plain.compile_s is None and fast.compile_s > 0
    assert "torch.compile(model.train_step, **{'backend': 'eager'})" in \
        printed
    assert f'{fast.name}: first (compiling) step' in printed
    assert cost_lines(printed, fast.name)[2] == \
        'fused, teacher bf16, compile'


def test_gpu_data_path_seam(benchmark, tmp_path, stand_in_root,
                            monkeypatch):
    """``data_path=gpu`` goes through ``to_gpu_data_path`` (a stand-in of
    the translator here) after the size overrides; the batch
    then comes from real files and the rewritten pipeline is timed."""
    config = tmp_path / 'mae_gpu.py'
    config.write_text("_base_ = ['mmpretrain::mae/"
                      "mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']\n")
    seen = {}

    def to_gpu_data_path(cfg):
        pipeline = cfg.train_dataloader.dataset.pipeline
        seen['crop'] = pipeline[1]['scale']
        seen['calls'] = 0
        pipeline.insert(1, dict(type='_CountSamples'))
        return cfg

    from mmcv.transforms import BaseTransform
    from mmpretrain.registry import TRANSFORMS

    @TRANSFORMS.register_module(force=True)
    class _CountSamples(BaseTransform):

        def transform(self, results):
            assert results['img_path'].startswith(stand_in_root)
            seen['calls'] += 1
            return results

    from mmmoma.datasets import gpu_data_path
    monkeypatch.setattr(gpu_data_path, 'to_gpu_data_path', to_gpu_data_path)
    args = [str(config), '--no-baselines', *TINY_ARGS, '--cfg-options',
            'model.neck.decoder_depth=1', 'data_path=gpu']
    with pytest.raises(ValueError, match='pass --data-root'):
        benchmark.main(args)
    (row, ) = benchmark.main(args + ['--data-root', stand_in_root,
                                     '--data-images', '3']).rows
    assert seen['crop'] == 32  # rewritten after --img-size
    # the batch (2 files), and the pipeline timing: 4 warm-up + 3
    assert seen['calls'] == 2 + 4 + 3
    assert row.name == 'mae_gpu (gpu data)' and row.data_path == 'gpu'
    assert row.data_images_per_core_s > 0


GPU_SPEED = REPO_ROOT / 'tools' / 'analysis' / 'gpu_speed.py'


def test_gpu_speed_plan_sets_real_config_fields(tmp_path):
    """The GPU plan (dry run): 5 methods x 7 variants (teacher-bf16 only
    where there is a frozen teacher), every --cfg-options key a field of
    its config, compiles last."""
    gpu_speed = load_tool(GPU_SPEED)
    rows = gpu_speed.plan('DATA', str(tmp_path), smoke=False)
    assert len(rows) == 5 * 7 - 3
    assert [row.variant for row in rows[-10:]] == ['compile'] * 5 + \
        ['all'] * 5
    for row in rows:
        command = row.command
        assert command[command.index('--batch-size') + 1] == '256'
        assert '--random-teachers' in command
        cfg = benchmark_module_config(command[2])
        options = command[command.index('--cfg-options') + 1:]
        check_key = load_tool(SCRIPT).check_config_key
        for option in options:
            key = option.split('=')[0]
            if key == 'optim_wrapper.optimizer.fused':  # a torch argument
                assert cfg.optim_wrapper.optimizer.type == 'AdamW'
                assert 'fused' in inspect.signature(
                    torch.optim.AdamW).parameters
            elif key not in ('compile', 'data_path'):  # Runner-level fields
                check_key(cfg, key, row.label)


def benchmark_module_config(path):
    from mmmoma.utils.config_tools import load_config
    return load_config(path if '::' in path else str(REPO_ROOT / path))


def test_gpu_speed_cpu_smoke_mode(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(GPU_SPEED), '--smoke', '--methods', 'mimco',
         '--out-dir', str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / 'gpu_speed.txt').read_text()
    for label in ('MimCo fp32', 'MimCo bf16'):
        cells = cost_lines(table, label)
        assert cells[1] == label.split()[-1]
        assert cells[7] == cells[10] == 'not measured'
        assert float(cells[8]) > 0  # data img/s/core on the stand-in JPEGs
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'gpu_speed.json', 'gpu_speed.log', 'gpu_speed.txt']
