"""Make a model config tiny, generically.

:func:`shrink_model` walks a ``model`` config and gives every backbone it
recognises by its registered class (a subclass of mmpretrain's
``VisionTransformer`` or ``SwinTransformer``: students, frozen teachers,
mmpretrain baselines, mmseg backbones) one small arch, then rewrites the
fields of the other modules that follow the backbones (widths, patch grid,
output indices, the segmentor's crop) and, on request, the hidden widths of
necks, heads and decoders. Nothing is keyed on an algorithm's name.
"""
import importlib
import inspect
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .config_tools import walk_dicts

VIT_ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads',
                 'feedforward_channels')
SWIN_ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')
#: The default tiny ViT: 64 wide, 2 blocks.
TINY_VIT_ARCH: Dict[str, int] = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
#: The default tiny Swin: four stages of one block, 16 to 128 wide.
TINY_SWIN_ARCH: Dict[str, Any] = dict(
    embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
#: Archs that ``MoCoV3ViT`` adds to the ViT arch zoo when it is constructed.
EXTRA_VIT_ARCHS: Dict[str, Dict[str, int]] = dict.fromkeys(
    ['mocov3-s', 'mocov3-small'],
    dict(embed_dims=384, num_layers=12, num_heads=12,
         feedforward_channels=1536))
#: Keys of non-backbone modules (necks, heads, decoders) that hold a backbone
#: width; a value (or list of values) equal to an original backbone width
#: becomes the matching new width.
WIDTH_KEYS = ('in_channels', 'embed_dim', 'embed_dims', 'in_dims',
              'out_dims', 'input_features')
#: Hidden widths of necks, heads and decoders, set to ``head_channels``.
HIDDEN_KEYS = ('hid_channels', 'hidden_channels', 'channels',
               'decoder_embed_dim')
#: What :func:`constructor_default` returns for an argument no class takes.
MISSING = object()


def registered_class(type_name: Any,
                     scope: Optional[str] = None) -> Optional[type]:
    """The class a config ``type`` names in the model registry.

    Args:
        type_name: A class, or a registered name (``'MaskedViT'``,
            ``'mmpretrain.SwinTransformer'``).
        scope: Registry scope to look in first (e.g. ``'mmseg'``); the name
            is then looked up in mmpretrain's registry.

    Returns:
        The class, or None for untyped dicts and unknown names.
    """
    if isinstance(type_name, type):
        return type_name
    if not isinstance(type_name, str):
        return None
    for name in dict.fromkeys([scope or 'mmpretrain', 'mmpretrain']):
        try:
            registry = importlib.import_module(f'{name}.registry').MODELS
        except ImportError:
            continue
        cls = registry.get(type_name)
        if cls is not None:
            return cls
    return None


def constructor_default(cls: type, name: str) -> Any:
    """The default of constructor argument ``name`` of ``cls``.

    Follows ``**kwargs`` up the MRO. Returns :data:`MISSING` if no class in
    the MRO declares it, None if it is declared without a default.
    """
    for klass in cls.__mro__:
        if klass is object:
            break
        if '__init__' not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters
        parameter = parameters.get(name)
        if parameter is not None:
            if parameter.default is inspect.Parameter.empty:
                return None
            return parameter.default
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD
                   for p in parameters.values()):
            break
    return MISSING


def _vit_class() -> type:
    from mmpretrain.models import VisionTransformer
    return VisionTransformer


def _swin_class() -> type:
    from mmpretrain.models import SwinTransformer
    return SwinTransformer


def _zoo_arch(cls: type, arch: str, extra: Dict[str, Any]) -> Dict[str, Any]:
    zoo = {**cls.arch_zoo, **extra}
    if arch.lower() not in zoo:
        raise ValueError(f'unknown {cls.__name__} arch {arch!r}; allowed '
                         f'names: {sorted(zoo)}')
    return zoo[arch.lower()]


def resolve_vit_arch(arch: Union[str, Dict[str, int]]) -> Dict[str, int]:
    """The explicit ViT arch dict of an arch name or dict.

    Args:
        arch: A name of mmpretrain's ``VisionTransformer.arch_zoo`` ('b',
            'deit-s', ...) or MoCo v3's 'mocov3-small', or a dict with the
            keys :data:`VIT_ARCH_KEYS`.

    Returns:
        A new dict with exactly those four keys.

    Raises:
        ValueError: For unknown names, other keys, or a width that the heads
            do not divide.
    """
    if isinstance(arch, str):
        zoo_arch = _zoo_arch(_vit_class(), arch, EXTRA_VIT_ARCHS)
        return {key: zoo_arch[key] for key in VIT_ARCH_KEYS}
    if not isinstance(arch, dict) or set(arch) != set(VIT_ARCH_KEYS):
        raise ValueError(f'a custom ViT arch must be a dict with exactly the '
                         f'keys {list(VIT_ARCH_KEYS)}, got {arch!r}')
    if arch['embed_dims'] % arch['num_heads']:
        raise ValueError(f'embed_dims {arch["embed_dims"]} is not divisible '
                         f'by num_heads {arch["num_heads"]}')
    return {key: int(arch[key]) for key in VIT_ARCH_KEYS}


def resolve_swin_arch(arch: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The explicit Swin arch dict (:data:`SWIN_ARCH_KEYS`, lists as lists)
    of a ``SwinTransformer.arch_zoo`` name or an arch dict."""
    if isinstance(arch, str):
        arch = _zoo_arch(_swin_class(), arch, {})
    if not isinstance(arch, dict) or set(arch) != set(SWIN_ARCH_KEYS):
        raise ValueError(f'a custom Swin arch must be a dict with exactly '
                         f'the keys {list(SWIN_ARCH_KEYS)}, got {arch!r}')
    if len(arch['depths']) != len(arch['num_heads']):
        raise ValueError(f'depths and num_heads differ in length: {arch!r}')
    return dict(embed_dims=int(arch['embed_dims']),
                depths=[int(d) for d in arch['depths']],
                num_heads=[int(h) for h in arch['num_heads']])


def _map_index(index: int, old_count: int, new_count: int) -> int:
    """Block / stage ``index`` of ``old_count`` at the same relative depth
    among ``new_count`` (the last stays the last; negatives are kept)."""
    if index < 0:
        return index
    if index >= old_count - 1:
        return new_count - 1
    return max(0, round((index + 1) * new_count / old_count) - 1)


class _Shrinker:
    """One :func:`shrink_model` call: the backbones found, the width map,
    and the list of changes."""

    def __init__(self, scope: Optional[str]) -> None:
        self.scope = scope
        self.changes: List[str] = []
        self.widths: Dict[int, int] = {}
        self.backbones: List[str] = []
        self.vit_heads: Optional[int] = None
        self.vit_width: Optional[int] = None

    def assign(self, path: str, node: Dict[str, Any], key: str,
               value: Any) -> None:
        old = self.current(node, key)
        if old != value:
            old = None if old is MISSING else old
            self.changes.append(f'{path}.{key}: {old!r} -> {value!r}')
            node[key] = value

    def current(self, node: Dict[str, Any], key: str) -> Any:
        """The value in the config, else the constructor default."""
        if key in node:
            return node[key]
        cls = registered_class(node.get('type'), self.scope)
        return MISSING if cls is None else constructor_default(cls, key)

    def inside_backbone(self, path: str) -> bool:
        return any(path == root or path.startswith((root + '.', root + '['))
                   for root in self.backbones)

    def map_widths(self, old: Sequence[int], new: Sequence[int]) -> None:
        for old_width, new_width in zip(old, new):
            self.widths.setdefault(old_width, new_width)

    def layer_fields(self, path: str, node: Dict[str, Any], old_count: int,
                     new_count: int) -> None:
        """``out_indices`` and ``frozen_stages`` for a new depth."""
        indices = self.current(node, 'out_indices')
        if isinstance(indices, (int, list, tuple)):
            many = not isinstance(indices, int)
            old = list(indices) if many else [indices]
            new = [_map_index(i, old_count, new_count) for i in old]
            if len(set(new)) < len(set(old)):
                raise ValueError(
                    f'{path}.out_indices: {len(old)} outputs {old} need at '
                    f'least {len(old)} blocks / stages, the arch has '
                    f'{new_count}')
            if new != old:
                self.assign(path, node, 'out_indices',
                            type(indices)(new) if many else new[0])
        frozen = node.get('frozen_stages')
        if isinstance(frozen, int) and frozen > 0:
            self.assign(path, node, 'frozen_stages',
                        new_count if frozen >= old_count else
                        min(frozen, new_count))

    def vit(self, path: str, node: Dict[str, Any], cls: type,
            arch: Dict[str, int], img_size: int, patch_size: int) -> None:
        old = self.current(node, 'arch')
        if isinstance(old, str):
            old = _zoo_arch(cls, old, EXTRA_VIT_ARCHS)
        self.map_widths([old['embed_dims']], [arch['embed_dims']])
        self.assign(path, node, 'arch', dict(arch))
        self.assign(path, node, 'img_size', img_size)
        self.assign(path, node, 'patch_size', patch_size)
        self.layer_fields(path, node, old['num_layers'], arch['num_layers'])
        self.vit_width, self.vit_heads = arch['embed_dims'], arch['num_heads']

    def swin(self, path: str, node: Dict[str, Any], cls: type,
             arch: Dict[str, Any], img_size: int,
             window_size: Optional[int]) -> None:
        old = self.current(node, 'arch')
        old = resolve_swin_arch(_zoo_arch(cls, old, {}) if isinstance(
            old, str) else old)
        old_count, new_count = len(old['depths']), len(arch['depths'])
        new_widths = [arch['embed_dims'] * 2**i for i in range(new_count)]
        self.map_widths(
            [old['embed_dims'] * 2**i for i in range(old_count)],
            [new_widths[_map_index(i, old_count, new_count)]
             for i in range(old_count)])
        self.assign(path, node, 'arch', dict(arch))
        self.assign(path, node, 'img_size', img_size)
        if window_size is not None:
            if constructor_default(cls, 'window_size') is not MISSING:
                self.assign(path, node, 'window_size', window_size)
            else:  # e.g. SimMIMSwinTransformer: per-stage configs only
                stage_cfgs = dict(node.get('stage_cfgs') or {})
                stage_cfgs['window_size'] = window_size
                self.assign(path, node, 'stage_cfgs', stage_cfgs)
        self.layer_fields(path, node, old_count, new_count)

    def width(self, value: Any) -> Any:
        """``value`` (an int or a list / tuple of ints) with every old
        backbone width replaced; MISSING if nothing is replaced."""
        if isinstance(value, int) and not isinstance(value, bool):
            return self.widths.get(value, MISSING)
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(item, int) and item in self.widths
                for item in value):
            return type(value)(self.widths[item] for item in value)
        return MISSING

    def follower(self, path: str, node: Dict[str, Any], img_size: int,
                 patch_size: int, head_channels: Optional[int]) -> None:
        """The fields of a non-backbone module that follow the backbones."""
        keys = [('img_size', img_size)]
        if self.vit_width is not None:
            keys += [('patch_size', patch_size),
                     ('num_patches', (img_size // patch_size)**2)]
        for key, value in keys:
            if self.current(node, key) is not MISSING:
                self.assign(path, node, key, value)
        for key in WIDTH_KEYS:
            value = self.width(self.current(node, key))
            if value is not MISSING:
                self.assign(path, node, key, value)
        heads = node.get('num_heads')
        if self.vit_width and isinstance(heads, int) and \
                self.vit_width % heads:
            self.assign(path, node, 'num_heads', self.vit_heads)
        if head_channels is not None:
            self.hidden(path, node, head_channels)
        if path.endswith('.data_preprocessor') and isinstance(
                node.get('size'), (list, tuple)):
            self.assign(path, node, 'size', (img_size, img_size))
        crop = node.get('crop_size')
        if path.endswith('.test_cfg') and isinstance(crop, (list, tuple)):
            self.assign(path, node, 'crop_size', (img_size, img_size))
            if isinstance(node.get('stride'), (list, tuple)):
                self.assign(path, node, 'stride', tuple(
                    max(1, int(s * img_size / c))
                    for s, c in zip(node['stride'], crop)))

    def hidden(self, path: str, node: Dict[str, Any],
               head_channels: int) -> None:
        for key in HIDDEN_KEYS:
            value = self.current(node, key)
            if isinstance(value, int) and not isinstance(value, bool):
                self.assign(path, node, key, head_channels)
        depth = self.current(node, 'decoder_depth')
        if isinstance(depth, int) and depth > 1:
            self.assign(path, node, 'decoder_depth', 1)
        heads = self.current(node, 'decoder_num_heads')
        if isinstance(heads, int):
            self.assign(path, node, 'decoder_num_heads',
                        math.gcd(heads, head_channels))


def shrink_model(model_cfg: Dict[str, Any],
                 arch: Union[str, Dict[str, int]] = TINY_VIT_ARCH,
                 img_size: int = 32,
                 patch_size: int = 4,
                 swin_arch: Optional[Union[str, Dict[str, Any]]] = None,
                 window_size: Optional[int] = None,
                 head_channels: Optional[int] = None,
                 scope: Optional[str] = None) -> List[str]:
    """Rewrite a model config in place to tiny backbones.

    Rules:

    * every dict whose ``type`` is a subclass of mmpretrain's
      ``VisionTransformer`` (MAEViT, MoCoV3ViT, MaskedViT, teachers) gets
      ``arch``, ``img_size`` and ``patch_size``; every subclass of
      ``SwinTransformer`` (SimMIMSwinTransformer too) gets ``swin_arch``,
      ``img_size`` and ``window_size`` (through ``stage_cfgs`` where the
      class takes no ``window_size``). Their ``out_indices`` keep their
      relative depth (the last block / stage stays the last) and a
      ``frozen_stages`` that froze every block freezes every new one. Their
      nested dicts are left alone;
    * in every other dict, for keys it sets or its registered class accepts
      (constructor defaults count as set): ``img_size`` is set; with a ViT,
      ``patch_size`` too and ``num_patches`` becomes
      ``(img_size // patch_size) ** 2``; a width key (:data:`WIDTH_KEYS`)
      whose value, or every item of whose list, is an original backbone
      width (a Swin: the width of each stage) becomes the new width; a
      ``num_heads`` that no longer divides the ViT width becomes the ViT's;
      a segmentor's ``data_preprocessor.size`` and ``test_cfg.crop_size``
      become ``img_size`` (the slide ``stride`` scales along);
    * with ``head_channels``, every hidden width (:data:`HIDDEN_KEYS`:
      projector / predictor ``hid_channels``, a decode head's ``channels``,
      a decoder's ``decoder_embed_dim``) becomes ``head_channels``, decoders
      get one block and ``decoder_num_heads`` a divisor of it. Without it
      they stay as configured (e.g. the MAE decoder's 512).

    Args:
        model_cfg: The ``model`` dict of a config, edited in place.
        arch: ViT arch (see :func:`resolve_vit_arch`).
        img_size: Input size (square images) of every backbone.
        patch_size: ViT patch size; must divide ``img_size``.
        swin_arch: Swin arch (see :func:`resolve_swin_arch`); None leaves
            Swin backbones alone.
        window_size: Swin window size; None keeps the configured one.
        head_channels: Hidden width of necks, heads and decoders; None keeps
            them.
        scope: Registry scope of the config (``cfg.default_scope``).

    Returns:
        The rewritten fields, as ``path: old -> new`` strings.

    Raises:
        ValueError: If the model has no backbone that could be shrunk, or
            the sizes do not fit.
    """
    if img_size % patch_size:
        raise ValueError(f'img_size {img_size} is not divisible by '
                         f'patch_size {patch_size}')
    arch = resolve_vit_arch(arch)
    swin = None if swin_arch is None else resolve_swin_arch(swin_arch)
    shrinker = _Shrinker(scope)
    vit_class, swin_class = _vit_class(), _swin_class()
    nodes: List[Tuple[str, Dict[str, Any]]] = list(
        walk_dicts(model_cfg, 'model'))
    for path, node in nodes:
        cls = registered_class(node.get('type'), scope)
        if cls is None or shrinker.inside_backbone(path):
            continue
        if issubclass(cls, vit_class):
            shrinker.vit(path, node, cls, arch, img_size, patch_size)
        elif issubclass(cls, swin_class) and swin is not None:
            shrinker.swin(path, node, cls, swin, img_size, window_size)
        else:
            continue
        shrinker.backbones.append(path)
    if not shrinker.backbones:
        raise ValueError(
            'the model has no VisionTransformer-based module to shrink' +
            ('' if swin is not None else
             ' (SwinTransformer-based ones need swin_arch)'))
    for path, node in nodes:
        if not shrinker.inside_backbone(path):
            shrinker.follower(path, node, img_size, patch_size,
                              head_channels)
    return shrinker.changes
