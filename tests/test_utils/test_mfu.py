"""mmmoma.utils.mfu: the matmul peak, MFU arithmetic, the step's precision,
compilation options and timing (CPU)."""
import math

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, build_optim_wrapper
from torch import nn

import mmmoma  # noqa: F401  (registers AutoAmpOptimWrapper)
from mmmoma.utils.flops import count_flops
from mmmoma.utils.mfu import (MatmulPeak, achieved_flops_per_s,
                              calibrate_cpu_size, compile_options,
                              matmul_flops, measure_matmul_peak,
                              model_flops_utilisation,
                              precision_optim_wrapper_cfg, resolved_precision,
                              time_train_steps)


def test_matmul_flops_is_2n_cubed_as_the_flop_counter_counts():
    assert matmul_flops(3) == 54
    a = torch.zeros(64, 64)
    assert count_flops(torch.matmul, a, a) == matmul_flops(64) == 2 * 64**3


def test_mfu_arithmetic():
    # 6 TFLOP in 0.5 s = 12 TFLOP/s; of a 40 TFLOP/s peak: 30 %
    assert achieved_flops_per_s(6e12, 0.5) == 12e12
    assert model_flops_utilisation(6e12, 0.5, 40e12) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        model_flops_utilisation(1.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        model_flops_utilisation(1.0, 1.0, 0.0)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cpu_peak_is_positive_finite_and_consistent(dtype):
    peak = measure_matmul_peak('cpu', dtype, size=256, warmup=1, repeats=3)
    assert isinstance(peak, MatmulPeak)
    assert peak.dtype == str(dtype).replace('torch.', '')
    assert peak.size == 256 and peak.seconds > 0
    assert math.isfinite(peak.flops_per_s) and peak.flops_per_s > 0
    assert peak.flops_per_s == pytest.approx(
        matmul_flops(256) / peak.seconds)
    assert f'({torch.get_num_threads()} torch threads)' in peak.device_name


def test_cpu_default_dtype_and_calibrated_size():
    peak = measure_matmul_peak('cpu', warmup=0, repeats=1, target_s=0.01)
    assert peak.dtype == 'float32'
    assert peak.size % 256 == 0 and 256 <= peak.size <= 8192
    # a 100x longer target needs a larger matrix (time grows as n³)
    assert calibrate_cpu_size(torch.float32, 1.0) > \
        calibrate_cpu_size(torch.float32, 0.01)


def test_precision_optim_wrapper_cfg_overrides_the_config_type():
    config = dict(type='AutoAmpOptimWrapper', dtype='bfloat16',
                  loss_scale='dynamic', clip_grad=dict(max_norm=1.0),
                  optimizer=dict(type='AdamW', lr=1e-3, fused=True))
    fp32 = precision_optim_wrapper_cfg(config, 'fp32')
    assert fp32 == dict(type='OptimWrapper', clip_grad=dict(max_norm=1.0),
                        optimizer=dict(type='AdamW', lr=1e-3, fused=True))
    assert precision_optim_wrapper_cfg(config, 'bf16')['cpu_dtype'] == \
        'bfloat16'
    fp16 = precision_optim_wrapper_cfg(config, 'fp16')
    assert (fp16['type'], fp16['dtype']) == ('AmpOptimWrapper', 'float16')
    assert config['type'] == 'AutoAmpOptimWrapper'  # not modified
    with pytest.raises(ValueError):
        precision_optim_wrapper_cfg(config, 'fp8')


class _Tiny(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.dtypes = []

    def forward(self, inputs, data_samples=None, mode='loss'):
        out = self.fc(inputs)
        self.dtypes.append(out.dtype)
        return dict(loss=out.float().square().mean())


def test_bf16_wrapper_autocasts_on_the_cpu_and_says_so():
    model = _Tiny()
    for precision, dtype in (('fp32', torch.float32),
                             ('bf16', torch.bfloat16)):
        wrapper = build_optim_wrapper(model, precision_optim_wrapper_cfg(
            dict(optimizer=dict(type='SGD', lr=0.1)), precision))
        assert resolved_precision(wrapper) == precision
        model.dtypes.clear()
        model.train_step(dict(inputs=torch.ones(2, 8)), wrapper)
        assert model.dtypes == [dtype]


def test_compile_options_read_as_mmengine_runner():
    assert compile_options(None) is None
    assert compile_options(False) is None
    assert compile_options(True) == {}
    assert compile_options(None, flag=True) == {}
    assert compile_options(dict(backend='eager')) == dict(backend='eager')


def test_time_train_steps_counts_and_keeps_compile_out(monkeypatch):
    model = _Tiny()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    seen = []
    timing = time_train_steps(model, dict(inputs=torch.ones(2, 8)), wrapper,
                              steps=3, warmup=2, before_step=seen.append)
    assert seen == [0, 1, 2, 3, 4] and len(model.dtypes) == 5
    assert len(timing.step_times_s) == 3 and timing.compile_s is None
    assert timing.step_time_s == sorted(timing.step_times_s)[1]
    assert timing.peak_memory_mib is None  # CPU

    compiled = []

    def fake_compile(fn, **kwargs):
        compiled.append(kwargs)
        return fn

    monkeypatch.setattr(torch, 'compile', fake_compile)
    seen.clear()
    timing = time_train_steps(model, dict(inputs=torch.ones(2, 8)), wrapper,
                              steps=1, warmup=0,
                              compile_kwargs=dict(mode='max-autotune'),
                              before_step=seen.append)
    assert compiled == [dict(mode='max-autotune')]
    assert seen == [0, 1]  # the compiling step, then the timed one
    assert timing.compile_s > 0 and len(timing.step_times_s) == 1
