"""The runtime a musician installs: codec, schedule, samplers, ports, player and the ``dmc`` command.

Import what you need from its modules (``bridge.codec``, ``bridge.samplers``, ...); this file
stays empty so that ``dmc --help`` loads nothing it does not use. Never imports TensorFlow.
"""
