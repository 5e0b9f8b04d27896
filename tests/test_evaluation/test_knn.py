"""Weighted kNN (DINO protocol) and feature extraction."""
import math
import random

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from mmmoma.evaluation import (extract_features, extract_raw_pixel_features,
                               pool_features, weighted_knn_predict,
                               weighted_knn_top1)
from mmmoma.utils.rng import preserve_rng_state
from tools.dataset_converters.digit_scenes import make_digit_scenes

from ..helpers import MEAN, PIPELINE, SELFSUP_PREPROCESSOR, STD, tiny_mae_model

# Four 2-D train points and one query; cosines to the query q = (1, 0.2):
TRAIN_FEATS = torch.tensor([[1., 0.], [0., 1.], [1., 1.], [-1., 0.]])
TRAIN_LABELS = torch.tensor([0, 1, 1, 0])
QUERY = torch.tensor([[1., 0.2]])
COS = [
    1 / math.sqrt(1.04),  # x0, label 0
    0.2 / math.sqrt(1.04),  # x1, label 1
    1.2 / math.sqrt(1.04) / math.sqrt(2),  # x2, label 1
    -1 / math.sqrt(1.04),  # x3, label 0
]


def test_hand_computed_vote_low_temperature():
    # k=3 keeps x0 (0.981), x2 (0.832), x1 (0.196). At T=0.5 the weights are
    # exp(s/T) = 7.11 (class 0) vs 5.28 + 1.48 = 6.76 (class 1): class 0.
    scores = weighted_knn_predict(
        TRAIN_FEATS, TRAIN_LABELS, QUERY, k=3, temperature=0.5)
    weight = [math.exp(c / 0.5) for c in COS]
    want = torch.tensor([[weight[0], weight[1] + weight[2]]],
                        dtype=torch.float64)
    # scores are exp((s - s_max) / T): the hand values divided by weight[0]
    torch.testing.assert_close(scores, want / weight[0])
    assert weight[0] > weight[1] + weight[2]
    assert weighted_knn_top1(
        TRAIN_FEATS, TRAIN_LABELS, QUERY, torch.tensor([0]), k=3,
        temperature=0.5) == 100.0


def test_hand_computed_vote_high_temperature_flips_decision():
    # At T=10 the weights are nearly equal (1.10 vs 1.09 + 1.02): two class-1
    # neighbours outvote one class-0 neighbour.
    weight = [math.exp(c / 10) for c in COS]
    assert weight[1] + weight[2] > weight[0]
    assert weighted_knn_top1(
        TRAIN_FEATS, TRAIN_LABELS, QUERY, torch.tensor([1]), k=3,
        temperature=10) == 100.0
    # k=1: only the nearest neighbour (class 0) votes, whatever T.
    assert weighted_knn_top1(
        TRAIN_FEATS, TRAIN_LABELS, QUERY, torch.tensor([0]), k=1,
        temperature=10) == 100.0


def test_invariant_to_feature_scaling():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(60, 8, generator=gen)
    labels = torch.randint(0, 4, (60, ), generator=gen)
    test = torch.randn(25, 8, generator=gen)
    test_labels = torch.randint(0, 4, (25, ), generator=gen)
    scales_train = torch.rand(60, 1, generator=gen) * 100 + 0.01
    scales_test = torch.rand(25, 1, generator=gen) * 100 + 0.01
    torch.testing.assert_close(
        weighted_knn_predict(train, labels, test, k=7),
        weighted_knn_predict(train * scales_train, labels,
                             test * scales_test, k=7),
        rtol=1e-5,  # float32 cosines, divided by T = 0.07
        atol=1e-5)
    assert weighted_knn_top1(train, labels, test, test_labels, k=7) == \
        weighted_knn_top1(train * scales_train, labels, test * scales_test,
                          test_labels, k=7)


def test_perfect_separation_gives_100_and_shuffled_labels_do_not():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(5) * 10
    train_labels = torch.arange(5).repeat(20)
    test_labels = torch.arange(5).repeat(6)
    train = centres[train_labels] + torch.randn(100, 5, generator=gen)
    test = centres[test_labels] + torch.randn(30, 5, generator=gen)
    assert weighted_knn_top1(train, train_labels, test, test_labels) == 100.0
    shuffled = train_labels[torch.randperm(100, generator=gen)]
    assert weighted_knn_top1(train, shuffled, test, test_labels) < 60.0


def test_accuracy_counts_each_query():
    # Two queries, one right and one wrong: 50 %.
    train = torch.tensor([[1., 0.], [0., 1.]])
    labels = torch.tensor([0, 1])
    test = torch.tensor([[1., 0.1], [0.1, 1.]])
    assert weighted_knn_top1(train, labels, test, torch.tensor([0, 0]),
                             k=1) == 50.0


def test_ties_go_to_lowest_class():
    train = torch.tensor([[1., 0.], [1., 0.]])
    scores = weighted_knn_predict(train, torch.tensor([3, 1]),
                                  torch.tensor([[1., 0.]]), k=2,
                                  num_classes=4)
    assert scores[0, 1] == scores[0, 3]
    assert weighted_knn_top1(train, torch.tensor([3, 1]),
                             torch.tensor([[1., 0.]]), torch.tensor([1]),
                             k=2) == 100.0


def test_chunking_does_not_change_scores():
    gen = torch.Generator().manual_seed(1)
    train, test = torch.randn(30, 4, generator=gen), torch.randn(
        17, 4, generator=gen)
    labels = torch.randint(0, 3, (30, ), generator=gen)
    torch.testing.assert_close(
        weighted_knn_predict(train, labels, test, k=5, chunk_size=4),
        weighted_knn_predict(train, labels, test, k=5))


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match='k must be in'):
        weighted_knn_predict(TRAIN_FEATS, TRAIN_LABELS, QUERY, k=5)
    with pytest.raises(ValueError, match='k must be in'):
        weighted_knn_predict(TRAIN_FEATS, TRAIN_LABELS, QUERY, k=0)
    with pytest.raises(ValueError, match='temperature'):
        weighted_knn_predict(
            TRAIN_FEATS, TRAIN_LABELS, QUERY, k=2, temperature=0)
    with pytest.raises(ValueError, match='test_feats'):
        weighted_knn_predict(TRAIN_FEATS, TRAIN_LABELS, torch.ones(1, 3), k=2)
    with pytest.raises(ValueError, match='train_labels'):
        weighted_knn_predict(TRAIN_FEATS, TRAIN_LABELS[:3], QUERY, k=2)
    with pytest.raises(ValueError, match='num_classes'):
        weighted_knn_predict(
            TRAIN_FEATS, TRAIN_LABELS, QUERY, k=2, num_classes=1)


def test_pool_features_by_output_shape():
    tokens = torch.arange(2 * 3 * 4, dtype=torch.float).reshape(2, 3, 4)
    assert torch.equal(pool_features((tokens, ), 'cls', 1), tokens[:, 0])
    assert torch.equal(
        pool_features(tokens, 'avg', 1), tokens[:, 1:].mean(dim=1))
    assert torch.equal(pool_features(tokens, 'auto', 1), tokens[:, 0])
    assert torch.equal(pool_features(tokens, 'auto', 0), tokens.mean(dim=1))
    featmap = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(
        pool_features([torch.zeros(1), featmap], 'auto'),
        featmap.mean(dim=(2, 3)))
    pooled = torch.randn(2, 4)
    assert pool_features(pooled, 'auto') is pooled
    with pytest.raises(ValueError, match='pooled'):
        pool_features(pooled, 'cls')
    with pytest.raises(ValueError, match='feature map'):
        pool_features(featmap, 'cls')
    with pytest.raises(ValueError, match='no CLS token'):
        pool_features(tokens, 'cls', 0)
    with pytest.raises(ValueError, match='feature must be one of'):
        pool_features(tokens, 'mean')


# --------------------------------------------------------------------------
# Feature extraction with real mmpretrain models and data.


@pytest.fixture(scope='module')
def scenes_loaders(tmp_path_factory):
    init_default_scope('mmpretrain')
    root = str(tmp_path_factory.mktemp('digit_scenes'))
    make_digit_scenes(root, num_train=40, num_val=20, show_progress=False)

    def loader(split):
        return Runner.build_dataloader(
            dict(
                batch_size=16,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='CustomDataset',
                    data_root=root,
                    data_prefix=split,
                    pipeline=PIPELINE)),
            seed=0)

    return loader('train'), loader('val')


def build_tiny_mae(arch):
    # dropout on: eval mode must switch it off
    model = MODELS.build(tiny_mae_model(arch, drop_rate=0.5))
    model.init_weights()
    return model


def first_batch_inputs(model, loader):
    data = model.data_preprocessor(next(iter(loader)), training=False)
    return data['inputs']


def test_mae_features_are_unmasked_cls_tokens(scenes_loaders, tiny_arch):
    train_loader, _ = scenes_loaders
    torch.manual_seed(0)
    model = build_tiny_mae(tiny_arch)
    feats, labels = extract_features(
        model, train_loader, show_progress=False)
    assert feats.shape == (40, 64) and labels.shape == (40, )
    assert torch.equal(
        labels, torch.as_tensor(train_loader.dataset.get_gt_labels()))
    # A masked forward would be random (and drop 75 % of the tokens):
    # features must be those of the full image, every time.
    again, _ = extract_features(model, train_loader, show_progress=False)
    assert torch.equal(feats, again)
    model.eval()
    with torch.no_grad():
        inputs = first_batch_inputs(model, train_loader)
        tokens = model.backbone(inputs, mask=None)[0]
    assert tokens.shape == (16, 1 + 64, 64)
    torch.testing.assert_close(feats[:16], tokens[:, 0])
    avg, _ = extract_features(model, train_loader, 'avg', False)
    torch.testing.assert_close(avg[:16], tokens[:, 1:].mean(dim=1))


def test_extraction_restores_modes_and_rng_streams(scenes_loaders, tiny_arch):
    train_loader, _ = scenes_loaders
    model = build_tiny_mae(tiny_arch)
    model.train()
    model.neck.eval()  # e.g. a frozen part: must stay in eval mode

    def draws():
        return (random.random(), np.random.rand(), torch.rand(3))

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    want = draws()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    extract_features(model, train_loader, show_progress=False)
    got = draws()
    assert got[0] == want[0] and got[1] == want[1]
    assert torch.equal(got[2], want[2])
    assert model.training and model.backbone.training
    assert not model.neck.training
    assert all(m.training for m in model.backbone.modules())


def test_preserve_rng_state_restores_after_exception():
    torch.manual_seed(3)
    want = torch.rand(2)
    torch.manual_seed(3)
    with pytest.raises(RuntimeError):
        with preserve_rng_state():
            torch.rand(5)
            raise RuntimeError('boom')
    assert torch.equal(torch.rand(2), want)


def test_mocov3_and_classifier_pooled_outputs(scenes_loaders, tiny_arch):
    train_loader, _ = scenes_loaders
    backbone = dict(
        type='VisionTransformer',
        arch=tiny_arch,
        img_size=32,
        patch_size=4,
        out_type='cls_token')
    classifier = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=MEAN,
                std=STD,
                to_rgb=True),
            backbone=backbone,
            neck=None,
            head=dict(
                type='VisionTransformerClsHead',
                num_classes=10,
                in_channels=64)))
    mocov3 = MODELS.build(
        dict(
            type='MoCoV3',
            data_preprocessor=SELFSUP_PREPROCESSOR,
            backbone=dict(backbone, type='MoCoV3ViT'),
            neck=dict(
                type='NonLinearNeck',
                in_channels=64,
                hid_channels=32,
                out_channels=16,
                num_layers=2,
                with_bias=False,
                with_last_bn=True,
                with_last_bn_affine=False,
                with_last_bias=False,
                with_avg_pool=False),
            head=dict(
                type='MoCoV3Head',
                predictor=dict(
                    type='NonLinearNeck',
                    in_channels=16,
                    hid_channels=32,
                    out_channels=16,
                    num_layers=2,
                    with_bias=False,
                    with_last_bn=True,
                    with_last_bn_affine=False,
                    with_last_bias=False,
                    with_avg_pool=False),
                loss=dict(type='CrossEntropyLoss', loss_weight=0.4),
                temperature=0.2)))
    for model in (classifier, mocov3):
        model.init_weights()
        feats, _ = extract_features(model, train_loader, show_progress=False)
        model.eval()
        with torch.no_grad():
            want = model.backbone(first_batch_inputs(model, train_loader))[-1]
        assert want.shape == (16, 64)
        torch.testing.assert_close(feats[:16], want)


def test_raw_pixel_features_are_normalised_pixels(scenes_loaders, tiny_arch):
    train_loader, _ = scenes_loaders
    model = build_tiny_mae(tiny_arch)
    feats, labels = extract_raw_pixel_features(
        train_loader, model.data_preprocessor, show_progress=False)
    assert feats.shape == (40, 3 * 32 * 32)
    want = first_batch_inputs(model, train_loader).flatten(1)
    torch.testing.assert_close(feats[:16], want)
    unit, _ = extract_raw_pixel_features(train_loader, show_progress=False)
    assert 0 <= unit.min() and unit.max() <= 1 and unit.std() > 0.05


@pytest.mark.parametrize('round_up', [True, False])
def test_gather_restores_sampler_order_without_padding(monkeypatch, round_up):
    """Multi-rank extraction: shards of mmengine's DefaultSampler (3 ranks,
    11 samples, so padded with ``round_up``) are put back in dataset order."""
    import mmengine.dataset.sampler as sampler_module
    import mmengine.dist
    from mmengine.dataset import DefaultSampler

    from mmmoma.evaluation.knn import _gather_in_sampler_order
    dataset, world_size = list(range(11)), 3
    parts = []
    for rank in range(world_size):
        monkeypatch.setattr(sampler_module, 'get_dist_info',
                            lambda rank=rank: (rank, world_size))
        shard = torch.tensor(
            list(DefaultSampler(dataset, False, seed=0, round_up=round_up)))
        # feature = sample index, label = 100 + sample index
        parts.append((shard.float()[:, None].repeat(1, 2), shard + 100))
    assert sum(len(labels) for _, labels in parts) == (12 if round_up else 11)
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: world_size)
    monkeypatch.setattr(mmengine.dist, 'all_gather_object', lambda obj: parts)
    feats, labels = _gather_in_sampler_order(*parts[1], size=len(dataset))
    assert labels.tolist() == [100 + i for i in range(11)]
    assert feats[:, 0].tolist() == list(range(11))
