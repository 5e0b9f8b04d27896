from .concentration_hook import ConcentrationMonitorHook
from .knn_hook import KNNEvalHook
from .rng_state_hook import RNGStateHook
from .teacher_ema_hook import TeacherEMAHook

__all__ = [
    'ConcentrationMonitorHook', 'KNNEvalHook', 'RNGStateHook',
    'TeacherEMAHook'
]
