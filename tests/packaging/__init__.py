"""Tests of what a user installs: the wheel without extras, README's commands."""
