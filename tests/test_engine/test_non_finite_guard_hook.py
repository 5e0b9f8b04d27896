"""NonFiniteGuardHook on a real OptimWrapper and model, with a stand-in
runner: bad steps stop (or are skipped) before the optimizer step."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper

from mmmoma.engine.hooks import NonFiniteGuardHook, NonFiniteTrainingError


class TwoTermModel(BaseModel):
    """loss_a + loss_b; ``poison`` makes one term NaN or its gradient inf."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)
        self.poison = None

    def forward(self, inputs, data_samples=None, mode='loss'):
        out = self.linear(inputs).mean()
        loss_b = out * 0.5
        if self.poison == 'nan_loss':
            loss_b = loss_b * float('nan')
        if self.poison == 'inf_grad':
            loss_b = InfGrad.apply(loss_b)
        return dict(loss_a=out ** 2, loss_b=loss_b)


class InfGrad(torch.autograd.Function):
    """Identity forward (a finite loss), inf gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float('inf')


def setup(wrapper_type: str = 'OptimWrapper', **hook_args):
    model = TwoTermModel()
    wrapper = build_optim_wrapper(
        model, dict(type=wrapper_type, optimizer=dict(type='SGD', lr=0.1)))
    records = SimpleNamespace(warning=[], error=[])
    logger = SimpleNamespace(warning=records.warning.append,
                             error=records.error.append)
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, iter=4,
                             epoch=1, logger=logger, _resume=False)
    hook = NonFiniteGuardHook(**hook_args)
    hook.before_train(runner)
    return model, wrapper, runner, hook, records


def step(model, wrapper):
    wrapper.initialize_count_status(model, 0, 10)
    model.train_step(dict(inputs=torch.ones(2, 3)), wrapper)


def weights(model):
    return [param.detach().clone() for param in model.parameters()]


def test_finite_steps_update_the_weights():
    model, wrapper, _, _, records = setup()
    before = weights(model)
    step(model, wrapper)
    assert all(not torch.equal(a, b)
               for a, b in zip(before, weights(model)))
    assert records.warning == records.error == []


def test_nan_loss_stops_before_the_step_naming_iteration_and_term():
    model, wrapper, _, _, records = setup()
    model.poison = 'nan_loss'
    before = weights(model)
    with pytest.raises(NonFiniteTrainingError) as info:
        step(model, wrapper)
    message = str(info.value)
    assert message.startswith('non-finite loss at iteration 5 (epoch 2): '
                              'loss=nan (non-finite terms: loss_b=nan)')
    assert 'max_skipped_steps' in message
    assert 'loss_a' not in message  # the finite term is not blamed
    assert all(torch.equal(a, b) for a, b in zip(before, weights(model)))
    assert records.error and 'iteration 5' in records.error[0]


def test_inf_gradient_with_a_finite_loss_stops_before_the_step():
    model, wrapper, _, _, _ = setup()
    model.poison = 'inf_grad'
    before = weights(model)
    with pytest.raises(NonFiniteTrainingError,
                       match='non-finite gradient norm at iteration 5 '
                       r'\(epoch 2\): grad_norm=(inf|nan)'):
        step(model, wrapper)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(model)))


def test_inf_gradient_stops_the_scaler_free_auto_amp_wrapper():
    """AutoAmpOptimWrapper in fp32 / bf16 has no loss scaler to skip inf
    gradients, so the guard checks them as for a plain OptimWrapper."""
    model, wrapper, _, _, _ = setup('AutoAmpOptimWrapper')
    assert wrapper.loss_scaler is None
    model.poison = 'inf_grad'
    before = weights(model)
    with pytest.raises(NonFiniteTrainingError,
                       match='non-finite gradient norm at iteration 5'):
        step(model, wrapper)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(model)))


def test_gradient_check_can_be_turned_off():
    model, wrapper, _, _, _ = setup(check_grad_norm=False)
    model.poison = 'inf_grad'
    step(model, wrapper)  # no error: the step is taken
    assert not all(torch.isfinite(w).all() for w in weights(model))


@pytest.mark.parametrize('poison', ['nan_loss', 'inf_grad'])
def test_bad_steps_are_skipped_up_to_the_limit(poison):
    model, wrapper, runner, hook, records = setup(max_skipped_steps=2)
    model.poison = poison
    before = weights(model)
    for count in (1, 2):
        step(model, wrapper)
        assert hook.skipped_steps == count
        assert f'optimizer step skipped ({count} of max_skipped_steps=2)' \
            in records.warning[-1]
        # nothing moved and no gradient is left for the next step
        assert all(torch.equal(a, b)
                   for a, b in zip(before, weights(model)))
        assert all(p.grad is None or not p.grad.any()
                   for p in model.parameters())
    model.poison = None
    step(model, wrapper)  # a good step after skipped ones trains
    assert not torch.equal(before[0], weights(model)[0])
    model.poison = poison
    runner.iter = 9
    with pytest.raises(NonFiniteTrainingError,
                       match=r'iteration 10 .*2 step\(s\) skipped so far'):
        step(model, wrapper)


def test_checkpoints_with_non_finite_weights_are_refused():
    model, _, runner, hook, records = setup()
    state = model.state_dict()
    state['linear.bias'] = torch.tensor([float('inf')])
    with pytest.raises(NonFiniteTrainingError,
                       match=r'refusing to save a checkpoint .* 1 tensor\(s\) '
                       r'of its state_dict are not finite \(linear.bias\)'):
        hook.before_save_checkpoint(runner, dict(state_dict=state))
    assert records.error


def test_skip_count_is_saved_and_restored_on_resume_only():
    model, _, runner, hook, _ = setup(max_skipped_steps=5)
    hook.skipped_steps = 3
    checkpoint = dict(state_dict=model.state_dict(), meta={})
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['non_finite_skipped_steps'] == 3

    fresh = NonFiniteGuardHook(max_skipped_steps=5)
    fresh.after_load_checkpoint(runner, checkpoint)  # load_from: a new run
    assert fresh.skipped_steps == 0
    runner._resume = True
    fresh.after_load_checkpoint(runner, checkpoint)
    assert fresh.skipped_steps == 3


@pytest.mark.parametrize('value', [-1, 1.5, 'a', True, None])
def test_bad_max_skipped_steps_names_the_field(value):
    with pytest.raises(ValueError,
                       match='default_hooks.non_finite_guard.'
                       r'max_skipped_steps must be an int >= 0'):
        NonFiniteGuardHook(max_skipped_steps=value)


def test_bad_check_grad_norm_names_the_field():
    with pytest.raises(ValueError, match='non_finite_guard.check_grad_norm'):
        NonFiniteGuardHook(check_grad_norm='yes')
