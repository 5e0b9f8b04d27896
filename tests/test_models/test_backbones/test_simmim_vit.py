"""SimMIMViT: plain forward = ViT; masked patches replaced by the mask token
before the position embedding (tiny ViT, 32 px, patch 4: 8 x 8 patches)."""
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS
from torch import Tensor

from mmmoma.models.backbones import MaskedViT, SimMIMViT


def build(arch: dict, **kwargs) -> SimMIMViT:
    torch.manual_seed(0)
    model = SimMIMViT(arch=arch, img_size=32, patch_size=4, **kwargs)
    model.init_weights()
    return model.eval()


def random_mask(batch: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 8, 8, generator=g) < 0.5


def images(batch: int = 2, seed: int = 0) -> Tensor:
    return torch.randn(batch, 3, 32, 32,
                       generator=torch.Generator().manual_seed(seed))


def patch_pixels(x: Tensor, b: int, r: int, c: int) -> Tensor:
    return x[b, :, 4 * r:4 * (r + 1), 4 * c:4 * (c + 1)]


def test_registered_with_one_extra_key(tiny_arch):
    model = MODELS.build(dict(type='SimMIMViT', arch=tiny_arch, img_size=32,
                              patch_size=4))
    assert isinstance(model, SimMIMViT) and isinstance(model, MaskedViT)
    keys = set(model.state_dict())
    reference = VisionTransformer(arch=tiny_arch, img_size=32, patch_size=4)
    assert keys - set(reference.state_dict()) == {'mask_token'}
    assert model.mask_token.shape == (1, 1, 64)


def test_mask_token_is_drawn_at_init(tiny_arch):
    model = build(tiny_arch)
    token = model.mask_token.detach()
    assert token.abs().sum() > 0
    assert 0.01 < token.std().item() < 0.03  # N(0, 0.02^2)


@pytest.mark.parametrize('out_type', ['featmap', 'cls_token', 'raw'])
def test_plain_forward_equals_vision_transformer(tiny_arch, out_type):
    model = build(tiny_arch, out_type=out_type)
    state = {k: v for k, v in model.state_dict().items()
             if k != 'mask_token'}
    x = images()
    for cls in (VisionTransformer, MaskedViT):
        reference = cls(arch=tiny_arch, img_size=32, patch_size=4,
                        out_type=out_type)
        reference.load_state_dict(state, strict=True)
        reference.eval()  # mmpretrain's train() returns None
        for ours in (model(x), model(x, mask=None)):
            torch.testing.assert_close(ours[-1], reference(x)[-1],
                                       atol=1e-5, rtol=0)


def test_all_visible_mask_reproduces_the_plain_feature_maps(tiny_arch):
    model = build(tiny_arch, out_type='featmap', out_indices=(0, 1))
    x = images(batch=3)
    plain = model(x)
    masked = model(x, mask=torch.zeros(3, 8, 8, dtype=torch.bool))
    assert len(masked) == 2
    for got, want in zip(masked, plain):
        assert got.shape == (3, 64, 8, 8)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # only the last one has the final norm
    assert not torch.allclose(masked[0], masked[1], atol=1e-3)


def test_masked_patches_are_replaced_by_the_mask_token(tiny_arch):
    model = build(tiny_arch, out_type='featmap')
    x = images()
    mask = random_mask(2)
    out = model(x, mask=mask)[-1]
    # the pixels of a masked patch are never seen ...
    b, r, c = mask.nonzero()[0].tolist()
    changed = x.clone()
    patch_pixels(changed, b, r, c).add_(5.0)
    torch.testing.assert_close(model(changed, mask=mask)[-1], out, atol=0,
                               rtol=0)
    # ... those of a visible patch are
    b, r, c = (~mask).nonzero()[0].tolist()
    changed = x.clone()
    patch_pixels(changed, b, r, c).add_(5.0)
    assert not torch.allclose(model(changed, mask=mask)[-1], out,
                              atol=1e-4)

    # the substitute is the mask token, placed before the position embedding:
    # make it the embedding of a constant patch, and the masked forward is
    # the plain forward of the image whose masked patches hold that patch
    constant = torch.full((1, 3, 32, 32), 0.7)
    with torch.no_grad():
        embedding = model.patch_embed(constant)[0][0, 0]  # any position
        model.mask_token.copy_(embedding.reshape(1, 1, -1))
    filled = x.clone()
    for b, r, c in mask.nonzero().tolist():
        patch_pixels(filled, b, r, c).fill_(0.7)
    torch.testing.assert_close(model(x, mask=mask)[-1], model(filled)[-1],
                               atol=1e-5, rtol=0)


def test_float_mask_equals_bool_mask_and_trains_the_token(tiny_arch):
    model = build(tiny_arch, out_type='featmap')
    model.train()
    x = images()
    mask = random_mask(2, seed=1)
    out = model(x, mask=mask)[-1]
    torch.testing.assert_close(model(x, mask=mask.float())[-1], out,
                               atol=1e-6, rtol=0)
    out.sum().backward()
    assert model.mask_token.grad.abs().sum() > 0
    model.zero_grad()
    model(x, mask=torch.zeros_like(mask))[-1].sum().backward()
    assert model.mask_token.grad is None or \
        model.mask_token.grad.abs().sum() == 0


def test_no_cls_token(tiny_arch):
    model = build(tiny_arch, out_type='featmap', with_cls_token=False)
    x = images()
    torch.testing.assert_close(
        model(x, mask=torch.zeros(2, 8, 8, dtype=torch.bool))[-1],
        model(x)[-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize('shape', [(2, 4, 4), (2, 64), (1, 8, 8),
                                   (2, 8, 8, 1)])
def test_mask_of_the_wrong_shape_raises(tiny_arch, shape):
    model = build(tiny_arch, out_type='featmap')
    with pytest.raises(ValueError, match=r'mask must have shape .*\(2, 8, 8'):
        model(images(), mask=torch.zeros(shape, dtype=torch.bool))
