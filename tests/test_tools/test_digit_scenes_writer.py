"""The writer skeleton both digit-scenes kinds share: keep a complete set,
rewrite an incomplete, stale or interrupted one, and show progress."""
import io
import json
import os
import os.path as osp
from typing import Callable, Dict, NamedTuple, Tuple

import pytest

from tools.dataset_converters.digit_scenes import (make_digit_scenes,
                                                   make_digit_scenes_seg)
from tools.dataset_converters.digit_scenes.writer import SceneSetWriter

from .utils import PROGRESS_BAR


class Kind(NamedTuple):
    """One kind of set, as the shared contract sees it."""
    make: Callable[..., dict]
    #: a small set, and one with other parameters
    sizes: Dict[str, int]
    other_sizes: Dict[str, int]
    #: what it writes, and files per image
    suffixes: Tuple[str, ...]
    files_per_image: int
    #: one file a meta.json names, relative to the set
    recorded_file: Callable[[dict], str]


KINDS = {
    'classification':
    Kind(make_digit_scenes, dict(num_train=20, num_val=10),
         dict(num_train=10, num_val=10), ('.png', ), 1,
         lambda meta: osp.join('val', '3', meta['files']['val']['3'][0])),
    'segmentation':
    Kind(make_digit_scenes_seg, dict(num_train=8, num_val=4),
         dict(num_train=4, num_val=2), ('.jpg', '.png'), 2,
         lambda meta: osp.join('annotations', 'validation',
                               'scene_00003.png')),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


def image_files(root: str, suffixes: Tuple[str, ...]) -> list:
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files if f.endswith(suffixes))


def expected_count(kind: Kind, sizes: Dict[str, int]) -> int:
    return kind.files_per_image * (sizes['num_train'] + sizes['num_val'])


def test_complete_set_is_kept_and_incomplete_or_other_rewritten(
        kind, tmp_path):
    root = str(tmp_path / 'set')
    first = kind.make(root, **kind.sizes, show_progress=False)
    assert first['skipped'] is False
    assert len(image_files(root, kind.suffixes)) == expected_count(
        kind, kind.sizes)
    path = osp.join(root, kind.recorded_file(first))
    mtime = os.stat(path).st_mtime_ns
    second = kind.make(root, **kind.sizes, show_progress=False)
    assert second['skipped'] is True
    assert os.stat(path).st_mtime_ns == mtime
    assert {k: v for k, v in second.items() if k != 'skipped'} == \
        {k: v for k, v in first.items() if k != 'skipped'}
    # an incomplete set is regenerated
    os.remove(path)
    regenerated = kind.make(root, **kind.sizes, show_progress=False)
    assert regenerated['skipped'] is False
    assert osp.exists(path)
    # force: regenerated although complete
    forced = kind.make(root, **kind.sizes, force=True, show_progress=False)
    assert forced['skipped'] is False
    # other parameters: regenerated, and no stale files remain
    third = kind.make(root, **kind.other_sizes, show_progress=False)
    assert third['skipped'] is False
    assert len(image_files(root, kind.suffixes)) == expected_count(
        kind, kind.other_sizes)


def test_other_generator_version_is_rewritten(kind, tmp_path):
    root = str(tmp_path / 'set')
    kind.make(root, **kind.sizes, show_progress=False)
    meta_path = osp.join(root, 'meta.json')
    with open(meta_path) as f:
        meta = json.load(f)
    meta['generator_version'] += 1
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    rewritten = kind.make(root, **kind.sizes, show_progress=False)
    assert rewritten['skipped'] is False
    with open(meta_path) as f:
        assert json.load(f)['generator_version'] == meta[
            'generator_version'] - 1


def test_interrupted_run_does_not_look_complete(kind, tmp_path,
                                                monkeypatch):
    """The old meta.json goes before the first image is written, the new
    one after the last: a run that stops half-way is redone."""
    root = str(tmp_path / 'set')
    kind.make(root, **kind.sizes, show_progress=False)
    saved = []
    save = SceneSetWriter._save

    def stop_after_three(self, scene_file):
        if len(saved) == 3:
            raise KeyboardInterrupt
        saved.append(scene_file.path)
        save(self, scene_file)

    monkeypatch.setattr(SceneSetWriter, '_save', stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        kind.make(root, **kind.sizes, force=True, show_progress=False)
    assert not osp.exists(osp.join(root, 'meta.json'))
    monkeypatch.setattr(SceneSetWriter, '_save', save)
    redone = kind.make(root, **kind.sizes, show_progress=False)
    assert redone['skipped'] is False
    assert len(image_files(root, kind.suffixes)) == expected_count(
        kind, kind.sizes)


def test_progress_bar(kind, tmp_path, monkeypatch):
    """MMEngine's progress bar counts every image of both splits."""
    import mmengine.utils
    stream = io.StringIO()

    class RecordedBar(mmengine.utils.ProgressBar):

        def __init__(self, task_num: int) -> None:
            super().__init__(task_num, file=stream)

    monkeypatch.setattr(mmengine.utils, 'ProgressBar', RecordedBar)
    kind.make(str(tmp_path / 'set'), **kind.sizes, show_progress=True)
    total = kind.sizes['num_train'] + kind.sizes['num_val']
    out = stream.getvalue()
    assert PROGRESS_BAR.search(out) and f'{total}/{total},' in out, out
    stream.truncate(0)
    kind.make(str(tmp_path / 'set'), **kind.sizes, show_progress=True)
    assert stream.getvalue() == ''  # kept: no bar
