"""Omni-channel consumer-behaviour analytics: shared configuration, Spark and table registry."""
