# (filled in by the config part)
