"""Storage: the only package that talks to Redis (connections, keys, repositories)."""
