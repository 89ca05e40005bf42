"""``crackseg up``: the whole system as supervised local processes (no cluster needed)."""
