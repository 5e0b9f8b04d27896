"""Test helper: end the training process abruptly after a given epoch."""
import os

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ExitAfterEpochHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:  # runner.epoch is 0-based here
            os._exit(3)  # like a killed job: no clean-up, no further saving


class TrainingInterrupted(RuntimeError):
    """Raised by :class:`RaiseAfterEpochHook`."""


@HOOKS.register_module()
class RaiseAfterEpochHook(Hook):
    """End an in-process training after a given epoch, as
    ``ExitAfterEpochHook`` ends a process: after the epoch's checkpoint is
    saved, nothing else runs (no further hooks, no ``after_run``)."""
    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:  # runner.epoch is 0-based here
            raise TrainingInterrupted(
                f'training interrupted after epoch {self.epoch}')
