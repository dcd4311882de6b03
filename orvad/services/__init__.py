"""The domain's in-memory services over the store: the catalogues (functions, secrets, routes, pool configs,
runtimes), the typed change events and the reconciler that turns them into pools, metrics, the bus,
housekeeping. No web framework: the HTTP layer and the invoke path call them."""
