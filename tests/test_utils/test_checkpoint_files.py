"""Checkpoint files: completeness without loading, and what auto-resume
picks when last_checkpoint is missing, empty, stale or wrong."""
import logging
import os
import time

import pytest
import torch

from mmmoma.utils.checkpoint_files import (atomic_write_text,
                                           find_resumable_checkpoint,
                                           is_complete_checkpoint,
                                           publish_file, why_incomplete)


def save(path, value=0.0):
    torch.save({'state_dict': {'w': torch.full((64, ), value)}}, path)
    return str(path)


def truncate(path):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


@pytest.fixture
def logger():
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    log = logging.getLogger('test_checkpoint_files')
    log.handlers = [Collect()]
    log.propagate = False
    log.records = records
    return log


def test_why_incomplete(tmp_path):
    good = save(tmp_path / 'good.pth')
    assert why_incomplete(good) is None and is_complete_checkpoint(good)
    assert why_incomplete(str(tmp_path / 'nope.pth')) == 'missing'
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert why_incomplete(str(tmp_path / 'empty.pth')) == 'empty'
    cut = save(tmp_path / 'cut.pth')
    truncate(cut)
    assert why_incomplete(cut).startswith('truncated')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    assert not is_complete_checkpoint(str(tmp_path / 'text.pth'))


def test_publish_and_atomic_write_replace_the_target(tmp_path):
    target = tmp_path / 'epoch_1.pth'
    save(target, 1.0)
    partial = save(tmp_path / 'epoch_1.pth.partial', 2.0)
    publish_file(partial, str(target))
    assert not os.path.exists(partial)
    assert torch.load(target)['state_dict']['w'][0] == 2.0
    atomic_write_text(str(tmp_path / 'last_checkpoint'), 'x')
    assert (tmp_path / 'last_checkpoint').read_text() == 'x'
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'last_checkpoint']


def runs(tmp_path, epochs=3):
    paths = []
    for epoch in range(1, epochs + 1):
        paths.append(save(tmp_path / f'epoch_{epoch}.pth', epoch))
        time.sleep(0.01)  # distinct mtimes
    return paths


def point(tmp_path, text):
    (tmp_path / 'last_checkpoint').write_text(text)


def test_a_good_pointer_is_used_silently(tmp_path, logger):
    paths = runs(tmp_path)
    point(tmp_path, paths[-1])
    assert find_resumable_checkpoint(str(tmp_path), logger) == paths[-1]
    assert logger.records == []


@pytest.mark.parametrize('case', ['no pointer', 'empty', 'missing target',
                                  'partial target'])
def test_a_bad_pointer_falls_back_to_the_newest_complete(
        tmp_path, logger, case):
    paths = runs(tmp_path)
    if case == 'empty':
        point(tmp_path, '')
    elif case == 'missing target':
        point(tmp_path, str(tmp_path / 'epoch_4.pth'))
    elif case == 'partial target':
        truncate(paths[-1])
        point(tmp_path, paths[-1])
    expected = paths[-2] if case == 'partial target' else paths[-1]
    assert find_resumable_checkpoint(str(tmp_path), logger) == expected
    warning, = logger.records
    assert f'resuming from the newest complete checkpoint: {expected}' \
        in warning
    reason = {'no pointer': 'there is no last_checkpoint file',
              'empty': 'last_checkpoint is empty',
              'missing target': 'epoch_4.pth', 'partial target':
              'which is truncated'}[case]
    assert reason in warning


def test_a_lagging_pointer_gives_way_to_a_newer_complete_checkpoint(
        tmp_path, logger):
    paths = runs(tmp_path)
    point(tmp_path, paths[0])
    assert find_resumable_checkpoint(str(tmp_path), logger) == paths[-1]
    assert 'is newer and complete' in logger.records[0]


def test_a_newer_partial_file_does_not_displace_the_pointer(tmp_path,
                                                            logger):
    paths = runs(tmp_path)
    truncate(paths[-1])
    point(tmp_path, paths[1])
    assert find_resumable_checkpoint(str(tmp_path), logger) == paths[1]


def test_only_training_checkpoint_names_are_candidates(tmp_path, logger):
    """A converted backbone or teacher file next to the run is never
    resumed from."""
    save(tmp_path / 'teacher.pth')
    save(tmp_path / 'epoch_2.pth.partial')
    assert find_resumable_checkpoint(str(tmp_path), logger) is None
    assert 'training starts from scratch' in logger.records[0]
