"""Thin blueprints: parse input, call one service, render a page or an htmx partial."""
