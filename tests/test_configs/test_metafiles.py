"""Paper rows as data: every config equals the metafile record of the paper
row it claims, and every stated value is checked (a mutated one is caught).

Rules of the records: ``docs/metafiles.md``; checker:
``mmmoma/utils/metafile.py``.
"""
import copy
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from mmmoma.utils.metafile import (MetafileError, check_metafile, check_record,
                                   check_record_fields, load_metafile,
                                   resolve_key, values_equal)

from ..test_tools.utils import REPO_ROOT

METHODS = ('moma', 'sdae', 'mimco', 'mmoco')
METAFILES = {method: osp.join(REPO_ROOT, 'configs', method, 'metafile.yml')
             for method in METHODS}


def records(method):
    return load_metafile(METAFILES[method])['Models']


def config_records(method):
    return [record for record in records(method) if 'Config' in record]


# ----------------------------------------------------------------------
# model-index.yml and coverage
# ----------------------------------------------------------------------
def test_model_index_imports_every_metafile():
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as file:
        index = yaml.safe_load(file)
    found = sorted(osp.relpath(path, REPO_ROOT) for path in glob.glob(
        osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml')))
    assert sorted(index['Import']) == found
    assert found == sorted(f'configs/{m}/metafile.yml' for m in METHODS)


@pytest.mark.parametrize('method', METHODS)
def test_every_method_config_has_a_record(method):
    claimed = {record['Config'] for record in config_records(method)}
    own = {osp.relpath(path, REPO_ROOT) for path in glob.glob(
        osp.join(REPO_ROOT, 'configs', method, '*.py'))}
    name = re.compile(rf'(^|[_-]){method}([_-]|$)')
    transfer = {osp.relpath(path, REPO_ROOT) for path in glob.glob(
        osp.join(REPO_ROOT, 'configs', 'benchmarks', '*', '*.py'))
        if name.search(osp.basename(path))}
    assert own, method
    assert sorted(own - claimed) == [], 'pre-training configs without record'
    assert sorted(transfer - claimed) == [], 'transfer configs without record'
    # and no record claims a config of another method's folder
    assert all(path.startswith((f'configs/{method}/', 'configs/benchmarks/'))
               for path in claimed), sorted(claimed)


@pytest.mark.parametrize('method', METHODS)
def test_metafile_records_match_their_configs(method):
    assert check_metafile(METAFILES[method], REPO_ROOT) == []


@pytest.mark.parametrize('method', METHODS)
def test_metafile_states_the_recipe(method):
    """Every config record states hyper-parameters, each with its source;
    rows without a config say why."""
    for record in records(method):
        if 'Config' in record:
            assert len(record.get('Hyper-parameters') or []) >= 3, \
                record['Name']
            assert all(str(item['Source']).strip()
                       for item in record['Hyper-parameters'])
        else:
            assert len(str(record['Not Provided'])) > 10, record['Name']


# ----------------------------------------------------------------------
# a mutated value is caught
# ----------------------------------------------------------------------
def mutated(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 1.5 + 1
    if isinstance(value, str):
        return value + '_mutated'
    if isinstance(value, (list, tuple)):
        if not value:
            return [0]
        return [mutated(value[0]), *value[1:]]
    if value is None:
        return 0.5
    if isinstance(value, dict):
        return {**value, 'mutated': 1}
    raise TypeError(value)


def set_key(cfg, key, value):
    """Set ``key`` (same rules as resolve_key) in a loaded config."""
    *parents, last = key.split('.')
    node = resolve_key(cfg, '.'.join(parents)) if parents else cfg
    if isinstance(node, (list, tuple)):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize('method', METHODS)
def test_every_stated_value_mutated_is_caught(method):
    for record in config_records(method):
        path = osp.join(REPO_ROOT, record['Config'])
        cfg = Config.fromfile(path)
        assert check_record(record, cfg, path) == []
        for item in record['Hyper-parameters']:
            broken = copy.deepcopy(cfg)
            set_key(broken, item['Key'], mutated(item['Value']))
            problems = check_record(record, broken, path)
            assert len(problems) >= 1, (record['Name'], item['Key'])
            assert any(item['Key'] in p for p in problems), problems
        # the batch and the schedule are checked too
        broken = copy.deepcopy(cfg)
        broken.train_dataloader.batch_size += 1
        assert any('Batch Size' in p
                   for p in check_record(record, broken, path))
        broken = copy.deepcopy(cfg)
        field = 'max_epochs' if 'max_epochs' in cfg.train_cfg else \
            'max_iters'
        broken.train_cfg[field] += 1
        assert any(('Epochs' if field == 'max_epochs' else 'Iterations') in p
                   for p in check_record(record, broken, path))


# ----------------------------------------------------------------------
# the checker's rules
# ----------------------------------------------------------------------
CFG = Config(dict(
    default_scope='mmpretrain',
    model=dict(type='MAE', backbone=dict(type='MAEViT', mask_ratio=0.75)),
    optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
    custom_hooks=[dict(type='RNGStateHook'), dict(type='A', x=1),
                  dict(type='A', x=2)],
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(
                  0.2, 1.0))],
))


def test_resolve_key_paths_selectors_and_defaults():
    assert resolve_key(CFG, 'model.backbone.mask_ratio') == 0.75
    assert resolve_key(CFG, 'pipeline.1.scale') == 224
    assert resolve_key(CFG, 'pipeline.[type=RandomResizedCrop].scale') == 224
    assert tuple(resolve_key(
        CFG, 'pipeline.[type=RandomResizedCrop].crop_ratio_range')) == (0.2,
                                                                        1.0)
    # missing keys fall back to the registered class's default
    assert resolve_key(CFG, 'optim_wrapper.optimizer.betas') == (0.9, 0.999)
    assert resolve_key(CFG, 'optim_wrapper.optimizer.weight_decay') == 0.01
    assert resolve_key(CFG, 'model.backbone.arch') == 'b'


@pytest.mark.parametrize('key,match', [
    ('custom_hooks.[type=A].x', '2 dicts'),
    ('custom_hooks.[type=B]', '0 dicts'),
    ('pipeline.5', 'no index'),
    ('model.backbone.no_such_argument', 'no default'),
    ('model.nothing.x', "no 'nothing'"),
    ('optim_wrapper.optimizer.lr.x', 'not a dict'),
])
def test_resolve_key_errors_name_the_key(key, match):
    with pytest.raises(MetafileError, match=match) as error:
        resolve_key(CFG, key)
    assert key in str(error.value)


def test_values_compare_exactly_or_within_tolerance():
    assert values_equal(2.4e-3, 1.5e-4 * 4096 / 256)
    assert not values_equal(1.5e-4, 2.4e-3)
    assert values_equal((0.9, 0.95), [0.9, 0.95])
    assert not values_equal([0.9, 0.95], [0.9, 0.999])
    assert not values_equal(True, 1) and not values_equal(1, True)
    assert values_equal(None, None) and not values_equal(None, 0)
    assert values_equal('bicubic', 'bicubic')
    assert not values_equal(100, 101)


def test_record_fields_are_checked():
    good = dict(Name='x', **{'In Collection': 'C', 'Paper Row': 'Table 1'},
                Config='configs/m/x.py', Results=[dict(
                    Task='Image Classification', Dataset='ImageNet-1k',
                    Metrics={'Top 1 Accuracy': 83.0})])
    assert check_record_fields(good, ['C']) == []
    both = dict(good, **{'Not Provided': 'reason'})
    assert any('exactly one' in p for p in check_record_fields(both, ['C']))
    renamed = dict(good, Name='y')
    assert any('stem' in p for p in check_record_fields(renamed, ['C']))
    assert any('Collection' in p for p in check_record_fields(good, ['D']))
    no_number = dict(good, Results=[dict(Task='t', Dataset='d',
                                         Metrics={'Top 1 Accuracy': 'high'})])
    assert any('Metrics' in p for p in check_record_fields(no_number, ['C']))


def test_batch_of_the_name_must_be_the_dataloaders(tmp_path):
    record = dict(Name='m_vit_8xb64-100e_in1k',
                  Metadata={'Epochs': 100, 'Batch Size': 512},
                  **{'Hyper-parameters': []})
    cfg = Config(dict(train_cfg=dict(max_epochs=100),
                      train_dataloader=dict(batch_size=64)))
    path = str(tmp_path / 'm_vit_8xb64-100e_in1k.py')
    assert check_record(record, cfg, path) == []
    cfg.train_dataloader.batch_size = 32
    assert any('NxbB' in p for p in check_record(record, cfg, path))
