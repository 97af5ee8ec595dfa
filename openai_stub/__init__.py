"""OpenAI on loopback: the HTTP API's stub (server.py), checked against the official schema (schema.py), and
the Realtime peer that answers its calls (realtime_peer.py)."""
