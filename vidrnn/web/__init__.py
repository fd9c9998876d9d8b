"""A local web page for vidrnn checkpoints (``vidrnn serve``): see :mod:`vidrnn.web.app`."""
