"""Every transfer config (configs/benchmarks/{mmpretrain,mmseg}) builds and
trains 2 CPU iterations + one validation as tools/train.py trains it (in the
pytest process, through tools/train.py's own config merging:
``train_in_process``), its model shrunk by
:func:`~mmmoma.utils.model_shrinking.shrink_model` (tiny arch) and its data
by --cfg-options (tiny stand-in data), its backbone initialised by the
config's own StrictPretrained from a file written by the checkpoint bridge.
A config that no recipe covers fails the test."""
import glob
import os
import re
from typing import Any, Callable, Dict, List

import pytest
import torch
from mmengine.config import Config

from mmmoma.checkpoints import export_transfer_backbones
from mmmoma.models.backbones import MaskedViT
from mmmoma.utils.model_shrinking import shrink_model

from ..test_tools.utils import REPO_ROOT
from .cifar_stand_in import write_cifar_stand_in
from .mmseg_stand_in import (TINY_SWIN, TINY_VIT, run_options,
                             shrink_arguments, write_ade_stand_in,
                             write_tiny_pretrained)

BENCHMARKS = os.path.join(REPO_ROOT, 'configs', 'benchmarks')
CONFIGS = sorted(
    path for path in glob.glob(
        os.path.join(BENCHMARKS, '**', '*.py'), recursive=True)
    if '_base_' not in path.split(os.sep))


def config_id(path: str) -> str:
    return os.path.relpath(path, BENCHMARKS)[:-3]


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory, tiny_image_folder):
    """Tiny data for every family, and bridge files of tiny backbones."""
    root = tmp_path_factory.mktemp('benchmark_stand_ins')
    imagenet = root / 'imagenet'
    (imagenet / 'meta').mkdir(parents=True)
    for split in ('train', 'val'):  # the same 16 images in both splits
        os.symlink(os.path.join(tiny_image_folder, 'train'), imagenet / split)
    lines = [
        f'{label}/{name} {label}'
        for label in sorted(os.listdir(imagenet / 'train'))
        for name in sorted(os.listdir(imagenet / 'train' / label))
    ]
    for split in ('train', 'val'):
        (imagenet / 'meta' / f'{split}.txt').write_text('\n'.join(lines))
    torch.manual_seed(0)
    from mmpretrain.models import SwinTransformer
    pretrained = {}
    for name, backbone in dict(
            vit=MaskedViT(arch=TINY_VIT, img_size=224, patch_size=16),
            swin=SwinTransformer(arch=TINY_SWIN, img_size=224,
                                 window_size=7)).items():
        source = root / f'{name}_pretrain.pth'
        torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                                   backbone.state_dict().items()},
                    'meta': {}}, source)
        pretrained[name] = str(export_transfer_backbones(
            source, root / name, seg_img_size=224,
            show_progress=False)['mmpretrain'])
    return dict(
        imagenet=str(imagenet),
        imagenet100=tiny_image_folder,  # train/<class>/, val/<class>/
        cifar10=write_cifar_stand_in(str(root / 'cifar10'), 10, per_file=4),
        cifar100=write_cifar_stand_in(str(root / 'cifar100'), 100,
                                      per_file=20),
        ade=write_ade_stand_in(str(root / 'ade')),
        seg_pretrained=write_tiny_pretrained(str(root / 'seg_pretrained')),
        pretrained=pretrained)


def loaders(data_root: str, batch_size: int) -> List[str]:
    options = []
    for loader in ('train', 'val', 'test'):
        prefix = f'{loader}_dataloader'
        options += [f'{prefix}.dataset.data_root={data_root}',
                    f'{prefix}.num_workers=0',
                    f'{prefix}.persistent_workers=False']
    return options + [f'train_dataloader.batch_size={batch_size}',
                      'val_dataloader.batch_size=4',
                      'test_dataloader.batch_size=4']


#: shrink_model arguments of the ImageNet / CIFAR configs, as the bridge
#: files of the stand_ins fixture were written (224 px, 16 px patches)
MMPRETRAIN_SHRINK = dict(arch=TINY_VIT, swin_arch=TINY_SWIN, img_size=224,
                         patch_size=16)


def imagenet(path: str, data: dict) -> str:
    """The stand-in for the config's ImageNet: -1k (``type='ImageNet'``,
    annotation files) or -100 (class-per-folder ``CustomDataset``)."""
    return data['imagenet100' if path.endswith('_in100.py') else 'imagenet']


def vit_finetune(path: str, data: dict) -> List[str]:
    return [*loaders(imagenet(path, data), 8),
            f'model.backbone.init_cfg.checkpoint={data["pretrained"]["vit"]}']


def swin_finetune(path: str, data: dict) -> List[str]:
    return [*loaders(data['imagenet'], 8),
            f'model.backbone.init_cfg.checkpoint={data["pretrained"]["swin"]}']


def cifar_finetune(path: str, data: dict) -> List[str]:
    classes = re.search(r'cifar(\d+)\.py$', path).group(1)
    stand_in = f'CIFAR{classes}StandIn'  # registered by .cifar_stand_in
    return [*loaders(data[f'cifar{classes}'], 10),
            f'train_dataloader.dataset.type={stand_in}',
            f'val_dataloader.dataset.type={stand_in}',
            f'test_dataloader.dataset.type={stand_in}',
            f'model.backbone.init_cfg.checkpoint={data["pretrained"]["vit"]}']


def mmseg(path: str, data: dict) -> List[str]:
    return run_options(path, data['ade'], data['seg_pretrained'])


#: config path pattern -> its shrink recipe (--cfg-options)
RECIPES: Dict[str, Callable[[str, dict], List[str]]] = {
    r'mmpretrain/vit-[a-z]+-p16_\w+-pre_8xb\d+-coslr-\d+e_in(1k|100)\.py$':
    vit_finetune,
    r'mmpretrain/vit-[a-z]+-p16_\w+-pre_8xb\d+-linear-coslr-\d+e_in(1k|100)'
    r'\.py$': vit_finetune,
    r'mmpretrain/swin-[a-z]+_\w+-pre_8xb\d+-coslr-\d+e_in1k\.py$':
    swin_finetune,
    r'mmpretrain/vit-base-p16_\w+-pre_8xb\d+-coslr-\d+e_cifar\d+\.py$':
    cifar_finetune,
    r'mmseg/[\w.-]+_ade20k-512x512\.py$': mmseg,
}


def recipe_for(path: str) -> Callable[[str, dict], List[str]]:
    matches = [recipe for pattern, recipe in RECIPES.items()
               if re.search(pattern, path.replace(os.sep, '/'))]
    assert len(matches) == 1, (
        f'{config_id(path)}: {len(matches)} shrink recipes match; every '
        f'benchmark config needs exactly one (add it to RECIPES)')
    return matches[0]


def test_a_config_without_shrink_recipe_fails():
    unknown = os.path.join(BENCHMARKS, 'mmpretrain',
                           'resnet50_new-pre_8xb32-coslr-100e_in1k.py')
    with pytest.raises(AssertionError, match='0 shrink recipes match'):
        recipe_for(unknown)
    assert all(recipe_for(path) for path in CONFIGS)


def backbone_tensors(path: str, prefix: str = '') -> Dict[str, torch.Tensor]:
    state = torch.load(path, map_location='cpu', weights_only=False)
    return {key[len(prefix):]: value
            for key, value in state['state_dict'].items()
            if key.startswith(prefix)}


def shrunk(path: str) -> Config:
    """The config with the tiny model the stand-in files were written for:
    widths, depths, out_indices, frozen stages, heads and the segmentor's
    crop follow the backbone."""
    cfg = Config.fromfile(path)
    is_seg = f'{os.sep}mmseg{os.sep}' in path
    arguments: Dict[str, Any] = shrink_arguments(path) if is_seg else \
        MMPRETRAIN_SHRINK
    shrink_model(cfg.model, **arguments)
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_trains_two_iterations_and_validates(path, stand_ins,
                                                    train_in_process):
    options = recipe_for(path)(path, stand_ins)
    is_seg = f'{os.sep}mmseg{os.sep}' in path
    if not is_seg:
        options += ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                    'default_hooks.logger.interval=1']
    run = train_in_process(shrunk(path), options)
    log = run.log
    loaded = re.search(r'StrictPretrained: loaded (\d+) tensors', log)
    assert loaded and int(loaded.group(1)) > 20, 'the backbone was not loaded'
    losses = [float(value) for value in re.findall(
        r'Iter\(train\) \[\s*\d+/\s*\d+\].*?\bloss: ([\d.]+)', log) +
        re.findall(r'Epoch\(train\)\s+\[1\]\[\s*\d+/\d+\].*?\bloss: ([\d.]+)',
                   log)]
    assert len(losses) >= 2, log[-2000:]
    assert all(loss == loss for loss in losses)  # no NaN
    if is_seg:
        miou = float(re.findall(r'mIoU: ([\d.]+)', log)[-1])
        assert 0 <= miou <= 100
        return
    top1 = float(re.findall(r'accuracy/top1: ([\d.]+)', log)[-1])
    assert 0 <= top1 <= 100
    # a linear probe leaves the backbone as loaded; fine-tuning moves it
    checkpoint = sorted(glob.glob(os.path.join(run.work_dir,
                                               'epoch_*.pth')))[-1]
    trained = backbone_tensors(checkpoint, 'backbone.')
    pretrained = backbone_tensors(
        stand_ins['pretrained']['swin' if 'swin' in path else 'vit'])
    weight = 'layers.0.attn.qkv.weight' if 'vit' in path else \
        'stages.0.blocks.0.attn.w_msa.qkv.weight'
    if 'linear' in path:
        for key, value in pretrained.items():
            assert torch.equal(trained[key], value), key
    else:
        assert not torch.equal(trained[weight], pretrained[weight])
