"""The click layer of ``wavebench``: one module per command group, each holding only options,
help text and the call into its work function (which lives in :mod:`wavebench` or
:mod:`wavebench.mos`).

==============  =====================================================================
module          commands
==============  =====================================================================
``context``     no command: the shared click context, ``--no-progress``, ``RAW_ARGS``
``prepare``     ``wavebench prepare``
``train``       ``wavebench train``
``score``       ``wavebench score``
``generate``    ``wavebench generate``
``speed``       ``wavebench speed``
``report``      ``wavebench report``
``demo``        ``wavebench demo``
``mos``         ``wavebench mos`` and ``plan``, ``packet``, ``validate``, ``import``, ``analyze``
==============  =====================================================================

:mod:`wavebench.cli` assembles them, importing a module only when its command runs or help
lists it; a command module imports its work module inside the command, so that listing the
commands loads neither torch nor pandas.
"""
