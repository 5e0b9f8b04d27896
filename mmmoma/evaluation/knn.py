"""Weighted k-nearest-neighbour evaluation of frozen features (as in DINO).

The protocol of Wu et al. (2018) as used by DINO (Caron et al., 2021,
``eval_knn.py``): features are L2-normalised, every test sample retrieves its
``k`` most cosine-similar train samples, and each neighbour votes for its
class with weight ``exp(similarity / temperature)``; the class with the
largest summed weight is the prediction. Defaults ``k=20``,
``temperature=0.07``.

The math (:func:`weighted_knn_predict`, :func:`weighted_knn_top1`) is a pure
function of tensors. :func:`extract_features` turns a model and a dataloader
into ``(features, labels)`` without disturbing training: eval mode and
``torch.no_grad()`` during extraction, the previous train/eval flags and the
python / numpy / torch RNG states restored afterwards.
"""
import contextlib
import inspect
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmmoma.utils.rng import preserve_rng_state

FEATURE_CHOICES = ('auto', 'cls', 'avg')


def _check_features_and_labels(feats: torch.Tensor, labels: torch.Tensor,
                               name: str) -> None:
    if feats.dim() != 2:
        raise ValueError(f'{name}_feats must be (N, D), got shape '
                         f'{tuple(feats.shape)}')
    if labels.dim() != 1 or labels.shape[0] != feats.shape[0]:
        raise ValueError(f'{name}_labels must be ({feats.shape[0]},) to match '
                         f'{name}_feats, got shape {tuple(labels.shape)}')


def weighted_knn_predict(train_feats: torch.Tensor,
                         train_labels: torch.Tensor,
                         test_feats: torch.Tensor,
                         k: int = 20,
                         temperature: float = 0.07,
                         num_classes: Optional[int] = None,
                         chunk_size: int = 1024) -> torch.Tensor:
    """Class scores of a temperature-weighted cosine kNN vote.

    For a test feature ``q`` and its ``k`` nearest train features ``x_i``
    (by cosine similarity ``s_i``) with labels ``y_i``, the score of class
    ``c`` is ``sum_i [y_i == c] * exp((s_i - s_max) / temperature)``, where
    ``s_max`` is the largest of the ``s_i``. Subtracting ``s_max`` rescales
    all scores of a sample by the same factor (no effect on the vote) and
    keeps ``exp`` from overflowing.

    Args:
        train_feats (torch.Tensor): (N, D) train features (any scale).
        train_labels (torch.Tensor): (N,) integer train labels.
        test_feats (torch.Tensor): (M, D) test features.
        k (int): Number of neighbours, ``1 <= k <= N``; a larger ``k`` raises
            ``ValueError`` rather than being clamped silently.
            Defaults to 20.
        temperature (float): Softness of the vote, > 0. Defaults to 0.07.
        num_classes (int, optional): Number of classes C; defaults to
            ``max(train_labels) + 1``.
        chunk_size (int): Test samples per similarity block, bounds memory
            to ``chunk_size * N`` floats. Defaults to 1024.

    Returns:
        torch.Tensor: (M, C) float64 class scores on ``test_feats.device``.
    """
    train_feats = torch.as_tensor(train_feats)
    test_feats = torch.as_tensor(test_feats)
    train_labels = torch.as_tensor(train_labels).long()
    _check_features_and_labels(train_feats, train_labels, 'train')
    if test_feats.dim() != 2 or test_feats.shape[1] != train_feats.shape[1]:
        raise ValueError(f'test_feats must be (M, {train_feats.shape[1]}) '
                         'like train_feats, got shape '
                         f'{tuple(test_feats.shape)}')
    num_train = train_feats.shape[0]
    if not 1 <= k <= num_train:
        raise ValueError(f'k must be in [1, number of train samples = '
                         f'{num_train}], got k={k}')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if train_labels.min() < 0:
        raise ValueError('train_labels must be >= 0, got '
                         f'{int(train_labels.min())}')
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    elif int(train_labels.max()) >= num_classes:
        raise ValueError(f'train_labels must be < num_classes={num_classes}, '
                         f'got {int(train_labels.max())}')

    device = test_feats.device
    train_feats = F.normalize(train_feats.float(), dim=1).to(device)
    train_labels = train_labels.to(device)
    scores = []
    for start in range(0, test_feats.shape[0], chunk_size):
        queries = F.normalize(
            test_feats[start:start + chunk_size].float(), dim=1)
        similarity = queries @ train_feats.T  # (m, N) cosine similarities
        top_sims, top_ids = similarity.topk(k, dim=1)  # (m, k)
        weights = ((top_sims - top_sims[:, :1]) / temperature).double().exp()
        votes = torch.zeros(
            queries.shape[0], num_classes, dtype=torch.float64, device=device)
        votes.scatter_add_(1, train_labels[top_ids], weights)
        scores.append(votes)
    if not scores:
        return torch.zeros(0, num_classes, dtype=torch.float64, device=device)
    return torch.cat(scores)


def weighted_knn_top1(train_feats: torch.Tensor,
                      train_labels: torch.Tensor,
                      test_feats: torch.Tensor,
                      test_labels: torch.Tensor,
                      k: int = 20,
                      temperature: float = 0.07,
                      num_classes: Optional[int] = None) -> float:
    """Top-1 accuracy (%) of the weighted kNN vote.

    Args:
        train_feats (torch.Tensor): (N, D) train features.
        train_labels (torch.Tensor): (N,) integer train labels.
        test_feats (torch.Tensor): (M, D) test features, M >= 1.
        test_labels (torch.Tensor): (M,) integer test labels.
        k (int): Number of neighbours, ``1 <= k <= N``. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        num_classes (int, optional): Defaults to one more than the largest
            train or test label.

    Returns:
        float: Percentage of test samples whose highest-scoring class
        (ties go to the lowest class index) equals their label.
    """
    test_feats = torch.as_tensor(test_feats)
    test_labels = torch.as_tensor(test_labels).long()
    _check_features_and_labels(test_feats, test_labels, 'test')
    if test_feats.shape[0] == 0:
        raise ValueError('test_feats is empty: no test samples to evaluate')
    if num_classes is None:
        num_classes = int(
            max(torch.as_tensor(train_labels).max(), test_labels.max())) + 1
    scores = weighted_knn_predict(train_feats, train_labels, test_feats, k,
                                  temperature, num_classes)
    predictions = scores.argmax(dim=1).cpu()
    return float((predictions == test_labels.cpu()).double().mean() * 100)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore every submodule's flag on exit.

    Flags are restored per module (not with ``model.train()``), so modules
    that were deliberately in eval mode inside a training model (frozen
    teachers, frozen stages) stay so.
    """
    training_flags = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, flag in training_flags.items():
            module.training = flag


def _unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _backbone_output(model: nn.Module, inputs: torch.Tensor) -> Any:
    """The backbone's output on the whole (unmasked) image.

    * mmpretrain classifiers: ``extract_feat(inputs, stage='backbone')``.
    * Self-supervised algorithms (``BaseSelfSupervisor``):
      ``extract_feat(inputs)``, whose contract is "backbone features of the
      full image": e.g. mmpretrain 1.2.0's ``MAE.extract_feat`` calls
      ``backbone(inputs, mask=None)``, the unmasked path of ``MAEViT``
      (whose plain ``forward`` masks by default), and ``MoCoV3`` uses the
      base ``backbone(inputs)``.
    * Otherwise ``model.backbone(inputs)``.
    """
    extract_feat = getattr(model, 'extract_feat', None)
    if extract_feat is not None:
        if 'stage' in inspect.signature(extract_feat).parameters:
            return extract_feat(inputs, stage='backbone')
        return extract_feat(inputs)
    if hasattr(model, 'backbone'):
        return model.backbone(inputs)
    raise TypeError(f'{type(model).__name__} has neither extract_feat() nor '
                    'a backbone; cannot extract kNN features')


def pool_features(output: Any,
                  feature: str = 'auto',
                  num_prefix_tokens: Optional[int] = None) -> torch.Tensor:
    """Reduce a backbone output to one (B, C) vector per image.

    The last element is used when ``output`` is a tuple / list (the last
    ``out_indices`` stage). Then, by its shape:

    * (B, C): used as is (the backbone already pooled, e.g. mmpretrain
      ``out_type='cls_token'`` or ``'avg_featmap'``); only
      ``feature='auto'`` is accepted.
    * (B, C, H, W) feature map: global average pool; ``'auto'`` or
      ``'avg'``.
    * (B, L, C) tokens (``out_type='raw'``): ``'cls'`` takes token 0,
      ``'avg'`` averages the patch tokens (those after the
      ``num_prefix_tokens`` prefix tokens); ``'auto'`` means ``'cls'`` when
      the backbone has a prefix token, else ``'avg'``.

    Args:
        output (Tensor | tuple | list): Backbone output.
        feature (str): One of ``'auto'``, ``'cls'``, ``'avg'``.
            Defaults to ``'auto'``.
        num_prefix_tokens (int, optional): Number of leading non-patch tokens
            (CLS, distillation) in a (B, L, C) output; ``None`` if unknown.

    Returns:
        torch.Tensor: (B, C) features.
    """
    if feature not in FEATURE_CHOICES:
        raise ValueError(f'feature must be one of {FEATURE_CHOICES}, got '
                         f'{feature!r}')
    if isinstance(output, (tuple, list)):
        if not output:
            raise ValueError('the backbone returned an empty tuple')
        output = output[-1]
    if not isinstance(output, torch.Tensor):
        raise TypeError('expected the backbone to return a tensor (or a tuple '
                        f'of tensors), got {type(output).__name__}')
    if output.dim() == 2:
        if feature != 'auto':
            raise ValueError(
                f'feature={feature!r} selects among (B, L, C) tokens, but the '
                'backbone returned pooled (B, C) features '
                f"{tuple(output.shape)} (its out_type decides); use "
                "feature='auto'")
        return output
    if output.dim() == 4:
        if feature == 'cls':
            raise ValueError("feature='cls' needs (B, L, C) tokens, but the "
                             'backbone returned a (B, C, H, W) feature map '
                             f"{tuple(output.shape)}; use 'auto' or 'avg'")
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        if feature == 'auto':
            feature = 'cls' if num_prefix_tokens else 'avg'
        if feature == 'cls':
            if not num_prefix_tokens:
                raise ValueError(
                    "feature='cls' but the backbone has no CLS token "
                    f'(num_prefix_tokens={num_prefix_tokens}); use '
                    "feature='avg'")
            return output[:, 0]
        return output[:, num_prefix_tokens or 0:].mean(dim=1)
    raise ValueError('expected backbone features of shape (B, C), (B, L, C) '
                     f'or (B, C, H, W), got {tuple(output.shape)}')


def _num_prefix_tokens(model: nn.Module) -> Optional[int]:
    backbone = getattr(model, 'backbone', None)
    for name in ('num_prefix_tokens', 'num_extra_tokens'):
        if hasattr(backbone, name):
            return int(getattr(backbone, name))
    if hasattr(backbone, 'with_cls_token'):
        return int(bool(backbone.with_cls_token))
    return None


def _gather_in_sampler_order(feats: torch.Tensor, labels: torch.Tensor,
                             size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """All-gather per-rank results laid out by mmengine's ``DefaultSampler``.

    Rank ``r`` holds the samples at sampler positions ``r, r + W, r + 2W,
    ...`` (W ranks); they are interleaved back and the padding that
    ``round_up=True`` adds is cut at ``size``. Every rank gets the result.
    """
    from mmengine.dist import all_gather_object, get_world_size
    world_size = get_world_size()
    if world_size == 1:
        return feats[:size], labels[:size]
    parts = all_gather_object((feats.cpu(), labels.cpu()))
    max_len = max(part[0].shape[0] for part in parts)
    all_feats = feats.new_zeros(max_len * world_size, feats.shape[1]).cpu()
    all_labels = labels.new_full((max_len * world_size, ), -1).cpu()
    for rank, (part_feats, part_labels) in enumerate(parts):
        positions = torch.arange(part_feats.shape[0]) * world_size + rank
        all_feats[positions] = part_feats
        all_labels[positions] = part_labels
    return all_feats[:size], all_labels[:size]


def _batch_labels(data_samples: Any) -> torch.Tensor:
    if not data_samples:
        raise ValueError('the kNN dataloader yields no data_samples; labels '
                         'are needed (use PackInputs on a labelled dataset)')
    labels = []
    for sample in data_samples:
        gt_label = getattr(sample, 'gt_label', None)
        if gt_label is None:
            raise ValueError('a kNN data sample has no gt_label; the kNN '
                             'datasets must be labelled')
        labels.append(int(torch.as_tensor(gt_label).reshape(-1)[0]))
    return torch.tensor(labels, dtype=torch.long)


def _iterate(dataloader, show_progress: bool) -> Iterator[Dict[str, Any]]:
    from mmengine.dist import get_rank
    from mmengine.utils import ProgressBar
    progress = (
        ProgressBar(len(dataloader))
        if show_progress and get_rank() == 0 else None)
    for data_batch in dataloader:
        yield data_batch
        if progress is not None:
            progress.update()
    if progress is not None:
        print()


def _preprocessed_batches(preprocess: Callable[[dict], dict], dataloader,
                          show_progress: bool
                          ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    for data_batch in _iterate(dataloader, show_progress):
        data = preprocess(data_batch)
        inputs = data['inputs']
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(
                'the kNN dataloader must yield one view per image collated '
                "into a tensor (collate_fn=dict(type='default_collate'), no "
                f'MultiView); the data preprocessor gave {type(inputs)}')
        yield inputs, _batch_labels(data['data_samples'])


def _collect(batches: Iterator[Tuple[torch.Tensor, torch.Tensor]],
             dataset_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    all_feats, all_labels = [], []
    for feats, labels in batches:
        all_feats.append(feats.detach().float().cpu())
        all_labels.append(labels)
    if not all_feats:
        raise ValueError('the kNN dataloader is empty')
    return _gather_in_sampler_order(
        torch.cat(all_feats), torch.cat(all_labels), dataset_size)


def extract_features(model: nn.Module,
                     dataloader,
                     feature: str = 'auto',
                     show_progress: bool = True
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Backbone features of every image of ``dataloader``.

    Each batch goes through ``model.data_preprocessor`` (``training=False``:
    normalisation, no batch augmentation), then the backbone on the unmasked
    image (see :func:`_backbone_output`), then :func:`pool_features`. The
    extraction runs under ``torch.no_grad()`` in eval mode; the model's
    train/eval flags and the python / numpy / torch RNG states are restored
    afterwards. DDP-style wrappers are unwrapped. In distributed runs each
    rank extracts its ``DefaultSampler`` shard and every rank receives all
    features (all-gather), padding removed.

    Args:
        model (nn.Module): An mmpretrain ``BaseSelfSupervisor``,
            ``ImageClassifier`` or any model with ``data_preprocessor`` and
            ``extract_feat`` / ``backbone``.
        dataloader (DataLoader): Yields labelled mmpretrain batches
            (``PackInputs``, one view, ``default_collate``).
        feature (str): Pooling of token outputs, see :func:`pool_features`.
            Defaults to ``'auto'``.
        show_progress (bool): Show a progress bar (rank 0). Defaults to True.

    Returns:
        tuple: ``feats`` (N, C) float32 CPU and ``labels`` (N,) int64, N the
        dataset size.
    """
    if feature not in FEATURE_CHOICES:
        raise ValueError(f'feature must be one of {FEATURE_CHOICES}, got '
                         f'{feature!r}')
    model = _unwrap(model)
    num_prefix_tokens = _num_prefix_tokens(model)

    def preprocess(data_batch: dict) -> dict:
        return model.data_preprocessor(data_batch, training=False)

    def features() -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels in _preprocessed_batches(preprocess, dataloader,
                                                    show_progress):
            output = _backbone_output(model, inputs)
            yield pool_features(output, feature, num_prefix_tokens), labels

    with preserve_rng_state(), eval_mode(model), torch.no_grad():
        return _collect(features(), len(dataloader.dataset))


def extract_raw_pixel_features(
        dataloader,
        data_preprocessor: Optional[Callable[..., dict]] = None,
        show_progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flattened, normalised pixels of every image of ``dataloader``.

    Args:
        dataloader (DataLoader): As for :func:`extract_features`.
        data_preprocessor (callable, optional): Normalises a batch, called as
            ``data_preprocessor(data_batch, training=False)`` (e.g. a model's
            ``data_preprocessor``, so that pixels are normalised as the model
            sees them). If None, pixels are divided by 255.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        tuple: ``feats`` (N, C·H·W) float32 CPU and ``labels`` (N,) int64.
    """

    def preprocess(data_batch: dict) -> dict:
        if data_preprocessor is not None:
            return data_preprocessor(data_batch, training=False)
        inputs = data_batch['inputs']
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.float() / 255
        return dict(inputs=inputs, data_samples=data_batch['data_samples'])

    def features() -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels in _preprocessed_batches(preprocess, dataloader,
                                                    show_progress):
            yield inputs.flatten(1), labels

    with preserve_rng_state(), torch.no_grad():
        return _collect(features(), len(dataloader.dataset))
