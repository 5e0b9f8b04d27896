import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer

from mmmoma.models.backbones import MaskedViT
from mmmoma.models.masking import (random_token_split, split_into_groups,
                                   unfold_groups)


def build_pair(arch, **kwargs):
    torch.manual_seed(0)
    ours = MaskedViT(arch=arch, img_size=32, patch_size=4, **kwargs)
    ours.init_weights()
    ref = VisionTransformer(arch=arch, img_size=32, patch_size=4, **kwargs)
    ref.load_state_dict(ours.state_dict())
    ours.eval()
    ref.eval()
    return ours, ref


def test_same_state_dict_keys_as_vision_transformer(tiny_arch):
    ours, ref = build_pair(tiny_arch)
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize('out_type', ['raw', 'cls_token', 'avg_featmap',
                                      'featmap'])
def test_plain_forward_equals_vision_transformer(tiny_arch, out_type):
    ours, ref = build_pair(tiny_arch, out_type=out_type)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=0)


def test_keeping_all_tokens_reproduces_vision_transformer(tiny_arch):
    ours, ref = build_pair(tiny_arch, out_type='raw', out_indices=[0, 1])
    x = torch.randn(3, 3, 32, 32)
    all_ids = torch.arange(64).expand(3, -1)
    for got, want in zip(ours(x, token_ids=all_ids), ref(x)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # intermediate layer is pre-norm, last layer normed: they differ
    assert not torch.allclose(ours(x, all_ids)[0], ours(x, all_ids)[1])


def test_shuffled_tokens_give_permuted_outputs(tiny_arch):
    ours, ref = build_pair(tiny_arch, out_type='raw')
    x = torch.randn(2, 3, 32, 32)
    split = random_token_split(2, 64, 0.0)
    out = ours(x, token_ids=split.ids_keep)[0]
    want = ref(x)[0]
    torch.testing.assert_close(out[:, 0], want[:, 0], atol=1e-5, rtol=0)
    unshuffled = torch.gather(
        out[:, 1:], 1, split.ids_restore.unsqueeze(-1).expand(-1, -1, 64))
    torch.testing.assert_close(unshuffled, want[:, 1:], atol=1e-5, rtol=0)


def test_subset_sees_only_selected_tokens(tiny_arch):
    ours, _ = build_pair(tiny_arch, out_type='raw')
    x = torch.randn(2, 3, 32, 32)
    split = random_token_split(2, 64, 0.75)
    out = ours(x, token_ids=split.ids_keep)[0]
    assert out.shape == (2, 1 + 16, 64)
    # changing the pixels of a masked patch does not change the output
    x2 = x.clone()
    for b in range(2):
        pid = split.ids_mask[b, 0].item()
        r, c = divmod(pid, 8)
        x2[b, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 5.0
    torch.testing.assert_close(ours(x2, token_ids=split.ids_keep)[0], out)
    # ... but changing a visible patch does
    x3 = x.clone()
    r, c = divmod(split.ids_keep[0, 0].item(), 8)
    x3[0, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 5.0
    assert not torch.allclose(ours(x3, token_ids=split.ids_keep)[0][0],
                              out[0])


def test_grouped_forward_equals_each_group_alone(tiny_arch):
    ours, _ = build_pair(tiny_arch, out_type='raw')
    x = torch.randn(2, 3, 32, 32)
    split = random_token_split(2, 64, 0.25)  # 48 visible
    groups, _ = split_into_groups(split.ids_keep, 3)  # (2, 3, 16)
    grouped = ours(x, token_ids=groups.flatten(1), num_groups=3)[0]
    assert grouped.shape == (2 * 3, 1 + 16, 64)
    for g in range(3):
        alone = ours(x, token_ids=groups[:, g])[0]  # (2, 17, 64)
        torch.testing.assert_close(grouped[g::3], alone, atol=1e-5, rtol=0)
    # every group has its own CLS output
    assert not torch.allclose(grouped[0, 0], grouped[1, 0])
    patches = unfold_groups(grouped[:, 1:], 3)
    assert patches.shape == (2, 48, 64)


def test_attention_confined_to_group(tiny_arch):
    ours, _ = build_pair(tiny_arch, out_type='raw')
    x = torch.randn(1, 3, 32, 32)
    ids = torch.randperm(64)[None]
    out = ours(x, token_ids=ids, num_groups=4)[0]
    x2 = x.clone()
    r, c = divmod(ids[0, 0].item(), 8)  # a token of group 0
    x2[:, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] -= 3.0
    out2 = ours(x2, token_ids=ids, num_groups=4)[0]
    assert not torch.allclose(out[0], out2[0])
    torch.testing.assert_close(out[1:], out2[1:])


def test_position_embedding_resized_to_input(tiny_arch):
    ours, ref = build_pair(tiny_arch, out_type='raw')
    x = torch.randn(2, 3, 48, 48)  # 12x12 patches
    ids = torch.arange(144).expand(2, -1)
    torch.testing.assert_close(
        ours(x, token_ids=ids)[0], ref(x)[0], atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter(tiny_arch):
    model = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4,
                      out_type='raw')
    x = torch.randn(2, 3, 32, 32)
    split = random_token_split(2, 64, 0.5)
    model(x, token_ids=split.ids_keep, num_groups=2)[0].square().mean() \
        .backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_arguments_raise(tiny_arch):
    model = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match='num_groups'):
        model(x, token_ids=torch.arange(10).expand(2, -1), num_groups=3)
    with pytest.raises(ValueError, match='num_groups'):
        model(x, num_groups=0)
    with pytest.raises(ValueError, match='token_ids'):
        model(x, token_ids=torch.arange(10))


def test_sincos_pos_embed_is_fixed_mae_embedding(tiny_arch):
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    model = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4,
                      pos_embed_type='sincos')
    assert not model.pos_embed.requires_grad
    model.init_weights()
    want = build_2d_sincos_position_embedding(8, 64, cls_token=True)
    assert want.shape == model.pos_embed.shape == (1, 65, 64)
    torch.testing.assert_close(model.pos_embed.data, want.float(),
                               atol=1e-6, rtol=0)
    # not trained: no gradient reaches it, the other parameters do get one
    model(torch.randn(2, 3, 32, 32))[0].square().mean().backward()
    assert model.pos_embed.grad is None
    assert model.cls_token.grad is not None
    # the default stays the parent's learned (trainable, random) embedding
    learned = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4)
    learned.init_weights()
    assert learned.pos_embed.requires_grad
    assert not torch.allclose(learned.pos_embed, want.float())


def test_sincos_pos_embed_without_cls_token(tiny_arch):
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    model = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4,
                      with_cls_token=False, out_type='raw',
                      pos_embed_type='sincos')
    model.init_weights()
    torch.testing.assert_close(
        model.pos_embed.data,
        build_2d_sincos_position_embedding(8, 64).float(), atol=1e-6,
        rtol=0)


def test_strict_pretrained_overrides_sincos_pos_embed(tiny_arch, tmp_path):
    from mmengine.registry import DefaultScope
    torch.manual_seed(5)
    source = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4)
    for param in source.parameters():
        param.data.normal_()
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()}},
               path)
    model = MaskedViT(
        arch=tiny_arch, img_size=32, patch_size=4, pos_embed_type='sincos',
        init_cfg=dict(type='StrictPretrained', checkpoint=str(path)))
    # StrictPretrained is registered in mmpretrain's scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.pos_embed.requires_grad


def test_bad_pos_embed_type_raises(tiny_arch):
    with pytest.raises(ValueError, match='pos_embed_type'):
        MaskedViT(arch=tiny_arch, img_size=32, patch_size=4,
                  pos_embed_type='rope')
    model = MaskedViT(arch=tiny_arch, img_size=(32, 16), patch_size=4,
                      pos_embed_type='sincos')
    with pytest.raises(ValueError, match='square'):
        model.init_weights()
