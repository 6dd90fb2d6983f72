"""Hostile input and secrets: nothing leaks, nothing is mis-stored."""
