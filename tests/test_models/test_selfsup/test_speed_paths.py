"""The GPU speed paths every algorithm keeps, checked on the CPU with the tiny
demo configs, written once and parametrised over the four methods:

* no host synchronisation: a forward + backward runs none of the ops that
  read a device value back to the host (``.item()`` / ``int()`` /
  ``bool()`` of a tensor, ``nonzero``, boolean-mask indexing, ``unique``,
  ...), the CPU stand-in for CUDA's sync debug mode;
* ``torch.compile``: ``model.loss`` is one graph (``fullgraph=True``: no
  graph break) that is never recompiled across steps with fresh random
  masks; AOTAutograd's forward + backward matches eager;
* SDPA: every attention layer runs a fused ``scaled_dot_product_attention``
  kernel (flash on the CPU), none the explicit ``softmax(q·kᵀ)·v``;
* bf16 autocast (``AutoAmpOptimWrapper``) matches fp32 within a stated
  tolerance;
* frozen teachers in bf16 weights (MOMA, MimCo) run in bf16, never fp32
  under autocast, and match the fp32 teacher within a stated tolerance.
"""
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Iterator, List

import pytest
import torch
import torch._dynamo
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.utils.attention import MultiheadAttention, WindowMSA
from mmpretrain.registry import MODELS
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from mmmoma.models.utils.frozen_teacher import (FrozenTeacher,
                                                teachers_without_weights)

from ..demo_models import DEMO, METHODS, build, images, total_loss

#: bf16 vs fp32 (bf16 keeps 8 bits of mantissa, ~0.4 % per rounding):
#: |Δloss| / |loss|, and the gradients' cosine and norm ratio. At random
#: init the contrastive gradients (softmax near uniform: p − onehot) are
#: differences of close numbers, ~13 % apart in norm of the difference
#: (cosine ~0.99); the regression losses' ~1 %.
BF16_LOSS_RTOL = 2e-2
BF16_GRAD_MIN_COSINE = 0.98
BF16_GRAD_NORM_RTOL = 5e-2
#: batch of the bf16 comparisons: BatchNorm over 2 samples (the projectors)
#: maps every feature to ±1, whose gradient is pure rounding noise
BF16_BATCH = 8
#: a compiled (AOTAutograd) step vs eager: the same ops, re-ordered
COMPILE_RTOL = 1e-5

ATTENTION_MODULES = (MultiheadAttention, torch.nn.MultiheadAttention,
                     WindowMSA)
FUSED_ATTENTION_OPS = ('_scaled_dot_product_flash_attention',
                       '_scaled_dot_product_efficient_attention',
                       '_scaled_dot_product_cudnn_attention')
MATMUL_OPS = ('mm', 'addmm', 'bmm', 'baddbmm')
#: aten ops that wait for the device and copy a value to the host
HOST_SYNC_OPS = ('_local_scalar_dense', 'item', 'is_nonzero', 'nonzero',
                 'masked_select', 'unique', '_unique', 'equal', 'allclose',
                 'unique_consecutive')


def config_path(method: str) -> str:
    return osp.join(DEMO, METHODS[method][0])


def demo(method: str) -> torch.nn.Module:
    return build(config_path(method))


def views(method: str, seed: int = 0,
          batch_size: int = None) -> List[torch.Tensor]:
    if batch_size is None:
        return images(METHODS[method][2], seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, 3, 32, 32, generator=generator)
            for _ in range(METHODS[method][2])]


def gradients(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([param.grad.flatten() for param in model.parameters()
                      if param.grad is not None])


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.float() - reference.float()).norm() /
                 reference.float().norm())


def assert_gradients_agree(value: torch.Tensor,
                           reference: torch.Tensor) -> None:
    cosine = float(torch.nn.functional.cosine_similarity(value, reference,
                                                         dim=0))
    norm_ratio = float(value.norm() / reference.norm())
    assert cosine > BF16_GRAD_MIN_COSINE, cosine
    assert abs(norm_ratio - 1) < BF16_GRAD_NORM_RTOL, norm_ratio


class OpRecorder(TorchDispatchMode):
    """Records (aten op name, dtypes of its tensor arguments)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat = [item for arg in args for item in (
            arg if isinstance(arg, (list, tuple)) else [arg])]
        dtypes = tuple(arg.dtype for arg in flat
                       if isinstance(arg, torch.Tensor))
        self.calls.append((func.overloadpacket.__name__, dtypes))
        return func(*args, **(kwargs or {}))

    def host_syncs(self) -> List[str]:
        """Ops that read a device value back (boolean-mask indexing runs
        nonzero inside ``index``)."""
        return [name for name, dtypes in self.calls
                if name in HOST_SYNC_OPS or (
                    name in ('index', 'index_put', 'index_put_')
                    and torch.bool in dtypes)]

    def count(self, names) -> int:
        return sum(any(name.startswith(prefix) for prefix in names)
                   for name, _ in self.calls)


@contextmanager
def counting_attention_calls(model: torch.nn.Module) -> Iterator[Dict]:
    counts = {'calls': 0}
    handles = [
        module.register_forward_pre_hook(
            lambda *_: counts.__setitem__('calls', counts['calls'] + 1))
        for module in model.modules() if isinstance(module, ATTENTION_MODULES)
    ]
    for teacher in model.modules():
        if isinstance(teacher, FrozenTeacher):
            handles += [
                module.register_forward_pre_hook(
                    lambda *_: counts.__setitem__('calls',
                                                  counts['calls'] + 1))
                for module in teacher.network.modules()
                if isinstance(module, ATTENTION_MODULES)
            ]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize('method', sorted(METHODS))
def test_a_training_step_never_reads_device_values_back(method):
    model = demo(method)
    recorder = OpRecorder()
    with recorder:
        loss = total_loss(model.loss(views(method), None))
        loss.backward()
    names = [name for name, _ in recorder.calls]
    assert 'mm' in names or 'addmm' in names  # the recorder saw the step
    assert recorder.host_syncs() == []


@pytest.mark.parametrize('method', sorted(METHODS))
def test_loss_is_one_graph_without_recompiles(method):
    model = demo(method)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    # fullgraph: a graph break (e.g. a Python branch on a tensor) is an error
    compiled = torch.compile(model.loss, fullgraph=True, backend='eager')
    with torch._dynamo.config.patch(error_on_recompile=True):
        losses = [total_loss(compiled(views(method, seed=step), None))
                  for step in range(3)]  # fresh random masks every step
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == 1
    assert all(torch.isfinite(loss) for loss in losses)
    # the views changed
    assert len({float(loss.detach()) for loss in losses}) == 3
    torch._dynamo.reset()


@pytest.mark.parametrize('method', sorted(METHODS))
def test_compiled_forward_and_backward_match_eager(method):
    eager, compiled_model = demo(method), demo(method)
    torch.manual_seed(1)
    eager_loss = total_loss(eager.loss(views(method), None))
    eager_loss.backward()
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model.loss, backend='aot_eager')
    torch.manual_seed(1)
    compiled_loss = total_loss(compiled(views(method), None))
    compiled_loss.backward()
    torch._dynamo.reset()
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=COMPILE_RTOL,
                               atol=0)
    assert relative_error(gradients(compiled_model),
                          gradients(eager)) < COMPILE_RTOL


@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_attention_layer_runs_a_fused_sdpa_kernel(method):
    model = demo(method)
    recorder = OpRecorder()
    # flash only: a fallback to SDPA's math path raises "No available kernel"
    with counting_attention_calls(model) as attention, \
            sdpa_kernel(SDPBackend.FLASH_ATTENTION), recorder:
        loss = total_loss(model.loss(views(method), None))
    loss.backward()
    assert attention['calls'] > 0
    fused = recorder.count(FUSED_ATTENTION_OPS)
    assert fused == attention['calls']
    # the explicit softmax(q·kᵀ)·v would show up as aten._softmax
    assert recorder.count(('_softmax', )) == 0


@pytest.mark.parametrize('method', sorted(METHODS))
def test_bf16_autocast_matches_fp32(method):
    reference, model = demo(method), demo(method)
    wrappers = [
        build_optim_wrapper(net, dict(type='AutoAmpOptimWrapper',
                                      cpu_dtype=cpu_dtype,
                                      optimizer=dict(type='AdamW', lr=1e-3)))
        for net, cpu_dtype in ((reference, None), (model, 'bfloat16'))
    ]
    assert [wrapper.precision for wrapper in wrappers] == [
        'float32', 'bfloat16'
    ]
    losses, recorders = [], []
    for net, wrapper in zip((reference, model), wrappers):
        recorder = OpRecorder()
        torch.manual_seed(2)
        with wrapper.optim_context(net), recorder:
            loss = total_loss(
                net.loss(views(method, batch_size=BF16_BATCH), None))
        loss.backward()
        losses.append(loss)
        recorders.append(recorder)
    matmul_dtypes = [dtypes for name, dtypes in recorders[1].calls
                     if name in MATMUL_OPS]
    assert matmul_dtypes and all(
        torch.bfloat16 in dtypes for dtypes in matmul_dtypes)
    assert all(torch.bfloat16 not in dtypes
               for name, dtypes in recorders[0].calls if name in MATMUL_OPS)
    assert float(abs(losses[1] - losses[0]) / abs(losses[0])) \
        < BF16_LOSS_RTOL
    assert_gradients_agree(gradients(model), gradients(reference))


#: method -> how its config names the frozen teachers' dicts
TEACHER_DICTS = {
    'moma': lambda model: [spec.teacher for spec in model.teachers.values()],
    'mimco': lambda model: [model.teacher],
}


def build_with_teacher_dtype(method: str, dtype) -> torch.nn.Module:
    cfg = Config.fromfile(config_path(method))
    for teacher in TEACHER_DICTS[method](cfg.model):
        teacher.dtype = dtype
    if isinstance(cfg.model.backbone.get('init_cfg'), dict):
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with teachers_without_weights():
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def frozen_teachers(model: torch.nn.Module) -> List[FrozenTeacher]:
    return [module for module in model.modules()
            if isinstance(module, FrozenTeacher)]


@pytest.mark.parametrize('method', sorted(TEACHER_DICTS))
def test_bf16_teacher_is_held_and_run_in_bf16(method):
    reference = build_with_teacher_dtype(method, None)
    model = build_with_teacher_dtype(method, 'bfloat16')
    teachers = frozen_teachers(model)
    for teacher, fp32_teacher in zip(teachers, frozen_teachers(reference)):
        teacher.network.load_state_dict(fp32_teacher.network.state_dict())
    model.float().to('cpu')  # moves keep the teacher's dtype
    for teacher in teachers:
        assert {param.dtype for param in teacher.network.parameters()} == {
            torch.bfloat16
        }
    # under autocast, no fp32 matmul: the teacher never re-casts weights
    teacher, image = teachers[0], views(method)[0]
    recorder = OpRecorder()
    with torch.autocast('cpu', dtype=torch.bfloat16), recorder:
        output = teacher(image)[-1]
    matmul_dtypes = [dtypes for name, dtypes in recorder.calls
                     if name in MATMUL_OPS]
    assert matmul_dtypes and all(
        set(dtypes) == {torch.bfloat16} for dtypes in matmul_dtypes)
    assert output.dtype == torch.float32  # cast back to the input's dtype
    # the loss and the student's gradients match the fp32 teacher's
    losses = []
    for net in (reference, model):
        torch.manual_seed(3)
        loss = total_loss(
            net.loss(views(method, batch_size=BF16_BATCH), None))
        loss.backward()
        losses.append(loss)
    assert float(abs(losses[1] - losses[0]) / abs(losses[0])) \
        < BF16_LOSS_RTOL
    assert_gradients_agree(gradients(model), gradients(reference))
    # still never saved in training checkpoints
    assert not [key for key in model.state_dict() if '.network.' in key]


def test_a_bad_teacher_dtype_names_the_field():
    with pytest.raises(ValueError, match=r"model\.teachers\.\w+\.teacher\."
                       r"dtype='int8'.*one of \(None, 'bfloat16', "
                       r"'float16'\)"):
        build_with_teacher_dtype('moma', 'int8')
