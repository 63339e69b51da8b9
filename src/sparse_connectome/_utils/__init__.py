"""Helpers shared by several stages: atomic writes, hashing, the Bunch container
and the estimator base class.

This package is private: its modules are imported by the stages, never by users.
Every name in it is meant to be imported across the package (hence no leading
underscore); what is private to one module stays inside that module.
"""
