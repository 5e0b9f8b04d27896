import math

import pytest
import torch

from mmmoma.models.masking import (check_mask_ratio, expand_mask,
                                   gather_tokens, num_visible_tokens,
                                   random_block_mask, random_token_split,
                                   shuffled_chunks, split_into_groups,
                                   split_prefix, unfold_groups)


@pytest.mark.parametrize('mask_ratio', [0.0, 0.75, 0.9])
@pytest.mark.parametrize('num_tokens', [64, 196, 50])
def test_split_is_disjoint_complete_and_sized(mask_ratio, num_tokens):
    batch = 5
    split = random_token_split(batch, num_tokens, mask_ratio)
    num_keep = int(num_tokens * (1 - mask_ratio))  # as MAE
    assert split.ids_keep.shape == (batch, num_keep)
    assert split.ids_mask.shape == (batch, num_tokens - num_keep)
    for b in range(batch):
        keep = set(split.ids_keep[b].tolist())
        mask = set(split.ids_mask[b].tolist())
        assert len(keep) == num_keep  # no duplicates
        assert keep.isdisjoint(mask)
        assert keep | mask == set(range(num_tokens))
    # ids_restore undoes the keep-then-mask layout
    shuffled = torch.cat([split.ids_keep, split.ids_mask], dim=1)
    restored = torch.gather(shuffled, 1, split.ids_restore)
    assert torch.equal(restored, torch.arange(num_tokens).expand(batch, -1))


def test_split_differs_per_sample_and_is_reproducible():
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    a = random_token_split(4, 64, 0.75, generator=g1)
    b = random_token_split(4, 64, 0.75, generator=g2)
    assert torch.equal(a.ids_keep, b.ids_keep)
    assert not torch.equal(a.ids_keep[0].sort().values,
                           a.ids_keep[1].sort().values)


def test_visible_count_truncates_as_mae_and_keeps_at_least_one():
    # MAE / official SdAE: len_keep = int(L * (1 - mask_ratio))
    assert num_visible_tokens(196, 0.9) == 19  # int(19.6), MOMA
    assert num_visible_tokens(196, 0.95) == 9  # int(9.8), MOMA
    assert num_visible_tokens(196, 0.65) == 68  # int(68.6), SdAE Fig. 4
    assert num_visible_tokens(196, 0.75) == 49
    assert num_visible_tokens(4, 0.99) == 1
    for ratio in (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.8, 0.85, 0.9):
        assert num_visible_tokens(196, ratio) == int(196 * (1 - ratio))


@pytest.mark.parametrize('bad', [-0.1, 1.0, 1.5, '0.5', None, True])
def test_invalid_mask_ratio_raises_naming_field(bad):
    with pytest.raises(ValueError, match='mask_ratio'):
        check_mask_ratio(bad)
    with pytest.raises(ValueError, match='mask_ratio'):
        random_token_split(2, 16, bad)


@pytest.mark.parametrize('num_ids,num_groups', [(48, 3), (48, 4), (49, 3),
                                                (147, 3), (50, 7), (5, 5)])
def test_groups_disjoint_equal_and_cover_all_but_remainder(
        num_ids, num_groups):
    ids = torch.stack([torch.randperm(200)[:num_ids] for _ in range(3)])
    groups, rest = split_into_groups(ids, num_groups)
    size = num_ids // num_groups
    assert groups.shape == (3, num_groups, size)
    assert rest.shape == (3, num_ids % num_groups)
    for b in range(3):
        flat = groups[b].flatten().tolist()
        assert len(set(flat)) == len(flat)  # disjoint groups
        assert set(flat) | set(rest[b].tolist()) == set(ids[b].tolist())
        assert set(flat).isdisjoint(rest[b].tolist())


@pytest.mark.parametrize('bad', [0, -1, 11, 2.0, True])
def test_invalid_group_count_raises(bad):
    with pytest.raises(ValueError, match='num_folds'):
        split_into_groups(torch.zeros(2, 10, dtype=torch.long), bad,
                          name='num_folds')


def test_gather_prefix_and_unfold():
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float).reshape(2, 6, 3)
    ids = torch.tensor([[5, 0], [2, 3]])
    picked = gather_tokens(tokens, ids)
    assert torch.equal(picked[0, 0], tokens[0, 5])
    assert torch.equal(picked[1, 1], tokens[1, 3])
    prefix, patches = split_prefix(tokens, 1)
    assert torch.equal(prefix, tokens[:, :1])
    assert torch.equal(patches, tokens[:, 1:])
    folded = tokens.reshape(2 * 3, 2, 3)  # 3 groups of 2 per sample
    assert torch.equal(unfold_groups(folded, 3), tokens)


# ----------------------------------------------------------------------
# SimMIM block masks (MimCo)
# ----------------------------------------------------------------------
@pytest.mark.parametrize('grid,mask_ratio,block_size', [
    ((4, 4), 0.6, 2), ((7, 7), 0.6, 1), ((2, 3), 0.5, 3), ((4, 4), 0.0, 2)])
def test_block_mask_masks_the_exact_count_in_whole_blocks(
        grid, mask_ratio, block_size):
    height, width = grid
    num_masked = math.ceil(height * width * mask_ratio)  # SimMIM
    mask = random_block_mask(5, grid, mask_ratio, block_size=block_size)
    assert mask.dtype == torch.bool
    assert mask.shape == (5, height * block_size, width * block_size)
    assert mask.sum(dim=(1, 2)).tolist() == [num_masked * block_size**2] * 5
    for b in range(5):
        for r in range(height):
            for c in range(width):
                block = mask[b, r * block_size:(r + 1) * block_size,
                             c * block_size:(c + 1) * block_size]
                assert block.all() or not block.any()  # uniform block


def test_block_mask_is_random_per_sample_and_reproducible():
    a = random_block_mask(4, (7, 7), 0.6, 2,
                          generator=torch.Generator().manual_seed(1))
    b = random_block_mask(4, (7, 7), 0.6, 2,
                          generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    # 224 px, 32 px mask patches: SimMIM masks ceil(49 * 0.6) = 30 of 49
    assert int(a[0].sum()) == 30 * 4


def test_expand_mask_repeats_every_cell():
    mask = torch.tensor([[[True, False, True], [False, False, True]],
                         [[False, True, False], [True, True, False]]])
    for factor in (2, 3):
        out = expand_mask(mask, factor)
        assert out.shape == (2, 2 * factor, 3 * factor)
        for b in range(2):
            for r in range(2 * factor):
                for c in range(3 * factor):
                    assert bool(out[b, r, c]) == bool(
                        mask[b, r // factor, c // factor])
    assert torch.equal(expand_mask(mask, 1), mask)


@pytest.mark.parametrize('bad', [1.0, -0.1])
def test_block_mask_checks_the_ratio(bad):
    with pytest.raises(ValueError, match='mask_ratio'):
        random_block_mask(2, (4, 4), bad)


# ----------------------------------------------------------------------
# shuffled chunks (M-MoCo)
# ----------------------------------------------------------------------
@pytest.mark.parametrize('num_chunks', [1, 2, 4, 6, 7, 8, 63, 64])
def test_chunks_and_left_out_use_every_patch_exactly_once(num_chunks):
    batch, num_tokens = 3, 64
    chunks, left_out = shuffled_chunks(batch, num_tokens, num_chunks)
    assert chunks.shape == (batch, num_chunks, num_tokens // num_chunks)
    assert left_out.shape == (batch, num_tokens % num_chunks)
    assert chunks.dtype == left_out.dtype == torch.long
    for b in range(batch):
        every = torch.cat([chunks[b].flatten(), left_out[b]])
        assert torch.equal(every.sort().values, torch.arange(num_tokens))


def test_six_chunks_of_64_leave_a_random_four_out():
    generator = torch.Generator().manual_seed(0)
    chunks, first = shuffled_chunks(2, 64, 6, generator=generator)
    assert chunks.shape == (2, 6, 10) and first.shape == (2, 4)
    _, second = shuffled_chunks(2, 64, 6, generator=generator)
    # a different left-out set on the next call (and per sample)
    assert set(first[0].tolist()) != set(second[0].tolist())
    assert set(first[0].tolist()) != set(first[1].tolist())


def test_chunks_are_random_per_sample_and_reproducible():
    a, _ = shuffled_chunks(4, 64, 4,
                           generator=torch.Generator().manual_seed(2))
    b, _ = shuffled_chunks(4, 64, 4,
                           generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert set(a[0, 0].tolist()) != set(a[1, 0].tolist())
    # shuffled, not row-major runs
    assert not torch.equal(a[0].flatten(), torch.arange(64))


def test_one_chunk_is_the_row_major_image():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    chunks, left_out = shuffled_chunks(2, 64, 1, generator=generator)
    assert torch.equal(chunks, torch.arange(64).expand(2, 1, 64))
    assert left_out.shape == (2, 0)
    assert torch.equal(generator.get_state(), state)  # nothing drawn


@pytest.mark.parametrize('bad', [0, -1, 65, 2.5, True, '4'])
def test_invalid_chunk_count_names_the_field(bad):
    with pytest.raises(ValueError, match=r'MaskedMoCoV3\.num_chunks'):
        shuffled_chunks(2, 64, bad, name='MaskedMoCoV3.num_chunks')
