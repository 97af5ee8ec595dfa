"""Tools for the real AWS (not the local emulation): `make secret`, `make web-config`."""
