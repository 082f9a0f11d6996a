"""Textual screens and modals of the regwiz wizard, one per module."""
