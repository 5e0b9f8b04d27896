"""Pre-train -> fine-tune (StrictPretrained) -> tools/test.py, on tiny data.

Pre-training and fine-tuning run tools/train.py's ``main`` in-process;
tools/test.py runs as a command, as a user would.
"""
import json
import re

import pytest

from .utils import (FINETUNE_DEMO, MAE_DEMO, pretrain_overrides, python, run,
                    train_in_process)


def finetune_overrides(data_root):
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
    ]


def test_pretrain_finetune_and_test(tmp_path, tiny_image_folder):
    train_in_process(MAE_DEMO, tmp_path / 'pre',
                     pretrain_overrides(tiny_image_folder))
    checkpoint = tmp_path / 'pre' / 'epoch_1.pth'

    log = train_in_process(
        FINETUNE_DEMO, tmp_path / 'ft',
        [f'model.backbone.init_cfg.checkpoint={checkpoint}',
         *finetune_overrides(tiny_image_folder)])
    loaded = re.search(r'StrictPretrained: loaded (\d+) tensors', log)
    assert loaded and int(loaded.group(1)) > 10
    assert 'accuracy/top1' in log

    out = tmp_path / 'metrics.json'
    test = run([python(), 'tools/test.py', FINETUNE_DEMO,
                str(tmp_path / 'ft' / 'epoch_1.pth'), '--work-dir',
                str(tmp_path / 'test'), '--out', str(out), '--cfg-options',
                'model.backbone.init_cfg=None',
                *finetune_overrides(tiny_image_folder)])
    assert test.returncode == 0, (test.stdout + test.stderr)[-3000:]
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


def test_finetune_from_wrong_checkpoint_fails_naming_keys(
        tmp_path, tiny_image_folder):
    bogus = tmp_path / 'bogus.pth'
    import torch
    torch.save({'state_dict': {'backbone.cls_token': torch.zeros(1, 1, 128)},
                'meta': {}}, bogus)
    with pytest.raises(Exception) as error:
        train_in_process(
            FINETUNE_DEMO, tmp_path / 'ft',
            [f'model.backbone.init_cfg.checkpoint={bogus}',
             *finetune_overrides(tiny_image_folder)])
    message = str(error.value)
    assert 'pos_embed' in message and 'missing' in message.lower()
