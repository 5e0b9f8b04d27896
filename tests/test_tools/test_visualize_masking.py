"""tools/analysis/visualize_masking.py on every config in configs/: the
config's own dataset class and train pipeline (on tiny stand-in data, crops
shrunk with --img-size), its model built without weights, a PNG per config,
and panels that match the config's masking hyper-parameters."""
import glob
import os
import re

import pytest
import torch
from mmengine.config import Config

from mmmoma.models.masking.indices import num_visible_tokens
from mmmoma.visualization import MASKED, VISIBLE

from ..test_configs.cifar_stand_in import write_cifar_stand_in
from ..test_configs.mmseg_stand_in import write_ade_stand_in
from .utils import MMOCO_DEMO, PROGRESS_BAR, REPO_ROOT, load_tool, python, run

SCRIPT = os.path.join(REPO_ROOT, 'tools', 'analysis', 'visualize_masking.py')
CONFIGS = sorted(
    path for path in glob.glob(
        os.path.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in path.split(os.sep))
IMG_SIZE = 64  # a multiple of every patch size and of MimCo's 32 px blocks
NUM_IMAGES = 2
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def config_id(path: str) -> str:
    return os.path.relpath(path, os.path.join(REPO_ROOT, 'configs'))[:-3]


@pytest.fixture(scope='module')
def tool():
    return load_tool(SCRIPT)


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory, tiny_image_folder, imagenet_stand_in):
    """Stand-in data for every dataset class the configs use."""
    from tools.dataset_converters.digit_scenes import make_digit_scenes_seg
    root = tmp_path_factory.mktemp('masking_stand_ins')
    make_digit_scenes_seg(str(root / 'digit_seg'), num_train=2, num_val=1,
                          show_progress=False)
    return {
        'ImageNet': imagenet_stand_in,
        'CustomDataset': tiny_image_folder,
        'CIFAR10': write_cifar_stand_in(str(root / 'cifar10'), 10, 2),
        'CIFAR100': write_cifar_stand_in(str(root / 'cifar100'), 100, 2),
        'ADE20KDataset': write_ade_stand_in(str(root / 'ade')),
        'BaseSegDataset': str(root / 'digit_seg'),
    }


def stand_in_options(path: str, data_roots: dict) -> dict:
    """``cfg_options`` pointing the config's train dataset at stand-in data
    of its own class (CIFAR: the md5-free stand-in subclass)."""
    dataset = Config.fromfile(path).train_dataloader.dataset
    assert dataset.type in data_roots, (
        f'{config_id(path)}: no stand-in data for a {dataset.type}; add one '
        'to data_roots')
    options = {'train_dataloader.dataset.data_root': data_roots[dataset.type]}
    if dataset.type.startswith('CIFAR'):
        options['train_dataloader.dataset.type'] = f'{dataset.type}StandIn'
    return options


def test_every_config_is_covered():
    families = {config_id(path).split(os.sep)[0] for path in CONFIGS}
    assert families == {'benchmarks', 'demo', 'mimco', 'mix', 'mmoco',
                        'moma', 'sdae'}
    assert len(CONFIGS) >= 60


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_masking_picture_of_every_config(path, tool, data_roots, tmp_path):
    out_file, figure = tool.visualize(
        path, str(tmp_path), NUM_IMAGES, IMG_SIZE, seed=0,
        cfg_options=stand_in_options(path, data_roots))
    with open(out_file, 'rb') as file:
        assert file.read(8) == PNG_MAGIC
    assert os.path.basename(out_file) == os.path.basename(path)[:-3] + '.png'
    first = figure.panels[0]
    assert first.title in ('input', 'view 0') and first.roles is None
    for panel in figure.panels:
        assert panel.images.dtype == torch.uint8
        assert tuple(panel.images.shape) == (NUM_IMAGES, 3, IMG_SIZE,
                                             IMG_SIZE)
    model = Config.fromfile(path).model
    algorithm = figure.algorithm
    if model.get('mask_generator') is not None:  # configs/mix
        # the generator's plan: the same patch counts for every image
        student = figure.panels[1]
        assert student.roles is not None
        seen = (student.roles != MASKED).flatten(1).sum(1)
        assert len(set(seen.tolist())) == 1 and 0 < seen[0] <= (
            IMG_SIZE // 4)**2
    elif algorithm in ('MOMA', 'MAE'):
        grid = (IMG_SIZE // 16 if 'p16' in path else IMG_SIZE // 4)**2
        if algorithm == 'MOMA':  # MOMA's default mask ratio is 0.9
            keep = num_visible_tokens(grid, model.get('mask_ratio', 0.9))
        else:  # MAEViT's default 0.75, MAE's own rounding
            keep = int(grid * (1 - model.backbone.get('mask_ratio', 0.75)))
        visible = (figure.panels[1].roles == VISIBLE).flatten(1).sum(1)
        assert visible.tolist() == [keep] * NUM_IMAGES
    elif algorithm == 'SdAE':
        teacher = figure.panels[2]
        assert teacher.num_groups == model.get('num_folds', 1)
        assert teacher.group_name == 'fold'
        sizes = [int((teacher.roles[0] == fold).sum())
                 for fold in range(1, teacher.num_groups + 1)]
        assert len(set(sizes)) == 1 and sizes[0] > 0
    elif algorithm in ('MaskedMoCoV3', 'MaskedBYOL'):
        online = figure.panels[1]
        num_chunks = model.get('num_chunks', 1)
        if num_chunks == 1:
            assert online.roles is None
        else:
            assert online.num_groups == num_chunks
            assert int((online.roles == VISIBLE).sum()) == 0
    elif algorithm == 'MimCo':
        student = figure.panels[1]
        if model.get('mask_ratio', 0.6) == 0:
            # Table 11's row without masking masks no cell: the whole image
            assert student.roles is None and 'full image' in student.title
        else:
            assert set(student.roles.unique().tolist()) == {MASKED, VISIBLE}
    else:  # MoCo v3, fine-tuning, segmentation: whole images
        assert all(panel.roles is None for panel in figure.panels)
        assert algorithm in ('MoCoV3', 'ImageClassifier', 'EncoderDecoder')


def test_command_line_on_the_demo_data_pipeline(tiny_image_folder, tmp_path):
    proc = run([
        python(), SCRIPT, MMOCO_DEMO, '--images', '3', '--out',
        str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tiny_image_folder}'
    ])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out_file = tmp_path / 'mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.png'
    assert re.search(r'\[1/1\] .*mmoco_vit-tiny', proc.stdout)
    assert f'wrote {out_file}' in proc.stdout
    assert out_file.read_bytes()[:8] == PNG_MAGIC
    assert PROGRESS_BAR.search(proc.stdout)  # over the images


def test_bad_arguments_name_the_option(tmp_path):
    proc = run([python(), SCRIPT, MMOCO_DEMO, '--images', '0'])
    assert proc.returncode != 0
    assert '--images must be >= 1' in proc.stderr
