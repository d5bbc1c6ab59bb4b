"""The CAC simulator (``cac-simulate``): ``cac`` the simulated agent (pure), ``pricing`` its
fees, ``driver`` the network side; the command line is ``hub.simulator``."""
