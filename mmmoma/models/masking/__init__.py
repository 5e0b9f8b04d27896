"""Masking: which patches each encoder sees (one home for every strategy).

* :mod:`.indices`: the index arithmetic (random splits, groups, blocks);
* :mod:`.plan`: :class:`MaskPlan`, what every generator returns, and
  :class:`EncoderInput`, how algorithms show their plans to tools;
* :mod:`.generators`, :mod:`.folds`: the registered generators.
"""
from .folds import (TEACHER_INPUTS, FoldedTargets, FullImageFolds,
                    MultiFoldSplit, TeacherCrop, TeacherTokens,
                    fold_generator_cfg, select_teacher_tokens,
                    teacher_tokens_of)
from .generators import (BlockMask, MaskGenerator, RandomTokenMask,
                         ShuffledChunks, build_mask_generator, split_plan)
from .indices import (TokenSplit, check_mask_ratio, expand_mask, gather_tokens,
                      num_visible_tokens, random_block_mask,
                      random_token_split, shuffled_chunks, split_into_groups,
                      split_prefix, unfold_groups)
from .plan import (EncoderInput, MaskPlan, backbone_grid, check_generator,
                   patch_grid, patch_size)

__all__ = [
    'TEACHER_INPUTS', 'FoldedTargets', 'FullImageFolds', 'MultiFoldSplit',
    'TeacherCrop', 'TeacherTokens', 'fold_generator_cfg',
    'select_teacher_tokens', 'teacher_tokens_of', 'BlockMask',
    'MaskGenerator', 'RandomTokenMask', 'ShuffledChunks',
    'build_mask_generator', 'split_plan', 'TokenSplit', 'check_mask_ratio',
    'expand_mask', 'gather_tokens', 'num_visible_tokens',
    'random_block_mask', 'random_token_split', 'shuffled_chunks',
    'split_into_groups', 'split_prefix', 'unfold_groups', 'EncoderInput',
    'MaskPlan', 'backbone_grid', 'check_generator', 'patch_grid',
    'patch_size'
]
