"""Result models: the contract between steps and the report. Field names are the JSON the CLI prints.

Apart from logic on purpose: a module here imports pydantic and nothing heavy.
"""
