"""GPUAugmentDataPreprocessor (the GPU data path) on CPU tensors: decoding,
crop geometry, view sharing, per-operation parity with mmcv / PIL, and the
statistics of whole views against the configs' CPU pipelines."""
import copy
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmcv.image import (adjust_brightness, adjust_color, adjust_contrast,
                        adjust_hue)
from mmcv.transforms import Compose
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import MODELS
from PIL import Image, ImageFilter
from scipy.stats import ks_2samp

from mmmoma.datasets.gpu_data_path import to_gpu_data_path
from mmmoma.datasets.transforms import LoadEncodedImage
from mmmoma.models.data_preprocessors import (GPUAugmentDataPreprocessor,
                                              image_ops)
from mmmoma.models.data_preprocessors.gpu_augment import (ColorJitter,
                                                          Grayscale,
                                                          sample_crop_boxes)
from mmmoma.utils.config_tools import (find_train_pipeline, load_config,
                                       override_pipeline_size, walk_dicts)

from ..test_tools.utils import REPO_ROOT

# mmcv's colour ops warn on every call with the pillow backend; torchvision
# 0.29 deprecates its image decoders (for TorchCodec) on every call.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Only use 'alpha'"),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]

MOMA_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'moma',
    'moma-mocov3-to-mae_vit-base-p16_8xb512-amp-coslr-100e_in1k.py')
MMOCO_STRONG_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'mmoco',
    'mmoco-strong-aug_vit-small-p16_8xb512-amp-coslr-100e_in1k.py')
MMOCO_MEDIUM_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'mmoco',
    'mmoco-medium-aug_vit-small-p16_8xb512-amp-coslr-100e_in1k.py')
WIDTH, HEIGHT = 500, 375  # the JPEGs: 4:3 landscape, as most of ImageNet


def write_sample_jpegs(folder, quality=90):
    """Four 500×375 JPEGs cut from scikit-learn's sample photographs
    (china.jpg, flower.jpg: 640×427), two cuts each."""
    from sklearn.datasets import load_sample_images
    paths = []
    for name, image in zip(('china', 'flower'),
                           load_sample_images().images):
        for cut, (top, left) in enumerate(((0, 0), (52, 140))):
            path = osp.join(str(folder), f'{name}_{cut}.jpg')
            Image.fromarray(image[top:top + HEIGHT, left:left + WIDTH]).save(
                path, quality=quality)
            paths.append(path)
    return paths


@pytest.fixture(scope='module')
def jpegs(tmp_path_factory):
    return write_sample_jpegs(tmp_path_factory.mktemp('jpegs'))


def jpeg_bytes(paths):
    loader = LoadEncodedImage()
    return [loader(dict(img_path=path))['img'] for path in paths]


def rgb_tensor(path):
    """The PIL decode of ``path``, (3, H, W) uint8 RGB."""
    return torch.from_numpy(np.array(Image.open(path).convert('RGB'))).permute(
        2, 0, 1).contiguous()


def preprocessor(crops, views, seed=0, **kwargs):
    return GPUAugmentDataPreprocessor(
        crops=crops, views=views, seed=seed, **kwargs)


def gpu_preprocessor(config, seed=0, size=None, disable=False,
                     full_image=False):
    """The translated config's preprocessor (crops resized to ``size``;
    ``disable``: every augmentation's probability set to 0; ``full_image``:
    see :func:`full_image_crops`)."""
    cfg = load_config(config)
    if full_image:
        full_image_crops(cfg)
    if size is not None:
        override_pipeline_size(find_train_pipeline(cfg), size)
    spec = copy.deepcopy(to_gpu_data_path(cfg).model.data_preprocessor)
    spec.pop('type')
    if disable:
        for view in spec['views']:
            for aug in view['augmentations']:
                aug['prob'] = 0.
    return GPUAugmentDataPreprocessor(seed=seed, **spec)


def unnormalise(view, pre):
    return view * pre.std + pre.mean


# ---------------------------------------------------------------- decoding


def test_decode_of_jpeg_bytes_matches_pil(jpegs):
    """torchvision's (libjpeg-turbo) decode vs PIL's: the same pixels up to
    IDCT / chroma-upsampling rounding (mean |diff| < 1 grey level)."""
    pre = preprocessor([dict(size=8)], [dict(crop=0)])
    decoded = pre.decode(jpeg_bytes(jpegs))
    for image, path in zip(decoded, jpegs):
        reference = rgb_tensor(path)
        assert image.shape == reference.shape == (3, HEIGHT, WIDTH)
        assert (image.float() - reference.float()).abs().mean() < 1.0


def test_a_png_among_the_jpegs_falls_back_to_host_decoding(jpegs, tmp_path):
    """ImageNet's train set holds a few non-JPEG files: the batch still
    decodes, the PNG losslessly."""
    png = str(tmp_path / 'china.png')
    Image.open(jpegs[0]).save(png)
    pre = preprocessor([dict(size=8)], [dict(crop=0)])
    decoded = pre.decode(jpeg_bytes([jpegs[1], png]))
    assert torch.equal(decoded[1], rgb_tensor(png))
    assert (decoded[0].float() - rgb_tensor(jpegs[1]).float()).abs().mean(
    ) < 1.0


def test_decode_accepts_decoded_images_in_rgb_or_bgr(jpegs):
    rgb = rgb_tensor(jpegs[0])
    assert torch.equal(
        preprocessor([dict(size=8)], [dict(crop=0)]).decode([rgb])[0], rgb)
    bgr_pre = preprocessor([dict(size=8)], [dict(crop=0)], decoded_bgr=True)
    assert torch.equal(bgr_pre.decode([rgb.flip(0)])[0], rgb)


# ---------------------------------------------------------------- geometry


def test_crop_boxes_lie_inside_and_within_the_ranges():
    generator = torch.Generator().manual_seed(0)
    heights = torch.tensor([375, 500, 64] * 500)
    widths = torch.tensor([500, 375, 640] * 500)
    scale, ratio = (0.08, 1.0), (3. / 4., 4. / 3.)
    boxes = sample_crop_boxes(heights, widths, scale, ratio, 10, generator)
    top, left, height, width = boxes.double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= heights).all()
    assert (left + width <= widths).all()
    # rounding the sides moves the area by < 1 pixel-row, the ratio by <1 px
    area = height * width / (heights * widths)
    fits = (area >= scale[0] - 0.01) & (area <= scale[1] + 0.01)
    aspect = width / height
    in_ratio = ((aspect >= ratio[0] * (1 - 2 / height))
                & (aspect <= ratio[1] * (1 + 2 / width)))
    assert (fits & in_ratio).all()


def test_crop_fallback_is_mmpretrains_centred_crop():
    """No attempt fits a 10×1000 image: the centred crop narrowed to the
    largest ratio, exactly as mmpretrain computes it."""
    generator = torch.Generator().manual_seed(0)
    box = sample_crop_boxes(
        torch.tensor([10]), torch.tensor([1000]), (0.9, 1.0),
        (3. / 4., 4. / 3.), 10, generator)[0].tolist()
    crop = RandomResizedCrop(224, crop_ratio_range=(0.9, 1.0))
    assert tuple(box) == crop.rand_crop_params(np.zeros((10, 1000, 3)))


@pytest.mark.parametrize('scale,ratio', [((0.08, 1.0), (3. / 4., 4. / 3.)),
                                         ((0.2, 1.0), (3. / 4., 4. / 3.)),
                                         ((0.67, 1.0), (0.5, 2.0))])
def test_crop_distributions_match_mmpretrains_sampler(scale, ratio):
    """Area fraction, log aspect ratio and relative position of 3000 boxes
    on a 375×500 image vs 3000 of mmpretrain's ``rand_crop_params``: the
    two-sample Kolmogorov-Smirnov distance stays below 0.05 (the 0.1 %
    critical value at these sizes is 0.050; the wide-ratio case exercises
    the rejection of boxes that do not fit)."""
    num = 3000
    generator = torch.Generator().manual_seed(1)
    ours = sample_crop_boxes(
        torch.full((num, ), HEIGHT), torch.full((num, ), WIDTH), scale,
        ratio, 10, generator).double().numpy()
    np.random.seed(1)
    crop = RandomResizedCrop(
        224, crop_ratio_range=scale, aspect_ratio_range=ratio)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    theirs = np.array([crop.rand_crop_params(image) for _ in range(num)],
                      dtype=np.float64)

    def statistics(boxes):
        top, left, height, width = boxes.T
        return dict(
            area=height * width / (HEIGHT * WIDTH),
            log_ratio=np.log(width / height),
            centre_x=(left + width / 2) / WIDTH,
            centre_y=(top + height / 2) / HEIGHT)

    for name, values in statistics(ours).items():
        distance = ks_2samp(values, statistics(theirs)[name]).statistic
        assert distance < 0.05, (name, distance)


def ramp_image(height=HEIGHT, width=WIDTH):
    """Grey levels rising from left to right, (3, H, W) uint8."""
    ramp = torch.linspace(0, 255, width).round().to(torch.uint8)
    return ramp.expand(3, height, width).contiguous()


def test_flip_rate_and_flipped_pixels():
    """Full-image crops of a left-to-right ramp: flipped outputs fall from
    left to right, at a rate of 0.3 ± 0.07 (3 sigma at n = 400), and are
    the exact mirror of the unflipped ones."""
    full = dict(size=(30, 40), scale=(1., 1.), ratio=(4 / 3, 4 / 3))
    pre = preprocessor([dict(full, flip_prob=0.3)], [dict(crop=0)],
                       mean=(0, 0, 0), std=(1, 1, 1))
    out = pre(dict(inputs=[ramp_image()] * 400))['inputs']
    flipped = out[..., :5].mean((1, 2, 3)) > out[..., -5:].mean((1, 2, 3))
    assert abs(flipped.float().mean().item() - 0.3) < 0.07
    reference = out[~flipped][0]
    assert torch.allclose(out[flipped], reference.flip(-1).expand_as(
        out[flipped]))


def gradient_magnitude(views):
    """|∇ grey| of (B, 3, H, W) views, (B, H-1, W-1)."""
    grey = views.mean(1)
    dy = grey[:, 1:, :-1] - grey[:, :-1, :-1]
    dx = grey[:, :-1, 1:] - grey[:, :-1, :-1]
    return (dx**2 + dy**2).sqrt()


def edge_correlation(first, second):
    """Per-sample correlation of the two views' gradient magnitudes."""
    a, b = gradient_magnitude(first), gradient_magnitude(second)
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)


def test_moma_views_come_from_the_same_crop(jpegs):
    """MOMA: augmentations disabled, the two views are identical; with
    grayscale only, view 1 is exactly the grey of view 0; with the full
    strong augmentation the edges stay where they are (median edge
    correlation > 0.7), unlike M-MoCo's independent crops (< 0.3)."""
    images = jpeg_bytes(jpegs) * 8
    plain = gpu_preprocessor(MOMA_CONFIG, size=64, disable=True)
    assert len(plain.crops) == 1 and len(plain.views) == 2
    first, second = plain(dict(inputs=images))['inputs']
    assert torch.equal(first, second)

    grey_only = copy.deepcopy(plain)
    weights = (0.2989, 0.587, 0.114)
    grey_only.views[1].augmentations = [
        Grayscale(weights=weights, prob=1.)]
    first, second = grey_only(dict(inputs=images))['inputs']
    expected = image_ops.gray(unnormalise(first, grey_only),
                              [w / sum(weights) for w in weights])
    assert torch.allclose(
        unnormalise(second, grey_only), expected.expand_as(second),
        atol=1e-3)

    strong = gpu_preprocessor(MOMA_CONFIG, size=64)
    first, second = strong(dict(inputs=images))['inputs']
    assert not torch.equal(first, second)
    assert edge_correlation(first, second).median() > 0.7
    independent = gpu_preprocessor(MMOCO_STRONG_CONFIG, size=64)
    first, second = independent(dict(inputs=images))['inputs']
    assert edge_correlation(first, second).median() < 0.3


def test_mmoco_strong_views_are_independent_crops(jpegs):
    pre = gpu_preprocessor(MMOCO_STRONG_CONFIG, size=32, disable=True)
    assert len(pre.crops) == 2 and [v.crop for v in pre.views] == [0, 1]
    images = pre.decode(jpeg_bytes(jpegs) * 16)
    crop_params, view_params = pre.sample_params(
        [tuple(image.shape[-2:]) for image in images])
    first, second = (p['boxes'] for p in crop_params)
    assert (first != second).any(1).float().mean() > 0.95
    views = pre.augment(images, crop_params, view_params)
    differs = (views[0] - views[1]).abs().flatten(1).amax(1) > 0
    assert differs.all()


def test_mmoco_medium_views_are_diagonal_windows_of_one_crop(jpegs):
    """Medium: both views are 224-px windows of one 256-px crop at offsets
    (o, o), the offsets at most 32 apart, each order equally likely."""
    pre = gpu_preprocessor(MMOCO_MEDIUM_CONFIG, disable=True)
    images = pre.decode(jpeg_bytes(jpegs) * 4)
    crop_params, view_params = pre.sample_params(
        [tuple(image.shape[-2:]) for image in images])
    crops = pre.crops[0].apply(images, crop_params[0])
    assert crops.shape[-2:] == (256, 256)
    views = pre.augment(images, crop_params, view_params)
    offsets = crop_params[0]['offsets']
    assert (offsets >= 0).all() and (offsets.max(1).values <= 32).all()
    assert 0.2 < (offsets[:, 0] < offsets[:, 1]).float().mean() < 0.8
    for index, (first, second) in enumerate(offsets.tolist()):
        assert torch.equal(views[0][index],
                           crops[index, :, first:first + 224,
                                 first:first + 224])
        assert torch.equal(views[1][index],
                           crops[index, :, second:second + 224,
                                 second:second + 224])


# ------------------------------------------- per-operation parity with PIL


def test_colour_operations_match_mmcv_pillow(jpegs):
    """Each jitter operation vs mmcv's ``adjust_*`` (pillow backend, what
    mmpretrain's ColorJitter calls): mean |diff| < 1 grey level (PIL rounds
    to integers, hue goes through 8-bit HSV)."""
    rgb = rgb_tensor(jpegs[1])[:, ::3, ::3].contiguous()  # 125×167
    bgr = rgb.permute(1, 2, 0).numpy()[..., ::-1].copy()
    images = rgb[None].float()
    cases = [
        (image_ops.adjust_brightness, adjust_brightness, 1.35),
        (image_ops.adjust_brightness, adjust_brightness, 0.6),
        (image_ops.adjust_contrast, adjust_contrast, 1.4),
        (image_ops.adjust_contrast, adjust_contrast, 0.6),
        (image_ops.adjust_saturation, adjust_color, 1.2),
        (image_ops.adjust_saturation, adjust_color, 0.8),
        (image_ops.adjust_hue, adjust_hue, 0.1),
        (image_ops.adjust_hue, adjust_hue, -0.07),
    ]
    for ours, theirs, factor in cases:
        out = ours(images, torch.tensor([factor]))[0]
        reference = theirs(bgr, factor, backend='pillow')[..., ::-1].copy()
        reference = torch.from_numpy(reference).permute(2, 0, 1).float()
        error = (out - reference).abs().mean()
        assert error < 1.0, (ours.__name__, factor, error)


def test_hsv_round_trip_and_a_full_turn_are_the_identity():
    images = torch.rand(4, 3, 16, 16)
    images[0, :, :4] = 0.5  # grey pixels: saturation 0
    hue, saturation, value = image_ops.rgb_to_hsv(images)
    assert torch.allclose(image_ops.hsv_to_rgb(hue, saturation, value),
                          images, atol=1e-5)
    # +1/3 turn twice = -1/3 turn once
    once = image_ops.adjust_hue(images * 255, torch.full((4, ), -1 / 3))
    twice = image_ops.adjust_hue(
        image_ops.adjust_hue(images * 255, torch.full((4, ), 1 / 3)),
        torch.full((4, ), 1 / 3))
    assert torch.allclose(once, twice, atol=1e-3)


def test_blur_matches_pil_gaussian_blur(jpegs):
    """Per-sample sigmas in one grouped convolution vs PIL's
    ``GaussianBlur(radius=sigma)`` (three box blurs): mean |diff| < 1."""
    rgb = rgb_tensor(jpegs[0])[:, :96, :128].contiguous()
    sigmas = [0.1, 0.7, 1.3, 2.0]
    out = image_ops.gaussian_blur(rgb[None].float().expand(4, -1, -1, -1),
                                  torch.tensor(sigmas), kernel_size=13)
    pil = Image.fromarray(rgb.permute(1, 2, 0).numpy())
    for blurred, sigma in zip(out, sigmas):
        reference = torch.from_numpy(
            np.array(pil.filter(ImageFilter.GaussianBlur(sigma)))).permute(
                2, 0, 1).float()
        assert (blurred - reference).abs().mean() < 1.0, sigma
    unblurred = image_ops.gaussian_blur(rgb[None].float(), torch.zeros(1),
                                        13)
    assert torch.allclose(unblurred[0], rgb.float(), atol=1e-3)


def test_colour_jitter_order_is_a_per_sample_permutation():
    """The operations run in each sample's own random order, as mmpretrain
    draws a permutation per image: brightness ×3 and contrast ×0.5 on a
    grey image of levels 100 and 20 (half each) clamp differently in the
    two orders: brightness first gives (206.25, 108.75), contrast first
    (240, 120); both orders occur in one batch."""
    jitter = ColorJitter(brightness=(3., 3.), contrast=(0.5, 0.5))
    params = jitter.sample(64, torch.Generator().manual_seed(0))
    assert all(sorted(row) == [0, 1, 2, 3]
               for row in params['order'].tolist())
    images = torch.tensor([100., 20.]).repeat_interleave(2).view(
        1, 1, 2, 2).expand(64, 3, 2, 2)
    out = jitter.apply(images, params)[:, 0].flatten(1)  # (B, 4)
    brightness_first = torch.tensor(
        [row.index(0) < row.index(1) for row in params['order'].tolist()])
    expected = torch.where(brightness_first[:, None],
                           torch.tensor([206.25, 206.25, 108.75, 108.75]),
                           torch.tensor([240., 240., 120., 120.]))
    assert torch.allclose(out, expected, atol=1e-3)
    assert 0 < brightness_first.sum() < 64


# -------------------------------------------- statistics vs CPU pipelines


def full_image_crops(cfg):
    """Make every random resized crop of ``cfg`` take the whole 4:3 image,
    in place (only the flip and the photometric draws stay random)."""
    for _, node in walk_dicts(find_train_pipeline(cfg), 'pipeline'):
        if node.get('type') == 'RandomResizedCrop':
            node.update(crop_ratio_range=(1., 1.),
                        aspect_ratio_range=(4 / 3, 4 / 3))
        elif node.get('type') == 'ContrastiveViews':
            node.update(crop_scale=(1., 1.), crop_ratio=(4 / 3, 4 / 3))
    return cfg


def cpu_views(config, paths, repeats, size, seed=0, full_image=False):
    """The config's CPU pipeline + SelfSupDataPreprocessor on ``paths`` ×
    ``repeats``: a list of (N, 3, size, size) views. Each JPEG is decoded
    once, by the pipeline's ``LoadImageFromFile`` (mmcv, BGR), and the rest
    of the pipeline runs ``repeats`` times on a copy."""
    init_default_scope('mmpretrain')
    cfg = load_config(config)
    if full_image:
        full_image_crops(cfg)
    pipeline = copy.deepcopy(find_train_pipeline(cfg))
    override_pipeline_size(pipeline, size)
    load, transforms = Compose(pipeline[:1]), Compose(pipeline[1:])
    loaded = [load(dict(img_path=path)) for path in paths]
    random.seed(seed)
    np.random.seed(seed)
    batch = default_collate(
        [transforms(copy.deepcopy(results)) for results in loaded * repeats])
    pre = MODELS.build(cfg.model.get('data_preprocessor',
                                     cfg.data_preprocessor))
    views = pre(batch)['inputs']
    return views if isinstance(views, list) else [views]


def channel_statistics(views):
    """Per-channel mean and std over all samples and pixels, (2, 3)."""
    flat = views.transpose(0, 1).flatten(1)
    return torch.stack([flat.mean(1), flat.std(1)])


@pytest.mark.parametrize('full_image,tolerance', [(False, 0.15), (True, 0.08)])
@pytest.mark.parametrize('config', [MOMA_CONFIG, MMOCO_STRONG_CONFIG])
def test_strong_view_statistics_match_the_cpu_pipeline(
        jpegs, config, full_image, tolerance):
    """Per-channel mean / std of the normalised strong view (MOMA's view 1,
    M-MoCo strong's second view: jitter, grayscale, blur p 0.1, solarize p
    0.2), 4 JPEGs × 250 draws, 32-px crops: the GPU path (on CPU tensors,
    from the same JPEGs) vs the config's mmcv / PIL pipeline.

    Measured spread (standard deviation over seeds, per run): ~0.035 with
    the configs' random crops, ~0.02 with full-image crops (then only the
    flip and photometric draws vary; solarize / grayscale are coin flips).
    The tolerances, 0.15 and 0.08, are ~3 sigma of the difference of two
    runs; their means agreed within 0.03 over 4 seeds each.
    """
    repeats, size = 250, 32
    reference = channel_statistics(
        cpu_views(config, jpegs, repeats, size, full_image=full_image)[1])
    pre = gpu_preprocessor(config, seed=3, size=size, full_image=full_image)
    images = pre.decode(jpeg_bytes(jpegs))  # decoded once, as the CPU run
    statistics = channel_statistics(
        pre(dict(inputs=images * repeats))['inputs'][1])
    assert (statistics - reference).abs().max() < tolerance, (statistics,
                                                              reference)


def test_grayscale_and_solarize_rates_match_their_probabilities():
    """MOMA's strong-view probabilities: grey outputs (equal channels) of a
    colour image at 0.2 ± 0.04, solarized outputs of a constant 200 image
    (255 − 200 = 55) at 0.2 ± 0.04 (3 sigma at n = 1000)."""
    pre = gpu_preprocessor(MOMA_CONFIG, size=8)
    strong = {aug.__class__.__name__: aug
              for aug in pre.views[1].augmentations}
    grey_prob, solar_prob = strong['Grayscale'].prob, strong['Solarize'].prob
    assert (grey_prob, solar_prob) == (0.2, 0.2)
    full = dict(size=8, scale=(1., 1.), ratio=(1., 1.))
    grey = preprocessor([full], [dict(crop=0, augmentations=[
        dict(type='Grayscale', prob=grey_prob)])], mean=(0, 0, 0),
        std=(1, 1, 1))
    colour = torch.tensor([200, 60, 30], dtype=torch.uint8).view(3, 1, 1)
    out = grey(dict(inputs=[colour.expand(3, 16, 16)] * 1000))['inputs']
    rate = (out.std(1).amax((1, 2)) < 1e-3).float().mean().item()
    assert abs(rate - grey_prob) < 0.04
    solar = preprocessor([full], [dict(crop=0, augmentations=[
        dict(type='Solarize', threshold=128, prob=solar_prob)])],
        mean=(0, 0, 0), std=(1, 1, 1))
    out = solar(dict(inputs=[torch.full((3, 16, 16), 200,
                                        dtype=torch.uint8)] * 1000))['inputs']
    solarized = (out - 55).abs().amax((1, 2, 3)) < 1e-3
    assert torch.all(solarized | ((out - 200).abs().amax((1, 2, 3)) < 1e-3))
    assert abs(solarized.float().mean().item() - solar_prob) < 0.04


def test_augmentations_depend_on_the_iteration_so_resume_is_exact():
    """The generator is seeded from (seed, rank, iteration): a fresh
    preprocessor at iteration 7 (a resumed run) draws what the running one
    draws there, and consecutive batches of one iteration still differ."""
    from mmengine.logging import MessageHub

    def preprocessor():
        return GPUAugmentDataPreprocessor(
            crops=[dict(size=16, scale=(0.2, 1.0))], views=[dict(crop=0)],
            seed=3)

    images = [torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(i))
              for i in range(4)]
    hub = MessageHub.get_current_instance()
    previous = hub.get_info('iter')
    try:
        running = preprocessor()
        outputs = {}
        for iteration in range(8):
            hub.update_info('iter', iteration)
            outputs[iteration] = running(dict(inputs=images))['inputs']
        resumed = preprocessor()
        hub.update_info('iter', 7)
        assert torch.equal(resumed(dict(inputs=images))['inputs'],
                           outputs[7])
        assert not torch.equal(outputs[6], outputs[7])
        again = resumed(dict(inputs=images))['inputs']  # same iteration
        assert not torch.equal(again, outputs[7])
    finally:
        hub.update_info('iter', previous)
