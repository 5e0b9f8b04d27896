from . import (backbones, data_preprocessors, heads, losses,  # noqa: F401
               masking, necks, selfsup, utils)
from .backbones import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
