"""Compatibility fixes for ``torch.compile`` and fused attention (fixes 8–10
of :mod:`mmmoma.compat`, which applies them at import; each has a test in
``tests/test_compat.py``).

8. ``torch.compile`` of every mmpretrain ViT / Swin. Their stochastic-depth
   rates come from ``np.linspace``, so mmcv's ``DropPath.drop_prob`` is a
   ``numpy.float64``; Dynamo traces numpy scalars as tensors, and
   ``drop_path``'s ``if drop_prob == 0.`` becomes a data-dependent branch: a
   graph break in every block (``fullgraph=True`` fails).
   :func:`_patch_drop_path_probability` stores the same value as a Python
   ``float`` (bit-identical arithmetic and random draws).
9. Swin attention outside SDPA. mmpretrain's ``WindowMSA`` (Swin, MimCo's
   and MoBY's backbones) computes ``softmax(q·kᵀ + bias)·v`` by hand, which
   materialises every attention matrix and never reaches a fused kernel.
   :func:`_patch_window_attention` computes the same function with
   ``F.scaled_dot_product_attention``, the relative position bias (plus the
   shifted-window mask) as its additive ``attn_mask`` (the memory-efficient
   kernel on GPU), same parameters and state-dict keys.
10. ``compile=`` recompiles at every step. MMEngine compiles the whole
    ``BaseModel.train_step``, data preprocessing included; moving the
    batch's data samples deep-copies their metainfo, and Dynamo guards on
    the file-path strings by object id, so every new batch recompiles
    (``torch._dynamo`` gives up after 8); and tracing the optimizer step
    fails for every config with a ``paramwise_cfg`` (its param groups are
    ``ConfigDict`` s: "'UserDefinedDictVariable' object has no attribute
    'items'"). :func:`_patch_train_step` runs the data preprocessor and
    ``optim_wrapper.update_params`` eagerly (``torch.compiler.disable``), so
    the compiled region is the model's forward on tensors of static shapes
    (AOTAutograd still compiles its backward); the step is otherwise
    MMEngine's, line for line.
"""
import functools
from typing import Any, Callable, List

import torch

__all__ = ['install_speed_fixes']


def _patch_drop_path_probability() -> None:
    from mmcv.cnn.bricks.drop import DropPath
    if getattr(DropPath.__init__, '_mmmoma_float_prob', False):
        return
    init = DropPath.__init__

    @functools.wraps(init)
    def __init__(self, drop_prob: float = 0.1) -> None:
        init(self, float(drop_prob))

    __init__._mmmoma_float_prob = True
    DropPath.__init__ = __init__


def _window_attention_forward(self, x: torch.Tensor,
                              mask: Any = None) -> torch.Tensor:
    """``WindowMSA.forward`` through ``F.scaled_dot_product_attention``.

    Args:
        x (Tensor): (num_windows * B, N, C) window tokens.
        mask (Tensor, optional): (num_windows, N, N) additive mask of the
            shifted windows, values in (-inf, 0].

    Returns:
        Tensor: (num_windows * B, N, C).
    """
    batch_windows, num_tokens, channels = x.shape
    qkv = self.qkv(x).reshape(batch_windows, num_tokens, 3, self.num_heads,
                              channels // self.num_heads).permute(2, 0, 3, 1,
                                                                  4)
    query, key, value = qkv[0], qkv[1], qkv[2]
    bias = self.relative_position_bias_table[
        self.relative_position_index.view(-1)].view(
            num_tokens, num_tokens, -1).permute(2, 0, 1)  # (heads, N, N)
    if mask is None:
        attn_mask = bias.unsqueeze(0).to(query.dtype)
    else:
        num_windows = mask.shape[0]
        attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1)).to(query.dtype)
        attn_mask = attn_mask.unsqueeze(0).expand(
            batch_windows // num_windows, -1, -1, -1, -1).reshape(
                batch_windows, self.num_heads, num_tokens, num_tokens)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attn_mask,
        dropout_p=self.attn_drop.p if self.training else 0.,
        scale=self.scale)
    out = out.transpose(1, 2).reshape(batch_windows, num_tokens, channels)
    return self.proj_drop(self.proj(out))


#: mmpretrain's own ``WindowMSA.forward`` (the reference of the fix's test).
ORIGINAL_WINDOW_ATTENTION_FORWARD: List[Callable] = []


def _patch_window_attention() -> None:
    from mmpretrain.models.utils.attention import WindowMSA
    if WindowMSA.forward is not _window_attention_forward:
        ORIGINAL_WINDOW_ATTENTION_FORWARD.append(WindowMSA.forward)
        WindowMSA.forward = _window_attention_forward


@torch.compiler.disable
def _eager_preprocess(data_preprocessor: Callable, data: Any) -> Any:
    return data_preprocessor(data, True)


@torch.compiler.disable
def _eager_update(optim_wrapper: Any, loss: torch.Tensor) -> None:
    optim_wrapper.update_params(loss)


def _train_step(self, data, optim_wrapper) -> dict:
    """MMEngine's ``BaseModel.train_step``; preprocessing and the update
    (backward of the compiled graph, optimizer step) run eagerly."""
    with optim_wrapper.optim_context(self):
        data = _eager_preprocess(self.data_preprocessor, data)
        losses = self._run_forward(data, mode='loss')
    parsed_losses, log_vars = self.parse_losses(losses)
    _eager_update(optim_wrapper, parsed_losses)
    return log_vars


def _patch_train_step() -> None:
    from mmengine.model import BaseModel
    BaseModel.train_step = _train_step


def install_speed_fixes() -> None:
    """Apply fixes 8–10 (idempotent)."""
    _patch_train_step()
    _patch_drop_path_probability()
    _patch_window_attention()
