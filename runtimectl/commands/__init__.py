"""``runtimectl``'s command groups, one module each: ``tools``/``call``
(``tools``), ``bootstrap`` (``bootstrap``) and ``doctor`` (``doctor``).
"""
