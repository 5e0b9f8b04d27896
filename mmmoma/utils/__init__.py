"""Utilities that are not models: FLOP counting, RNG states."""
from .flops import (attention_backward_flops, attention_forward_flops,
                    count_flops, make_flop_counter,
                    register_attention_flop_formulas, train_step_flops)
from .rng import get_rng_state, preserve_rng_state, set_rng_state

__all__ = [
    'attention_backward_flops', 'attention_forward_flops', 'count_flops',
    'make_flop_counter', 'register_attention_flop_formulas',
    'train_step_flops', 'get_rng_state', 'preserve_rng_state',
    'set_rng_state'
]
