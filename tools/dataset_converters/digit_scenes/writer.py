"""The one writer skeleton of every digit-scenes set.

A set is a folder of images (and annotations) plus a ``meta.json`` that
records the generator version, the parameters and every file written. A
kind of set (:class:`SceneSetWriter` subclass) says where its files go,
which images each split holds and how one image is drawn; the skeleton does
the rest, the same way for every kind:

1. keep an existing set that is complete (its ``meta.json`` has the same
   generator version and parameters, and every file it names exists),
2. otherwise remove the stale ``meta.json`` first (an interrupted run must
   not look complete) and the image files of an older set,
3. draw and write every image of every split, with a progress bar,
4. write ``meta.json`` last.
"""
import json
import os
import os.path as osp
from typing import (Any, Dict, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple)

import numpy as np
from PIL import Image

from .sources import Sources, load_sources

META_FILENAME = 'meta.json'
#: the splits, in writing order (their index is the split code of the
#: per-image random streams)
SPLITS = ('train', 'val')
_PROGRESS_STEP = 100  # images per progress-bar update


class SceneFile(NamedTuple):
    """One file of a scene.

    Attributes:
        path (str): Where it goes, relative to the set's folder.
        array (np.ndarray): Its pixels, for ``PIL.Image.fromarray``.
        mode (str, optional): The PIL mode of ``array``; None lets PIL pick.
        save_options (dict, optional): Keyword arguments of
            ``PIL.Image.Image.save`` (e.g. the JPEG quality).
    """
    path: str
    array: np.ndarray
    mode: Optional[str] = None
    save_options: Optional[Dict[str, Any]] = None


class RenderedScene(NamedTuple):
    """What the render callback returns for one image.

    Attributes:
        files (Sequence[SceneFile]): The files to write.
        record (Any): What ``meta.json`` keeps of the scene (handed to
            :meth:`SceneSetWriter.split_meta` with the others of its split).
    """
    files: Sequence[SceneFile]
    record: Any


class ScenePlan(NamedTuple):
    """What a set holds, decided once the sources are loaded.

    Attributes:
        items (dict[str, Sequence]): Per split, one item per image, handed
            to :meth:`SceneSetWriter.render`.
        meta (dict): The fields of ``meta.json`` after ``generator_version``
            and ``params``, in order; a field that
            :meth:`SceneSetWriter.split_meta` fills per split starts as an
            empty dict.
    """
    items: Dict[str, Sequence]
    meta: Dict[str, Any]


def recorded_params(arguments: Dict[str, Any]) -> Dict[str, Any]:
    """The parameters of a set as ``meta.json`` records them.

    Args:
        arguments (dict): The arguments of a ``make_*`` function, in the
            order of its signature (its ``locals()`` before any other
            local is bound).

    Returns:
        dict: Every argument but ``out_dir``, ``force`` and
        ``show_progress`` (they do not change the set), in the same order,
        ranges (tuples or lists) as lists.
    """
    return {
        name: list(value) if isinstance(value, (tuple, list)) else value
        for name, value in arguments.items()
        if name not in ('out_dir', 'force', 'show_progress')
    }


def read_meta(data_root: str) -> dict:
    """Read the ``meta.json`` of a set.

    Args:
        data_root (str): The set's folder.

    Returns:
        dict: The content of ``data_root/meta.json``.
    """
    with open(osp.join(data_root, META_FILENAME)) as f:
        return json.load(f)


def read_split_meta(data_root: str, split: str,
                    splits: Iterable[str]) -> dict:
    """Read the ``meta.json`` of a set, for a reader of one split.

    Args:
        data_root (str): The set's folder.
        split (str): The requested split.
        splits (Iterable[str]): The split names the set knows.

    Returns:
        dict: The content of ``data_root/meta.json``.

    Raises:
        ValueError: if ``split`` is not one of ``splits``.
    """
    if split not in splits:
        raise ValueError(
            f'split must be one of {tuple(splits)}, got {split!r}')
    return read_meta(data_root)


def read_images(data_root: str,
                paths: Iterable[str],
                mode: Optional[str] = None) -> np.ndarray:
    """Read image files into one array.

    Args:
        data_root (str): The set's folder.
        paths (Iterable[str]): The files, relative to ``data_root``.
        mode (str, optional): PIL mode to convert to; None keeps the file's.

    Returns:
        np.ndarray: (N, ...) the images stacked, in the order of ``paths``.
    """
    images = []
    for path in paths:
        with Image.open(osp.join(data_root, path)) as img:
            if mode is not None:
                img = img.convert(mode)
            images.append(np.asarray(img))
    return np.stack(images)


class SceneSetWriter:
    """Skeleton of a digit-scenes writer (see the module docstring).

    Subclasses set the class attributes and implement :meth:`folders`,
    :meth:`recorded_files`, :meth:`plan`, :meth:`render` and
    :meth:`split_meta`; :meth:`write` does the rest.

    Args:
        out_dir (str): The set's folder.
        params (dict): Every parameter of the set, recorded in
            ``meta.json`` (see :func:`recorded_params`); a set made with
            other parameters is rewritten.
    """
    #: bump when the drawing of the kind changes, so stale sets get rebuilt
    generator_version: int = 1
    #: suffixes of the files of an older set removed from :meth:`folders`
    stale_suffixes: Tuple[str, ...] = ('.png', )
    #: ``indent`` of ``json.dump`` for ``meta.json``
    meta_indent: Optional[int] = None

    def __init__(self, out_dir: str, params: Dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.params = params
        self.expected = dict(
            generator_version=self.generator_version, params=params)

    def folders(self) -> List[str]:
        """The folders holding the files, relative to ``out_dir``."""
        raise NotImplementedError

    def recorded_files(self, meta: dict) -> Iterable[str]:
        """The files ``meta`` (a ``meta.json``) names, relative paths."""
        raise NotImplementedError

    def plan(self, sources: Sources) -> ScenePlan:
        """Decide the images of every split (and check the sources)."""
        raise NotImplementedError

    def render(self, sources: Sources, split: str, split_code: int,
               index: int, item: Any) -> RenderedScene:
        """Draw image ``index`` (plan item ``item``) of ``split``."""
        raise NotImplementedError

    def split_meta(self, split: str, items: Sequence,
                   records: List[Any]) -> Dict[str, Any]:
        """The ``meta.json`` fields of one split, as ``{field: value}``:
        the skeleton stores ``meta[field][split] = value``."""
        raise NotImplementedError

    def is_complete(self) -> bool:
        """Whether ``out_dir`` holds a complete set with these parameters.

        Returns:
            bool: ``meta.json`` exists, matches the generator version and
            parameters, and every file it names exists.
        """
        if not osp.isfile(osp.join(self.out_dir, META_FILENAME)):
            return False
        meta = read_meta(self.out_dir)
        if any(meta.get(key) != value for key, value in self.expected.items()):
            return False
        return all(
            osp.isfile(osp.join(self.out_dir, path))
            for path in self.recorded_files(meta))

    def write(self, force: bool = False, show_progress: bool = True) -> dict:
        """Write the set, unless a complete one is there already.

        Args:
            force (bool): Rewrite even a complete set. Defaults to False.
            show_progress (bool): Show a progress bar. Defaults to True.

        Returns:
            dict: The content of ``meta.json`` plus ``skipped`` (True when
            an existing set was kept).
        """
        if not force and self.is_complete():
            meta = read_meta(self.out_dir)
            meta['skipped'] = True
            return meta

        sources = load_sources()
        plan = self.plan(sources)
        meta_path = osp.join(self.out_dir, META_FILENAME)
        if osp.exists(meta_path):
            os.remove(meta_path)
        self._remove_stale_files()

        progress = None
        if show_progress:
            from mmengine.utils import ProgressBar
            progress = ProgressBar(sum(len(v) for v in plan.items.values()))
        meta = dict(self.expected)
        meta.update(plan.meta)
        written = 0
        for split_code, split in enumerate(SPLITS):
            items = plan.items[split]
            records = []
            for index, item in enumerate(items):
                scene = self.render(sources, split, split_code, index, item)
                for scene_file in scene.files:
                    self._save(scene_file)
                records.append(scene.record)
                written += 1
                at_step = ((index + 1) % _PROGRESS_STEP == 0
                           or index + 1 == len(items))
                if progress is not None and at_step:
                    progress.update(written - progress.completed)
            for field, value in self.split_meta(split, items,
                                                records).items():
                meta[field][split] = value
        if progress is not None:
            print()
        with open(meta_path, 'w') as f:
            json.dump(meta, f, indent=self.meta_indent)
        meta['skipped'] = False
        return meta

    def _remove_stale_files(self) -> None:
        """Create :meth:`folders` and empty them of an older set's files."""
        for folder in self.folders():
            path = osp.join(self.out_dir, folder)
            os.makedirs(path, exist_ok=True)
            for name in os.listdir(path):
                if name.endswith(self.stale_suffixes):
                    os.remove(osp.join(path, name))

    def _save(self, scene_file: SceneFile) -> None:
        """Write one file of a scene."""
        if scene_file.mode is None:
            image = Image.fromarray(scene_file.array)
        else:
            image = Image.fromarray(scene_file.array, mode=scene_file.mode)
        image.save(
            osp.join(self.out_dir, scene_file.path),
            **(scene_file.save_options or {}))
