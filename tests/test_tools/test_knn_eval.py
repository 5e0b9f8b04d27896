"""tools/knn_eval.py on a tiny MAE config, checkpoint and digit-scenes set."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmoma.checkpoints import CheckpointFormatError, CheckpointMismatchError
from mmmoma.evaluation import extract_raw_pixel_features, weighted_knn_top1
from tools.dataset_converters.digit_scenes import make_digit_scenes

from ..helpers import MEAN, STD, folder_loader, tiny_mae_config
from .utils import PROGRESS_BAR

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'knn_eval_tool', osp.join(REPO_ROOT, 'tools', 'knn_eval.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_mae_knn_config(data_root, work_dir, arch):
    """Tiny MAE training whose KNNEvalHook logs the value the tool must
    reproduce; the kNN tool reads the config's knn_*_dataloader fields."""
    return tiny_mae_config(
        data_root, work_dir, arch, batch_size=20, knn_batch_size=16,
        checkpoint=dict(type='CheckpointHook', interval=1),
        hooks=[dict(type='KNNEvalHook',
                    train_dataloader=folder_loader(data_root, 'train', 16),
                    val_dataloader=folder_loader(data_root, 'val', 16),
                    k=5)])


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A config file and the checkpoint of one epoch of tiny MAE training,
    with the kNN top-1 that KNNEvalHook logged for it."""
    import mmmoma.engine.hooks.knn_hook  # noqa: F401  (registers the hook)
    root = tmp_path_factory.mktemp('knn_eval')
    data_root = str(root / 'data')
    make_digit_scenes(data_root, num_train=40, num_val=20, show_progress=False)
    arch = dict(
        embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
    cfg = tiny_mae_knn_config(data_root, str(root / 'work'), arch)
    config_path = str(root / 'tiny_mae_knn.py')
    cfg.dump(config_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    logged = runner.message_hub.get_scalar('knn/top1').current()
    return dict(
        config=config_path,
        checkpoint=str(root / 'work' / 'epoch_1.pth'),
        logged_top1=logged,
        root=root)


def test_cli_reproduces_the_hook_value(trained, tmp_path):
    out = str(tmp_path / 'result.json')
    cmd = [
        sys.executable, 'tools/knn_eval.py', trained['config'],
        trained['checkpoint'], '--k', '5', '--out', out
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PROGRESS_BAR.search(proc.stdout), proc.stdout  # extraction
    match = re.search(r'^kNN top-1: (\d+\.\d\d)$', proc.stdout, re.M)
    assert match, proc.stdout
    assert float(match.group(1)) == round(trained['logged_top1'], 2)
    with open(out) as f:
        result = json.load(f)
    assert result['top1'] == pytest.approx(trained['logged_top1'])
    assert result['num_train'] == 40 and result['num_val'] == 20
    assert result['k'] == 5 and result['features'] == trained['checkpoint']


def test_model_gets_the_top_level_data_preprocessor(trained):
    tool = load_tool()
    cfg = Config.fromfile(trained['config'])
    preprocessor = tool.build_model(cfg).data_preprocessor
    assert preprocessor.mean.flatten().tolist() == pytest.approx(MEAN)
    assert preprocessor.std.flatten().tolist() == pytest.approx(STD)
    assert preprocessor._channel_conversion  # BGR (cv2) -> RGB


def test_random_init_and_raw_pixels(trained):
    tool = load_tool()
    cfg = Config.fromfile(trained['config'])
    random_init = tool.run_knn_eval(cfg, k=5, seed=1)
    assert random_init['features'] == 'init_weights (no checkpoint)'
    assert 0 <= random_init['top1'] <= 100
    assert tool.run_knn_eval(cfg, k=5, seed=1) == random_init

    raw = tool.run_knn_eval(cfg, raw_pixels=True, k=5)
    train_loader = Runner.build_dataloader(cfg.knn_train_dataloader)
    val_loader = Runner.build_dataloader(cfg.knn_val_dataloader)
    from mmpretrain.models import SelfSupDataPreprocessor
    preprocessor = SelfSupDataPreprocessor(mean=MEAN, std=STD, to_rgb=True)
    train = extract_raw_pixel_features(train_loader, preprocessor, False)
    val = extract_raw_pixel_features(val_loader, preprocessor, False)
    assert raw['top1'] == weighted_knn_top1(*train, *val, k=5)
    with pytest.raises(ValueError, match='raw-pixels'):
        tool.run_knn_eval(cfg, trained['checkpoint'], raw_pixels=True)


def test_checkpoints_that_do_not_fit_are_refused(trained, tmp_path):
    tool = load_tool()
    cfg = Config.fromfile(trained['config'])
    state_dict = torch.load(
        trained['checkpoint'], map_location='cpu',
        weights_only=True)['state_dict']

    renamed = str(tmp_path / 'renamed.pth')
    torch.save({'state_dict': {'encoder.' + k: v
                               for k, v in state_dict.items()}}, renamed)
    with pytest.raises(CheckpointFormatError, match='Unrecognised'):
        tool.run_knn_eval(cfg, renamed)
    with pytest.raises(CheckpointFormatError, match="prefix='teacher.'"):
        tool.run_knn_eval(cfg, trained['checkpoint'], prefix='teacher.')

    missing = str(tmp_path / 'missing.pth')
    torch.save({
        'state_dict': {
            k: v
            for k, v in state_dict.items() if 'layers.1.ffn' not in k
        }
    }, missing)
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing key\(s\):.*layers\.1\.ffn'):
        tool.run_knn_eval(cfg, missing)
    # explicitly allowed missing keys keep their initial values
    result = tool.run_knn_eval(
        cfg, missing, k=5, allowed_missing=['layers.1.ffn.*'])
    assert 0 <= result['top1'] <= 100

    # A backbone-only file (converter output, no prefix) loads, with the
    # same result as the full checkpoint.
    backbone_only = str(tmp_path / 'backbone.pth')
    torch.save({
        'state_dict': {
            k[len('backbone.'):]: v
            for k, v in state_dict.items() if k.startswith('backbone.')
        }
    }, backbone_only)
    assert tool.run_knn_eval(cfg, backbone_only, k=5)['top1'] == \
        pytest.approx(trained['logged_top1'])


def test_config_without_knn_dataloaders_is_refused(trained):
    tool = load_tool()
    cfg_dict = Config.fromfile(trained['config']).to_dict()
    del cfg_dict['knn_val_dataloader']
    cfg = Config(cfg_dict)
    with pytest.raises(KeyError, match='knn_val_dataloader'):
        tool.run_knn_eval(cfg)
