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
