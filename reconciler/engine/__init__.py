"""The database edge: connections and reads (db), transactions (apply), ownership and history, saved plans,
`down`, secret sources and the run session."""
