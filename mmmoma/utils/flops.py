"""FLOP counting with torch's ``FlopCounterMode``, attention included.

``FlopCounterMode`` counts matrix multiplications, convolutions and the *GPU*
scaled-dot-product-attention kernels. On the CPU,
``F.scaled_dot_product_attention`` dispatches (torch 2.14, fp32 / bf16 / fp16,
with or without an attention mask, with or without grad) to
``aten._scaled_dot_product_flash_attention_for_cpu`` and, in the backward
pass, ``aten._scaled_dot_product_flash_attention_for_cpu_backward``; neither
has a formula, so attention costs zero FLOPs there and every saving made by
restricting attention (folds, chunks) would be invisible. Importing this module
registers formulas for both ops (idempotently). The math fallback (taken for
``dropout_p > 0``) decomposes into ``bmm`` calls, which are already counted.

Counting convention (the usual "model FLOPs"):

* one multiply-add = 2 FLOPs; only matmuls, convolutions and attention are
  counted; element-wise work (norms, softmax, activations, losses, the
  optimizer update) is not;
* attention forward = ``4·B·H·Sq·Sk·D`` (``Q·Kᵀ`` and ``P·V``), backward =
  twice the forward (gradients of ``Q``, ``K``, ``V`` and of the scores), no
  recomputation of the scores. torch's own formulas for the GPU backward
  kernels add the recomputation (2.5× the forward); :func:`count_flops`
  overrides them with the formula above, so counts do not depend on the
  device.
* ``FlopCounterMode`` counts at the dispatcher, below autograd: forwards
  run under ``torch.no_grad()`` (frozen teachers) are counted like any other
  and, having no graph, add no backward FLOPs.

:func:`count_flop_breakdown` / :func:`train_step_flop_breakdown` also report
the attention FLOPs alone (the kernels of :data:`ATTENTION_FORWARD_OPS` and
:data:`ATTENTION_BACKWARD_OPS`, i.e. ``Q·Kᵀ`` and ``P·V`` and their
gradients; the q / k / v / output projections are ``Linear`` layers and not
part of it). The math fallback's ``bmm`` calls (``dropout_p > 0``) are
counted in the total but cannot be told apart from other ``bmm`` calls, so
they are not in the attention share.
"""
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

import torch
from torch.utils.flop_counter import (FlopCounterMode, flop_registry,
                                      register_flop_formula)

aten = torch.ops.aten

#: Attention kernels that ``F.scaled_dot_product_attention`` reaches on the
#: CPU (torch 2.14) and that torch has no FLOP formula for.
CPU_ATTENTION_FORWARD_OPS = (
    aten._scaled_dot_product_flash_attention_for_cpu, )
CPU_ATTENTION_BACKWARD_OPS = (
    aten._scaled_dot_product_flash_attention_for_cpu_backward, )

#: GPU attention backward kernels whose torch formula counts the recomputed
#: scores; :func:`count_flops` counts them with
#: :func:`attention_backward_flops` instead.
GPU_ATTENTION_BACKWARD_OPS = (
    aten._scaled_dot_product_flash_attention_backward,
    aten._scaled_dot_product_efficient_attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward,
)

#: GPU attention forward kernels of ``F.scaled_dot_product_attention``
#: (torch's own formulas count them as :func:`attention_forward_flops`).
GPU_ATTENTION_FORWARD_OPS = (
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
)

#: Every ``scaled_dot_product_attention`` forward kernel (CPU and GPU) whose
#: FLOPs :func:`count_flop_breakdown` reports as attention forward.
ATTENTION_FORWARD_OPS = CPU_ATTENTION_FORWARD_OPS + GPU_ATTENTION_FORWARD_OPS
#: Every ``scaled_dot_product_attention`` backward kernel (CPU and GPU),
#: counted as attention backward (twice the forward).
ATTENTION_BACKWARD_OPS = CPU_ATTENTION_BACKWARD_OPS + \
    GPU_ATTENTION_BACKWARD_OPS


def _check_attention_shapes(query_shape: Sequence[int],
                            key_shape: Sequence[int],
                            value_shape: Sequence[int]) -> None:
    """Raise a ValueError unless q, k, v are compatible (B, H, S, D) shapes."""
    shapes = dict(query=query_shape, key=key_shape, value=value_shape)
    for name, shape in shapes.items():
        if len(shape) != 4:
            raise ValueError(f'attention {name} must be 4-D (B, H, S, D), '
                             f'got shape {tuple(shape)}')
    batch, query_heads, _, query_dims = query_shape
    key_batch, key_heads, key_len, key_dims = key_shape
    value_batch, value_heads, value_len, _ = value_shape
    if not (batch == key_batch == value_batch and key_heads == value_heads
            and query_dims == key_dims and key_len == value_len
            and query_heads % key_heads == 0):
        raise ValueError('incompatible attention shapes: query '
                         f'{tuple(query_shape)}, key {tuple(key_shape)}, '
                         f'value {tuple(value_shape)}')


def attention_forward_flops(query_shape: Sequence[int],
                            key_shape: Sequence[int],
                            value_shape: Sequence[int]) -> int:
    """FLOPs of ``softmax(Q·Kᵀ·scale)·V`` without the softmax.

    Args:
        query_shape: (B, H, Sq, D) of the queries.
        key_shape: (B, Hkv, Sk, D) of the keys (Hkv divides H: grouped-query
            attention broadcasts keys and values over the query heads).
        value_shape: (B, Hkv, Sk, Dv) of the values.

    Returns:
        ``2·B·H·Sq·Sk·D`` for the scores plus ``2·B·H·Sq·Sk·Dv`` for the
        weighted sum, i.e. ``4·B·H·Sq·Sk·D`` when ``Dv == D``.
    """
    _check_attention_shapes(query_shape, key_shape, value_shape)
    batch, heads, query_len, query_dims = query_shape
    key_len = key_shape[2]
    value_dims = value_shape[3]
    return 2 * batch * heads * query_len * key_len * (query_dims + value_dims)


def attention_backward_flops(grad_out_shape: Sequence[int],
                             query_shape: Sequence[int],
                             key_shape: Sequence[int],
                             value_shape: Sequence[int]) -> int:
    """FLOPs of the attention backward pass: twice the forward.

    Four matmuls of the forward's size: ``dP = dO·Vᵀ``, ``dV = Pᵀ·dO``,
    ``dQ = dS·K`` and ``dK = dSᵀ·Q``; the scores are not counted again.

    Args:
        grad_out_shape: (B, H, Sq, Dv) of the output gradient.
        query_shape: (B, H, Sq, D).
        key_shape: (B, Hkv, Sk, D).
        value_shape: (B, Hkv, Sk, Dv).

    Returns:
        ``2 * attention_forward_flops(query_shape, key_shape, value_shape)``.
    """
    expected_grad_shape = (*query_shape[:3], value_shape[3])
    if tuple(grad_out_shape) != expected_grad_shape:
        raise ValueError(f'attention grad_out must have shape '
                         f'{expected_grad_shape}, got {tuple(grad_out_shape)}')
    return 2 * attention_forward_flops(query_shape, key_shape, value_shape)


def _forward_formula(query_shape, key_shape, value_shape, *args,
                     out_shape=None, **kwargs) -> int:
    """``FlopCounterMode`` formula: shapes of the op's arguments in order."""
    return attention_forward_flops(query_shape, key_shape, value_shape)


def _backward_formula(grad_out_shape, query_shape, key_shape, value_shape,
                      *args, out_shape=None, **kwargs) -> int:
    """``FlopCounterMode`` formula: the backward ops all start with
    ``grad_out, query, key, value``."""
    return attention_backward_flops(grad_out_shape, query_shape, key_shape,
                                    value_shape)


def register_attention_flop_formulas() -> None:
    """Register the CPU attention formulas in torch's global flop registry.

    Idempotent: an op that already has a formula (registered by an earlier
    call, or by a future torch) is left alone. Called when this module is
    imported, so any ``FlopCounterMode`` created afterwards counts CPU
    attention.
    """
    for ops, formula in ((CPU_ATTENTION_FORWARD_OPS, _forward_formula),
                         (CPU_ATTENTION_BACKWARD_OPS, _backward_formula)):
        for op in ops:
            if op not in flop_registry:
                register_flop_formula(op)(formula)


register_attention_flop_formulas()


def _custom_mapping() -> Dict[Any, Callable[..., int]]:
    """Formulas that make :func:`count_flops` device independent."""
    mapping: Dict[Any, Callable[..., int]] = {
        op: _forward_formula
        for op in CPU_ATTENTION_FORWARD_OPS
    }
    for op in CPU_ATTENTION_BACKWARD_OPS + GPU_ATTENTION_BACKWARD_OPS:
        mapping[op] = _backward_formula
    return mapping


def make_flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that counts attention by the convention
    of this module on every device.

    Use it as a context manager and read ``get_total_flops()`` or
    ``get_flop_counts()`` (per module and op) afterwards.
    """
    return FlopCounterMode(display=False, custom_mapping=_custom_mapping())


class FlopBreakdown(NamedTuple):
    """FLOPs of one run, with the attention kernels' share.

    Attributes:
        total: All counted FLOPs (attention included).
        attention_forward: FLOPs of the attention forward kernels
            (:data:`ATTENTION_FORWARD_OPS`), ``4·B·H·Sq·Sk·D`` each.
        attention_backward: FLOPs of the attention backward kernels
            (:data:`ATTENTION_BACKWARD_OPS`), twice the forward of each
            attention call that is back-propagated.
    """
    total: int
    attention_forward: int
    attention_backward: int

    @property
    def attention(self) -> int:
        """Attention forward + backward FLOPs."""
        return self.attention_forward + self.attention_backward


def flop_breakdown(counter: FlopCounterMode) -> FlopBreakdown:
    """Read the total and the attention FLOPs off a finished counter.

    Args:
        counter: A ``FlopCounterMode`` (e.g. from :func:`make_flop_counter`)
            that has been used as a context manager.

    Returns:
        The counter's totals.
    """
    per_op = counter.get_flop_counts().get('Global', {})

    def summed(ops: Sequence[Any]) -> int:
        return sum(per_op.get(op, 0) for op in ops)

    return FlopBreakdown(
        total=counter.get_total_flops(),
        attention_forward=summed(ATTENTION_FORWARD_OPS),
        attention_backward=summed(ATTENTION_BACKWARD_OPS))


def count_flop_breakdown(fn: Callable[..., Any], *args: Any,
                         **kwargs: Any) -> FlopBreakdown:
    """Total and attention FLOPs of ``fn(*args, **kwargs)``, including any
    backward pass that ``fn`` runs.

    Args:
        fn: What to run, e.g. a module, or a closure running forward and
            backward.
        *args: Positional arguments of ``fn``.
        **kwargs: Keyword arguments of ``fn``.

    Returns:
        The FLOPs counted by :func:`make_flop_counter` (see the module
        docstring for what is counted), split as :class:`FlopBreakdown`.
    """
    with make_flop_counter() as counter:
        fn(*args, **kwargs)
    return flop_breakdown(counter)


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Total FLOPs of ``fn(*args, **kwargs)``, including any backward pass
    that ``fn`` runs.

    Args:
        fn: What to run, e.g. a module, or a closure running forward and
            backward.
        *args: Positional arguments of ``fn``.
        **kwargs: Keyword arguments of ``fn``.

    Returns:
        The FLOPs counted by :func:`make_flop_counter` (see the module
        docstring for what is counted).
    """
    return count_flop_breakdown(fn, *args, **kwargs).total


def train_step_flop_breakdown(model: torch.nn.Module,
                              data: Any,
                              optim_wrapper: Optional[Any] = None
                              ) -> FlopBreakdown:
    """Total and attention FLOPs of one full training step.

    Runs the step as :func:`train_step_flops` does (see there).

    Args:
        model: An MMEngine ``BaseModel`` in train mode.
        data: A collated batch as the dataloader yields it.
        optim_wrapper: Optional optimizer wrapper.

    Returns:
        FLOPs of the whole step for the whole batch, split as
        :class:`FlopBreakdown`.
    """
    if optim_wrapper is not None:
        return count_flop_breakdown(model.train_step, data, optim_wrapper)

    def forward_backward() -> None:
        processed = model.data_preprocessor(data, True)
        losses = model(**processed, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()

    return count_flop_breakdown(forward_backward)


def train_step_flops(model: torch.nn.Module,
                     data: Any,
                     optim_wrapper: Optional[Any] = None) -> int:
    """FLOPs of one full training step: forward and backward.

    With ``optim_wrapper`` (an MMEngine ``OptimWrapper``) this runs
    ``model.train_step(data, optim_wrapper)`` exactly as the training loop
    does (data pre-processing, loss, backward, optimizer step; the parameters
    **are** updated). Without it, ``model.data_preprocessor`` and
    ``model(..., mode='loss')`` are run and the summed loss is back-propagated
    (no update). The optimizer update is element-wise and therefore not
    counted either way (AdamW: about 15 FLOPs per parameter per step,
    independent of the batch size).

    Args:
        model: An MMEngine ``BaseModel`` in train mode.
        data: A collated batch as the dataloader yields it.
        optim_wrapper: Optional optimizer wrapper.

    Returns:
        FLOPs of the whole step for the whole batch.
    """
    return train_step_flop_breakdown(model, data, optim_wrapper).total
