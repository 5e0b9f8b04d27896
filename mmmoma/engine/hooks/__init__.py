from .checkpoint_hook import AtomicCheckpointHook
from .concentration_hook import ConcentrationMonitorHook
from .knn_hook import KNNEvalHook
from .non_finite_guard_hook import NonFiniteGuardHook, NonFiniteTrainingError
from .rng_state_hook import RNGStateHook
from .teacher_ema_hook import TeacherEMAHook
from .train_loader_check_hook import TrainLoaderCheckHook

__all__ = [
    'AtomicCheckpointHook', 'ConcentrationMonitorHook', 'KNNEvalHook',
    'NonFiniteGuardHook', 'NonFiniteTrainingError', 'RNGStateHook',
    'TeacherEMAHook', 'TrainLoaderCheckHook'
]
