"""A ``CheckpointHook`` whose saves a kill cannot break."""
import glob
import os
import os.path as osp
import re
from collections import deque

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from mmmoma.utils.checkpoint_files import (PARTIAL_SUFFIX, atomic_write_text,
                                           publish_file)

__all__ = ['AtomicCheckpointHook']


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` with crash-safe saving.

    MMEngine 0.10.7 deletes the oldest checkpoint *before* writing the new
    one, writes in place and updates ``last_checkpoint`` afterwards: with
    ``max_keep_ckpts=1`` a kill during the save leaves a partial file, a
    pointer to the deleted one, and nothing to resume from. Here each save
    runs in four phases, and a kill in any of them leaves a complete
    checkpoint that ``--resume`` finds
    (:func:`mmmoma.utils.checkpoint_files.find_resumable_checkpoint`):

    1. write ``<name>.partial`` (:meth:`_write`);
    2. flush it and rename it onto ``<name>`` (:meth:`_publish`);
    3. rewrite ``last_checkpoint`` through a temporary file
       (:meth:`_update_pointer`);
    4. only then delete the checkpoints beyond ``max_keep_ckpts``
       (:meth:`_delete_outdated`).

    A resumed run first removes what a killed save left behind: its
    ``.partial`` file and the checkpoints it was about to delete (those
    older than every checkpoint it keeps).

    Every argument of ``CheckpointHook`` is accepted. Atomic saving needs a
    local ``out_dir``; for other storage backends MMEngine's own saving is
    used (with a warning).
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._atomic = isinstance(self.file_backend, LocalBackend)
        if not self._atomic:
            runner.logger.warning(
                'AtomicCheckpointHook: out_dir is not on a local file '
                'system; checkpoints are saved by MMEngine non-atomically')
        elif is_main_process():
            self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Clean up after a save that was killed: its partial file, and the
        checkpoints it would have deleted (older than every kept one)."""
        for path in glob.glob(osp.join(self.out_dir, '*' + PARTIAL_SUFFIX)):
            os.remove(path)
        if self.max_keep_ckpts <= 0 or not self.keep_ckpt_ids:
            return
        prefix, _, suffix = self.filename_tmpl.partition('{}')
        pattern = re.compile(re.escape(prefix) + r'(\d+)' +
                             re.escape(suffix) + '$')
        oldest_kept = min(self.keep_ckpt_ids)
        for name in os.listdir(self.out_dir):
            match = pattern.match(name)
            if match and int(match.group(1)) < oldest_kept:
                self._delete_outdated([osp.join(self.out_dir, name)])

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not getattr(self, '_atomic', False):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            keep = deque(self.keep_ckpt_ids)
            while len(keep) >= self.max_keep_ckpts:
                outdated.append(keep.popleft())
            keep.append(step)
            self.keep_ckpt_ids = keep
            # saved in the checkpoint (message hub): a resumed run knows
            # which files it may delete
            runner.message_hub.update_info('keep_ckpt_ids', list(keep))

        filename = self.filename_tmpl.format(step)
        final_path = osp.join(self.out_dir, filename)
        self.last_ckpt = final_path
        runner.message_hub.update_info('last_ckpt', final_path)

        self._write(runner, filename + PARTIAL_SUFFIX, meta)
        # Runner.save_checkpoint writes on the main process only
        if not is_main_process():
            return
        self._publish(final_path + PARTIAL_SUFFIX, final_path)
        self._update_pointer(runner, final_path)
        self._delete_outdated([
            osp.join(self.out_dir, self.filename_tmpl.format(old))
            for old in outdated
        ])

    def _write(self, runner, partial_name: str, meta: dict) -> None:
        """Phase 1: the full checkpoint, under a name resume never uses."""
        runner.save_checkpoint(
            self.out_dir,
            partial_name,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

    def _publish(self, partial_path: str, final_path: str) -> None:
        """Phase 2: flush and rename onto the final name (atomic)."""
        publish_file(partial_path, final_path)

    def _update_pointer(self, runner, final_path: str) -> None:
        """Phase 3: ``last_checkpoint`` names the new file (atomic)."""
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          final_path)

    def _delete_outdated(self, paths) -> None:
        """Phase 4: remove checkpoints beyond ``max_keep_ckpts``."""
        for path in paths:
            if osp.isfile(path):
                os.remove(path)
            elif osp.isdir(path):  # deepspeed saves directories
                self.file_backend.rmtree(path)
