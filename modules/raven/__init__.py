"""Raven compatibility: Raven's own clients (raven.client.api) served by Greenroom's modules."""
