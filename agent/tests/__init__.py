"""Tests of the Relevo agent."""
