"""The grid set-up: reading the proxy, ``doctor``'s checks, and ``dirac.cfg``.

- :mod:`.machine`: what the checks look at (environment, home, uid, clock), and ``which``;
- :mod:`.proxy`: the proxy file (its X.509 chain, with ``cryptography``) and its lifetime;
- :mod:`.extensions`: the proxy extensions ``cryptography`` has no class for (DIRAC group,
  VOMS attribute certificate), decoded with ``pyasn1``;
- :mod:`.dirac_client`: where the DIRAC client is installed and which ``dirac.cfg`` it reads;
- :mod:`.diraccfg`: ``dirac.cfg`` read, repaired and written with DIRAC's ``diraccfg`` library;
- :mod:`.report` and :mod:`.checks`: ``protopipe-grid doctor``'s checks, as typed results.
"""

#: hours a planned submission needs the proxy for, unless told otherwise
DEFAULT_NEEDED_HOURS = 12.0
#: seconds to reach each configuration server
DEFAULT_TIMEOUT = 3.0
