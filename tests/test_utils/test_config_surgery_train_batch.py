"""mmmoma.utils.train_batch: one collated training batch of a config from
synthetic images."""
import pytest
import torch
from mmengine.config import Config

from mmmoma.utils.config_tools import (find_train_pipeline, load_config,
                                       override_pipeline_size)
from mmmoma.utils.train_batch import build_train_batch, image_sizes

MOCOV3 = ('mmpretrain::mocov3/'
          'mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py')


def test_multi_view_batch_through_the_config_collate():
    cfg = load_config(MOCOV3)
    override_pipeline_size(find_train_pipeline(cfg), 32)
    cfg.train_dataloader.collate_fn = dict(type='default_collate')
    batch = build_train_batch(cfg, batch_size=3, img_size=32, seed=0)
    views = batch['inputs']
    assert len(views) == 2  # MoCo v3's two crops, stacked per view
    assert all(view.shape == (3, 3, 32, 32) for view in views)
    assert views[0].dtype == torch.uint8
    assert len(batch['data_samples']) == 3
    assert image_sizes(views) == [(32, 32), (32, 32)]
    assert image_sizes({'a': torch.zeros(1, 3, 4, 5), 'b': 1}) == [(4, 5)]


def test_unknown_collate_is_an_error():
    cfg = Config(dict(train_dataloader=dict(
        collate_fn=dict(type='no_such_collate'),
        dataset=dict(pipeline=[dict(type='PackInputs')]))))
    with pytest.raises(ValueError, match='no_such_collate'):
        build_train_batch(cfg, batch_size=1, img_size=8, seed=0)
