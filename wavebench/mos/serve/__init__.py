"""The online half of a listening test: ``wavebench mos serve`` and its SQLite study database.

``wavebench mos serve PACKET --db study.sqlite`` serves the packet's own page over HTTP, with a
small script added that posts every answer as it is given; the offline page is unchanged.

* :mod:`~wavebench.mos.serve.db` is the study database: SQLite in WAL mode with
  ``synchronous=FULL`` and a versioned schema. It assigns lists, stores answers once each and
  rebuilds each session as the results document the page downloads, so ``mos import --db``
  and ``mos status`` reuse :mod:`wavebench.mos.analysis` unchanged. It needs no extra package.
* :mod:`~wavebench.mos.serve.assignment` picks a list so that lists fill evenly.
* :mod:`~wavebench.mos.serve.schema` checks the bodies the page posts.
* :mod:`~wavebench.mos.serve.status` counts raters, votes per cell and screening so far.
* :mod:`~wavebench.mos.serve.app` is the Starlette application (the ``serve`` extra:
  ``pip install 'wavebench[serve]'``); import it only to serve.
"""
