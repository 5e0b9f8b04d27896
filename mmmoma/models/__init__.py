from . import backbones, heads, losses, necks, selfsup, utils  # noqa: F401
from .backbones import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
