"""Shared foundation of the platform services."""
