"""Training checkpoints on disk: atomic writes, completeness, resume target.

One home for how a run's checkpoint *files* are written and found again
(the weight *formats* inside them live in
``mmmoma.checkpoints``).

* :func:`atomic_write_text` / :func:`publish_file` write to a temporary file
  in the same directory and ``os.replace`` it onto the final name, so a kill
  leaves either the old file or the complete new one, never a partial file.
* :func:`is_complete_checkpoint` recognises a partial ``torch.save`` file
  without loading it (its zip directory, written last, is missing).
* :func:`find_resumable_checkpoint` is what auto-resume uses: the file
  ``last_checkpoint`` points at if it is complete, else the newest complete
  checkpoint in the work directory, with a warning that says why.
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from typing import List, Optional, Tuple

__all__ = [
    'PARTIAL_SUFFIX', 'atomic_write_text', 'find_resumable_checkpoint',
    'is_complete_checkpoint', 'publish_file', 'why_incomplete'
]

#: suffix of a checkpoint being written; never a resume candidate
PARTIAL_SUFFIX = '.partial'


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_file(partial_path: str, final_path: str) -> None:
    """Flush ``partial_path`` to disk and rename it onto ``final_path``.

    The rename is atomic on POSIX file systems: readers see the old file or
    the complete new one.
    """
    with open(partial_path, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(partial_path, final_path)
    _fsync_dir(osp.dirname(osp.abspath(final_path)))


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    partial_path = path + PARTIAL_SUFFIX
    with open(partial_path, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial_path, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def why_incomplete(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None if it is.

    ``torch.save`` (torch >= 1.6) writes a zip archive whose central
    directory comes last: a file cut short by a kill has none. The check
    reads the directory only, not the tensors.

    Args:
        path (str): a checkpoint path.

    Returns:
        str | None: e.g. ``'missing'``, ``'empty'``, ``'truncated or not a
        torch.save file'``; None for a complete file.
    """
    if not osp.isfile(path):
        return 'missing'
    if osp.getsize(path) == 0:
        return 'empty'
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return 'truncated or not a torch.save file (no zip directory)'
    if not any(name.endswith('data.pkl') for name in names):
        return 'not a torch.save file (no data.pkl)'
    return None


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a complete ``torch.save`` file."""
    return why_incomplete(path) is None


#: names MMEngine's CheckpointHook gives training checkpoints
#: (``filename_tmpl`` ``epoch_{}.pth`` / ``iter_{}.pth``)
CHECKPOINT_PATTERNS = ('epoch_*.pth', 'iter_*.pth')


def _candidates(directories: List[str]) -> List[Tuple[float, str]]:
    """Training checkpoints in ``directories``, newest (mtime) first."""
    found = {}
    for directory in directories:
        for pattern in CHECKPOINT_PATTERNS:
            for path in glob.glob(osp.join(directory, pattern)):
                found[osp.abspath(path)] = osp.getmtime(path)
    return sorted(((mtime, path) for path, mtime in found.items()),
                  reverse=True)


def _read_pointer(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """The path ``last_checkpoint`` names (None if missing or empty) and
    what is wrong with it (None if it names a complete checkpoint)."""
    pointer_file = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer_file):
        return None, 'there is no last_checkpoint file'
    with open(pointer_file) as f:
        pointed = f.read().strip()
    if not pointed:
        return None, 'last_checkpoint is empty'
    reason = why_incomplete(pointed)
    if reason is not None:
        return pointed, (f'last_checkpoint points at {pointed!r}, which is '
                         f'{reason}')
    return pointed, None


def find_resumable_checkpoint(work_dir: str,
                              logger: Optional[logging.Logger] = None
                              ) -> Optional[str]:
    """The checkpoint auto-resume should load.

    ``last_checkpoint`` (rewritten after each save) is used when it names a
    complete file and no complete training checkpoint (``epoch_*.pth``,
    ``iter_*.pth``) next to it is newer. Otherwise, i.e. when the pointer is
    missing or empty, names a missing or partial file, or lags behind a
    save that was interrupted before the pointer update, the newest complete
    training checkpoint in ``work_dir`` (and in the pointer's directory) is
    used, with a warning that says why.

    Args:
        work_dir (str): the run's work directory.
        logger (logging.Logger, optional): where the warning goes; defaults
            to mmengine's current logger.

    Returns:
        str | None: the path, or None when there is no complete checkpoint
        (training then starts from scratch, as MMEngine does).
    """
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    pointed, problem = _read_pointer(work_dir)
    directories = [work_dir]
    if pointed is not None:
        directories.append(osp.dirname(pointed) or work_dir)
    trusted = pointed if problem is None else None
    trusted_mtime = osp.getmtime(trusted) if trusted is not None else None
    for mtime, path in _candidates(directories):
        if trusted is not None and mtime <= trusted_mtime:
            return trusted  # no training checkpoint is newer than it
        if is_complete_checkpoint(path):
            if problem is None:
                problem = (f'last_checkpoint points at {trusted!r}, but '
                           f'{path!r} is newer and complete (a save was '
                           'interrupted before the pointer update)')
            logger.warning(f'resume: {problem}; resuming from the newest '
                           f'complete checkpoint: {path}')
            return path
    if trusted is not None:  # a complete file outside the usual names
        return trusted
    logger.warning(f'resume: {problem}, and {work_dir!r} holds no complete '
                   'checkpoint; training starts from scratch')
    return None
