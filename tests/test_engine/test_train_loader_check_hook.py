"""TrainLoaderCheckHook hands the built train loader's values to the
model's ``check_train_loader`` before the first iteration."""
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mmmoma.engine.hooks import TrainLoaderCheckHook
from mmmoma.models.utils import KeyQueue


class Checked(torch.nn.Module):
    """Records the call; rejects like MimCo does when asked to."""

    def __init__(self, queue_length=None):
        super().__init__()
        self.calls = []
        self.queue_length = queue_length

    def check_train_loader(self, batch_size, world_size, drop_last,
                           dataset_size):
        self.calls.append((batch_size, world_size, drop_last, dataset_size))
        if self.queue_length is not None:
            KeyQueue(self.queue_length, 4, 'model.queue_length').check_batch(
                batch_size * world_size)


def runner_with(model, loader):
    return SimpleNamespace(model=model,
                           train_loop=SimpleNamespace(dataloader=loader))


def dataset(size):
    return TensorDataset(torch.zeros(size, 1))


@pytest.mark.parametrize('drop_last', [True, False])
def test_the_loader_values_reach_the_model(drop_last):
    model = Checked()
    loader = DataLoader(dataset(10), batch_size=4, drop_last=drop_last)
    TrainLoaderCheckHook().before_train(runner_with(model, loader))
    assert model.calls == [(4, 1, drop_last, 10)]


def test_a_batch_sampler_loader_is_read_from_its_sampler():
    model = Checked()
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.SequentialSampler(range(10)), batch_size=3,
        drop_last=True)
    loader = DataLoader(dataset(10), batch_sampler=sampler)
    TrainLoaderCheckHook().before_train(runner_with(model, loader))
    assert model.calls == [(3, 1, True, 10)]


def test_the_models_error_comes_before_training():
    model = Checked(queue_length=10)
    loader = DataLoader(dataset(12), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match='model.queue_length=10'):
        TrainLoaderCheckHook().before_train(runner_with(model, loader))


def test_models_without_the_method_are_left_alone():
    loader = DataLoader(dataset(3), batch_size=4)
    TrainLoaderCheckHook().before_train(
        runner_with(torch.nn.Linear(1, 1), loader))  # no error
