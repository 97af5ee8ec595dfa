"""The voice demo page (web/) as `make run` serves it."""
