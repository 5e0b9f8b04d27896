"""Stop (or skip a bounded number of) steps with a non-finite loss or
gradient, before any checkpoint with non-finite weights is written."""
import math
from typing import Callable, Dict, List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS
from torch import Tensor

from .utils import unwrapped_model

__all__ = ['NonFiniteGuardHook', 'NonFiniteTrainingError',
           'non_finite_entries']


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a non-finite loss, gradient or weight."""


def non_finite_entries(tensors: Dict[str, object]) -> List[str]:
    """Names of the floating-point tensors in ``tensors`` with a NaN / inf.

    Args:
        tensors (dict): name -> value; non-tensors and integer tensors are
            skipped.

    Returns:
        list[str]: the names, in order.
    """
    return [
        name for name, value in tensors.items()
        if isinstance(value, Tensor) and value.is_floating_point()
        and not bool(torch.isfinite(value.detach()).all())
    ]


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (one all-reduce),
    so all ranks skip or stop together."""
    if not is_distributed():
        return flag
    value = torch.tensor(float(flag), device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value.item())


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Guard every optimizer step against NaN / inf.

    MMEngine never checks the loss: with a diverging learning rate training
    logs ``loss: nan``, goes on, exits 0 and saves non-finite weights, and
    with ``max_keep_ckpts=1`` the last good checkpoint is deleted to make
    room for them. This hook wraps the runner's optim wrapper(s) at
    ``before_train``:

    * **loss**: before ``backward``, the total loss must be finite; the error
      names the iteration and each non-finite loss term (from the model's
      ``parse_losses``);
    * **gradient norm**: before ``optimizer.step``, the global L2 norm of the
      gradients must be finite (skipped for wrappers with a loss scaler,
      ``AmpOptimWrapper`` and fp16 ``AutoAmpOptimWrapper``, whose dynamic
      loss scaler expects and skips inf gradients);
    * **checkpoint**: before a checkpoint is written, every floating-point
      tensor of its ``state_dict`` must be finite.

    A bad step raises :class:`NonFiniteTrainingError` (the process exits
    non-zero; the optimizer step is not taken, so the weights in memory are
    those of the last good step and the checkpoints on disk are untouched),
    unless ``max_skipped_steps`` allows skipping it: then gradients are
    zeroed, the step is not taken, a warning is logged, and the count (saved
    in checkpoints, so a resumed run continues it) goes up by one. In
    distributed runs the decision is all-reduced, so all ranks skip or stop
    together.

    Args:
        max_skipped_steps (int): bad steps that may be skipped over the
            whole run before training stops. Defaults to 0 (stop at the
            first).
        check_grad_norm (bool): also check the gradient norm. Defaults to
            True.
    """
    priority = 'VERY_HIGH'  # before_save_checkpoint: ahead of other hooks

    def __init__(self,
                 max_skipped_steps: int = 0,
                 check_grad_norm: bool = True) -> None:
        if isinstance(max_skipped_steps, bool) or not isinstance(
                max_skipped_steps, int) or max_skipped_steps < 0:
            raise ValueError(
                'default_hooks.non_finite_guard.max_skipped_steps must be an '
                f'int >= 0, got {max_skipped_steps!r}')
        if not isinstance(check_grad_norm, bool):
            raise ValueError(
                'default_hooks.non_finite_guard.check_grad_norm must be True '
                f'or False, got {check_grad_norm!r}')
        self.max_skipped_steps = max_skipped_steps
        self.check_grad_norm = check_grad_norm
        self.skipped_steps = 0
        self._runner = None
        self._log_vars: Optional[Dict[str, Tensor]] = None

    # ------------------------------------------------------------ wiring
    def before_train(self, runner) -> None:
        self._runner = runner
        model = unwrapped_model(runner)
        self._wrap_parse_losses(model)
        wrappers = runner.optim_wrapper
        if isinstance(wrappers, OptimWrapperDict):
            wrappers = list(wrappers.values())
        else:
            wrappers = [wrappers]
        for wrapper in wrappers:
            if isinstance(wrapper, OptimWrapper):
                self._wrap_optim_wrapper(wrapper)

    def _wrap_parse_losses(self, model) -> None:
        """Keep the last per-term losses, to name the non-finite ones."""
        parse_losses = getattr(model, 'parse_losses', None)
        if parse_losses is None or getattr(parse_losses, '_mmmoma_guarded',
                                           False):
            return

        def guarded_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            self._log_vars = log_vars
            return loss, log_vars

        guarded_parse_losses._mmmoma_guarded = True
        model.parse_losses = guarded_parse_losses

    def _wrap_optim_wrapper(self, wrapper: OptimWrapper) -> None:
        if getattr(wrapper.update_params, '_mmmoma_guarded', False):
            return
        update_params: Callable = wrapper.update_params
        step: Callable = wrapper.step
        # A loss scaler (fp16) expects and skips inf gradients itself.
        check_grads = self.check_grad_norm and getattr(
            wrapper, 'loss_scaler', None) is None

        def guarded_update_params(loss: Tensor, step_kwargs=None,
                                  zero_kwargs=None) -> None:
            bad = _any_rank(not bool(torch.isfinite(loss.detach()).all()),
                            loss.device)
            if not bad:
                return update_params(loss, step_kwargs, zero_kwargs)
            self._bad_step(wrapper, 'loss', self._loss_report(loss))
            # all ranks run backward (DDP expects a reduction after each
            # forward), then drop the gradients without stepping
            wrapper.backward(wrapper.scale_loss(loss))
            wrapper.zero_grad(**(zero_kwargs or {}))

        def guarded_step(**kwargs) -> None:
            if check_grads:
                norm = self._grad_norm(wrapper)
                if norm is not None and _any_rank(
                        not math.isfinite(norm), self._device(wrapper)):
                    self._bad_step(wrapper, 'gradient norm',
                                   f'grad_norm={norm}')
                    return  # update_params zeroes the gradients next
            return step(**kwargs)

        guarded_update_params._mmmoma_guarded = True
        wrapper.update_params = guarded_update_params
        wrapper.step = guarded_step

    # ------------------------------------------------------------ checks
    @staticmethod
    def _grad_norm(wrapper: OptimWrapper) -> Optional[float]:
        grads = [param.grad.detach() for group in
                 wrapper.optimizer.param_groups for param in group['params']
                 if param.grad is not None]
        if not grads:
            return None
        norms = torch._foreach_norm(grads)
        return float(torch.linalg.vector_norm(torch.stack(
            [norm.to(norms[0].device) for norm in norms])))

    @staticmethod
    def _device(wrapper: OptimWrapper) -> torch.device:
        for group in wrapper.optimizer.param_groups:
            for param in group['params']:
                return param.device
        return torch.device('cpu')

    def _loss_report(self, loss: Tensor) -> str:
        terms = self._log_vars or {}
        bad = [name for name in non_finite_entries(terms) if name != 'loss']
        values = ', '.join(f'{name}={float(terms[name].detach())}'
                           for name in bad)
        return (f'loss={float(loss.detach())}' +
                (f' (non-finite terms: {values})' if values else ''))

    def _bad_step(self, wrapper: OptimWrapper, what: str,
                  report: str) -> None:
        runner = self._runner
        where = (f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
                 if runner is not None else 'a training step')
        if self.skipped_steps < self.max_skipped_steps:
            self.skipped_steps += 1
            if runner is not None:
                runner.logger.warning(
                    f'NonFiniteGuardHook: non-finite {what} at {where}: '
                    f'{report}; optimizer step skipped ({self.skipped_steps}'
                    f' of max_skipped_steps={self.max_skipped_steps})')
            return
        message = (
            f'non-finite {what} at {where}: {report}. Training stopped '
            'before the optimizer step, so no checkpoint with non-finite '
            'weights was written; the checkpoints already saved are intact '
            '(resume with --resume after lowering the learning rate, or '
            'allow skipping with default_hooks.non_finite_guard.'
            f'max_skipped_steps > {self.max_skipped_steps}; '
            f'{self.skipped_steps} step(s) skipped so far)')
        if runner is not None:
            runner.logger.error(f'NonFiniteGuardHook: {message}')
        raise NonFiniteTrainingError(message)

    # ------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for field in ('state_dict', 'ema_state_dict'):
            bad = non_finite_entries(checkpoint.get(field) or {})
            if bad:
                shown = ', '.join(bad[:5]) + (
                    f' and {len(bad) - 5} more' if len(bad) > 5 else '')
                message = (
                    f'refusing to save a checkpoint at iteration '
                    f'{runner.iter} (epoch {runner.epoch}): {len(bad)} '
                    f'tensor(s) of its {field} are not finite ({shown}); '
                    'the checkpoints already saved are intact')
                runner.logger.error(f'NonFiniteGuardHook: {message}')
                raise NonFiniteTrainingError(message)
        checkpoint.setdefault('meta', {})['non_finite_skipped_steps'] = \
            self.skipped_steps

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False):
            self.skipped_steps = int(
                checkpoint.get('meta', {}).get('non_finite_skipped_steps', 0))
