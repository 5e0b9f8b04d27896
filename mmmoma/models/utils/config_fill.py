"""Fill a module config's widths from the modules it is wired to."""


def fill_channels(cfg: dict, name: str, **widths: int) -> dict:
    """Fill a module config's width arguments; a conflicting value raises.

    Args:
        cfg (dict): the module config.
        name (str): the config field named in the error.
        **widths: argument name -> the width it must have.

    Returns:
        dict: a copy of ``cfg`` with the widths set.
    """
    cfg = dict(cfg)
    for key, value in widths.items():
        if cfg.setdefault(key, value) != value:
            raise ValueError(
                f'{name}.{key}={cfg[key]} does not match {value} (the width '
                'it is fed / must produce); leave it unset to fill it in')
    return cfg
