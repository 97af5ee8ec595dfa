"""Local stand-ins (OpenAI stub, schema checks) for tests and `make run`."""
