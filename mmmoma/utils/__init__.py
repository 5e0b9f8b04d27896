"""Utilities that are not models: FLOP counting, RNG states, config surgery
(tiny models, stand-in checkpoints, synthetic training batches)."""
from .flops import (attention_backward_flops, attention_forward_flops,
                    count_flops, make_flop_counter,
                    register_attention_flop_formulas, train_step_flops)
from .model_shrinking import resolve_vit_arch, shrink_model
from .rng import get_rng_state, preserve_rng_state, set_rng_state
from .stand_in_checkpoints import (find_checkpoint_references,
                                   write_stand_in_checkpoints)
from .train_batch import build_train_batch

__all__ = [
    'attention_backward_flops', 'attention_forward_flops', 'count_flops',
    'make_flop_counter', 'register_attention_flop_formulas',
    'train_step_flops', 'get_rng_state', 'preserve_rng_state',
    'set_rng_state', 'resolve_vit_arch', 'shrink_model',
    'find_checkpoint_references', 'write_stand_in_checkpoints',
    'build_train_batch'
]
