"""to_gpu_data_path / apply_data_path: every paper config translates to the
same views, untranslatable configs fail by name, and a translated tiny
config trains from JPEG bytes."""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmmoma.datasets.gpu_data_path import (SUPPORTED_TRANSFORMS,
                                           apply_data_path, to_gpu_data_path)
from mmmoma.utils.config_tools import (find_train_pipeline, load_config,
                                       override_pipeline_size)
from mmmoma.utils.model_shrinking import shrink_model
from mmmoma.utils.train_batch import image_sizes

from ..test_configs.in_process import train_tool
from ..test_tools.utils import REPO_ROOT
from .test_gpu_augment import MOMA_CONFIG, write_sample_jpegs

pytestmark = pytest.mark.filterwarnings("ignore:Only use 'alpha'",
                                        'ignore::DeprecationWarning')

PAPER_CONFIGS = sorted(
    path for method in ('moma', 'sdae', 'mimco', 'mmoco')
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', method, '*.py')))
SDAE_CONFIG = osp.join(REPO_ROOT, 'configs', 'sdae',
                       'sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py')
MMOCO_LIGHT_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'mmoco',
    'mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k.py')


def expected_layout(pipeline):
    """(crops, views) the CPU pipeline's view semantics call for."""
    for transform in pipeline:
        if transform.type == 'MultiView':
            return 1, sum(transform.num_views)  # on the shared crop
        if transform.type == 'ContrastiveViews':
            return (2 if transform.mode == 'strong' else 1), 2
    return 1, 1


def test_every_method_has_paper_configs():
    names = {osp.basename(osp.dirname(path)) for path in PAPER_CONFIGS}
    assert names == {'moma', 'sdae', 'mimco', 'mmoco'}
    assert len(PAPER_CONFIGS) >= 50


@pytest.mark.parametrize('config', PAPER_CONFIGS,
                         ids=lambda path: osp.basename(path)[:-3])
def test_paper_config_translates_to_the_same_views(config):
    """The translated preprocessor builds and gives the views of the CPU
    pipeline + SelfSupDataPreprocessor: the same number (a tensor for one
    view, else a list), the same sizes, from the crops the view semantics
    call for (MOMA: one crop for both views; M-MoCo strong: two)."""
    init_default_scope('mmpretrain')
    cfg = load_config(config)
    gpu_cfg = to_gpu_data_path(cfg)
    assert [t.type for t in find_train_pipeline(gpu_cfg)] == [
        'LoadEncodedImage', 'PackInputs'
    ]
    assert gpu_cfg.train_dataloader.collate_fn == dict(type='pseudo_collate')
    assert gpu_cfg.model.data_preprocessor.mean == cfg.data_preprocessor.mean
    assert gpu_cfg.model.data_preprocessor.std == cfg.data_preprocessor.std
    assert find_train_pipeline(cfg)[0].type == 'LoadImageFromFile'  # kept
    gpu = MODELS.build(gpu_cfg.model.data_preprocessor)
    assert (len(gpu.crops), len(gpu.views)) == expected_layout(
        find_train_pipeline(cfg))

    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3),
                                              dtype=np.uint8)  # BGR
    transforms = Compose(copy.deepcopy(find_train_pipeline(cfg)[1:]))
    cpu_batch = default_collate([
        transforms(dict(img=image.copy(), img_shape=image.shape[:2]))
        for _ in range(2)
    ])
    cpu = MODELS.build(cfg.model.get('data_preprocessor',
                                     cfg.data_preprocessor))
    cpu_inputs = cpu(cpu_batch)['inputs']
    rgb = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)
    gpu_inputs = gpu(dict(inputs=[rgb, rgb]))['inputs']
    assert type(gpu_inputs) is type(cpu_inputs)
    assert image_sizes(gpu_inputs) == image_sizes(cpu_inputs)
    views = gpu_inputs if isinstance(gpu_inputs, list) else [gpu_inputs]
    assert all(v.shape[:2] == (2, 3) and v.dtype == torch.float32
               for v in views)


def test_moma_spec_is_one_crop_with_a_plain_and_a_strong_view():
    spec = to_gpu_data_path(load_config(MOMA_CONFIG)).model.data_preprocessor
    assert spec.crops == [
        dict(size=(224, 224), scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
             max_attempts=10, interpolation='bicubic', antialias=True,
             flip_prob=0.5)
    ]
    plain, strong = spec.views
    assert plain == dict(crop=0, augmentations=[])
    assert strong.crop == 0
    assert strong.augmentations == [
        dict(type='ColorJitter', brightness=(0.6, 1.4), contrast=(0.6, 1.4),
             saturation=(0.8, 1.2), hue=(-0.1, 0.1), prob=0.8),
        # the config's BGR weights (0.114, 0.587, 0.2989), in RGB order
        dict(type='Grayscale', weights=(0.2989, 0.587, 0.114), prob=0.2),
        dict(type='GaussianBlur', sigma=(0.1, 2.0), prob=0.1),
        dict(type='Solarize', threshold=128, prob=0.2),
    ]


def test_multi_view_with_a_crop_per_view_gives_independent_crops():
    """mmpretrain's MoCo v3 layout: the crop inside MultiView, so every
    copy of the view draws its own crop."""
    cfg = load_config(SDAE_CONFIG)
    crop, flip = find_train_pipeline(cfg)[1:3]
    find_train_pipeline(cfg)[1:3] = [
        dict(type='MultiView', num_views=2, transforms=[[
            crop, flip,
            dict(type='Solarize', thr=128, prob=0.2)]])
    ]
    spec = to_gpu_data_path(cfg).model.data_preprocessor
    assert len(spec.crops) == 2 and spec.crops[0] == spec.crops[1]
    assert [view.crop for view in spec.views] == [0, 1]
    assert all(view.augmentations == [
        dict(type='Solarize', threshold=128, prob=0.2)
    ] for view in spec.views)


def pipeline_with(transform, index):
    cfg = load_config(MOMA_CONFIG)
    find_train_pipeline(cfg).insert(index, transform)
    return cfg


def test_untranslatable_transform_names_its_field_and_the_supported():
    cfg = pipeline_with(dict(type='RandomErasing', erase_prob=0.25), 3)
    with pytest.raises(ValueError) as error:
        to_gpu_data_path(cfg)
    message = str(error.value)
    assert 'train_dataloader.dataset.pipeline[3]' in message
    assert "'RandomErasing'" in message
    assert 'Supported transforms: ' + ', '.join(SUPPORTED_TRANSFORMS) in (
        message)


def test_untranslatable_transform_inside_a_view_names_its_nested_field():
    cfg = load_config(MOMA_CONFIG)
    find_train_pipeline(cfg)[3].transforms[1].insert(
        2, dict(type='Posterize', bits=4))
    with pytest.raises(ValueError,
                       match=r'pipeline\[3\]\.transforms\[1\]\[2\] '
                       r"\('Posterize'\)"):
        to_gpu_data_path(cfg)


def test_untranslatable_arrangements_are_refused():
    # a crop after the colour augmentation cannot share the view's crop
    cfg = pipeline_with(dict(type='RandomGrayscale', prob=0.2,
                             keep_channels=True), 2)
    with pytest.raises(ValueError, match=r"pipeline\[3\] \('RandomFlip'\)"):
        to_gpu_data_path(cfg)  # RandomFlip after the grayscale
    # an augmentation before MultiView would be shared by both views
    cfg = pipeline_with(dict(type='Solarize', thr=128, prob=0.2), 3)
    with pytest.raises(ValueError, match=r"pipeline\[4\] \('MultiView'\)"):
        to_gpu_data_path(cfg)
    cfg = load_config(SDAE_CONFIG)
    find_train_pipeline(cfg)[1].interpolation = 'lanczos'
    with pytest.raises(ValueError, match="interpolation 'lanczos'"):
        to_gpu_data_path(cfg)
    # a classifier's (untyped: the model's default) preprocessor
    cfg = load_config(SDAE_CONFIG)
    cfg.model.pop('data_preprocessor', None)
    cfg.data_preprocessor = dict(num_classes=10, to_rgb=True)
    with pytest.raises(ValueError,
                       match=r'data_preprocessor.type must be '
                       r'SelfSupDataPreprocessor \(pre-training\), got None'):
        to_gpu_data_path(cfg)


def test_data_path_field():
    cfg = load_config(SDAE_CONFIG)
    assert apply_data_path(cfg) is cfg  # default 'cpu': unchanged
    cfg.data_path = 'cpu'
    assert apply_data_path(cfg) is cfg
    cfg.data_path = 'gpu'
    translated = apply_data_path(cfg)
    assert translated.model.data_preprocessor.type == (
        'GPUAugmentDataPreprocessor')
    again = to_gpu_data_path(translated)  # idempotent
    assert again.model.data_preprocessor == translated.model.data_preprocessor
    assert find_train_pipeline(again) == find_train_pipeline(translated)
    cfg.data_path = 'tpu'
    with pytest.raises(ValueError,
                       match=r"data_path must be one of \('cpu', 'gpu'\), "
                       r"got 'tpu'"):
        apply_data_path(cfg)


def test_train_tool_applies_data_path_after_the_cfg_options():
    tool = train_tool()
    args = tool.parse_args([SDAE_CONFIG, '--cfg-options', 'data_path=gpu'])
    cfg = tool.merge_args(load_config(SDAE_CONFIG), args)
    assert cfg.model.data_preprocessor.type == 'GPUAugmentDataPreprocessor'
    assert cfg.train_dataloader.collate_fn == dict(type='pseudo_collate')
    args = tool.parse_args([SDAE_CONFIG])
    cfg = tool.merge_args(load_config(SDAE_CONFIG), args)
    assert cfg.model.data_preprocessor.type == 'SelfSupDataPreprocessor'


def test_translated_tiny_config_trains_from_jpeg_bytes(tmp_path):
    """M-MoCo (light: one crop, two views), shrunk to a 2-block ViT on
    32-px crops, translated: the loader's bytes pipeline reads 4 JPEGs,
    pseudo_collate batches them, and train_step decodes, augments, computes
    a finite loss and updates the encoder."""
    init_default_scope('mmpretrain')
    cfg = load_config(MMOCO_LIGHT_CONFIG)
    shrink_model(cfg.model, dict(embed_dims=64, num_layers=2, num_heads=4,
                                 feedforward_channels=128), 32, 4,
                 head_channels=32)
    override_pipeline_size(find_train_pipeline(cfg), 32)
    cfg.data_path = 'gpu'
    cfg = apply_data_path(cfg)
    pipeline = Compose(copy.deepcopy(find_train_pipeline(cfg)))
    batch = pseudo_collate([
        pipeline(dict(img_path=path, sample_idx=index))
        for index, path in enumerate(write_sample_jpegs(tmp_path))
    ])
    assert all(x.dim() == 1 and x.dtype == torch.uint8
               for x in batch['inputs'])  # undecoded bytes
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model.data_preprocessor).__name__ == (
        'GPUAugmentDataPreprocessor')
    views = model.data_preprocessor(copy.copy(batch), True)['inputs']
    assert image_sizes(views) == [(32, 32), (32, 32)]
    model.train()
    before = {
        name: p.detach().clone()
        for name, p in model.backbone.named_parameters()
    }
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(batch, optim)
    assert torch.isfinite(torch.as_tensor(log_vars['loss']))
    changed = [
        name for name, p in model.backbone.named_parameters()
        if not torch.equal(p, before[name])
    ]
    assert changed
