"""How a handler is called: from its signature, once per route, to the
endpoint the C core calls per request, and back from its return value to a
response. The stages, each a module:

    signature  the handler's parameters read once into a ``Dependant`` tree
               (where each value comes from, its type, its dependencies);
               ``convert`` and ``param_models`` say how a request value
               becomes a typed one
    plan       a ``CallPlan`` when the C core can take the arguments itself
               (path, query and header scalars, one model body)
    bind       the compiled binder for the rest: one generated function that
               reads the request, converts, validates, runs the dependencies
               (``dependencies``) and calls the handler
    call       ``Binding``: the route's handler analysed, planned and bound,
               and the endpoint list the C core calls (its mode is one of
               ``catzilla._core.MODE_*``, defined in csrc/python/py_server.c)
    render     return values the C core does not write itself, into
               responses; ``shapes`` lets the C core write plain models

The markers a handler declares (``Query``, ``Body``, ``Depends``, ...) live in
``catzilla.params``; the request objects in ``catzilla.request``.
"""
