"""Intents, one router per feature: parse -> call one use-case -> render text."""
