"""Digit scenes: small, real-image sets for the demos and the tests.

Every image holds real handwritten digits from scikit-learn's
``load_digits`` (1,797 scans, 8×8, 10 classes) pasted onto a real photograph
from scikit-learn's ``load_sample_images`` (two 427×640 photos), so the sets
need no download and are fully determined by their parameters.

One digit is drawn on an ``img_size`` × ``img_size`` RGB image by

1. cropping a random square (side ``crop_size_range``) out of one of the two
   photographs, resizing it to ``img_size``, blurring it (Gaussian,
   ``blur_radius``) and pulling its contrast towards its mean
   (``background_contrast``);
2. rescaling the digit to a random side in ``digit_size_range`` and using its
   normalised intensity as the alpha mask;
3. drawing a random ink colour whose luminance differs from the mean
   luminance of the background under the digit by at least
   ``min_ink_contrast``, and alpha-blending it at a random position.

Two kinds of sets, written by one skeleton (:mod:`.writer`):

- :func:`make_digit_scenes`: classification, one digit per 32 px image, in
  mmpretrain's ``CustomDataset`` folder layout (:mod:`.classification`);
- :func:`make_digit_scenes_seg`: segmentation, several digits per 64 px
  image with label maps (0 = background, ``d + 1`` = digit ``d``) in mmseg's
  ADE20K layout (:mod:`.segmentation`).

The train and val splits use disjoint digits, stratified by class.
Generation is deterministic: the same parameters give byte-identical files.
"""
from .classification import load_digit_scenes, make_digit_scenes
from .segmentation import (SEG_CLASS_NAMES, load_digit_scenes_seg,
                           make_digit_scenes_seg)
from .sources import CLASS_NAMES

__all__ = [
    'CLASS_NAMES', 'SEG_CLASS_NAMES', 'make_digit_scenes',
    'load_digit_scenes', 'make_digit_scenes_seg', 'load_digit_scenes_seg'
]
