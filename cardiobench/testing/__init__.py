"""Reusable contract test suites: every registered component of a kind must pass its suite.

A third-party plugin runs the same suite on itself by subclassing the kind's contract class in
its own tests (the diffusers ``SchedulerCommonTest`` pattern). See ``docs/plugins.md``.
"""
