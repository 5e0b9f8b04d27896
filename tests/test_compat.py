import io

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

import mmmoma  # noqa: F401  (applies the fixes)
from mmmoma.compat import setup_cpu_distributed


class NotAllowListed:
    pass


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer)  # default: weights_only=True on torch >= 2.6


def test_mmengine_checkpoint_objects_load_with_safe_loading():
    history = HistoryBuffer()
    history.update(1.5)
    history.update(np.float64(2.5))
    checkpoint = dict(
        message_hub=dict(log_scalars={'train/loss': history}),
        meta=dict(seed=0, mean=np.arange(3, dtype=np.float32),
                  scalar=np.float64(0.25), ints=np.int64(7)))
    loaded = _roundtrip(checkpoint)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(2.0)
    np.testing.assert_array_equal(loaded['meta']['mean'], np.arange(3))
    assert loaded['meta']['scalar'] == 0.25


def test_safe_loading_still_refuses_other_classes():
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        _roundtrip({'x': NotAllowListed()})


def test_cpu_distributed_setup_single_process(monkeypatch):
    cfg = Config(dict(model=dict(type='X')))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert 'model_wrapper_cfg' not in cfg
    if torch.cuda.is_available():  # GPU machines use mmengine's own path
        assert setup_cpu_distributed(cfg, 'pytorch') is False
        return
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29517')
    try:
        assert setup_cpu_distributed(cfg, 'pytorch') is True
        assert torch.distributed.get_backend() == 'gloo'
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel', device_ids=None)
    finally:
        torch.distributed.destroy_process_group()
    with pytest.raises(ValueError, match='launcher'):
        setup_cpu_distributed(cfg, 'slurm')


def test_getattr_substitute_only_resolves_history_buffer_methods():
    import os as os_module

    from mmmoma.compat import _history_buffer_getattr
    assert _history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(Exception, match='not allowed'):
        _history_buffer_getattr(os_module, 'system')
    with pytest.raises(Exception, match='not allowed'):
        _history_buffer_getattr(HistoryBuffer, '__init__')


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_adjust_hue_negative_factor_wraps_like_numpy1(backend):
    import mmcv
    from mmpretrain.datasets.transforms import ColorJitter
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    # a shift of -0.05 * 255 = -12 equals a shift of +244 / 255 of the circle
    negative = mmcv.adjust_hue(img, -0.05, backend=backend)
    assert negative.shape == img.shape and negative.dtype == np.uint8
    assert not np.array_equal(negative, img)
    # shifting back by +12 / 255 restores the hue (up to HSV rounding)
    restored = mmcv.adjust_hue(negative, 12 / 255 + 1e-6, backend=backend)
    assert np.abs(restored.astype(int) - img.astype(int)).mean() < 3
    # positive factors still take mmcv's own code path
    assert np.array_equal(
        mmcv.adjust_hue(img, 0.1, backend=backend),
        mmcv.adjust_hue.original(img, 0.1, backend))
    with pytest.raises(OverflowError):  # the bug being fixed
        mmcv.adjust_hue.original(img, -0.05, backend)
    with pytest.raises(ValueError, match='hue_factor'):
        mmcv.adjust_hue(img, -0.7, backend=backend)
    # the MoCo v3 colour jitter no longer crashes on negative hue draws
    jitter = ColorJitter(hue=0.5, backend=backend)
    for _ in range(20):
        out = jitter(dict(img=img.copy()))['img']
        assert out.shape == img.shape


def test_persistent_workers_dropped_only_without_workers():
    from mmmoma.compat import drop_persistent_workers_without_workers
    cfg = Config(dict(
        train_dataloader=dict(num_workers=0, persistent_workers=True),
        val_dataloader=dict(num_workers=2, persistent_workers=True),
        test_dataloader=None))
    drop_persistent_workers_without_workers(cfg)
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True


def test_amp_config_trains_in_fp32_without_gpu(monkeypatch):
    from mmengine.optim import OptimWrapper, build_optim_wrapper

    from mmmoma.compat import amp_to_fp32_without_gpu
    optimizer = dict(type='AdamW', lr=1e-3)

    def amp_cfg():
        return Config(dict(optim_wrapper=dict(
            type='AmpOptimWrapper', loss_scale='dynamic', dtype='float16',
            optimizer=optimizer)))

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = amp_cfg()
    assert amp_to_fp32_without_gpu(cfg) is True
    assert cfg.optim_wrapper == dict(type='OptimWrapper', optimizer=optimizer)
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(wrapper) is OptimWrapper
    # a config without AMP is left alone
    plain = Config(dict(optim_wrapper=dict(type='OptimWrapper',
                                           optimizer=optimizer)))
    assert amp_to_fp32_without_gpu(plain) is False
    # with a GPU, AMP stays
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = amp_cfg()
    assert amp_to_fp32_without_gpu(cfg) is False
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_finish_distributed_destroys_the_process_group(tmp_path):
    """tools/train.py ends distributed runs with finish_distributed (a rank
    exiting with a live gloo group can abort); outside them it is a
    no-op."""
    import torch.distributed as torch_dist

    from mmmoma.compat import finish_distributed
    assert not torch_dist.is_initialized()
    finish_distributed()  # nothing to do
    torch_dist.init_process_group(
        backend='gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)
    try:
        assert torch_dist.is_initialized()
        finish_distributed()
        assert not torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def test_runner_auto_resume_skips_a_partial_checkpoint(tmp_path):
    """mmengine's Runner reads ``find_latest_checkpoint`` from its own
    module: the patched one skips the partial file last_checkpoint names
    (mmengine's returns it, and resuming fails on a zip error)."""
    import mmengine.runner.runner as runner_module
    good = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}}, good)
    partial = tmp_path / 'epoch_2.pth'
    partial.write_bytes(good.read_bytes()[:40])
    (tmp_path / 'last_checkpoint').write_text(str(partial))
    assert runner_module.find_latest_checkpoint.original(
        str(tmp_path)) == str(partial)
    assert runner_module.find_latest_checkpoint(str(tmp_path)) == \
        str(good)


def test_runner_built_loaders_get_workers_that_die_with_their_parent():
    import mmengine.runner.runner as runner_module

    from mmmoma.utils.dataloader_workers import \
        mmengine_worker_init_exiting_with_parent
    assert runner_module.default_worker_init_fn is \
        mmengine_worker_init_exiting_with_parent
    loader = runner_module.Runner.build_dataloader(
        dict(dataset=list(range(4)), batch_size=2, num_workers=1,
             sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
    assert loader.worker_init_fn.func is \
        mmengine_worker_init_exiting_with_parent


def test_base_module_loads_strict_pretrained_last_installed_once():
    """Fix #7 is installed on mmengine's ``BaseModule`` at import, on later
    subclasses too, and installing it again changes nothing (its loading
    behaviour: ``tests/test_checkpoints/test_strict_pretrained.py``)."""
    from mmengine.model import BaseModule

    from mmmoma.compat import install_load_last
    init_weights = BaseModule.init_weights
    init_subclass = BaseModule.__dict__['__init_subclass__']
    assert init_weights._mmmoma_load_last
    assert init_weights.__wrapped__._mmmoma_defers_children

    install_load_last()
    assert BaseModule.init_weights is init_weights
    assert BaseModule.__dict__['__init_subclass__'] is init_subclass

    class Later(BaseModule):

        def init_weights(self):
            super().init_weights()

    assert Later.__dict__['init_weights']._mmmoma_load_last


def test_drop_path_probabilities_are_python_floats_and_compile():
    """Fix 8: mmpretrain draws stochastic-depth rates with np.linspace; as
    numpy scalars they broke torch.compile(fullgraph=True) in every block."""
    from mmcv.cnn.bricks.drop import DropPath
    from mmpretrain.models import VisionTransformer
    assert type(DropPath(np.float64(0.25)).drop_prob) is float
    assert DropPath(np.float64(0.25)).drop_prob == 0.25
    vit = VisionTransformer(arch=dict(embed_dims=32, num_layers=2,
                                      num_heads=2, feedforward_channels=64),
                            img_size=16, patch_size=4, drop_path_rate=0.1)
    rates = [module.drop_prob for module in vit.modules()
             if isinstance(module, DropPath)]
    assert rates and all(type(rate) is float for rate in rates)
    assert max(rates) == pytest.approx(0.1)
    vit.eval()
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(vit, fullgraph=True, backend='eager')
    torch._dynamo.reset()
    assert torch.equal(compiled(x)[0], vit(x)[0])


@pytest.mark.parametrize('shifted', [False, True])
def test_window_attention_is_sdpa_and_matches_mmpretrain(shifted):
    """Fix 9: Swin's window attention through SDPA computes mmpretrain's
    function (values and gradients, with and without the shift mask)."""
    from mmpretrain.models.utils.attention import WindowMSA

    from mmmoma.compat_speed import ORIGINAL_WINDOW_ATTENTION_FORWARD
    torch.manual_seed(0)
    attention = WindowMSA(embed_dims=16, num_heads=2, window_size=(3, 3))
    attention.init_weights()
    windows, batch, tokens = 4, 2, 9
    x = torch.randn(windows * batch, tokens, 16)
    mask = None
    if shifted:
        mask = torch.zeros(windows, tokens, tokens)
        mask[1:, :4, 4:] = -100.0
    outputs, grads = [], []
    for forward in (ORIGINAL_WINDOW_ATTENTION_FORWARD[0], WindowMSA.forward):
        attention.zero_grad()
        inputs = x.clone().requires_grad_()
        out = forward(attention, inputs, mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() \
            .backward()
        outputs.append(out.detach())
        grads.append([inputs.grad] + [
            param.grad.clone() for param in attention.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    for new, old in zip(grads[1], grads[0]):
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)
    calls = []

    class Recorder(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.scaled_dot_product_attention:
                calls.append(func)
            return func(*args, **(kwargs or {}))

    with Recorder():
        attention(x, mask)
    assert len(calls) == 1


def test_compiled_train_step_preprocesses_eagerly_without_recompiles():
    """Fix 10: MMEngine's compile= compiles train_step; data samples whose
    metainfo (file paths) changes every batch recompile no graph, and an
    optimizer with paramwise_cfg (ConfigDict param groups) steps."""
    from mmengine.model import BaseModel
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample

    from mmmoma.compat_speed import _train_step
    assert BaseModel.train_step is _train_step

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=self.linear(inputs).pow(2).mean())

    torch.manual_seed(0)
    model = Tiny()
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={'bias': dict(decay_mult=0.0)})))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model.train_step, backend='eager')
    losses = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in range(3):
            sample = DataSample(metainfo=dict(img_path=f'img_{step}.jpg'))
            batch = dict(inputs=torch.full((2, 4), float(step + 1)),
                         data_samples=[sample, sample])
            losses.append(float(compiled(batch, wrapper)['loss']))
    torch._dynamo.reset()
    assert len(set(losses)) == 3 and all(np.isfinite(losses))
