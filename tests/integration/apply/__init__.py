"""Plans and applies against the real database: golden cases, ownership, concurrency, privileges, kinds."""
