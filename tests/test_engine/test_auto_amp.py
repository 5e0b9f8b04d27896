"""AutoAmpOptimWrapper (the paper configs' precision) and fused AdamW (their
optimizer): device resolution, errors, state dicts, and fused == foreach."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

import mmmoma  # noqa: F401  (registers AutoAmpOptimWrapper)
from mmmoma.engine.optimizers import AutoAmpOptimWrapper


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16),
                               torch.nn.GELU(), torch.nn.Linear(16, 4))


def wrapper_for(model, **options) -> AutoAmpOptimWrapper:
    return build_optim_wrapper(
        model, dict(type='AutoAmpOptimWrapper',
                    optimizer=dict(type='AdamW', lr=1e-2), **options))


def test_cpu_default_is_fp32_without_autocast_or_scaler():
    model = tiny_model()
    wrapper = wrapper_for(model)
    assert isinstance(wrapper, AutoAmpOptimWrapper)
    assert (wrapper.device_type, wrapper.precision) == ('cpu', 'float32')
    assert wrapper.cast_dtype is None and wrapper.loss_scaler is None
    with wrapper.optim_context(model):
        assert model(torch.randn(2, 8)).dtype == torch.float32
        assert not torch.is_autocast_enabled('cpu')


def test_cpu_bfloat16_autocasts_and_steps_like_fp32():
    reference, model = tiny_model(), tiny_model()
    wrappers = [wrapper_for(reference), wrapper_for(model,
                                                    cpu_dtype='bfloat16')]
    assert wrappers[1].precision == 'bfloat16'
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for net, wrapper in zip((reference, model), wrappers):
        with wrapper.optim_context(net):
            out = net(x)
            loss = out.float().pow(2).mean()
        assert out.dtype == (torch.float32 if net is reference
                             else torch.bfloat16)
        wrapper.update_params(loss)
    for new, old in zip(model.parameters(), reference.parameters()):
        # one AdamW step of lr 1e-2 moves each weight by ~1e-2 (the sign
        # of its gradient): the same step unless a gradient is ~0
        delta = (new - old).detach().abs()
        assert float(delta.max()) < 2e-2
        assert float(delta.mean()) < 2e-3


def test_gpu_without_bfloat16_falls_back_to_float16(monkeypatch):
    wrapper = wrapper_for(tiny_model())
    monkeypatch.setattr(wrapper, 'device_type', 'cuda')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    assert wrapper._resolve_dtype('bfloat16', None) == torch.float16
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    assert wrapper._resolve_dtype('bfloat16', None) == torch.bfloat16
    assert wrapper._resolve_dtype('float16', None) == torch.float16


@pytest.mark.parametrize('field, value', [('dtype', 'float32'),
                                          ('cpu_dtype', 'float16')])
def test_bad_dtypes_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf'optim_wrapper\.{field} must be '
                       r'one of .*' + repr(value)):
        wrapper_for(tiny_model(), **{field: value})


def test_state_dict_round_trip_and_amp_checkpoints_load():
    model = tiny_model()
    wrapper = wrapper_for(model)
    with wrapper.optim_context(model):
        loss = model(torch.randn(4, 8)).pow(2).mean()
    wrapper.update_params(loss)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    restored = wrapper_for(tiny_model())
    # a checkpoint of mmengine's AmpOptimWrapper carries a loss scaler
    restored.load_state_dict(dict(copy.deepcopy(state),
                                  loss_scaler={'scale': 65536.0}))
    assert restored.state_dict()['state'].keys() == state['state'].keys()
    for key, value in state['state'][0].items():
        assert torch.equal(restored.state_dict()['state'][0][key], value)


def test_fused_adamw_takes_the_same_steps_as_the_default():
    """``optimizer.fused=True`` (the paper schedules): one kernel, the same
    AdamW update as the default (foreach) implementation."""
    models = [tiny_model(), tiny_model()]
    wrappers = [
        build_optim_wrapper(net, dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-2, betas=(0.9, 0.95),
                           weight_decay=0.05, fused=fused),
            paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0)))
        for net, fused in zip(models, (False, True))
    ]
    assert wrappers[1].optimizer.defaults['fused'] is True
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randn(16, 8, generator=generator) for _ in range(5)]
    for x in batches:
        for net, wrapper in zip(models, wrappers):
            wrapper.update_params(net(x).pow(2).mean())
    for fused, default in zip(models[1].parameters(), models[0].parameters()):
        torch.testing.assert_close(fused, default, rtol=1e-6, atol=1e-7)
    assert not torch.equal(models[0][0].weight, tiny_model()[0].weight)
