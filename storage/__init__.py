"""The database schema (versioned SQL migrations) and the statements that read and write it.

The Flink jobs and the API both import from here: one schema, one set of write statements.
"""
