"""The embedded SQLite stores: the executor store and the StateBackend store on one database file."""
