from . import (backbones, heads, losses, masking, necks, selfsup,  # noqa: F401
               utils)
from .backbones import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
