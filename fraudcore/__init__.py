"""Shared pieces: feature schema, settings, errors, logging and the model bundle format."""
