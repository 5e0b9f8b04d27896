"""KNNEvalHook inside a real (tiny) mmengine training run of mmpretrain MAE."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from mmmoma.engine.hooks.knn_hook import KNNEvalHook
from mmmoma.evaluation import extract_features, weighted_knn_top1
from tools.dataset_converters.digit_scenes import make_digit_scenes

from ..helpers import folder_loader, tiny_mae_config


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digit_scenes'))
    make_digit_scenes(root, num_train=100, num_val=50, show_progress=False)
    return root


def knn_hook(data_root, **kwargs):
    return dict(
        type='KNNEvalHook',
        train_dataloader=folder_loader(data_root, 'train'),
        val_dataloader=folder_loader(data_root, 'val'),
        k=5,
        **kwargs)


def logged_scalars(work_dir):
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_hook_logs_knn_top1_of_the_trained_model(data_root, tmp_path,
                                                 tiny_arch):
    work_dir = str(tmp_path / 'with_hook')
    runner = Runner.from_cfg(
        tiny_mae_config(data_root, work_dir, tiny_arch,
                        hooks=[knn_hook(data_root)]))
    runner.train()

    logged = runner.message_hub.get_scalar('knn/top1').current()
    assert 0 <= logged <= 100
    knn_lines = [r for r in logged_scalars(work_dir) if 'knn/top1' in r]
    assert knn_lines == [{'knn/top1': logged, 'step': 1}]
    (log_file, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log_file) as f:
        assert 'knn/top1' in f.read()

    # The logged value is the kNN top-1 of the final weights.
    runner_hook = next(h for h in runner.hooks if isinstance(h, KNNEvalHook))
    train_loader, val_loader = runner_hook._dataloaders
    train = extract_features(runner.model, train_loader, show_progress=False)
    val = extract_features(runner.model, val_loader, show_progress=False)
    assert weighted_knn_top1(*train, *val, k=5) == logged
    assert len(train[1]) == 100 and len(val[1]) == 50


def test_hook_does_not_change_the_training_run(data_root, tmp_path,
                                               tiny_arch):
    final_weights = []
    for name, hooks in (('plain', []), ('hooked', [knn_hook(data_root)])):
        runner = Runner.from_cfg(
            tiny_mae_config(
                data_root,
                str(tmp_path / name),
                tiny_arch,
                max_epochs=2,
                hooks=hooks))
        runner.train()
        final_weights.append(runner.model.state_dict())
    plain, hooked = final_weights
    assert plain.keys() == hooked.keys()
    for key in plain:
        assert torch.equal(plain[key], hooked[key]), key
    assert runner.model.training  # train mode restored after the hook


def test_hook_by_iteration(data_root, tmp_path, tiny_arch):
    work_dir = str(tmp_path / 'by_iter')
    runner = Runner.from_cfg(
        tiny_mae_config(
            data_root,
            work_dir,
            tiny_arch,
            hooks=[knn_hook(data_root, by_epoch=False, interval=3)]))
    runner.train()  # 4 iterations: one evaluation, after iteration 3
    steps = [r['step'] for r in logged_scalars(work_dir) if 'knn/top1' in r]
    assert steps == [3]


def test_invalid_arguments(data_root):
    loader = folder_loader(data_root, 'train')
    with pytest.raises(ValueError, match='interval'):
        KNNEvalHook(loader, loader, interval=0)
    with pytest.raises(ValueError, match='feature'):
        KNNEvalHook(loader, loader, feature='mean')
    with pytest.raises(TypeError, match='val_dataloader'):
        KNNEvalHook(loader, None)
    with pytest.raises(ValueError, match='temperature'):
        KNNEvalHook(loader, loader, temperature=0)


def test_by_epoch_under_an_iteration_loop_is_refused(data_root, tmp_path,
                                                     tiny_arch):
    cfg = tiny_mae_config(
        data_root, str(tmp_path / 'iter_loop'), tiny_arch,
        hooks=[knn_hook(data_root)])
    cfg.train_cfg = dict(by_epoch=False, max_iters=2)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='by_epoch=False'):
        runner.train()
