"""Serving: vector search, re-ranking, explanations, and the HTTP app."""
