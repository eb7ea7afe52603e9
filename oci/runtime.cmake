# (filled in by the runtime part)
